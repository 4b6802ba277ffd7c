package agent

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-tsem/vigil/internal/control"
	"github.com/vigil-tsem/vigil/namespace"
)

// readVia reads name through namespace id's held file system.
func readVia(t *testing.T, tab *table, id uint64, name string) (string, error) {
	t.Helper()
	cfs := tab.fileSystem(id)
	if cfs == nil {
		return "", errors.New("no file system")
	}
	f, err := cfs.OpenFile(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	return string(b), err
}

// TestContainerFSHeldWithNamespace: a container's file system is held from
// its start, stays readable when the runtime's state is gone, follows a
// restart and is released with the namespace.
func TestContainerFSHeldWithNamespace(t *testing.T) {
	f := newFixture(t, false, control.Settings{HashAlgorithm: "sha256"}, "")
	state := t.TempDir()
	f.tab.images = &namespace.ImageResolver{Root: state}
	c := testContainer(1)
	c.Runtime = namespace.RuntimeContainerd
	runtimeState(t, state, c, `{"root":{"path":"rootfs"}}`)
	bundle := filepath.Join(state, "run/containerd/io.containerd.runtime.v2.task/k8s.io", c.ID)
	writeFile := func(content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(bundle, "rootfs/app"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(bundle, "rootfs/app/data.txt"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeFile("first run\n")

	st, err := f.tab.startContainer(c, "/nonexistent")
	if err != nil {
		t.Fatal(err)
	}
	id := st.ns.ID()
	// The runtime removes the container's state and root when it ends.
	if err := os.Rename(bundle, bundle+".removed"); err != nil {
		t.Fatal(err)
	}
	if got, err := readVia(t, f.tab, id, "/app/data.txt"); err != nil || got != "first run\n" {
		t.Errorf("after the container's removal: read %q, %v; want the first run's file", got, err)
	}

	// Restarted under the same id: a new root; the old one is released
	// after the grace period.
	runtimeState(t, state, c, `{"root":{"path":"rootfs"}}`)
	writeFile("second run\n")
	old := st.fs.Load()
	f.tab.reopenContainerFS(st, time.Millisecond)
	if got, err := readVia(t, f.tab, id, "/app/data.txt"); err != nil || got != "second run\n" {
		t.Errorf("after a restart: read %q, %v; want the second run's file", got, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := old.OpenFile("/app/data.txt")
		if errors.Is(err, fs.ErrClosed) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the first run's file system is still held after the grace period (OpenFile: %v)", err)
		}
		time.Sleep(time.Millisecond)
	}

	held := st.fs.Load()
	f.tab.remove(st)
	if cfs := f.tab.fileSystem(id); cfs != nil {
		t.Errorf("fileSystem of a removed namespace = %v; want nil", cfs)
	}
	if _, err := held.OpenFile("/app/data.txt"); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("OpenFile after the namespace's removal = %v; want fs.ErrClosed", err)
	}

	// A container without a runtime spec has no file system (a nil
	// interface, not a nil pointer in one).
	st2, err := f.tab.startContainer(testContainer(2), "/nonexistent")
	if err != nil {
		t.Fatal(err)
	}
	if cfs := f.tab.fileSystem(st2.ns.ID()); cfs != nil {
		t.Errorf("fileSystem without a spec = %#v; want nil", cfs)
	}
}
