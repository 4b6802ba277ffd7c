package ctrtest

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// Container tests of different packages (go test runs packages in
// parallel) share the host's runtimes: one of them starting dockerd while
// another stops it, or an agent of one test seeing the containers of
// another, would make them fail for no fault of their own. A test that
// gets a Runtime holds an exclusive lock on a file in the temporary
// directory until it ends; within one process the lock is counted, so
// nested tests and tests using both runtimes do not wait for themselves.
var hostLock struct {
	sync.Mutex
	n int
	f *os.File
}

// exclusive takes the host lock for t.
func exclusive(t testing.TB) {
	t.Helper()
	hostLock.Lock()
	defer hostLock.Unlock()
	if hostLock.n == 0 {
		f, err := os.OpenFile(filepath.Join(os.TempDir(), "vigil-ctrtest.lock"), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			t.Fatalf("container test lock: %v", err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
			f.Close()
			t.Fatalf("container test lock: %v", err)
		}
		hostLock.f = f
	}
	hostLock.n++
	t.Cleanup(func() {
		hostLock.Lock()
		defer hostLock.Unlock()
		if hostLock.n--; hostLock.n == 0 {
			hostLock.f.Close() // releases the lock
			hostLock.f = nil
		}
	})
}
