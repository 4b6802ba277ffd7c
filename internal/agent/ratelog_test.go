package agent

import (
	"fmt"
	"testing"
	"time"
)

func TestLogLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLogLimiter(3, 10*time.Second)
	l.now = func() time.Time { return now }

	type step struct {
		advance    time.Duration
		key        string
		ok         bool
		suppressed uint64
	}
	steps := []step{
		{0, "a", true, 0},
		{0, "a", true, 0},
		{0, "b", true, 0}, // keys are independent
		{0, "a", true, 0},
		{0, "a", false, 0}, // 4th in the window: held back
		{time.Second, "a", false, 0},
		{9 * time.Second, "a", true, 2}, // new window reports the two held back
		{0, "a", true, 0},
	}
	for i, s := range steps {
		now = now.Add(s.advance)
		ok, sup := l.allow(s.key)
		if ok != s.ok || sup != s.suppressed {
			t.Fatalf("step %d (%s): allow = %v, %d; want %v, %d", i, s.key, ok, sup, s.ok, s.suppressed)
		}
	}
}

func TestLogLimiterBounded(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLogLimiter(1, time.Second)
	l.now = func() time.Time { return now }
	for i := range 10 * maxLogKeys {
		if ok, _ := l.allow(fmt.Sprint("ns-", i)); !ok {
			t.Fatalf("first line of key %d held back", i)
		}
		now = now.Add(10 * time.Millisecond)
	}
	if n := len(l.keys); n > maxLogKeys+100 {
		t.Fatalf("%d keys kept, want about %d at most", n, maxLogKeys)
	}
}
