package bpf

import (
	"fmt"
)

// LossReason says why the kernel could not deliver a record.
type LossReason uint32

// Loss reasons. LossOverflow counts losses the kernel could not attribute
// to a namespace (its loss table was full); LossDecode counts records the
// reader could not decode.
const (
	LossRingBuffer LossReason = 1 // the ring buffer was full
	LossTaskState  LossReason = 2 // no task storage for a member task
	LossPending    LossReason = 3 // fork inheritance table full
	// LossCreated: a file a namespace task created could not be tagged
	// (no room for the process's counters or the tag), so its events
	// name it by its path.
	LossCreated  LossReason = 4
	LossOverflow LossReason = 100
	LossDecode   LossReason = 101
)

func (r LossReason) String() string {
	switch r {
	case LossRingBuffer:
		return "ringbuf_full"
	case LossTaskState:
		return "task_storage"
	case LossPending:
		return "fork_table_full"
	case LossCreated:
		return "created_tag"
	case LossOverflow:
		return "unattributed"
	case LossDecode:
		return "decode"
	}
	return fmt.Sprintf("reason(%d)", uint32(r))
}

// LossKey identifies a loss counter.
type LossKey struct {
	NS     uint64
	Reason LossReason
}

type lossKey struct {
	NS     uint64
	Reason uint32
	_      uint32
}

// Lost returns every non-zero loss counter, summed over CPUs: the kernel's
// per namespace and reason, LossOverflow (namespace 0) for losses the
// kernel could not attribute, and LossDecode (namespace 0) for records
// the reader could not decode.
func (c *Capture) Lost() (map[LossKey]uint64, error) {
	out := make(map[LossKey]uint64)
	var (
		k  lossKey
		vs []uint64
	)
	it := c.objs.Loss.Iterate()
	for it.Next(&k, &vs) {
		var sum uint64
		for _, v := range vs {
			sum += v
		}
		if sum != 0 {
			out[LossKey{NS: k.NS, Reason: LossReason(k.Reason)}] += sum
		}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read loss counters: %w", err)
	}
	var zero uint32
	if err := c.objs.LossOverflow.Lookup(zero, &vs); err != nil {
		return nil, fmt.Errorf("read loss overflow counter: %w", err)
	}
	var sum uint64
	for _, v := range vs {
		sum += v
	}
	if sum != 0 {
		out[LossKey{Reason: LossOverflow}] = sum
	}
	if n := c.decodeErrs.Load(); n != 0 {
		out[LossKey{Reason: LossDecode}] = n
	}
	return out, nil
}
