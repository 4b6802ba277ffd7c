// Package tdx reaches Intel TDX measurement hardware from inside a trust
// domain: the runtime measurement registers (RTMRs) through the kernel's sysfs
// files, and quotes through configfs-tsm, which it also verifies offline.
//
// Device access goes through two small interfaces, FS for the sysfs
// measurement files and the configfs-tsm client for quotes, so tests run on
// fakes that behave like the hardware (see measure/measuretest). The byte
// formats and signature checks come from github.com/google/go-tdx-guest.
//
// An RTMR serialises its own extends (each is one write(2) the kernel
// applies atomically); the values here are safe for concurrent use.
package tdx
