// Package deploy holds no code: it is the home of the deployment files —
// kubernetes/ (a kustomization with the agent's DaemonSet, ServiceAccount,
// RBAC, ConfigMap, Service and ServiceMonitor, plus components for TPM and
// TDX nodes) and systemd/vigil.service — and of the test that checks them:
// every manifest decodes strictly into the Kubernetes API types, the pieces
// refer to each other consistently, the ConfigMap's config file loads, and
// the unit passes systemd-analyze verify where that tool exists.
package deploy
