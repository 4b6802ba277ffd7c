package measure

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// A run is one process's appends to a log, from BeginRun to Close: a start
// record first and, when the process closes the log with every record of
// the run written, a stop record last. The start record says how the log
// stood (its records, the register value they explain, whether the last
// of them was a stop record); the stop record says the same of the run's
// end. So a log whose end was cut off before a restart shows a run without
// its stop record at the next start record (an unclean end, as a crash
// leaves it too), and records removed before a stop or start record make
// its numbers disagree with the log: Verify reports both.

// RunStart is what BeginRun found of the log before the run.
type RunStart struct {
	// Run numbers the run: one more than the start records before it.
	Run uint64
	// Previous is the log before the run; nil when it was empty.
	Previous *PreviousRuns
	// Replayed says the register was set by replaying the log's records
	// (a software register, zero in every process): the records of
	// earlier runs are not attested by any hardware.
	Replayed bool
}

// PreviousRuns is the log as a run found it.
type PreviousRuns struct {
	Records uint64 // records in the log
	Value   []byte // register value they explain
	Clean   bool   // the last record is a stop record
	Runs    uint64 // start records among them (0: written without runs)
}

// BeginRun begins this process's run of the log: it appends the start
// record; Close appends the stop record. Call it once, before any other
// record. On a batching log that cannot be written the start record is
// held (the error wraps ErrLogUnwritable) and the run is begun all the
// same.
func (l *Log) BeginRun() (RunStart, error) {
	l.qmu.Lock()
	defer l.qmu.Unlock()
	if l.run != 0 || l.appended {
		return RunStart{}, errors.New("begin run: records were appended before it (call BeginRun once, first)")
	}
	l.mu.Lock()
	rs := RunStart{Run: l.runs + 1, Replayed: l.replayed}
	if l.records > 0 {
		rs.Previous = &PreviousRuns{Records: l.records, Value: bytes.Clone(l.value), Clean: l.lastStop, Runs: l.runs}
	}
	l.mu.Unlock()
	w := &l.content
	w.beginRun(RecordStart, l.now(), rs.Run)
	if p := rs.Previous; p != nil {
		w.b = append(w.b, `,"previous":{"records":`...)
		w.b = strconv.AppendUint(w.b, p.Records, 10)
		w.b = append(w.b, `,"value":"`...)
		w.b = appendHex(w.b, p.Value)
		w.b = append(w.b, `","clean":`...)
		w.b = strconv.AppendBool(w.b, p.Clean)
		w.b = append(w.b, '}')
	}
	_, err := l.appendQueued(bytes.Clone(w.end()), true, nil)
	if err != nil {
		err = fmt.Errorf("record the start of run %d: %w", rs.Run, err)
		if !isHeld(err) {
			return rs, err
		}
	}
	l.run = rs.Run
	l.mu.Lock()
	l.runs = rs.Run
	l.mu.Unlock()
	return rs, err
}

// endRun appends the stop record of the run. Called by Close under l.qmu,
// once batching has stopped.
func (l *Log) endRun() error {
	l.mu.Lock()
	broken := l.f == nil || l.broken != nil
	l.mu.Unlock()
	if broken {
		return nil // no stop record: the run ends unclean
	}
	if _, err := l.appendDirect(&entry{isStop: true, run: l.run}); err != nil {
		return fmt.Errorf("record the stop of run %d: %w", l.run, err)
	}
	return nil
}

// stopContent builds the content of the stop record batch[i] into
// l.points: the records before it and the register value they explain
// (the batch's earlier digests are known). Called under l.mu.
func (l *Log) stopContent(batch []*entry, i int) []byte {
	v := l.value
	for _, e := range batch[:i] {
		v = ExtendValue(l.alg, v, e.rec.Digest)
	}
	w := &l.points
	w.beginRun(RecordStop, l.now(), batch[i].run)
	w.uint("records", l.records+uint64(i))
	w.b = append(w.b, `,"value":"`...)
	w.b = appendHex(w.b, v)
	w.b = append(w.b, '"')
	return w.end()
}
