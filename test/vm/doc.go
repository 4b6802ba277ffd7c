// Command vm is the VM test harness for Vigil's BPF LSM backend. The host kernel
// refuses LSM programs, so the LSM tests run in a guest: Debian's cloud kernel booted
// under qemu with the BPF LSM in the active list.
//
//	go run ./test/vm [flags] -- PKG... [TESTFLAG...]
//
// It fetches the kernel (kernel.go: linux-image-cloud-amd64 resolved with apt-cache,
// `apt-get download`, `dpkg-deb -x`, boot/ kept in REPO/.cache/vm), builds each
// package's test binary and the init (test/vm/vminit) statically, writes a gzip'd newc
// initramfs itself (cpio.go, build.go), boots qemu with the console on stdout
// (qemu.go; accel.go picks KVM or TCG, and boots again under TCG when a KVM
// guest does not start) and judges the run from the init's marker lines (test/vm/vmproto). It
// exits 0 only when every binary passed, ran at least one test and did not skip all.
// README.md shows a run.
//
// The harness is a single goroutine apart from os/exec's copying.
package main
