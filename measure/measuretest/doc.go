// Package measuretest has fakes of measurement hardware for tests: a TDX
// measurement-register file system that extends like the kernel's sysfs
// files (and refuses what they refuse), registers that fail on demand, and
// a log file on a disk that fills up (Disk).
//
// The fakes are safe for concurrent use.
package measuretest
