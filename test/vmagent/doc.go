// Package vmagent tests the host agent (internal/agent) with the BPF LSM
// backend, in the VM of test/vm: a container cgroup appears, its workload
// learns, the control API seals and enforces its namespace, and the kernel
// denies the workload's first action outside the model with EPERM; the
// denial shows in the forensics, in the metrics and in a measured log that
// verifies after the agent stops.
//
// Run it with `go run ./test/vm -- ./test/vmagent`. On a host whose kernel
// refuses BPF LSM programs the test skips with the reason, and fails when
// VIGIL_TEST_LSM=require (the VM sets it).
//
// The test binary is also its own workload: with VIGIL_VMAGENT_HELPER set
// it runs a helper mode (see helper_test.go) instead of the tests.
//
// # Concurrency
//
// One test; the agent runs on its own goroutines in the test process, and
// the workload is a child process driven over pipes, one command at a
// time.
package vmagent
