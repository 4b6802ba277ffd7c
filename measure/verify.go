package measure

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"io"

	"github.com/vigil-tsem/vigil/model"
)

// VerifyOptions say what to check a log against.
type VerifyOptions struct {
	// Register is the register value to explain (from the machine or from a
	// verified quote); nil checks the log only against itself.
	Register []byte
	// Position, when set, is how many records the register value covers (a
	// quote's position); nil means all of them.
	Position *uint64
	// Kind and Index, when Kind is set, are the register the value was read
	// from; the log must be for that register.
	Kind  string
	Index int
	// Model, when set, is the model every point must belong to.
	Model *model.Model
}

// Report is what Verify found.
type Report struct {
	Kind       string
	Index      int
	Alg        crypto.Hash
	Records    uint64 // records in the log
	Covered    uint64 // records the register check covered
	Value      []byte // register value the covered records explain
	Checked    bool   // whether a register value was checked
	Namespaces []*NamespaceReport
	Outside    []Outside // points outside VerifyOptions.Model
	// Runs are the runs of the log (run.go), from its start records; none
	// in a log written without them. BeforeRuns counts the records before
	// the first start record (written without runs).
	Runs       []*RunReport
	BeforeRuns uint64
}

// NamespaceReport is one modeling namespace of the log (one incarnation: a
// namespace id created again starts a new one).
type NamespaceReport struct {
	ID          uint64
	Name        string
	Line        int // line of its "created" record
	Hash        model.Hash
	Aggregate   model.Coefficient
	Base        model.Coefficient
	Points      int // model points
	Forensics   int // points recorded after sealing
	Sealed      bool
	Enforcing   bool
	Gaps        int    // gap records
	Lost        uint64 // events lost, by the gap records
	Unrecorded  uint64 // model points the log could not record, by the gap records
	GapRecords  []Gap
	Measurement model.Coefficient
	State       model.Coefficient

	model *model.Model
	seen  map[model.Coefficient]struct{}
}

// Gap is one gap record of a namespace.
type Gap struct {
	Line   int
	Recnum uint64
	Lost   uint64 // events that were not modeled
	Points uint64 // model points the log could not record
	Reason string
}

// Outside is a point that is not in the model verified against.
type Outside struct {
	Line        int
	Recnum      uint64
	Namespace   uint64
	Name        string
	Coefficient model.Coefficient
	Forensic    bool
}

// Verify replays the log read from r (named file in errors) and checks:
// every line is a well-formed record; recnums count from 0 without gaps;
// every digest is the hash of its record's content; all records are for one
// register; the register value, when given, is exactly what the covered
// records explain (an empty log explains only a zero register); every
// content is a record Vigil writes, in an order Vigil writes. It recomputes
// each namespace's measurement and state with the model package.
//
// A failed check returns an error wrapping ErrVerify that names the line and
// record; the report so far comes with it. Read errors are returned as they
// are.
func Verify(r io.Reader, file string, o VerifyOptions) (*Report, error) {
	rep := &Report{Kind: o.Kind, Index: o.Index}
	var rp *Replayer
	if o.Kind != "" {
		rp = NewReplayer(o.Kind, o.Index, KindAlg(o.Kind))
	} else {
		rp = NewReplayer("", 0, 0)
	}
	var prefixes []byte // value after each record, for diagnosing a mismatch
	if o.Register != nil && rp.Kind != "" {
		prefixes = append(prefixes, rp.Value()...)
	}
	vs := &verifyState{current: map[uint64]*NamespaceReport{}}
	lines := 0
	fail := func(n int, err error) error {
		return &LineError{File: file, Line: n, Err: fmt.Errorf("%w: %w", ErrVerify, err)}
	}
	var rec Record
	var before []byte // the value the records before rec explain
	tail, _, err := eachLine(r, file, func(line []byte, n int, _ int64) error {
		lines = n
		if err := parseLine(line, &rec); err != nil {
			return fail(n, err)
		}
		first := rp.Kind == ""
		before = append(before[:0], rp.Value()...)
		if err := rp.Add(rec); err != nil {
			return fail(n, err)
		}
		if o.Register != nil {
			if first {
				prefixes = append(prefixes, make([]byte, rec.Alg.Size())...)
			}
			prefixes = append(prefixes, rp.Value()...)
		}
		c, err := ParseContent(rec.Content)
		if err != nil {
			return fail(n, fmt.Errorf("record %d: %w", rec.Recnum, err))
		}
		if first {
			before = make([]byte, rec.Alg.Size())
		}
		if err := rep.applyRun(vs, c, rec, n, before); err != nil {
			return fail(n, fmt.Errorf("record %d: %w", rec.Recnum, err))
		}
		if err := rep.apply(vs.current, c, rec, n, o.Model); err != nil {
			return fail(n, fmt.Errorf("record %d: %w", rec.Recnum, err))
		}
		return nil
	})
	rep.Kind, rep.Index, rep.Alg, rep.Records = rp.Kind, rp.Index, rp.Alg, rp.Records()
	for _, ns := range rep.Namespaces {
		ns.Measurement, ns.State = ns.model.Measurement(), ns.model.State()
	}
	if err != nil {
		var le *LineError
		if errors.As(err, &le) {
			return rep, err
		}
		return rep, fmt.Errorf("read %s: %w", file, err)
	}
	if len(tail) > 0 {
		return rep, &LineError{File: file, Line: lines + 1, Err: fmt.Errorf("%w: %w (%d bytes without a newline): the log was truncated, or an append was interrupted (opening the log for appending repairs that)", ErrVerify, ErrTornLine, len(tail))}
	}
	if o.Register == nil {
		rep.Covered, rep.Value = rep.Records, rp.Value()
		return rep, nil
	}
	return rep, rep.checkRegister(o, rp, prefixes)
}

// KindAlg is the hash algorithm of a kind of register: SHA-256 for the TPM
// bank Vigil uses, SHA-384 for TDX RTMRs and the software register.
func KindAlg(kind string) crypto.Hash {
	if kind == KindTPM {
		return crypto.SHA256
	}
	return crypto.SHA384
}

func (rep *Report) checkRegister(o VerifyOptions, rp *Replayer, prefixes []byte) error {
	rep.Checked = true
	size := len(o.Register)
	if rp.Kind == "" { // empty log, register unknown: any size is fine
		rep.Value = make([]byte, size)
		if !isZero(o.Register) {
			return fmt.Errorf("%w: the log is empty but the register is %x: something else extended it", ErrVerify, o.Register)
		}
		return nil
	}
	if size != rp.Alg.Size() {
		return fmt.Errorf("%w: register value has %d bytes, the log's %s register has %d", ErrVerify, size, AlgName(rp.Alg), rp.Alg.Size())
	}
	covered := rep.Records
	if o.Position != nil {
		if *o.Position > rep.Records {
			return fmt.Errorf("%w: the register covers %d records but the log has only %d: records were removed from the end", ErrVerify, *o.Position, rep.Records)
		}
		covered = *o.Position
	}
	rep.Covered = covered
	value := func(k uint64) []byte { return prefixes[int(k)*size : int(k+1)*size] }
	rep.Value = append([]byte(nil), value(covered)...)
	if bytes.Equal(rep.Value, o.Register) {
		return nil
	}
	for k := uint64(0); k <= rep.Records; k++ {
		if bytes.Equal(value(k), o.Register) {
			if k < covered {
				return fmt.Errorf("%w: the register explains only records 0..%d (lines 1..%d) of the %d it should cover: records after them were added or inserted, and never extended", ErrVerify, int64(k)-1, k, covered)
			}
			return fmt.Errorf("%w: the register explains records 0..%d, but the quote covers only %d", ErrVerify, k-1, covered)
		}
	}
	if isZero(o.Register) {
		return fmt.Errorf("%w: the register is zero but the log has %d records: it was reset, or the log was never extended into it", ErrVerify, covered)
	}
	return fmt.Errorf("%w: register %x is not explained by the log (records 0..%d replay to %x): something else extended it, or records were changed", ErrVerify, o.Register, int64(covered)-1, rep.Value)
}

// apply checks one record's content in the order of the log and updates the
// namespace it concerns.
func (rep *Report) apply(current map[uint64]*NamespaceReport, c Content, rec Record, line int, in *model.Model) error {
	id := c.Namespace.ID
	switch c.Record {
	case RecordStart, RecordStop:
		return nil // applyRun
	case RecordCreated:
		h := c.NamespaceHash()
		agg, _ := model.ParseCoefficient(c.Aggregate)
		base, _ := model.ParseCoefficient(c.Base)
		ns := &NamespaceReport{ID: id, Name: c.Namespace.Name, Line: line, Hash: h, Aggregate: agg, Base: base,
			model: model.New(model.Options{Hash: h, Aggregate: agg, Base: base}), seen: map[model.Coefficient]struct{}{}}
		current[id] = ns
		rep.Namespaces = append(rep.Namespaces, ns)
		return nil
	}
	ns := current[id]
	if ns == nil {
		return fmt.Errorf("%s record for namespace %d, which was not created", c.Record, id)
	}
	if c.Namespace.Name != ns.Name {
		return fmt.Errorf("%s record names namespace %d %q, created as %q", c.Record, id, c.Namespace.Name, ns.Name)
	}
	switch c.Record {
	case RecordPoint:
		coef := c.Coefficient()
		if coef.Len() != ns.Hash.Size() {
			return fmt.Errorf("point %s of namespace %d has %d bytes; the namespace's hash %s has %d", coef, id, coef.Len(), ns.Hash, ns.Hash.Size())
		}
		if _, dup := ns.seen[coef]; dup {
			return fmt.Errorf("point %s of namespace %d is recorded twice", coef, id)
		}
		ns.seen[coef] = struct{}{}
		if c.Forensic != ns.Sealed {
			if ns.Sealed {
				return fmt.Errorf("point %s of sealed namespace %d is not marked forensic", coef, id)
			}
			return fmt.Errorf("point %s of namespace %d is marked forensic before the namespace was sealed", coef, id)
		}
		if c.Forensic {
			ns.Forensics++
		} else {
			ns.Points++
		}
		if _, err := ns.model.Add(coef, nil); err != nil {
			return fmt.Errorf("recompute namespace %d: %w", id, err)
		}
		if in != nil && !in.Contains(coef) {
			rep.Outside = append(rep.Outside, Outside{Line: line, Recnum: rec.Recnum, Namespace: id, Name: ns.Name, Coefficient: coef, Forensic: c.Forensic})
		}
	case RecordSealed:
		if ns.Sealed {
			return fmt.Errorf("namespace %d is sealed twice", id)
		}
		ns.Sealed = true
		ns.model.Seal()
	case RecordEnforcing:
		if !ns.Sealed {
			return fmt.Errorf("namespace %d enforces a model that was not sealed", id)
		}
		ns.Enforcing = true
	case RecordGap:
		ns.Gaps++
		ns.Lost += c.Lost
		ns.Unrecorded += c.Points
		ns.GapRecords = append(ns.GapRecords, Gap{Line: line, Recnum: rec.Recnum, Lost: c.Lost, Points: c.Points, Reason: c.Reason})
	}
	return nil
}
