// Package vmrun tests `vigil run --model M --enforce` end to end with the
// BPF LSM backend, in the VM of test/vm: a command learns a model, the
// same command then runs enforcing that model and behaves exactly as it
// did while learning, and a command that strays from the model has its
// out-of-model action fail with EPERM, with the event in the forensics.
//
// Run it with `go run ./test/vm -bin ./cmd/vigil -- ./test/vmrun` (make
// vmtest does). The tests run the vigil binary named by VIGIL_BIN, else
// $VIGIL_VM_BIN/vigil (the guest's /bin), else one they build. On a host
// whose kernel refuses BPF LSM programs, or without root, they skip with
// the reason; with VIGIL_TEST_LSM=require (the VM sets it) they fail
// instead. In the guest, cat is a Go program (test/vm/vminit), so the
// enforced workload includes a Go runtime's start-up: its heap mappings,
// its reads of /proc/self/..., its threads.
//
// # Concurrency
//
// The tests run one at a time: each loads the capture programs.
package vmrun
