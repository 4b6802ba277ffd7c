package agent

import "time"

// logLimiter bounds how many lines of one kind the agent writes per key
// (a namespace name): at most burst lines per window. Lines past that are
// counted, and the first line allowed in a later window reports how many
// were held back, so an operator sees the volume without the flood (a
// sealed host can produce thousands of new forensics points a second; the
// points themselves stay in `vigil ns forensics` and in the measured log).
//
// It is used from the reader goroutine only and is not safe for
// concurrent use.
type logLimiter struct {
	burst  int
	window time.Duration
	now    func() time.Time
	keys   map[string]*logWindow
}

// New forensics points are logged at most forensicsLogBurst times per
// namespace per forensicsLogWindow.
const (
	forensicsLogBurst  = 20
	forensicsLogWindow = 10 * time.Second
)

type logWindow struct {
	start      time.Time
	used       int
	suppressed uint64
}

func newLogLimiter(burst int, window time.Duration) *logLimiter {
	return &logLimiter{burst: burst, window: window, now: time.Now, keys: make(map[string]*logWindow)}
}

// allow reports whether a line for key may be written now, and how many
// lines of key were held back since the last one written.
func (l *logLimiter) allow(key string) (ok bool, suppressed uint64) {
	now := l.now()
	w := l.keys[key]
	if w == nil {
		if len(l.keys) >= maxLogKeys {
			l.prune(now)
		}
		w = &logWindow{start: now}
		l.keys[key] = w
	}
	if now.Sub(w.start) >= l.window {
		w.start, w.used = now, 0
	}
	if w.used >= l.burst {
		w.suppressed++
		return false, 0
	}
	w.used++
	suppressed, w.suppressed = w.suppressed, 0
	return true, suppressed
}

// maxLogKeys bounds the keys kept before idle ones are dropped.
const maxLogKeys = 256

// prune drops the windows that ended with nothing held back: a key that
// comes back starts afresh, which is what it would get anyway.
func (l *logLimiter) prune(now time.Time) {
	for k, w := range l.keys {
		if now.Sub(w.start) >= l.window && w.suppressed == 0 {
			delete(l.keys, k)
		}
	}
}
