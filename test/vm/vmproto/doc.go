// Package vmproto is the contract between the VM test harness (test/vm, on the host)
// and its init (test/vm/vminit, PID 1 in the guest): the configuration file the harness
// puts in the initramfs, the marker lines the init prints on the serial console around
// each test binary, and the rule that turns a binary's exit status and `-test.v` output
// into a verdict.
//
// Marker lines start with Prefix so that the host can pick them out of the console
// stream, which also carries kernel messages and the tests' own output:
//
//	VIGIL-VM INIT kernel=6.1.0-48-cloud-amd64 lsm=lockdown,capability,landlock,bpf
//	VIGIL-VM BEGIN ./test/vm/lsmprobe
//	VIGIL-VM END ./test/vm/lsmprobe verdict=PASS exit=0 pass=4 fail=0 skip=0 time=120ms
//	VIGIL-VM DONE passed=1 total=1
//
// The package has no state; its functions are safe for concurrent use. A Counter is
// owned by one goroutine.
package vmproto
