package vmproto

import (
	"testing"
	"time"
)

func TestResultRoundTrip(t *testing.T) {
	for _, r := range []Result{
		{Name: "./bpf", Verdict: Pass, Exit: 0, Pass: 12, Skip: 1, Elapsed: 1234 * time.Millisecond},
		{Name: ".", Verdict: Fail, Exit: -1, Fail: 3, Elapsed: 0},
		{Name: "./test/lsm", Verdict: NoTests, Exit: 0},
		{Name: "./x", Verdict: AllSkipped, Skip: 4, Elapsed: 2 * time.Minute},
	} {
		kind, rest, ok := Marker(r.Line() + "\r\n")
		if !ok || kind != KindEnd {
			t.Fatalf("Marker(%q) = %q, %v; want END", r.Line(), kind, ok)
		}
		got, err := ParseEnd(rest)
		if err != nil || got != r {
			t.Errorf("ParseEnd(%q) = %+v, %v; want %+v", rest, got, err, r)
		}
	}
}

func TestParseEndRejects(t *testing.T) {
	for _, rest := range []string{
		"",
		"./a verdict=PASS exit=0 pass=1 fail=0 skip=0",
		"./a verdict=MAYBE exit=0 pass=1 fail=0 skip=0 time=1s",
		"./a verdict=PASS exit=x pass=1 fail=0 skip=0 time=1s",
		"./a verdict=PASS exit=0 pass=-1 fail=0 skip=0 time=1s",
		"./a exit=0 verdict=PASS pass=1 fail=0 skip=0 time=1s",
		"./a verdict=PASS exit=0 pass=1 fail=0 skip=0 time=soon",
	} {
		if r, err := ParseEnd(rest); err == nil {
			t.Errorf("ParseEnd(%q) = %+v, nil; want an error", rest, r)
		}
	}
}

func TestJudge(t *testing.T) {
	for _, tc := range []struct {
		name   string
		exit   int
		output []string
		want   Verdict
	}{
		{"pass", 0, []string{"=== RUN   TestA", "--- PASS: TestA (0.00s)", "PASS"}, Pass},
		{"some skipped", 0, []string{"--- PASS: TestA (0.00s)", "--- SKIP: TestB (0.00s)"}, Pass},
		{"subtest fails", 1, []string{"    --- FAIL: TestA/x (0.00s)", "--- FAIL: TestA (0.00s)", "FAIL"}, Fail},
		{"fail line but exit 0", 0, []string{"--- FAIL: TestA (0.00s)"}, Fail},
		{"exit 1 no lines", 1, []string{"panic: boom"}, Fail},
		{"killed", -1, []string{"--- PASS: TestA (0.00s)"}, Fail},
		{"no tests", 0, []string{"testing: warning: no tests to run", "PASS"}, NoTests},
		{"nothing printed", 0, []string{"PASS"}, NoTests},
		{"all skipped", 0, []string{"--- SKIP: TestA (0.00s)", "    --- SKIP: TestA/b (0.00s)"}, AllSkipped},
		{"log line looks like result", 0, []string{"    x_test.go:1: --- PASS: not a result", "--- SKIP: TestA (0.00s)"}, AllSkipped},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c Counter
			for _, l := range tc.output {
				c.Observe(l + "\n")
			}
			if got := Judge(tc.exit, c); got != tc.want {
				t.Errorf("Judge(%d, %+v) = %s; want %s", tc.exit, c, got, tc.want)
			}
		})
	}
}

// FuzzParseEnd: whatever ParseEnd accepts formats back to a line it parses the same.
func FuzzParseEnd(f *testing.F) {
	f.Add("./bpf verdict=PASS exit=0 pass=12 fail=0 skip=1 time=1.234s")
	f.Add("./a verdict=FAIL exit=-1 pass=0 fail=3 skip=0 time=0s")
	f.Add("x verdict=NO-TESTS exit=0 pass=0 fail=0 skip=0 time=1h2m")
	f.Fuzz(func(t *testing.T, rest string) {
		r, err := ParseEnd(rest)
		if err != nil {
			return
		}
		r.Elapsed = r.Elapsed.Round(time.Millisecond)
		_, again, ok := Marker(r.Line())
		if !ok {
			t.Fatalf("Marker(%q) not found", r.Line())
		}
		r2, err := ParseEnd(again)
		if err != nil || r2 != r {
			t.Fatalf("ParseEnd(%q) = %+v, %v; want %+v", again, r2, err, r)
		}
	})
}
