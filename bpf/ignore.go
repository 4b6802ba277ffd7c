package bpf

import (
	"fmt"

	"github.com/cilium/ebpf"
)

// The ignore table (ignore_tgid): processes left out of the host.

// ignoreLive is enum vg_ignore's VG_IGN_LIVE: a process left out of the
// host whose threads may still act.
const ignoreLive = 1

// Ignore leaves process tgid (all its threads, and the processes it forks
// from now on, and theirs) out of namespace 0: while the host is modeled
// its tasks there make no records and are never denied. Tasks enrolled in
// another namespace are not affected. The kernel forgets the process when
// its group leader is freed, after every thread has exited. The table
// holds 4096 processes; a fork past that is not ignored.
func (c *Capture) Ignore(tgid int) error {
	if tgid <= 0 {
		return fmt.Errorf("ignore process %d: not a process id", tgid)
	}
	if err := c.objs.IgnoreTGID.Update(uint32(tgid), uint8(ignoreLive), ebpf.UpdateAny); err != nil {
		return fmt.Errorf("ignore process %d: %w", tgid, err)
	}
	return nil
}
