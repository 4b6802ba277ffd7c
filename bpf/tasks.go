package bpf

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// Task state (task_state): enrolment, untrusted tasks, the state the
// kernel keeps.

// Flags of struct vg_task (enum vg_task_flags).
const (
	taskEnrolled  = 1 << 0
	taskUntrusted = 1 << 1
	taskDormant   = 1 << 2
)

// taskValue mirrors struct vg_task.
type taskValue struct {
	NS       uint64
	TTD      uint64
	PTTD     uint64
	Flags    uint32
	CfgEpoch uint32  // the kernel's copy of the namespace configuration:
	Cfg      nsValue // Enroll clears it, the kernel refills it
	CfgSet   uint32
	_        uint32
}

// Enroll puts the task pid into namespace ns. Call it before the task
// execs the workload (e.g. while it waits on a pipe) so nothing it does is
// missed; its children inherit the membership at fork. The task gets a
// fresh TTD at its first event and PTTD 0.
func (c *Capture) Enroll(pid int, ns uint64) error {
	return c.setTask(pid, func(v *taskValue) {
		*v = taskValue{NS: ns, Flags: taskEnrolled}
	}, false)
}

// MarkUntrusted marks an enrolled task untrusted (userspace found an
// out-of-model event the kernel could not judge, e.g. a file digest). In
// an enforcing namespace every later event of the task is denied.
func (c *Capture) MarkUntrusted(pid int) error {
	return c.setTask(pid, func(v *taskValue) { v.Flags |= taskUntrusted }, true)
}

func (c *Capture) setTask(pid int, edit func(*taskValue), mustExist bool) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return fmt.Errorf("open pidfd of %d: %w", pid, err)
	}
	defer unix.Close(fd)
	var v taskValue
	if err := c.objs.TaskState.Lookup(uint32(fd), &v); err != nil {
		if mustExist || !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("look up task %d: %w", pid, err)
		}
	}
	edit(&v)
	if err := c.objs.TaskState.Update(uint32(fd), &v, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("update task %d: %w", pid, err)
	}
	return nil
}

// TaskState returns the kernel's state of task pid: its namespace, TTD,
// PTTD and whether it is untrusted; ok is false for a task the kernel
// tracks no state for (not in a modeling namespace). A task a member forked
// is a member from its fork, although the kernel keeps its state in the
// fork's pending table until the task's first event: TaskState reports
// that state, so that nobody enrols the task anew (which would make it a
// namespace root with a new identity).
func (c *Capture) TaskState(pid int) (ns, ttd, pttd uint64, untrusted, ok bool, err error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return 0, 0, 0, false, false, fmt.Errorf("open pidfd of %d: %w", pid, err)
	}
	defer unix.Close(fd)
	var v taskValue
	err = c.objs.TaskState.Lookup(uint32(fd), &v)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		// The pending table holds a struct vg_task, as the task
		// storage, keyed by the pid in the initial pid namespace (the
		// capture's).
		var p taskValue
		if err := c.objs.Pending.Lookup(uint32(pid), &p); err == nil {
			return p.NS, p.TTD, p.PTTD, p.Flags&taskUntrusted != 0, true, nil
		} else if !errors.Is(err, ebpf.ErrKeyNotExist) {
			return 0, 0, 0, false, false, fmt.Errorf("look up pending task %d: %w", pid, err)
		}
		return 0, 0, 0, false, false, nil
	}
	if err != nil {
		return 0, 0, 0, false, false, fmt.Errorf("look up task %d: %w", pid, err)
	}
	return v.NS, v.TTD, v.PTTD, v.Flags&taskUntrusted != 0, true, nil
}
