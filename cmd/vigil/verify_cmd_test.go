package main

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-eventlog/cel"

	"github.com/vigil-tsem/vigil/measure"
	"github.com/vigil-tsem/vigil/measure/measuretest"
	"github.com/vigil-tsem/vigil/model"
)

// vigilCLI runs the command line in-process and returns its standard output,
// the error message and the exit status.
func vigilCLI(t *testing.T, args ...string) (stdout, errMsg string, code int) {
	t.Helper()
	root := newRootCmd()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return out.String(), errb.String(), 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return out.String(), errb.String() + err.Error(), ee.code
	}
	return out.String(), errb.String() + err.Error(), 2
}

// measuredLog writes a log of the first n events of the reference trajectory
// and returns its path and the register line a --log command prints.
func measuredLog(t *testing.T, n int) (string, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "events.log")
	reg := measure.NewSoftware(measure.DefaultSoftwareIndex)
	l, err := measure.OpenLog(path, reg, measure.LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ns, err := l.Namespace(1, "test", model.Coefficient{}, model.Coefficient{})
	if err != nil {
		t.Fatal(err)
	}
	m := model.New(model.Options{Observer: ns})
	events := testLines(t, "process_1.json")
	coefs := testLines(t, "process_1.coefficients")
	for i := 0; i < n; i++ {
		c, err := model.ParseCoefficient(coefs[i])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Add(c, []byte(events[i])); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	v, _ := reg.Read()
	return path, "register software 23 sha384 " + hex.EncodeToString(v)
}

// tdxMeasuredLog writes a short log measured into a fake TDX RTMR 3.
func tdxMeasuredLog(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tdx.log")
	reg, _, err := measure.OpenRegister(measure.KindTDX, measure.RegisterOptions{TDXFS: measuretest.NewTDX()})
	if err != nil {
		t.Fatal(err)
	}
	l, err := measure.OpenLog(path, reg, measure.LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Namespace(1, "tdx", model.Coefficient{}, model.Coefficient{}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	return path
}

func testLines(t *testing.T, name string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "testdata", "tsem", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

func TestVerifyCommand(t *testing.T) {
	path, regLine := measuredLog(t, 155)
	value := strings.Fields(regLine)[4]
	data, _ := os.ReadFile(path)
	edited := filepath.Join(t.TempDir(), "edited.log")
	os.WriteFile(edited, bytes.Replace(data, []byte(`"process": "quixote"`), []byte(`"process": "quixotE"`), 1), 0o600)
	quote := filepath.Join("..", "..", "measure", "tdx", "testdata", "tdx_prod_quote_SPR_E4.dat")
	raw, _ := os.ReadFile(quote)
	corrupt := filepath.Join(t.TempDir(), "corrupt.dat")
	bad := append([]byte(nil), raw...)
	bad[48+520] ^= 1 // report data
	os.WriteFile(corrupt, bad, 0o600)
	partial := filepath.Join(t.TempDir(), "partial.model")
	os.WriteFile(partial, []byte("aggregate "+strings.Repeat("0", 64)+"\nstate "+testLines(t, "process_1.coefficients")[0]+"\nend\n"), 0o600)
	foreign, _ := hex.DecodeString(value)
	foreign[0] ^= 1
	tdxLog := tdxMeasuredLog(t)

	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
		wantErr  string
	}{
		{"log only", []string{"verify", "--log", path}, 0, "register:    not checked", ""},
		{"register hex", []string{"verify", "--log", path, "--register", value}, 0, "verified", ""},
		{"register line", []string{"verify", "--log", path, "--register", regLine}, 0, "measurement: ", ""},
		{"edited line", []string{"verify", "--log", edited, "--register", value}, 1, "", "edited.log:2: verification failed: record 1: digest"},
		{"foreign extend", []string{"verify", "--log", path, "--register", hex.EncodeToString(foreign)}, 1, "", "not explained by the log"},
		{"wrong register kind", []string{"verify", "--log", path, "--register", strings.Replace(regLine, "software 23", "tpm 23", 1)}, 2, "", "sha256"},
		{"outside model", []string{"verify", "--log", path, "--model", partial}, 1, "outside model: " + path + ":3: record 2", "outside the model"},
		{"sample quote", []string{"verify", "--log", tdxLog, "--quote", quote, "--quote-time", "2024-07-01T00:00:00Z"}, 1, "signature and certificate chain verified", "report data"},
		{"quote of a software log", []string{"verify", "--log", path, "--quote", quote, "--quote-time", "2024-07-01T00:00:00Z"}, 1, "signature and certificate chain verified", "TDX quote attests RTMRs"},
		{"corrupted quote", []string{"verify", "--log", path, "--quote", corrupt, "--quote-time", "2024-07-01T00:00:00Z"}, 1, "", "quote: verify quote"},
		{"missing log", []string{"verify", "--log", path + ".missing"}, 2, "", "no such file"},
		{"no log", []string{"verify"}, 2, "", "--log is required"},
		{"bad hex", []string{"verify", "--log", path, "--register", "xyz"}, 2, "", "--register"},
		{"register and quote", []string{"verify", "--log", path, "--register", value, "--quote", quote}, 2, "", "not both"},
		{"nonce without quote", []string{"verify", "--log", path, "--nonce", "00"}, 2, "", "--nonce needs --quote"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, msg, code := vigilCLI(t, tc.args...)
			if code != tc.wantCode || !strings.Contains(out, tc.wantOut) || !strings.Contains(msg, tc.wantErr) {
				t.Errorf("vigil %s = exit %d\nstdout:\n%s\nerror: %s\nwant exit %d, stdout with %q, error with %q",
					strings.Join(tc.args, " "), code, out, msg, tc.wantCode, tc.wantOut, tc.wantErr)
			}
		})
	}
}

func TestLogShowAndExport(t *testing.T) {
	path, _ := measuredLog(t, 20)
	out, msg, code := vigilCLI(t, "log", "show", path)
	if code != 0 || !strings.Contains(out, `created   ns 1 "test"`) || !strings.Contains(out, `file_open "quixote"`) {
		t.Errorf("vigil log show = exit %d %s\n%s", code, msg, out)
	}
	tlv := filepath.Join(t.TempDir(), "events.cel")
	if _, msg, code := vigilCLI(t, "log", "export", "--format", "cel-tlv", path, "-o", tlv); code != 0 {
		t.Fatalf("vigil log export = exit %d %s", code, msg)
	}
	b, err := os.ReadFile(tlv)
	if err != nil {
		t.Fatal(err)
	}
	log, err := cel.DecodeToCEL(bytes.NewBuffer(b))
	if err != nil || len(log.Records()) == 0 {
		t.Errorf("decode export: %d records, %v", len(log.Records()), err)
	}
	if _, _, code := vigilCLI(t, "log", "export", "--format", "json", path); code != 2 {
		t.Errorf("vigil log export --format json = exit %d; want 2", code)
	}
	torn := filepath.Join(t.TempDir(), "torn.log")
	data, _ := os.ReadFile(path)
	os.WriteFile(torn, data[:len(data)-10], 0o600)
	if _, msg, code := vigilCLI(t, "log", "show", torn); code != 1 || !strings.Contains(msg, "partial line") {
		t.Errorf("vigil log show (torn) = exit %d %s; want 1", code, msg)
	}
}

// runsLog writes a log of two runs of a software register, cutting the
// last cut records of run 1 before run 2, and returns its path and the
// final register line.
func runsLog(t *testing.T, cut int) (string, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "runs.log")
	var reg *measure.Software
	for run := range 2 {
		if run == 1 && cut > 0 {
			data, _ := os.ReadFile(path)
			lines := bytes.SplitAfter(data, []byte("\n"))
			os.WriteFile(path, bytes.Join(lines[:len(lines)-1-cut], nil), 0o600)
		}
		reg = measure.NewSoftware(measure.DefaultSoftwareIndex)
		l, err := measure.OpenLog(path, reg, measure.LogOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.BeginRun(); err != nil {
			t.Fatal(err)
		}
		ns, err := l.Namespace(l.NextNamespaceID(), fmt.Sprintf("run%d", run+1), model.Coefficient{}, model.Coefficient{})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			c, _ := model.ParseCoefficient(fmt.Sprintf("%02x%062x", run, i))
			if err := ns.NewPoint(model.Point{Coefficient: c}); err != nil {
				t.Fatal(err)
			}
		}
		if run == 1 {
			ns.Gap(3, "ringbuf_full")
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	v, _ := reg.Read()
	return path, "register software 23 sha384 " + hex.EncodeToString(v)
}

// verify reports runs and gaps, and a log that verifies but is incomplete
// is exit status 3 unless --allow-gaps.
func TestVerifyIncomplete(t *testing.T) {
	whole, wholeReg := runsLog(t, 0)
	cut, cutReg := runsLog(t, 3)
	open := filepath.Join(t.TempDir(), "open.log")
	data, _ := os.ReadFile(whole)
	os.WriteFile(open, bytes.Join(bytes.SplitAfter(data, []byte("\n"))[:7], nil), 0o600) // run 1 without its stop record
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  []string
	}{
		{"gap", []string{"verify", "--log", whole, "--register", wholeReg}, 3, []string{
			"run 1 (line 1): started ", ", stopped ", "; 8 records, 1 namespace",
			"run 2 (line 9): started ",
			`namespace 2 "run2" (line 10): learning, 5 points, 0 forensics, 1 gaps (3 events lost, 0 points not recorded: incomplete)`,
			"  gap (line 16): 3 events lost: ringbuf_full",
			"verified, with gaps: the register is explained by the log, but the log is incomplete:",
			`  - namespace 2 "run2": 1 gap records (3 events lost, 0 points not recorded)`}},
		{"gap allowed", []string{"verify", "--log", whole, "--register", wholeReg, "--allow-gaps"}, 0, []string{"verified, with gaps"}},
		{"cut before restart", []string{"verify", "--log", cut, "--register", cutReg}, 3, []string{
			"run 1 (line 1): started ", "ended UNCLEAN: no stop record", "; 5 records, 1 namespace",
			"  - run 1 (line 1) ended without a stop record"}},
		{"log only", []string{"verify", "--log", cut}, 3, []string{"verified, with gaps: the log is consistent, but the log is incomplete:"}},
		{"last run not stopped", []string{"verify", "--log", open}, 0, []string{"run 1 (line 1): started ", "not stopped (running, or ended without a stop record)", "note:        run 1 has no stop record", "\nverified\n"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, msg, code := vigilCLI(t, tc.args...)
			if code != tc.wantCode {
				t.Errorf("vigil %s = exit %d (%s); want %d\n%s", strings.Join(tc.args, " "), code, msg, tc.wantCode, out)
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("vigil %s output:\n%s\nwant it to contain %q", strings.Join(tc.args, " "), out, w)
				}
			}
		})
	}
}
