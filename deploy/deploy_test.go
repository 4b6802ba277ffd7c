package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/vigil-tsem/vigil/internal/config"
	"github.com/vigil-tsem/vigil/namespace"
)

// serviceMonitor is the part of monitoring.coreos.com/v1 ServiceMonitor the
// manifests use; strict decoding rejects anything else, so a misspelt field
// fails here instead of being dropped by the API server.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector struct {
			MatchNames []string `json:"matchNames"`
		} `json:"namespaceSelector"`
		Endpoints []struct {
			Port          string `json:"port"`
			Path          string `json:"path"`
			Interval      string `json:"interval"`
			ScrapeTimeout string `json:"scrapeTimeout"`
			Relabelings   []struct {
				SourceLabels []string `json:"sourceLabels"`
				TargetLabel  string   `json:"targetLabel"`
			} `json:"relabelings"`
		} `json:"endpoints"`
	} `json:"spec"`
}

type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace"`
	Resources  []string `json:"resources"`
	Components []string `json:"components"`
	Images     []struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
	} `json:"images"`
	Patches []struct {
		Target struct {
			Kind string `json:"kind"`
			Name string `json:"name"`
		} `json:"target"`
		Patch string `json:"patch"`
	} `json:"patches"`
}

// manifests holds every object of the kustomization, decoded.
type manifests struct {
	namespace   *corev1.Namespace
	account     *corev1.ServiceAccount
	role        *rbacv1.ClusterRole
	binding     *rbacv1.ClusterRoleBinding
	configMap   *corev1.ConfigMap
	daemonSet   *appsv1.DaemonSet
	service     *corev1.Service
	monitor     *serviceMonitor
	objectCount int
}

// splitDocs splits a YAML stream at its "---" lines.
func splitDocs(data []byte) [][]byte {
	var docs [][]byte
	for _, d := range bytes.Split(data, []byte("\n---\n")) {
		if len(bytes.TrimSpace(d)) > 0 {
			docs = append(docs, d)
		}
	}
	return docs
}

// decode decodes one object strictly into its API type.
func (m *manifests) decode(name string, doc []byte) error {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	var obj any
	switch tm.APIVersion + " " + tm.Kind {
	case "v1 Namespace":
		m.namespace = &corev1.Namespace{}
		obj = m.namespace
	case "v1 ServiceAccount":
		m.account = &corev1.ServiceAccount{}
		obj = m.account
	case "rbac.authorization.k8s.io/v1 ClusterRole":
		m.role = &rbacv1.ClusterRole{}
		obj = m.role
	case "rbac.authorization.k8s.io/v1 ClusterRoleBinding":
		m.binding = &rbacv1.ClusterRoleBinding{}
		obj = m.binding
	case "v1 ConfigMap":
		m.configMap = &corev1.ConfigMap{}
		obj = m.configMap
	case "apps/v1 DaemonSet":
		m.daemonSet = &appsv1.DaemonSet{}
		obj = m.daemonSet
	case "v1 Service":
		m.service = &corev1.Service{}
		obj = m.service
	case "monitoring.coreos.com/v1 ServiceMonitor":
		m.monitor = &serviceMonitor{}
		obj = m.monitor
	default:
		return fmt.Errorf("%s: unexpected object %s %s", name, tm.APIVersion, tm.Kind)
	}
	if err := strictDecode(doc, obj); err != nil {
		return fmt.Errorf("%s: %s: %w", name, tm.Kind, err)
	}
	m.objectCount++
	return nil
}

// strictDecode decodes YAML as the API server's strict field validation
// does: duplicate keys, unknown fields and fields in the wrong case
// ("hostPid" for "hostPID", which encoding/json would accept) are errors.
func strictDecode(doc []byte, obj any) error {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	strict, err := sigsjson.UnmarshalStrict(js, obj, sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

func loadKustomization(t *testing.T, dir string) kustomization {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k kustomization
	if err := strictDecode(data, &k); err != nil {
		t.Fatalf("%s/kustomization.yaml: %v", dir, err)
	}
	return k
}

func loadManifests(t *testing.T) *manifests {
	t.Helper()
	k := loadKustomization(t, "kubernetes")
	if k.Kind != "Kustomization" || k.Namespace != "vigil-system" {
		t.Errorf("kustomization: kind %q namespace %q; want Kustomization in vigil-system", k.Kind, k.Namespace)
	}
	m := &manifests{}
	for _, r := range k.Resources {
		data, err := os.ReadFile(filepath.Join("kubernetes", r))
		if err != nil {
			t.Fatalf("kustomization resource: %v", err)
		}
		for _, doc := range splitDocs(data) {
			if err := m.decode(r, doc); err != nil {
				t.Error(err)
			}
		}
	}
	// Every manifest file is part of the kustomization.
	files, _ := filepath.Glob("kubernetes/*.yaml")
	for _, f := range files {
		if b := filepath.Base(f); b != "kustomization.yaml" && !slices.Contains(k.Resources, b) {
			t.Errorf("%s is not listed in kubernetes/kustomization.yaml", f)
		}
	}
	return m
}

func TestManifestsStrict(t *testing.T) {
	m := loadManifests(t)
	if m.namespace == nil || m.account == nil || m.role == nil || m.binding == nil ||
		m.configMap == nil || m.daemonSet == nil || m.service == nil || m.monitor == nil {
		t.Fatalf("missing objects: %+v", m)
	}
	if m.objectCount != 8 {
		t.Errorf("decoded %d objects; want 8", m.objectCount)
	}
}

func TestStrictDecodingRejectsTypos(t *testing.T) {
	data, err := os.ReadFile("kubernetes/daemonset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, typo := range []struct{ from, to string }{
		{"hostPID: true", "hostPid: true"},
		{"readOnly: true", "readonly: true"},
		{"    type: RollingUpdate", "    type: RollingUpdate\n    type: OnDelete"},
	} {
		bad := bytes.Replace(data, []byte(typo.from), []byte(typo.to), 1)
		if bytes.Equal(bad, data) {
			t.Fatalf("fixture: %q not in daemonset.yaml", typo.from)
		}
		if err := (&manifests{}).decode("daemonset.yaml", bad); err == nil {
			t.Errorf("decode(daemonset.yaml with %q) = nil; want a strict decoding error", typo.to)
		}
	}
}

func TestDaemonSet(t *testing.T) {
	m := loadManifests(t)
	ds := m.daemonSet
	pod := ds.Spec.Template.Spec
	if !pod.HostPID {
		t.Error("DaemonSet: hostPID is not set")
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("DaemonSet: %d containers; want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	if sc := c.SecurityContext; sc == nil || sc.Privileged == nil || !*sc.Privileged {
		t.Error("DaemonSet: container is not privileged")
	}
	if want := []string{"agent", "--config", "/etc/vigil/config.yaml"}; !slices.Equal(c.Args, want) {
		t.Errorf("DaemonSet args = %q; want %q", c.Args, want)
	}
	for k, v := range ds.Spec.Selector.MatchLabels {
		if ds.Spec.Template.Labels[k] != v {
			t.Errorf("DaemonSet selector %s=%s does not match the pod template", k, v)
		}
	}
	if ds.Spec.Template.Spec.ServiceAccountName != m.account.Name {
		t.Errorf("DaemonSet serviceAccountName = %q; want %q", pod.ServiceAccountName, m.account.Name)
	}

	volumes := make(map[string]corev1.Volume)
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
	}
	mounts := make(map[string]corev1.VolumeMount)
	for _, vm := range c.VolumeMounts {
		if _, ok := volumes[vm.Name]; !ok {
			t.Errorf("volumeMount %s has no volume", vm.Name)
		}
		mounts[vm.MountPath] = vm
	}
	// What BPF and the agent need from the host, mounted where the kernel's
	// own paths are.
	for _, host := range []string{"/sys/kernel/btf", "/sys/fs/bpf", "/sys/kernel/security", "/sys/fs/cgroup", "/sys/kernel/tracing", "/run/vigil", "/var/lib/vigil"} {
		vm, ok := mounts[host]
		if !ok {
			t.Errorf("DaemonSet: nothing mounted at %s", host)
			continue
		}
		hp := volumes[vm.Name].HostPath
		if hp == nil || hp.Path != host {
			t.Errorf("DaemonSet: %s is not the host's %s: %+v", host, host, volumes[vm.Name])
		}
	}
	// The runtimes' state, read-only under the config's runtime_root, at
	// the directories the image resolver reads (or below them).
	conf := configMapConfig(t, m)
	var runtimeDirs []string
	runtimeDirs = append(runtimeDirs, namespace.DefaultContainerdDirs...)
	runtimeDirs = append(runtimeDirs, namespace.DefaultStorageDirs...)
	runtimeDirs = append(runtimeDirs, namespace.DefaultDockerDirs...)
	for _, d := range runtimeDirs {
		at := filepath.Join(conf.RuntimeRoot, d)
		found := false
		for path, vm := range mounts {
			if path != at && !strings.HasPrefix(path, at+"/") {
				continue
			}
			found = true
			hp := volumes[vm.Name].HostPath
			if !vm.ReadOnly || hp == nil || hp.Path != strings.TrimPrefix(path, conf.RuntimeRoot) {
				t.Errorf("DaemonSet: runtime state at %s is not the host's %s read-only: %+v, %+v", path, strings.TrimPrefix(path, conf.RuntimeRoot), vm, volumes[vm.Name])
			}
		}
		if !found {
			t.Errorf("DaemonSet: runtime state %s is not mounted at %s (runtime_root %s)", d, at, conf.RuntimeRoot)
		}
	}
	// Where the runtimes mount containers' root file systems and volumes
	// after the pod started: the mounts must reach the pod, for the agent
	// to hold each container's file system (namespace.ContainerFS).
	fsDirs := append([]string{"/var/lib/containers/storage/overlay", "/var/lib/docker/overlay2", "/var/lib/kubelet/pods"}, namespace.DefaultContainerdDirs...)
	for _, d := range fsDirs {
		at := filepath.Join(conf.RuntimeRoot, d)
		vm, ok := mounts[at]
		if !ok {
			t.Errorf("DaemonSet: %s is not mounted at %s", d, at)
			continue
		}
		if hp := volumes[vm.Name].HostPath; hp == nil || hp.Path != d || !vm.ReadOnly || vm.MountPropagation == nil || *vm.MountPropagation != corev1.MountPropagationHostToContainer {
			t.Errorf("DaemonSet: %s is not the host's %s read-only with HostToContainer propagation: %+v", at, d, vm)
		}
	}

	cfg, ok := mounts["/etc/vigil"]
	if !ok || volumes[cfg.Name].ConfigMap == nil || volumes[cfg.Name].ConfigMap.Name != m.configMap.Name {
		t.Errorf("DaemonSet: /etc/vigil is not the ConfigMap %s", m.configMap.Name)
	}

	var port int32
	for _, p := range c.Ports {
		if p.Name == "metrics" {
			port = p.ContainerPort
		}
	}
	if port != 9476 {
		t.Errorf("DaemonSet: metrics port = %d; want 9476", port)
	}
	if len(m.service.Spec.Ports) != 1 || m.service.Spec.Ports[0].TargetPort.String() != "metrics" {
		t.Errorf("Service ports = %+v; want the metrics port", m.service.Spec.Ports)
	}
	for k, v := range m.service.Spec.Selector {
		if ds.Spec.Template.Labels[k] != v {
			t.Errorf("Service selector %s=%s does not select the agent pods", k, v)
		}
	}
	for k, v := range m.monitor.Spec.Selector.MatchLabels {
		if m.service.Labels[k] != v {
			t.Errorf("ServiceMonitor selector %s=%s does not select the Service", k, v)
		}
	}
	if len(m.monitor.Spec.Endpoints) == 0 || m.monitor.Spec.Endpoints[0].Port != "metrics" {
		t.Errorf("ServiceMonitor endpoints = %+v; want port metrics", m.monitor.Spec.Endpoints)
	}
	if s := m.binding.Subjects; len(s) != 1 || s[0].Name != m.account.Name || m.binding.RoleRef.Name != m.role.Name {
		t.Errorf("ClusterRoleBinding = %+v; want %s bound to %s", m.binding, m.account.Name, m.role.Name)
	}
	for _, r := range m.role.Rules {
		for _, verb := range r.Verbs {
			if verb != "get" && verb != "list" && verb != "watch" {
				t.Errorf("ClusterRole grants %q; the agent only reads", verb)
			}
		}
	}
}

// configMapConfig loads the ConfigMap's config.yaml as the agent does.
func configMapConfig(t *testing.T, m *manifests) config.Config {
	t.Helper()
	data, ok := m.configMap.Data["config.yaml"]
	if !ok {
		t.Fatal("ConfigMap has no config.yaml")
	}
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(path)
	if err != nil {
		t.Fatalf("ConfigMap config.yaml: %v", err)
	}
	return c
}

func TestConfigMapLoads(t *testing.T) {
	c := configMapConfig(t, loadManifests(t))
	if c.MetricsAddr != "0.0.0.0:9476" || c.Socket != "/run/vigil/vigil.sock" {
		t.Errorf("ConfigMap config: metrics_addr %q socket %q; want the pod-wide metrics address and the hostPath socket", c.MetricsAddr, c.Socket)
	}
}

func TestComponents(t *testing.T) {
	for _, name := range []string{"tpm", "tdx"} {
		dir := filepath.Join("kubernetes", "components", name)
		k := loadKustomization(t, dir)
		if k.Kind != "Component" || len(k.Patches) == 0 {
			t.Errorf("%s: kind %q with %d patches; want a Component with patches", dir, k.Kind, len(k.Patches))
		}
	}
}

// TestKustomizeBuild renders the kustomization with kubectl, as a user
// would apply it, and decodes the output strictly.
func TestKustomizeBuild(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("skipping: kubectl not installed")
	}
	overlay := t.TempDir()
	if err := os.CopyFS(filepath.Join(overlay, "base"), os.DirFS("kubernetes")); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte(
		"resources: [base]\ncomponents: [base/components/tpm, base/components/tdx]\n"), 0o600)
	for _, dir := range []string{"kubernetes", overlay} {
		out, err := exec.Command(kubectl, "kustomize", dir).Output()
		if err != nil {
			t.Fatalf("kubectl kustomize %s: %v", dir, err)
		}
		m := &manifests{}
		for _, doc := range splitDocs(out) {
			if err := m.decode("kustomize output", doc); err != nil {
				t.Error(err)
			}
		}
		if m.objectCount != 8 {
			t.Errorf("kubectl kustomize %s: %d objects; want 8", dir, m.objectCount)
		}
		if img := m.daemonSet.Spec.Template.Spec.Containers[0].Image; img != "ghcr.io/vigil-tsem/vigil:latest" {
			t.Errorf("kubectl kustomize %s: image %q; want the kustomization's image", dir, img)
		}
		if dir == overlay {
			var paths []string
			for _, v := range m.daemonSet.Spec.Template.Spec.Volumes {
				if v.HostPath != nil {
					paths = append(paths, v.HostPath.Path)
				}
			}
			for _, want := range []string{"/dev/tpmrm0", "/sys/class/misc/tdx_guest", "/sys/kernel/config/tsm"} {
				if !slices.Contains(paths, want) {
					t.Errorf("with components tpm and tdx: no hostPath %s in %v", want, paths)
				}
			}
		}
	}
}

func TestSystemdUnit(t *testing.T) {
	data, err := os.ReadFile("systemd/vigil.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(data)
	for _, want := range []string{
		"ExecStart=/usr/local/bin/vigil agent --config /etc/vigil/config.yaml\n",
		"ExecReload=/bin/kill -HUP $MAINPID\n",
		"RuntimeDirectory=vigil\n", "RuntimeDirectoryMode=0700\n", "ProtectSystem=strict\n", "NoNewPrivileges=yes\n",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("vigil.service lacks %q", strings.TrimSpace(want))
		}
	}
	var caps []string
	for _, line := range strings.Split(unit, "\n") {
		if v, ok := strings.CutPrefix(line, "CapabilityBoundingSet="); ok {
			caps = strings.Fields(v)
		}
		// The agent must see the workloads' /home, /root and /tmp to digest
		// their files.
		for _, bad := range []string{"ProtectHome=", "PrivateTmp=", "ProtectKernelTunables=", "PrivateDevices="} {
			if strings.HasPrefix(line, bad) {
				t.Errorf("vigil.service sets %s, which hides what the agent must see", line)
			}
		}
	}
	for _, c := range []string{"CAP_BPF", "CAP_PERFMON", "CAP_SYS_ADMIN", "CAP_SYS_RESOURCE"} {
		if !slices.Contains(caps, c) {
			t.Errorf("CapabilityBoundingSet %v lacks %s", caps, c)
		}
	}
}

func TestSystemdAnalyzeVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("skipping: systemd-analyze not installed")
	}
	data, err := os.ReadFile("systemd/vigil.service")
	if err != nil {
		t.Fatal(err)
	}
	// verify insists that ExecStart's binary exists; point it at one that
	// does, changing nothing else.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	unit := filepath.Join(t.TempDir(), "vigil.service")
	os.WriteFile(unit, bytes.Replace(data, []byte("/usr/local/bin/vigil"), []byte(self), 1), 0o644)
	out, err := exec.Command(analyze, "verify", unit).CombinedOutput()
	if err != nil || bytes.Contains(out, []byte("vigil.service")) {
		t.Errorf("systemd-analyze verify vigil.service: %v\n%s", err, out)
	}
}
