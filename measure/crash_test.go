package measure

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-tsem/vigil/measure/measuretest"
	"github.com/vigil-tsem/vigil/model"
)

// crashLog writes a log of a few records measured into the fake TDX RTMR 3
// and returns its path, the fake and the register value before the last
// append.
func crashLog(t *testing.T) (string, *measuretest.TDX) {
	t.Helper()
	events, coefs := trajectory(t)
	path := filepath.Join(t.TempDir(), "events.log")
	fake := measuretest.NewTDX()
	l := openLog(t, path, tdxReg(t, fake))
	learn(t, l, "p", events[:20], coefs[:20])
	l.Close()
	return path, fake
}

func tdxReg(t testing.TB, fake *measuretest.TDX) Register {
	t.Helper()
	r, _, err := OpenRegister(KindTDX, RegisterOptions{TDXFS: fake})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// nextLine is a well-formed record that would come next in the log at path.
func nextLine(t *testing.T, path string) (line []byte, digest []byte) {
	t.Helper()
	var last Record
	scanFile(t, path, func(_ int, rec Record) error { last = rec; return nil })
	c := []byte(`{"record":"sealed","time":"2026-11-27T01:00:00Z","namespace":{"id":1,"name":"p"}}`)
	rec := Record{Recnum: last.Recnum + 1, Kind: last.Kind, Index: last.Index, Alg: last.Alg, Digest: sha384(c), Content: c}
	return AppendLine(nil, rec), rec.Digest
}

func appendFile(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(b)
	f.Close()
}

func TestOpenLogRepairs(t *testing.T) {
	tests := []struct {
		name     string
		crash    func(t *testing.T, path string, fake *measuretest.TDX)
		repaired string // what Repairs must say; "" for nothing
		wantErr  error
	}{
		{name: "clean", crash: func(*testing.T, string, *measuretest.TDX) {}},
		{name: "torn last line", crash: func(t *testing.T, path string, _ *measuretest.TDX) {
			line, _ := nextLine(t, path)
			appendFile(t, path, line[:len(line)/2])
		}, repaired: "partial last line"},
		{name: "torn newline", crash: func(t *testing.T, path string, _ *measuretest.TDX) {
			line, _ := nextLine(t, path)
			appendFile(t, path, line[:len(line)-1])
		}, repaired: "partial last line"},
		{name: "written, not extended", crash: func(t *testing.T, path string, _ *measuretest.TDX) {
			line, _ := nextLine(t, path)
			appendFile(t, path, line)
		}, repaired: "extend was interrupted"},
		{name: "foreign extend", crash: func(t *testing.T, _ string, fake *measuretest.TDX) {
			fake.WriteFile("rtmr3:sha384", sha384([]byte("other")))
		}, wantErr: ErrRegisterMismatch},
		{name: "extended, record lost", crash: func(t *testing.T, path string, fake *measuretest.TDX) {
			_, d := nextLine(t, path)
			fake.WriteFile("rtmr3:sha384", d) // the register ahead: never from an append
		}, wantErr: ErrRegisterMismatch},
		{name: "reboot", crash: func(t *testing.T, _ string, fake *measuretest.TDX) {
			fake.Reset()
		}, wantErr: ErrRegisterMismatch},
		{name: "new log, used register", crash: func(t *testing.T, path string, _ *measuretest.TDX) {
			os.Remove(path)
		}, wantErr: ErrRegisterMismatch},
		{name: "edited record", crash: func(t *testing.T, path string, _ *measuretest.TDX) {
			b, _ := os.ReadFile(path)
			os.WriteFile(path, bytes.Replace(b, []byte(`"name":"p"`), []byte(`"name":"q"`), 1), 0o600)
		}, wantErr: ErrVerify},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path, fake := crashLog(t)
			tc.crash(t, path, fake)
			l, err := OpenLog(path, tdxReg(t, fake), LogOptions{Now: fixedNow})
			if tc.wantErr != nil {
				if err == nil {
					l.Close()
				}
				if tc.wantErr == ErrVerify {
					if err == nil || !strings.Contains(err.Error(), "digest") {
						t.Fatalf("OpenLog = %v; want a digest mismatch", err)
					}
					return
				}
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("OpenLog = %v; want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("OpenLog = %v", err)
			}
			reps := l.Repairs()
			if tc.repaired == "" && len(reps) != 0 || tc.repaired != "" && (len(reps) != 1 || !strings.Contains(reps[0].Action, tc.repaired)) {
				t.Errorf("Repairs() = %+v; want %q", reps, tc.repaired)
			}
			// The repaired log goes on and verifies against the register.
			ns, err := l.Namespace(l.NextNamespaceID(), "after", model.Coefficient{}, model.Coefficient{})
			if err != nil {
				t.Fatal(err)
			}
			ns.NewPoint(model.Point{Coefficient: c32(7)})
			l.Close()
			if _, err := verifyFile(t, path, VerifyOptions{Register: fake.RTMR(3), Kind: KindTDX, Index: 3}); err != nil {
				t.Errorf("Verify after repair = %v", err)
			}
		})
	}
}

func TestAppendExtendFailure(t *testing.T) {
	tests := []struct {
		name       string
		before     bool
		wantErr    bool
		wantBroken bool
	}{
		{name: "device refuses", before: true, wantErr: true},
		{name: "device extends then fails", before: false, wantErr: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events.log")
			fake := measuretest.NewTDX()
			reg := &measuretest.Faulty{Reg: tdxReg(t, fake)}
			l := openLog(t, path, reg)
			ns, err := l.Namespace(1, "n", model.Coefficient{}, model.Coefficient{})
			if err != nil {
				t.Fatal(err)
			}
			size := fileSize(t, path)
			if tc.before {
				reg.FailBefore(true)
			} else {
				reg.FailAfter(true)
			}
			err = ns.NewPoint(model.Point{Coefficient: c32(1)})
			if (err != nil) != tc.wantErr {
				t.Fatalf("NewPoint = %v; want error %v", err, tc.wantErr)
			}
			if tc.wantErr && fileSize(t, path) != size {
				t.Errorf("failed append left %d bytes; want the log cut back to %d", fileSize(t, path), size)
			}
			reg.FailBefore(false)
			reg.FailAfter(false)
			if err := ns.NewPoint(model.Point{Coefficient: c32(2)}); err != nil {
				t.Fatalf("NewPoint after failure = %v", err)
			}
			l.Close()
			if _, err := verifyFile(t, path, VerifyOptions{Register: fake.RTMR(3)}); err != nil {
				t.Errorf("Verify = %v", err)
			}
		})
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// A software register is new in every process: reopening the log restores it.
func TestSoftwareRestore(t *testing.T) {
	events, coefs := trajectory(t)
	for _, n := range []int{0, 1, len(coefs)} {
		t.Run(fmt.Sprintf("%d events", n), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events.log")
			r1 := NewSoftware(23)
			l := openLog(t, path, r1)
			learn(t, l, "p", events[:n], coefs[:n])
			l.Close()
			r2 := NewSoftware(23)
			l = openLog(t, path, r2)
			defer l.Close()
			v1, _ := r1.Read()
			v2, _ := r2.Read()
			if !bytes.Equal(v1, v2) {
				t.Errorf("restored register %x; want %x", v2, v1)
			}
			if reps := l.Repairs(); len(reps) != 0 {
				t.Errorf("Repairs() = %+v; want none", reps)
			}
		})
	}
}

// stallReg stops in its extend number at (counting from 0) until release
// is closed, so a test can look at the log and the register in the middle
// of a group commit's extends: what a crash there would leave.
type stallReg struct {
	Register
	at       int
	n        int
	stalled  chan struct{}
	release  chan struct{}
	stallOne sync.Once
}

func (r *stallReg) Extend(d []byte) error {
	if r.n == r.at {
		r.stallOne.Do(func() { close(r.stalled) })
		<-r.release
	}
	r.n++
	return r.Register.Extend(d)
}

// A crash in the middle of the largest group commit (MaxBatch records,
// written in pieces, synced once): the log file as it is while the commit
// extends, with the register as far as it got, is repaired by OpenLog
// (the missing extends, in order), ends at the register value of the
// finished commit and goes on and verifies; a torn line of the next
// commit on top is cut off as well.
func TestOpenLogRepairsLargestGroupCommit(t *testing.T) {
	events, _ := trajectory(t)
	const before = 2 // the created record and a first point, committed alone
	tests := []struct {
		name     string
		extended int // extends of the big commit done at the crash
		torn     bool
		repaired []string
	}{
		{name: "after the sync, no extend", extended: 0, repaired: []string{fmt.Sprintf("records %d to %d", before, before+MaxBatch-1)}},
		{name: "half extended", extended: MaxBatch / 2, repaired: []string{fmt.Sprintf("records %d to %d", before+MaxBatch/2, before+MaxBatch-1)}},
		{name: "all but one", extended: MaxBatch - 1, repaired: []string{fmt.Sprintf("record %d,", before+MaxBatch-1)}},
		{name: "no extend, torn next line", extended: 0, torn: true, repaired: []string{"partial last line", "group commit"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "events.log")
			fake := measuretest.NewTDX()
			reg := &stallReg{Register: tdxReg(t, fake), at: before + tc.extended, stalled: make(chan struct{}), release: make(chan struct{})}
			l := openLog(t, path, reg)
			l.StartBatching(BatchOptions{Queue: 2 * MaxBatch})
			ns, err := l.Namespace(1, "n", model.Coefficient{}, model.Coefficient{})
			if err != nil {
				t.Fatal(err)
			}
			// The first point's commit is held off (it needs l.mu) until
			// MaxBatch more points are queued behind it: they make one
			// commit.
			l.mu.Lock()
			if err := ns.NewPoint(model.Point{Coefficient: c32(1, 1), Description: events[0]}); err != nil {
				l.mu.Unlock()
				t.Fatal(err)
			}
			for busy := false; !busy; {
				time.Sleep(time.Millisecond)
				l.batch.mu.Lock()
				busy = l.batch.busy
				l.batch.mu.Unlock()
			}
			for i := range MaxBatch {
				c := c32(byte(i), byte(i>>8), 2)
				if err := ns.NewPoint(model.Point{Coefficient: c, Description: events[i%len(events)]}); err != nil {
					l.mu.Unlock()
					t.Fatal(err)
				}
			}
			l.mu.Unlock()
			<-reg.stalled
			// The crash: the file as the commit left it (synced) and
			// the register as far as it got.
			crashed := filepath.Join(dir, "crashed.log")
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			got := fake.RTMR(3)
			close(reg.release)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			want := fake.RTMR(3)
			if l.syncs != 3 {
				t.Fatalf("%d fdatasyncs; want 3: the created record, the first point, then one commit of %d", l.syncs, MaxBatch)
			}
			if tc.torn {
				line, _ := nextLine(t, path)
				b = append(b, line[:len(line)/3]...)
			}
			if err := os.WriteFile(crashed, b, 0o600); err != nil {
				t.Fatal(err)
			}
			// A register in the state of the crash.
			var digests [][]byte
			scanFile(t, path, func(_ int, r Record) error { digests = append(digests, append([]byte(nil), r.Digest...)); return nil })
			if len(digests) != before+MaxBatch {
				t.Fatalf("%d records; want %d", len(digests), before+MaxBatch)
			}
			after := measuretest.NewTDX()
			for _, d := range digests[:before+tc.extended] {
				after.WriteFile("rtmr3:sha384", d)
			}
			if !bytes.Equal(after.RTMR(3), got) {
				t.Fatalf("register at the crash %x; the first %d digests give %x", got, before+tc.extended, after.RTMR(3))
			}

			rl, err := OpenLog(crashed, tdxReg(t, after), LogOptions{Now: fixedNow})
			if err != nil {
				t.Fatalf("OpenLog after the crash = %v", err)
			}
			reps := rl.Repairs()
			ok := len(reps) == len(tc.repaired)
			for i := 0; ok && i < len(reps); i++ {
				ok = strings.Contains(reps[i].Action, tc.repaired[i])
			}
			if !ok {
				t.Errorf("Repairs() = %+v; want %q", reps, tc.repaired)
			}
			if got := after.RTMR(3); !bytes.Equal(got, want) {
				t.Errorf("repaired register %x; want %x (the finished commit)", got, want)
			}
			ns2, err := rl.Namespace(rl.NextNamespaceID(), "after", model.Coefficient{}, model.Coefficient{})
			if err != nil {
				t.Fatal(err)
			}
			if err := ns2.NewPoint(model.Point{Coefficient: c32(7)}); err != nil {
				t.Fatal(err)
			}
			rl.Close()
			rep, err := verifyFile(t, crashed, VerifyOptions{Register: after.RTMR(3), Kind: KindTDX, Index: 3})
			if err != nil {
				t.Fatalf("Verify after repair = %v", err)
			}
			if rep.Records != before+MaxBatch+2 {
				t.Errorf("Verify: %d records; want %d", rep.Records, before+MaxBatch+2)
			}
		})
	}
}
