// Package measuretest has fakes of measurement hardware for tests: a TDX
// measurement-register file system that extends like the kernel's sysfs
// files (and refuses what they refuse), and registers that fail on demand.
//
// The fakes are safe for concurrent use.
package measuretest
