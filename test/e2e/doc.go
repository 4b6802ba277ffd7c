// Package e2e holds end-to-end tests of the vigil binary on the host
// kernel: `vigil run` with a real load and attach of the capture programs
// (the tracepoint backend here; the LSM backend where the kernel allows
// it), checking the trajectory it writes against facts the tests establish
// independently (file digests, credentials, addresses, task identities).
//
// The tests need root. Without it, or when the kernel conclusively refuses
// the programs, they skip and say why; with VIGIL_TEST_BPF=require they
// fail instead. VIGIL_BIN names a prebuilt vigil binary; otherwise the
// tests build one. The tests run one at a time (they load programs).
package e2e
