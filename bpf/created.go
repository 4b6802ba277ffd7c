package bpf

import (
	"fmt"
)

// createdKey and createdTag mirror struct vg_ckey and struct vg_ctag.
type createdKey struct {
	Ino      uint64
	Dev, Gen uint32
}

type createdTag struct {
	NS, OwnerTTD, Instance uint64
}

// dropCreated deletes the created-file tags of namespace ns (tracepoint
// backend): no event of ns names those files any more, and the table is
// bounded.
func (c *Capture) dropCreated(ns uint64) error {
	if c.objs.tp.CreatedIno == nil {
		return nil
	}
	dead, err := keysWhere(c.objs.tp.CreatedIno, func(_ *createdKey, v *createdTag) bool { return v.NS == ns })
	if err == nil {
		err = deleteKeys(c.objs.tp.CreatedIno, dead)
	}
	if err != nil {
		return fmt.Errorf("drop created-file tags of namespace %d: %w", ns, err)
	}
	return nil
}

// CreatedTags returns the number of created-file tags the tracepoint
// backend holds (at most 65,536: created_ino in bpf/lib/created.h); 0 on the
// LSM backend, whose tags live with their inodes.
func (c *Capture) CreatedTags() (int, error) {
	if c.objs.tp.CreatedIno == nil {
		return 0, nil
	}
	all, err := keysWhere(c.objs.tp.CreatedIno, func(*createdKey, *createdTag) bool { return true })
	if err != nil {
		return 0, fmt.Errorf("count created-file tags: %w", err)
	}
	return len(all), nil
}
