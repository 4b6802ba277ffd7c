// Command vminit is PID 1 of the VM test harness (test/vm). It is built statically
// (CGO_ENABLED=0) and put in the initramfs as /init, next to the test binaries and the
// JSON configuration at vmproto.ConfigPath.
//
// As /init it mounts proc, sysfs, devtmpfs, securityfs, bpffs (/sys/fs/bpf), tracefs,
// debugfs, cgroup2 and tmpfs on /tmp, /run and /dev/shm, brings up the loopback
// interface, sets the environment (VIGIL_VM=1, VIGIL_TEST_BPF=require, VIGIL_TEST_LSM=require,
// VIGIL_VM_BIN=/bin, PATH=/bin, TMPDIR=/tmp, plus the configured extras), runs each test
// binary with -test.v in its package directory, prints the vmproto markers around each
// one and powers the machine off. It refuses to run unless it is PID 1 and the
// configuration exists, so running it by mistake on a host does nothing.
//
// Under any other name (the symlinks in /bin) it is a tiny applet, so tests can exec
// real programs in a guest that has no shell: cat FILE..., echo ARGS..., true, false,
// sleep SECONDS, touch FILE..., id (prints uid/gid/euid/egid). There is no /bin/sh.
//
// Single goroutine apart from os/exec's copying; no shared state.
package main
