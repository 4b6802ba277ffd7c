package agent

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-tsem/vigil/bpf"
	"github.com/vigil-tsem/vigil/internal/control"
)

// flushingKernel is a fake kernel whose reader can flush the repeat
// counts (bpf.Capture.FlushRepeats); flushed says whether the root's exit
// had been processed when Sync asked.
type flushingKernel struct {
	*fakeKernel
	err     error // of FlushRepeats
	calls   atomic.Int32
	exited  <-chan struct{}
	flushed atomic.Bool
}

func (k *flushingKernel) FlushRepeats(ctx context.Context) error {
	k.calls.Add(1)
	select {
	case <-k.exited:
		k.flushed.Store(true)
	default:
	}
	return k.err
}

// TestSyncFlushesRepeats: after the root's exit record, Sync has the
// reader flush the repeat counts and returns without waiting a repeat
// window; when the flush fails it waits the window as before.
func TestSyncFlushesRepeats(t *testing.T) {
	tests := []struct {
		name string
		err  error
		// min, max: how long Sync may take after the exit record.
		min, max time.Duration
	}{
		{"flushed", nil, 0, 500 * time.Millisecond},
		{"no reader", bpf.ErrNoRun, 300 * time.Millisecond, 5 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, false, control.Settings{HashAlgorithm: "sha256"}, "")
			f.tab.runs.countWait = 300 * time.Millisecond
			if tc.err == nil {
				f.tab.runs.countWait = time.Hour // a fallback would time out the test
			}
			info, err := f.tab.Create(control.CreateRequest{Name: "flush", Origin: control.OriginRun, Owner: self()})
			if err != nil {
				t.Fatal(err)
			}
			pid, stop := startHelper(t)
			if err := f.tab.AddTask("flush", control.TaskRequest{PID: pid, Caller: self()}); err != nil {
				t.Fatal(err)
			}
			f.tab.runs.mu.Lock()
			root := f.tab.runs.roots[pid]
			f.tab.runs.mu.Unlock()
			k := &flushingKernel{fakeKernel: f.kern, err: tc.err, exited: root.exited}
			f.tab.kern = k

			synced := make(chan bool, 1)
			go func() {
				ok, _ := f.tab.Sync(context.Background(), "flush", pid)
				synced <- ok
			}()
			stop()
			time.Sleep(20 * time.Millisecond)
			if n := k.calls.Load(); n != 0 {
				t.Errorf("FlushRepeats called %d times before the exit record; want 0", n)
			}
			exit := &bpf.TaskExit{Header: bpf.Header{Type: bpf.RecTaskExit, NS: info.Context, PID: uint32(pid), TTD: 11}}
			f.tab.afterDispatch(exit)
			at := time.Now()
			select {
			case ok := <-synced:
				took := time.Since(at)
				if !ok {
					t.Error("Sync() = false after the exit record")
				}
				if took < tc.min || took > tc.max {
					t.Errorf("Sync returned %v after the exit record; want between %v and %v", took, tc.min, tc.max)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Sync did not return after the exit record")
			}
			if n := k.calls.Load(); n != 1 || !k.flushed.Load() {
				t.Errorf("FlushRepeats called %d times, after the exit: %v; want once, after it", n, k.flushed.Load())
			}
		})
	}
}
