package agent

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/vigil-tsem/vigil/bpf"
	"github.com/vigil-tsem/vigil/internal/control"
	"github.com/vigil-tsem/vigil/measure"
)

// What the agent does when the measured log cannot be written (a full
// disk), by its log_full setting. Either way nothing is lost quietly: the
// log holds the records it could not write in memory and retries every
// second (measure.ErrLogUnwritable), the agent logs the failure, the
// metrics count it (vigil_log_append_errors_total and friends), and `vigil
// ns list/show` flag each namespace's part of the log.
const (
	// logFullGap: namespaces keep modeling. New points wait in memory
	// (logQueue records in all); beyond that they are counted, and each
	// namespace's gap record ("points": N, reason "log write failed: ...")
	// is written once the log can be written. The model then holds points
	// the log lacks, and says so.
	logFullGap = "gap"
	// logFullStop: a namespace whose new point finds the log unwritable
	// stops modeling until the log has caught up with it (the log can be
	// written and none of its records waits): its security events are
	// not added to its model (no points, counts or forensics; task
	// identities are still followed), only counted; then a gap record
	// with that count ("lost": N, reason reasonStopped) is written and
	// modeling resumes. The model never holds a point the log lacks
	// (unless the hold overflowed before the stop), at the price of
	// events not modeled. The kernel keeps the namespace's mode: a sealed
	// or enforcing namespace's kernel allow set still applies, but
	// out-of-model events are not reported as forensics meanwhile.
	logFullStop = "stop"
)

// reasonStopped is the reason of the gap record of events not modeled
// while modeling was stopped.
const reasonStopped = "modeling stopped: the measured log could not be written"

// logStop is a namespace's modeling stop (log_full: stop).
type logStop struct {
	stopped atomic.Bool // read by the reader at every record of the namespace
	mu      sync.Mutex  // serialises stop, skip and resume
	skipped uint64      // events not modeled since the last gap record; guarded by mu
	total   atomic.Uint64

	unrecordedSeen uint64 // poller only: unrecorded points already counted in the metric
}

// skip counts one event not modeled, if modeling is stopped.
func (s *logStop) skip() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.stopped.Load() {
		return false
	}
	s.skipped++
	s.total.Add(1)
	return true
}

// noteLogError reacts to a new point of st that the log could not write
// (err wraps measure.ErrLogUnwritable): with log_full stop, st stops
// modeling. The log's state is reported by pollLog. It runs on the reader
// goroutine.
func (t *table) noteLogError(st *nsState, err error) {
	if t.logFull != logFullStop || !errors.Is(err, measure.ErrLogUnwritable) {
		return
	}
	st.logStop.mu.Lock()
	defer st.logStop.mu.Unlock()
	if st.logStop.stopped.Load() {
		return
	}
	st.logStop.stopped.Store(true)
	t.stopped.Add(1)
	t.log.Warn("the measured log cannot be written: the namespace stops modeling until the log has caught up (log_full: stop)", "namespace", st.ns.Name(), "err", err)
}

// resume ends st's modeling stop once the log has caught up with it: the
// events it skipped are recorded as a gap first. It runs on the poller.
func (t *table) resume(st *nsState) {
	s := &st.logStop
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.stopped.Load() {
		return
	}
	if s.skipped > 0 {
		// Under s.mu: events the reader brings meanwhile wait, and
		// their points come after the gap record.
		err := st.logNS.Gap(s.skipped, reasonStopped)
		switch {
		case errors.Is(err, measure.ErrLogUnwritable):
			s.skipped = 0 // the record is held, and written when it can be
			return        // still stopped: the log fails again
		case err != nil:
			t.log.Error("record a gap in the log", "namespace", st.ns.Name(), "err", err)
		}
	}
	t.log.Info("the measured log has caught up: the namespace models again", "namespace", st.ns.Name(), "events_not_modeled", s.skipped)
	s.skipped = 0
	s.stopped.Store(false)
	t.stopped.Add(-1)
}

// pollLog reports the measured log's state: it logs when the log stops
// and starts taking records again and when points go unrecorded, sets the
// log's metrics, and resumes stopped namespaces that the log has caught
// up with. It runs on the poller.
func (t *table) pollLog() {
	if t.mlog == nil {
		return
	}
	ls := t.mlog.Status()
	t.met.SetLogWaiting(ls.Waiting)
	switch {
	case ls.Err != nil && !t.logFailing:
		t.logFailing = true
		t.log.Error("the measured log cannot be written: its records wait in memory and are retried every second; the namespaces' log state says what is missing ('vigil ns list')",
			"log", t.mlog.Path(), "err", ls.Err, "waiting", ls.Waiting, "log_full", t.logFull)
	case ls.Err == nil && t.logFailing:
		t.logFailing = false
		t.log.Warn("the measured log can be written again", "log", t.mlog.Path(), "points_not_recorded", ls.Unrecorded, "failed_writes", ls.AppendErrors)
	}
	for _, st := range t.list() {
		if st.logNS == nil {
			continue
		}
		ns := st.logNS.Status()
		if d := ns.Unrecorded - st.logStop.unrecordedSeen; d > 0 {
			st.logStop.unrecordedSeen = ns.Unrecorded
			t.met.PointsUnrecorded(st.ns.Name(), d)
			t.log.Error("model points not recorded in the measured log: a gap record counts them; the namespace's log is incomplete",
				"namespace", st.ns.Name(), "points", d, "total", ns.Unrecorded)
		}
		if st.logStop.stopped.Load() && ls.Err == nil && ns.Waiting == 0 {
			t.resume(st)
		}
	}
}

// logState describes st's part of the measured log for the control API.
func (t *table) logState(st *nsState) *control.LogState {
	if st.logNS == nil {
		return nil
	}
	ns := st.logNS.Status()
	s := &control.LogState{Status: control.LogOK, Unrecorded: ns.Unrecorded, Waiting: ns.Waiting, Skipped: st.logStop.total.Load()}
	if err := t.mlog.Status().Err; err != nil {
		s.Error = err.Error()
	}
	switch {
	case st.logStop.stopped.Load():
		s.Status = control.LogStopped
	case s.Unrecorded > 0 || s.Skipped > 0:
		s.Status = control.LogIncomplete
	case s.Waiting > 0:
		s.Status = control.LogWaiting
	}
	return s
}

// skipStopped takes a record of a namespace whose modeling is stopped
// (log_full: stop): task identities are kept up to date, the event is
// counted and not modeled. It returns false, doing nothing, for a record
// to dispatch: of a namespace that models, or one that carries no event.
// It runs on the reader goroutine.
func (p *pipeline) skipStopped(r bpf.Record) bool {
	h := r.Head()
	st, ok := p.table.get(h.NS)
	if !ok || !st.logStop.stopped.Load() {
		return false
	}
	switch r.(type) {
	case *bpf.TaskFork, *bpf.TaskExit, *bpf.RepeatCount:
		return false // no new event: the dispatcher keeps tasks and counts
	}
	if !st.logStop.skip() {
		return false
	}
	tasks := p.disp.Tasks()
	if e, ok := r.(*bpf.Exec); ok {
		file := p.disp.Converter().ExecFile(e)
		tasks.Exec(e, &file, st.ns.Model().Mapping())
	} else {
		tasks.Seen(h)
	}
	p.disp.Skip(r)
	return true
}
