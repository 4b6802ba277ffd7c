package guest

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-tsem/vigil/test/vm/vmproto"
)

func mustBeGuest(t *testing.T) {
	t.Helper()
	if os.Getenv("VIGIL_VM") != "1" {
		t.Skip("not in the VM test harness (VIGIL_VM unset); run: go run ./test/vm -- ./test/vm/guest")
	}
}

// mountTypes maps mount points to filesystem types from /proc/self/mountinfo.
func mountTypes(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint options... - fstype source superopts
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		fields, after := strings.Fields(pre), strings.Fields(post)
		if !ok || len(fields) < 5 || len(after) < 1 {
			t.Fatalf("parse mountinfo line %q", sc.Text())
		}
		m[fields[4]] = after[0]
	}
	return m
}

func TestMounts(t *testing.T) {
	mustBeGuest(t)
	got := mountTypes(t)
	for _, tc := range []struct{ dir, fstype string }{
		{"/proc", "proc"},
		{"/sys", "sysfs"},
		{"/dev", "devtmpfs"},
		{"/sys/kernel/security", "securityfs"},
		{"/sys/fs/bpf", "bpf"},
		{"/sys/kernel/tracing", "tracefs"},
		{"/sys/kernel/debug", "debugfs"},
		{"/sys/fs/cgroup", "cgroup2"},
		{"/tmp", "tmpfs"},
		{"/run", "tmpfs"},
	} {
		if got[tc.dir] != tc.fstype {
			t.Errorf("mount on %s = %q; want %s", tc.dir, got[tc.dir], tc.fstype)
		}
	}
}

func TestEnvironment(t *testing.T) {
	mustBeGuest(t)
	for k, want := range map[string]string{
		"VIGIL_TEST_BPF": "require",
		"VIGIL_VM_BIN":   vmproto.AppletDir,
		"TMPDIR":         "/tmp",
	} {
		if got := os.Getenv(k); got != want {
			t.Errorf("$%s = %q; want %q", k, got, want)
		}
	}
	if os.Geteuid() != 0 {
		t.Errorf("euid = %d; want 0", os.Geteuid())
	}
	if b, err := os.ReadFile("testdata/marker.txt"); err != nil || string(b) != "copied with the test binary\n" {
		t.Errorf("testdata/marker.txt = %q, %v; want the package's testdata in the working directory", b, err)
	}
}

func TestApplets(t *testing.T) {
	mustBeGuest(t)
	bin := os.Getenv("VIGIL_VM_BIN")
	file := filepath.Join(t.TempDir(), "touched")
	for _, tc := range []struct {
		args    []string
		want    string
		wantErr bool
	}{
		{[]string{"echo", "a", "b"}, "a b\n", false},
		{[]string{"true"}, "", false},
		{[]string{"false"}, "", true},
		{[]string{"sleep", "0.01"}, "", false},
		{[]string{"touch", file}, "", false},
		{[]string{"cat", file}, "", false},
		{[]string{"cat", "/etc/hostname"}, "vigil-vm\n", false},
		{[]string{"cat", "/nonexistent"}, "cat: open /nonexistent: no such file or directory\n", true},
		{[]string{"id"}, "uid=0 gid=0 euid=0 egid=0\n", false},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, err := exec.Command(filepath.Join(bin, tc.args[0]), tc.args[1:]...).CombinedOutput()
			if string(out) != tc.want || (err != nil) != tc.wantErr {
				t.Errorf("%v = %q, %v; want %q, error %v", tc.args, out, err, tc.want, tc.wantErr)
			}
		})
	}
	if len(vmproto.Applets) != 7 {
		t.Errorf("vmproto.Applets has %d names; this test covers 7", len(vmproto.Applets))
	}
}

func TestLoopback(t *testing.T) {
	mustBeGuest(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Write([]byte("hi"))
			c.Close()
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dial loopback: %v", err)
	}
	defer c.Close()
	buf := make([]byte, 2)
	if _, err := c.Read(buf); err != nil || string(buf) != "hi" {
		t.Errorf("read from loopback = %q, %v; want \"hi\"", buf, err)
	}
}
