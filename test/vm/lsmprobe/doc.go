// Package lsmprobe is the VM harness's proof that the BPF LSM works in the guest: a
// minimal BPF LSM program on file_open, assembled in Go with cilium/ebpf's asm package
// (no clang), that counts opens of watched files and denies opens of marked ones with
// EPERM. Its tests are what `go run ./test/vm -- ./test/vm/lsmprobe` runs; on a host
// whose kernel refuses LSM programs they skip with the reason, and fail instead under
// VIGIL_TEST_LSM=require (which the VM sets).
//
// A Probe owns one map, one program and at most one link. Watch, Hits and Close may be
// called from any goroutine; the kernel's map operations are atomic per element.
package lsmprobe
