package bpf

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cilium/ebpf/ringbuf"
)

// Reading the ring buffer: Read, Run and the drain of a rotation.

// Read blocks until the next record and decodes it, or until ctx ends
// (ctx.Err()) or the Capture is closed (ErrClosed). A record that does not
// decode is counted (LossDecode) and returned as an error saying why.
func (c *Capture) Read(ctx context.Context) (Record, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	stop := context.AfterFunc(ctx, func() { c.rd.Flush() })
	defer stop()
	return c.readLocked(ctx, time.Time{})
}

// errIdle: readLocked saw no record before its until time, or Run is
// asked for a rotation (FlushRepeats).
var errIdle = errors.New("no record")

// readLocked reads and decodes the next record; see nextLocked.
func (c *Capture) readLocked(ctx context.Context, until time.Time) (Record, error) {
	if err := c.nextLocked(ctx, until); err != nil {
		return nil, err
	}
	return c.decodeLocked()
}

// nextLocked reads the next record into c.rec. With until set it returns
// errIdle when no record came by then (the ring buffer was empty at that
// moment) or when FlushRepeats asks for a rotation; it returns ctx's error
// when ctx ended and the ring buffer was empty.
func (c *Capture) nextLocked(ctx context.Context, until time.Time) error {
	for {
		// The kernel wakes the reader only every WakeupBytes; the
		// deadline bounds how long fewer bytes wait.
		c.rd.SetDeadline(time.Now().Add(c.poll))
		err := c.rd.ReadInto(&c.rec)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, ringbuf.ErrClosed), errors.Is(err, os.ErrClosed):
			return ErrClosed
		case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, ringbuf.ErrFlushed):
			if err := ctx.Err(); err != nil {
				return err
			}
			if !until.IsZero() && (c.rep.flushAsked() || time.Now().After(until)) {
				return errIdle
			}
		default:
			return fmt.Errorf("read ring buffer: %w", err)
		}
	}
}

// decodeLocked decodes c.rec; a record that does not decode is counted.
func (c *Capture) decodeLocked() (Record, error) {
	if c.onRaw != nil {
		c.onRaw(c.rec.RawSample)
	}
	r, err := ParseRecord(c.rec.RawSample)
	if err != nil {
		c.decodeErrs.Add(1)
		return nil, err
	}
	return r, nil
}

// ringHeaderBytes is the kernel's header of each ring buffer record
// (BPF_RINGBUF_HDR_SZ); records are padded to multiples of it.
const ringHeaderBytes = 8

// ringBytes is how much of the ring buffer c.rec took: the kernel's
// record header and the data, padded.
func (c *Capture) ringBytes() int {
	return ringHeaderBytes + (len(c.rec.RawSample)+ringHeaderBytes-1)&^(ringHeaderBytes-1)
}

// Run reads records until ctx is done or the Capture is closed, calling fn
// for each in order. The kernel never waits for Run: when fn is slower
// than the event rate the ring buffer fills and the kernel counts the lost
// records (Lost). Records that do not decode are counted (LossDecode) and
// skipped. Run returns nil when ctx ends or the Capture is closed.
//
// Run also runs the kernel's repeat cache: every Options.RepeatWindow, at
// FlushRepeats, and once more when ctx ends (after the last record in the
// ring buffer), it replaces the cache, delivers every record the kernel
// made before the replacement, then calls fn with a *RepeatCount for each
// entry of the old cache that was repeated and with a finish marker per
// namespace (see RepeatCount). Use Run, not Read, where counts matter.
// fn must not call FlushRepeats (it would wait for itself).
func (c *Capture) Run(ctx context.Context, fn func(Record)) (err error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	defer c.rep.serve()()
	stop := context.AfterFunc(ctx, func() { c.rd.Flush() })
	defer stop()
	nextSweep := time.Now().Add(c.rep.window)
	for {
		if now := time.Now(); now.After(nextSweep) || c.rep.flushAsked() {
			if err := c.rep.rotateAndReport(ctx, fn, c.drainLocked); err != nil {
				return noClosed(err)
			}
			nextSweep = time.Now().Add(c.rep.window)
		}
		err := c.nextLocked(ctx, nextSweep)
		if err == nil {
			if r, err := c.decodeLocked(); err == nil {
				fn(r)
			}
			// else counted in decodeLocked
			continue
		}
		switch {
		case errors.Is(err, errIdle):
		case errors.Is(err, ErrClosed):
			return nil
		case ctx.Err() != nil:
			// Every record is delivered: now the counts the
			// kernel holds.
			return noClosed(c.rep.rotateAndReport(ctx, fn, c.drainLocked))
		default:
			return err
		}
	}
}

// noClosed turns ErrClosed (Run's end when the Capture is closed) into nil.
func noClosed(err error) error {
	if errors.Is(err, ErrClosed) {
		return nil
	}
	return err
}

// drainLocked hands fn the records in the ring buffer up to the writer's
// position now. A record the ring buffer marks discarded is skipped
// without being seen, so the byte count can fall short: an empty ring
// buffer (a read that times out, or ctx ended) ends the drain too.
func (c *Capture) drainLocked(ctx context.Context, fn func(Record)) error {
	c.fillMu.RLock()
	if c.fillClosed {
		c.fillMu.RUnlock()
		return ErrClosed
	}
	left := c.rd.AvailableBytes()
	c.fillMu.RUnlock()
	for left > 0 {
		err := c.nextLocked(ctx, time.Now())
		switch {
		case err == nil:
		case errors.Is(err, errIdle), ctx.Err() != nil:
			return nil
		default:
			return err
		}
		left -= c.ringBytes()
		if r, err := c.decodeLocked(); err == nil {
			fn(r)
		}
		if c.rec.Remaining == 0 {
			return nil // the reader caught up with the writer
		}
	}
	return nil
}

// RingFill returns how full the ring buffer is, from 0 to 1: the bytes the
// kernel has written that the reader has not consumed yet. It is a sample,
// safe to call from any goroutine, and 0 once the Capture is closed.
func (c *Capture) RingFill() float64 {
	c.fillMu.RLock()
	defer c.fillMu.RUnlock()
	if c.fillClosed || c.rd == nil || c.rd.BufferSize() <= 0 {
		return 0
	}
	return float64(c.rd.AvailableBytes()) / float64(c.rd.BufferSize())
}

// wakeReader makes a Read or Run that waits for records look again.
func (c *Capture) wakeReader() {
	c.fillMu.RLock()
	if !c.fillClosed {
		c.rd.Flush()
	}
	c.fillMu.RUnlock()
}
