package measure

import (
	"encoding/hex"
	"fmt"
)

// RunEnd says how a run of the log ended.
type RunEnd string

// How runs end.
const (
	// RunStopped: a stop record ended the run; every record of it is in
	// the log.
	RunStopped RunEnd = "stopped"
	// RunUnclean: a later start record follows the run without its stop
	// record: the process crashed or was killed, or records at the end of
	// the run were removed. Records of the run may be missing.
	RunUnclean RunEnd = "unclean"
	// RunOpen: the last run of the log has no stop record: it is still
	// running, or it ended uncleanly (a register value or quote says
	// whether records are missing).
	RunOpen RunEnd = "open"
)

// RunReport is one run of the log: the records from its start record to
// its stop record, or to the next start record or the end of the log.
type RunReport struct {
	Run        uint64 // its number, from 1
	Line       int    // line of its start record
	Started    string // time of its start record
	Stopped    string // time of its stop record, "" without one
	Records    uint64 // its records, start and stop records included
	Namespaces int    // namespaces created in it
	End        RunEnd
}

// verifyState is what Verify carries from record to record.
type verifyState struct {
	current  map[uint64]*NamespaceReport // namespaces by id
	lastStop bool                        // the last record was a stop record
}

// applyRun checks a record against the runs of the log: a start record's
// account of the log before it, a stop record's account of its run, and
// that nothing follows a stop record but a start record. before is the
// register value the records before rec explain.
func (rep *Report) applyRun(vs *verifyState, c Content, rec Record, line int, before []byte) error {
	var run *RunReport
	if len(rep.Runs) > 0 {
		run = rep.Runs[len(rep.Runs)-1]
	}
	switch c.Record {
	case RecordStart:
		if err := checkStart(c, rec, uint64(len(rep.Runs))+1, hex.EncodeToString(before), vs.lastStop); err != nil {
			return err
		}
		if run != nil && run.End == RunOpen {
			run.End = RunUnclean
		}
		if run == nil {
			rep.BeforeRuns = rec.Recnum
		}
		run = &RunReport{Run: c.Run, Line: line, Started: c.Time, End: RunOpen}
		rep.Runs = append(rep.Runs, run)
	case RecordStop:
		switch {
		case run == nil || run.End != RunOpen:
			return fmt.Errorf("stop record of run %d without its start record", c.Run)
		case c.Run != run.Run:
			return fmt.Errorf("stop record of run %d in run %d", c.Run, run.Run)
		case c.Records != rec.Recnum:
			return fmt.Errorf("stop record of run %d says %d records come before it, %d do: records were removed or inserted", c.Run, c.Records, rec.Recnum)
		case c.Value != hex.EncodeToString(before):
			return fmt.Errorf("stop record of run %d says the records before it explain %s, they replay to %x: records were changed", c.Run, c.Value, before)
		}
		run.End, run.Stopped = RunStopped, c.Time
	default:
		if run != nil && run.End == RunStopped {
			return fmt.Errorf("%s record after the stop record of run %d, without a start record", c.Record, run.Run)
		}
	}
	if run != nil {
		run.Records++
		if c.Record == RecordCreated {
			run.Namespaces++
		}
	}
	vs.lastStop = c.Record == RecordStop
	return nil
}

// checkStart checks a start record's account of the log before it: want
// is the run number it must have, value the register value the records
// before it explain, lastStop whether the last of them is a stop record.
func checkStart(c Content, rec Record, want uint64, value string, lastStop bool) error {
	p := c.Previous
	switch {
	case c.Run != want:
		return fmt.Errorf("start record of run %d, want run %d: runs were removed, or records changed", c.Run, want)
	case p == nil && rec.Recnum > 0:
		return fmt.Errorf("start record of run %d says the log was empty, %d records come before it", c.Run, rec.Recnum)
	case p == nil:
	case rec.Recnum == 0:
		return fmt.Errorf("start record of run %d says %d records come before it, none do", c.Run, p.Records)
	case p.Records != rec.Recnum:
		return fmt.Errorf("start record of run %d says %d records come before it, %d do: records were removed or inserted before the restart", c.Run, p.Records, rec.Recnum)
	case p.Value != value:
		return fmt.Errorf("start record of run %d says the records before it explain %s, they replay to %s: records before the restart were changed", c.Run, p.Value, value)
	case p.Clean != lastStop:
		return fmt.Errorf("start record of run %d says the record before it is a stop record: %v; it is: %v", c.Run, p.Clean, lastStop)
	}
	return nil
}

// Incomplete says why the log does not hold everything it should, even
// when it explains the register: each run that ended without its stop
// record (records at its end may be missing), and each namespace with gap
// records (events lost, or points the log could not record). It is empty
// for a complete log.
func (r *Report) Incomplete() []string {
	var out []string
	for _, run := range r.Runs {
		if run.End == RunUnclean {
			out = append(out, fmt.Sprintf("run %d (line %d) ended without a stop record: the process crashed or was killed, or records at the end of the run were removed", run.Run, run.Line))
		}
	}
	for _, ns := range r.Namespaces {
		if ns.Gaps > 0 {
			out = append(out, fmt.Sprintf("namespace %d %q: %d gap records (%d events lost, %d points not recorded)", ns.ID, ns.Name, ns.Gaps, ns.Lost, ns.Unrecorded))
		}
	}
	return out
}
