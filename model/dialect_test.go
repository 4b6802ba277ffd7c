package model_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/vigil-tsem/vigil/events"
	"github.com/vigil-tsem/vigil/model"
)

// perMount reports whether e's description has a value the invariant
// dialect hashes differently from the kernel: an anonymous device (major
// 0, minor not 0) or an s_uuid that is not zero on a filesystem that draws
// one at mount time other than tmpfs (which the kernel zeroes itself).
func perMount(line []byte) bool {
	return bytes.Contains(line, []byte(`"dev": {"major": "0", "minor": "`)) && !bytes.Contains(line, []byte(`"dev": {"major": "0", "minor": "0"}`)) ||
		bytes.Contains(line, []byte(`"s_magic": "0x794c7630"`)) || bytes.Contains(line, []byte(`"s_magic": "0x62656572"`))
}

// TestDialectsOnReferenceData checks both dialects against the kernel's
// coefficients: the TSEM dialect reproduces every one; the invariant
// dialect every one whose description has no per-mount value, and for
// the others the coefficient of the same event without its anonymous
// device.
func TestDialectsOnReferenceData(t *testing.T) {
	tsem := model.Mapping{}
	inv := model.Mapping{Dialect: model.DialectInvariant}
	differ := 0
	for _, tc := range kernelCases(t) {
		e, err := events.Parse(tc.line)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got, err := tsem.Coefficient(e); err != nil || got != tc.want {
			t.Errorf("%s: tsem coefficient = %s, %v; want the kernel's %s", tc.name, got, err, tc.want)
		}
		got, err := inv.Coefficient(e)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !perMount(tc.line) {
			if got != tc.want {
				t.Errorf("%s: invariant coefficient = %s; want the kernel's %s (nothing per mount in it)", tc.name, got, tc.want)
			}
			continue
		}
		differ++
		if got == tc.want {
			t.Errorf("%s: invariant coefficient is the kernel's; its anonymous device should not be hashed", tc.name)
		}
		noDev, _ := events.Parse(tc.line)
		dropAnonDevs(noDev)
		if want, _ := tsem.Coefficient(noDev); got != want {
			t.Errorf("%s: invariant coefficient = %s; want the kernel's rule without the anonymous device, %s", tc.name, got, want)
		}
	}
	if differ != 3 {
		t.Errorf("%d reference events have a per-mount value; want the 3 with dev 0:81 (tmpfs of a container)", differ)
	}
}

// dropAnonDevs clears the anonymous devices of the paths of the payloads
// the reference data has them in.
func dropAnonDevs(e *events.Event) {
	drop := func(p *events.Path) {
		if p.Dev.Major == 0 {
			p.HasDev = false
		}
	}
	switch p := e.Payload.(type) {
	case *events.FileEvent:
		drop(&p.File.Path)
	case *events.InodeMknod:
		drop(&p.Dentry.Path)
	case *events.SbMount:
		drop(&p.Path)
	}
}

// TestDialectInvariance builds the same file_open as two instances of a
// container see it: its overlayfs root and /dev tmpfs are new mounts, with
// new s_uuids and anonymous device minors. The invariant dialect gives one
// coefficient and one task id; the TSEM dialect two. What identifies a
// disk (a block device, an ext4 s_uuid) still counts in both.
func TestDialectInvariance(t *testing.T) {
	file := func(magic uint32, sid string, uuid byte, major, minor uint32) *events.Event {
		f := events.File{
			Flags: 32768,
			Inode: events.Inode{Mode: 0o100644, SMagic: magic, SID: sid, SUUID: [16]byte{uuid, 1, 2, 3}},
			Path:  events.Path{HasDev: true, Dev: events.Dev{Major: major, Minor: minor}, Type: "root", Pathname: "/etc/os-release"},
		}
		f.Digest = model.SHA256.Empty()
		return &events.Event{Header: events.Header{Type: "file_open", TaskID: c32(7), PTaskID: c32(6)}, Payload: &events.FileEvent{File: f}}
	}
	tests := []struct {
		name      string
		a, b      *events.Event
		invariant bool // one coefficient in the invariant dialect
	}{
		{"overlayfs: s_uuid and minor", file(0x794c7630, "overlay", 1, 0, 81), file(0x794c7630, "overlay", 2, 0, 93), true},
		{"sysfs: s_uuid", file(0x62656572, "sysfs", 1, 0, 22), file(0x62656572, "sysfs", 2, 0, 22), true},
		{"cgroup2: s_uuid", file(0x63677270, "cgroup2", 1, 0, 30), file(0x63677270, "cgroup2", 2, 0, 30), true},
		{"proc: minor", file(0x9fa0, "proc", 0, 0, 40), file(0x9fa0, "proc", 0, 0, 41), true},
		{"ext4: s_uuid", file(0xef53, "sda3", 1, 8, 3), file(0xef53, "sda3", 2, 8, 3), false},
		{"ext4: block device", file(0xef53, "sda3", 1, 8, 3), file(0xef53, "sda3", 1, 8, 4), false},
		{"overlayfs vs ext4", file(0x794c7630, "overlay", 1, 0, 81), file(0xef53, "overlay", 1, 0, 81), false},
	}
	tsem := model.Mapping{}
	inv := model.Mapping{Dialect: model.DialectInvariant}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ta, _ := tsem.Coefficient(tc.a)
			tb, _ := tsem.Coefficient(tc.b)
			if ta == tb {
				t.Errorf("tsem coefficients equal (%s); the kernel hashes the difference", ta)
			}
			ia, _ := inv.Coefficient(tc.a)
			ib, _ := inv.Coefficient(tc.b)
			if (ia == ib) != tc.invariant {
				t.Errorf("invariant coefficients %s, %s: equal = %v; want %v", ia, ib, ia == ib, tc.invariant)
			}
			fa := tc.a.Payload.(*events.FileEvent).File
			fb := tc.b.Payload.(*events.FileEvent).File
			fa.Flags, fb.Flags = events.ExecFlags, events.ExecFlags
			if got := inv.TaskID(c32(6), &fa) == inv.TaskID(c32(6), &fb); got != tc.invariant {
				t.Errorf("invariant task ids equal = %v; want %v", got, tc.invariant)
			}
			if tsem.TaskID(c32(6), &fa) == tsem.TaskID(c32(6), &fb) {
				t.Error("tsem task ids equal; the kernel hashes the difference")
			}
		})
	}
}

func TestParseDialect(t *testing.T) {
	for _, d := range []model.Dialect{model.DialectTSEM, model.DialectInvariant} {
		got, err := model.ParseDialect(d.String())
		if err != nil || got != d {
			t.Errorf("ParseDialect(%q) = %v, %v; want %v", d.String(), got, err, d)
		}
	}
	if _, err := model.ParseDialect("vigil"); !errors.Is(err, model.ErrUnknownDialect) {
		t.Errorf("ParseDialect(vigil) error = %v; want ErrUnknownDialect", err)
	}
}

// TestDialectModelFile checks that a model file says its dialect (only
// when it is not TSEM's, so the kernel's files load as they are), that
// Load gives it back, and that the model maps events in it.
func TestDialectModelFile(t *testing.T) {
	const c1 = "fdd9c9694d01c1efaf1882c5ee9ad64042239457e1a9a75785b424a3af0dc94d"
	for _, d := range []model.Dialect{model.DialectTSEM, model.DialectInvariant} {
		m := model.New(model.Options{Dialect: d})
		var buf bytes.Buffer
		if _, err := m.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		hasLine := strings.Contains(buf.String(), "#dialect ")
		if hasLine != (d != model.DialectTSEM) {
			t.Errorf("%s model file:\n%s\nwant a #dialect line only for a dialect other than tsem", d, buf.String())
		}
		back, err := model.Load(&buf, "m.model")
		if err != nil {
			t.Fatal(err)
		}
		if back.Dialect() != d || back.Mapping().Dialect != d {
			t.Errorf("loaded dialect = %v; want %v", back.Dialect(), d)
		}
	}
	for _, tc := range []struct{ name, in, want string }{
		{"unknown", "#dialect vigil\nend\n", `unknown coefficient dialect "vigil"`},
		{"duplicate", "#dialect invariant\nstate " + c1 + "\n#dialect tsem\nend\n", "duplicate dialect line (first at line 1)"},
	} {
		_, err := model.Load(strings.NewReader(tc.in), "bad.model")
		if !errors.Is(err, model.ErrInvalidModel) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Load error = %v; want ErrInvalidModel containing %q", tc.name, err, tc.want)
		}
	}
	// A kernel model file has no dialect line: TSEM's.
	m, err := model.LoadFile("../testdata/tsem/process.model")
	if err != nil {
		t.Fatal(err)
	}
	if m.Dialect() != model.DialectTSEM {
		t.Errorf("process.model dialect = %v; want tsem", m.Dialect())
	}
}
