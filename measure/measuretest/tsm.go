package measuretest

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
	"sync"
)

// TSM behaves like the kernel's configfs-tsm report subsystem
// (/sys/kernel/config/tsm/report) for a TDX guest: an entry directory made
// with MkdirTemp, an "inblob" to write, "outblob", "provider" and
// "generation" to read, where generation counts the writes so a reader can
// tell another writer interfered. Outblob returns Quote(inblob). It
// implements go-configfs-tsm's configfsi.Client.
type TSM struct {
	// Quote makes the outblob from the inblob (the report data).
	Quote func(inblob []byte) ([]byte, error)

	mu      sync.Mutex
	entries map[string]*tsmEntry
	next    int
	// InBlobs lists every report data written, in order.
	InBlobs [][]byte
}

type tsmEntry struct {
	inblob     []byte
	generation uint64
}

const tsmReportDir = "/sys/kernel/config/tsm/report"

func (t *TSM) entry(name string) (*tsmEntry, string, error) {
	dir, attr := path.Split(name)
	dir = strings.TrimSuffix(dir, "/")
	if path.Dir(dir) != tsmReportDir {
		return nil, "", &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	e := t.entries[path.Base(dir)]
	if e == nil {
		return nil, "", &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return e, attr, nil
}

// MkdirTemp creates a report entry.
func (t *TSM) MkdirTemp(dir, pattern string) (string, error) {
	if dir != tsmReportDir {
		return "", &fs.PathError{Op: "mkdir", Path: dir, Err: fs.ErrNotExist}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.entries == nil {
		t.entries = map[string]*tsmEntry{}
	}
	t.next++
	name := fmt.Sprintf("%s%d", pattern, t.next)
	t.entries[name] = &tsmEntry{}
	return path.Join(dir, name), nil
}

// ReadFile reads an attribute of an entry.
func (t *TSM) ReadFile(name string) ([]byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, attr, err := t.entry(name)
	if err != nil {
		return nil, err
	}
	switch attr {
	case "generation":
		return []byte(fmt.Sprintf("%d\n", e.generation)), nil
	case "provider":
		return []byte("tdx_guest\n"), nil
	case "outblob":
		if t.Quote == nil {
			return nil, fmt.Errorf("fake TSM: no quote function")
		}
		return t.Quote(e.inblob)
	}
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}

// WriteFile writes an attribute of an entry; only inblob is writable.
func (t *TSM) WriteFile(name string, contents []byte) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, attr, err := t.entry(name)
	if err != nil {
		return err
	}
	if attr != "inblob" || len(contents) > 64 {
		return &fs.PathError{Op: "write", Path: name, Err: fs.ErrInvalid}
	}
	e.inblob = append([]byte(nil), contents...)
	e.generation++
	t.InBlobs = append(t.InBlobs, e.inblob)
	return nil
}

// ReadDir is not needed by report requests.
func (t *TSM) ReadDir(dirname string) ([]os.DirEntry, error) {
	return nil, &fs.PathError{Op: "readdir", Path: dirname, Err: fs.ErrInvalid}
}

// RemoveAll removes an entry.
func (t *TSM) RemoveAll(name string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.entries, path.Base(name))
	return nil
}
