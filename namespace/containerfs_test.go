package namespace

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// writeTree writes files (path -> content; content "->x" makes a symbolic
// link to x) under dir.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if len(content) > 2 && content[:2] == "->" {
			if err := os.Symlink(content[2:], full); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// containerTree lays out a container as a runtime would: a root file
// system, the runtime's files for the container and a volume, plus a file
// outside all of them.
func containerTree(t *testing.T) (string, FileSystemSpec) {
	t.Helper()
	top := t.TempDir()
	writeTree(t, filepath.Join(top, "rootfs"), map[string]string{
		"app/data.txt":      "data\n",
		"etc/hosts":         "placeholder of the image\n",
		"dev/null":          "not the container's /dev\n",
		"data/hidden":       "under the volume's mount point\n",
		"etc/escape":        "->../../../outside",
		"etc/abs-escape":    "->/../../outside",
		"etc/os-release":    "ID=test\n",
		"etc/alias":         "->os-release",
		"usr/lib/deep/file": "deep\n",
	})
	writeTree(t, top, map[string]string{
		"userdata/hosts": "127.0.0.1 instance\n",
		"volume/x":       "volume file\n",
		"volume/sub/y":   "under the volume\n",
		"inner/y":        "inner volume\n",
		"volume/escape":  "->../outside",
		"outside":        "secret of the host\n",
	})
	return top, FileSystemSpec{
		Root: filepath.Join(top, "rootfs"),
		Mounts: []SpecMount{
			{Destination: "/proc"},
			{Destination: "/dev"},
			{Destination: "/etc/hosts", Source: filepath.Join(top, "userdata/hosts")},
			{Destination: "/data", Source: filepath.Join(top, "volume"), Recursive: true},
			{Destination: "/data/sub", Source: filepath.Join(top, "inner")},
			{Destination: "/gone", Source: filepath.Join(top, "no-such-dir")},
		},
	}
}

func TestContainerFS(t *testing.T) {
	top, spec := containerTree(t)
	cfs, err := OpenContainerFS(spec, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cfs.Close() })
	if got := cfs.Unheld(); len(got) != 1 || got[0] != "/gone" {
		t.Errorf("Unheld() = %q; want [/gone]", got)
	}
	// What a runtime does when the container ends: the paths it used are
	// gone (here renamed; unmounted in real life).
	if err := os.Rename(top, top+".removed"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Rename(top+".removed", top) })

	tests := []struct {
		name, path string
		want       string
		wantErr    error // errors.Is; nil: want is the content
	}{
		{"root file system", "/app/data.txt", "data\n", nil},
		{"deep path", "/usr/lib/deep/file", "deep\n", nil},
		{"symbolic link inside the root", "/etc/alias", "ID=test\n", nil},
		{"file bind mount, not the image's placeholder", "/etc/hosts", "127.0.0.1 instance\n", nil},
		{"directory bind mount", "/data/x", "volume file\n", nil},
		{"nested bind mount wins", "/data/sub/y", "inner volume\n", nil},
		{"relative link out of the root stays in", "/etc/escape", "", fs.ErrNotExist},
		{"absolute link out of the root stays in", "/etc/abs-escape", "", fs.ErrNotExist},
		{"dot-dot out of the root stays in", "/../../outside", "", fs.ErrNotExist},
		{"link out of a volume stays in", "/data/escape", "", fs.ErrNotExist},
		{"mount the host cannot reach", "/dev/null", "", fs.ErrNotExist},
		{"below such a mount", "/proc/self/status", "", fs.ErrNotExist},
		{"bind whose source was gone", "/gone/file", "", fs.ErrNotExist},
		{"under a file bind mount", "/etc/hosts/x", "", unix.ENOTDIR},
		{"relative pathname", "app/data.txt", "", fs.ErrInvalid},
		{"prefix that is not a mount's directory", "/database", "", fs.ErrNotExist},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := cfs.OpenFile(tc.path)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					if f != nil {
						b, _ := io.ReadAll(f)
						f.Close()
						t.Fatalf("OpenFile(%q) read %q; want %v", tc.path, b, tc.wantErr)
					}
					t.Fatalf("OpenFile(%q) = %v; want %v", tc.path, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("OpenFile(%q): %v", tc.path, err)
			}
			defer f.Close()
			b, err := io.ReadAll(f)
			if err != nil || string(b) != tc.want {
				t.Errorf("OpenFile(%q) read %q, %v; want %q", tc.path, b, err, tc.want)
			}
		})
	}

	cfs.Close()
	if _, err := cfs.OpenFile("/app/data.txt"); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("OpenFile after Close = %v; want fs.ErrClosed", err)
	}
	var none *ContainerFS
	if _, err := none.OpenFile("/app/data.txt"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("nil ContainerFS: OpenFile = %v; want fs.ErrNotExist", err)
	}
}

// TestContainerFSMountOrder: a mount hides the earlier mounts at or below
// its destination, as it does in the container.
func TestContainerFSMountOrder(t *testing.T) {
	top, spec := containerTree(t)
	spec.Mounts = []SpecMount{
		{Destination: "/data/sub", Source: filepath.Join(top, "inner")},
		{Destination: "/data", Source: filepath.Join(top, "volume")},
		{Destination: "/etc/hosts"},
		{Destination: "/etc/hosts", Source: filepath.Join(top, "userdata/hosts")},
	}
	cfs, err := OpenContainerFS(spec, "")
	if err != nil {
		t.Fatal(err)
	}
	defer cfs.Close()
	for name, want := range map[string]string{"/data/sub/y": "under the volume\n", "/etc/hosts": "127.0.0.1 instance\n"} {
		f, err := cfs.OpenFile(name)
		if err != nil {
			t.Errorf("OpenFile(%q): %v", name, err)
			continue
		}
		b, err := io.ReadAll(f)
		f.Close()
		if err != nil || string(b) != want {
			t.Errorf("OpenFile(%q) read %q, %v; want %q", name, b, err, want)
		}
	}
}

func TestOpenContainerFSErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, root := range []string{filepath.Join(dir, "missing"), file} {
		if _, err := OpenContainerFS(FileSystemSpec{Root: root}, ""); err == nil {
			t.Errorf("OpenContainerFS(root %s) succeeded; want an error", root)
		}
	}
}

// TestContainerFSLetsRuntimeUnmount: holding a container's root must not
// make its runtime's unmount fail (containerd's shim unmounts without
// MNT_DETACH), and the files stay readable once it is unmounted.
func TestContainerFSLetsRuntimeUnmount(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	mounted := true
	t.Cleanup(func() {
		if mounted {
			unix.Unmount(dir, unix.MNT_DETACH)
		}
	})
	writeTree(t, dir, map[string]string{"app/data.txt": "on the tmpfs\n"})
	cfs, err := OpenContainerFS(FileSystemSpec{Root: dir}, "")
	if err != nil {
		t.Fatal(err)
	}
	defer cfs.Close()
	if err := unix.Unmount(dir, 0); err != nil {
		t.Fatalf("unmount while held: %v; want the runtime's unmount to succeed", err)
	}
	mounted = false
	f, err := cfs.OpenFile("/app/data.txt")
	if err != nil {
		t.Fatalf("OpenFile after the unmount: %v", err)
	}
	defer f.Close()
	if b, err := io.ReadAll(f); err != nil || string(b) != "on the tmpfs\n" {
		t.Errorf("read %q, %v after the unmount; want the file's content", b, err)
	}
}
