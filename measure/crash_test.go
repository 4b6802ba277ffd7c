package measure

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
