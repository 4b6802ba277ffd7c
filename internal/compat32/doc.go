// Package compat32 makes 32-bit system calls from a 64-bit program, the
// way some programs step around syscall tracing: through int $0x80 on
// x86-64, with the syscall numbers of the 32-bit table. The capture tests
// use it to check that the tracepoint backend sees such syscalls (the
// syscalls:* tracepoints skip them) and that the BPF LSM does.
//
// Pointers passed to a 32-bit syscall must lie below 4 GiB; Low returns
// memory that does. Nothing here keeps state; it is safe for concurrent
// use.
package compat32
