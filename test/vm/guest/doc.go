// Package guest checks, inside the VM, the environment the harness promises to tests:
// the filesystems the init mounts, the environment variables, the applets in
// VIGIL_VM_BIN, root, the loopback interface and the package's testdata next to the
// binary. Outside the VM (VIGIL_VM unset) its tests skip. It has no code of its own.
package guest
