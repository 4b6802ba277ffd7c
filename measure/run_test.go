package measure

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-tsem/vigil/measure/measuretest"
	"github.com/vigil-tsem/vigil/model"
)

// writeRun appends one run to the log at path: a namespace with points
// points, closed cleanly (a stop record). It returns what BeginRun said.
func writeRun(t testing.TB, path string, reg Register, name string, points int) RunStart {
	t.Helper()
	l := openLog(t, path, reg)
	rs, err := l.BeginRun()
	if err != nil {
		t.Fatalf("BeginRun = %v", err)
	}
	ns, err := l.Namespace(l.NextNamespaceID(), name, model.Coefficient{}, model.Coefficient{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range points {
		if err := ns.NewPoint(model.Point{Coefficient: c32(byte(i), byte(rs.Run))}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	return rs
}

// lines returns the lines of the file at path, newlines included.
func lines(t *testing.T, path string) [][]byte {
	t.Helper()
	return bytes.SplitAfter(bytes.TrimSuffix(readFile(t, path), []byte("\n")), []byte("\n"))
}

// renumbered rewrites lines (whole records) with recnums from 0, as one
// who removes records from a log and hides it would.
func renumbered(t *testing.T, ls [][]byte) []byte {
	t.Helper()
	var out []byte
	for i, l := range ls {
		rec, err := ParseLine(bytes.TrimSuffix(l, []byte("\n")))
		if err != nil {
			t.Fatal(err)
		}
		rec.Recnum = uint64(i)
		out = AppendLine(out, rec)
	}
	return out
}

// Two runs on one log: the second start record finds the first run's stop
// record, and Verify shows both runs, stopped.
func TestRunsAcrossRestart(t *testing.T) {
	tests := []struct {
		name         string
		reg          func() Register
		wantReplayed bool
	}{
		{name: "software", reg: func() Register { return NewSoftware(23) }, wantReplayed: true},
		{name: "tdx", reg: func() Register { fake := measuretest.NewTDX(); r := tdxReg(t, fake); return r }, wantReplayed: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events.log")
			reg := tc.reg()
			if rs := writeRun(t, path, reg, "a", 3); rs.Run != 1 || rs.Previous != nil || rs.Replayed {
				t.Errorf("first BeginRun = %+v; want run 1, no previous, not replayed", rs)
			}
			if tc.name == "software" {
				reg = NewSoftware(23) // a new process
			}
			rs := writeRun(t, path, reg, "b", 2)
			if rs.Run != 2 || rs.Previous == nil || !rs.Previous.Clean || rs.Previous.Records != 6 || rs.Previous.Runs != 1 || rs.Replayed != tc.wantReplayed {
				t.Errorf("second BeginRun = %+v (previous %+v); want run 2 after 6 records ending clean, replayed %v", rs, rs.Previous, tc.wantReplayed)
			}
			v, _ := reg.Read()
			rep, err := verifyFile(t, path, VerifyOptions{Register: v})
			if err != nil {
				t.Fatalf("Verify = %v", err)
			}
			if len(rep.Runs) != 2 {
				t.Fatalf("Verify found %d runs; want 2", len(rep.Runs))
			}
			for i, want := range []RunReport{
				{Run: 1, Line: 1, Records: 6, Namespaces: 1, End: RunStopped},
				{Run: 2, Line: 7, Records: 5, Namespaces: 1, End: RunStopped},
			} {
				got := *rep.Runs[i]
				got.Started, got.Stopped = "", ""
				if got != want {
					t.Errorf("run %d = %+v; want %+v", i+1, got, want)
				}
			}
			if inc := rep.Incomplete(); len(inc) != 0 {
				t.Errorf("Incomplete() = %q; want nothing", inc)
			}
		})
	}
}

// Records removed from the end of a run before a restart do not verify
// silently: the run has no stop record when the next one starts, and
// Verify reports it as ended unclean, however many were removed.
func TestRunTruncatedBeforeRestart(t *testing.T) {
	for _, cut := range []int{1, 3, 12} { // records cut from run 1's 13 (the stop record first)
		t.Run(strings.Repeat("I", cut), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events.log")
			writeRun(t, path, NewSoftware(23), "a", 10)
			ls := lines(t, path)
			if len(ls) != 13 {
				t.Fatalf("run 1 has %d records; want 13", len(ls))
			}
			if err := os.WriteFile(path, bytes.Join(ls[:len(ls)-cut], nil), 0o600); err != nil {
				t.Fatal(err)
			}
			reg := NewSoftware(23)
			rs := writeRun(t, path, reg, "b", 1)
			if p := rs.Previous; p == nil || p.Clean || p.Records != uint64(13-cut) {
				t.Errorf("BeginRun after the cut: previous %+v; want %d records, not clean", p, 13-cut)
			}
			v, _ := reg.Read()
			rep, err := verifyFile(t, path, VerifyOptions{Register: v})
			if err != nil {
				t.Fatalf("Verify = %v; want the log to verify, incomplete", err)
			}
			if rep.Runs[0].End != RunUnclean || rep.Runs[1].End != RunStopped {
				t.Errorf("runs end %s, %s; want unclean, stopped", rep.Runs[0].End, rep.Runs[1].End)
			}
			inc := rep.Incomplete()
			if len(inc) != 1 || !strings.Contains(inc[0], "run 1 (line 1) ended without a stop record") {
				t.Errorf("Incomplete() = %q; want run 1 ended without a stop record", inc)
			}
		})
	}
}

// Records removed from inside a run, renumbered to hide it, make the stop
// or start records after them disagree with the log.
func TestRunRecordsRemoved(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.log")
	writeRun(t, path, NewSoftware(23), "a", 5)
	writeRun(t, path, NewSoftware(23), "b", 5)
	ls := lines(t, path)
	tests := []struct {
		name string
		keep [][]byte
		want string
	}{
		{name: "a point of run 1", keep: append(append([][]byte{}, ls[:3]...), ls[4:]...), want: "stop record of run 1 says 7 records come before it, 6 do"},
		{name: "run 1's stop record", keep: append(append([][]byte{}, ls[:7]...), ls[8:]...), want: "start record of run 2 says 8 records come before it, 7 do"},
		{name: "run 1", keep: ls[8:], want: "start record of run 2, want run 1"},
		{name: "records after run 1's stop", keep: append(append([][]byte{}, ls[:8]...), ls[9:]...), want: "created record after the stop record of run 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			edited := filepath.Join(t.TempDir(), "edited.log")
			if err := os.WriteFile(edited, renumbered(t, tc.keep), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := verifyFile(t, edited, VerifyOptions{})
			if !errors.Is(err, ErrVerify) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Verify = %v; want ErrVerify saying %q", err, tc.want)
			}
		})
	}
}

// A log written without runs (as before them) verifies as before; a run
// appended to it starts after records that belong to no run, which is not
// an unclean end.
func TestRunAfterRecordsWithoutRuns(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.log")
	reg := NewSoftware(23)
	l := openLog(t, path, reg)
	ns, err := l.Namespace(1, "old", model.Coefficient{}, model.Coefficient{})
	if err != nil {
		t.Fatal(err)
	}
	ns.NewPoint(model.Point{Coefficient: c32(1)})
	l.Close()
	rep, err := verifyFile(t, path, VerifyOptions{})
	if err != nil || len(rep.Runs) != 0 || len(rep.Incomplete()) != 0 {
		t.Fatalf("Verify of a log without runs = %v, runs %+v, incomplete %q; want no runs, complete", err, rep.Runs, rep.Incomplete())
	}
	reg = NewSoftware(23)
	rs := writeRun(t, path, reg, "new", 1)
	if rs.Run != 1 || rs.Previous == nil || rs.Previous.Runs != 0 || rs.Previous.Clean {
		t.Errorf("BeginRun = %+v (previous %+v); want run 1 after 2 records of no run", rs, rs.Previous)
	}
	v, _ := reg.Read()
	rep, err = verifyFile(t, path, VerifyOptions{Register: v})
	if err != nil {
		t.Fatalf("Verify = %v", err)
	}
	if rep.BeforeRuns != 2 || len(rep.Runs) != 1 || rep.Runs[0].End != RunStopped || len(rep.Incomplete()) != 0 {
		t.Errorf("Verify: %d records before runs, runs %+v, incomplete %q; want 2, one stopped run, complete", rep.BeforeRuns, rep.Runs, rep.Incomplete())
	}
}

// BeginRun comes first, once.
func TestBeginRunFirst(t *testing.T) {
	l := openLog(t, filepath.Join(t.TempDir(), "events.log"), NewSoftware(23))
	defer l.Close()
	if _, err := l.Namespace(1, "n", model.Coefficient{}, model.Coefficient{}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.BeginRun(); err == nil {
		t.Error("BeginRun after a record = nil; want an error")
	}
}

// FuzzVerify: Verify never panics on a log, and a log it accepts has its
// records in its runs (and before them) and its gaps in its namespaces.
func FuzzVerify(f *testing.F) {
	path := filepath.Join(f.TempDir(), "events.log")
	writeRun(f, path, NewSoftware(23), "a", 2)
	writeRun(f, path, NewSoftware(23), "b", 1)
	f.Add(readFile(f, path))
	ls := bytes.SplitAfter(readFile(f, path), []byte("\n"))
	f.Add(bytes.Join(append(append([][]byte{}, ls[:3]...), ls[5:]...), nil)) // run 1 without its end
	l := openLog(f, path, NewSoftware(23))
	ns, err := l.Namespace(3, "gap", model.Coefficient{}, model.Coefficient{})
	if err != nil {
		f.Fatal(err)
	}
	ns.Gap(3, "ring buffer full")
	l.Close()
	f.Add(readFile(f, path))
	f.Fuzz(func(t *testing.T, log []byte) {
		rep, err := Verify(bytes.NewReader(log), "fuzz.log", VerifyOptions{})
		if err != nil {
			return
		}
		in := rep.BeforeRuns
		for _, r := range rep.Runs {
			in += r.Records
		}
		if len(rep.Runs) > 0 && in != rep.Records {
			t.Errorf("runs hold %d records (%d before them), the log %d", in, rep.BeforeRuns, rep.Records)
		}
		for _, n := range rep.Namespaces {
			if len(n.GapRecords) != n.Gaps {
				t.Errorf("namespace %d: %d gaps, %d gap records", n.ID, n.Gaps, len(n.GapRecords))
			}
		}
		rep.Incomplete()
	})
}
