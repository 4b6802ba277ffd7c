package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/vigil-tsem/vigil/test/vm/vmproto"
)

// entry is one record read back from a newc archive.
type entry struct {
	name         string
	mode         uint32
	rmajor       uint32
	rminor       uint32
	data         string
	headerOffset int
}

// readNewc parses a newc archive by the format's definition, checking the magic, the
// hex fields and the 4-byte alignment of names and data.
func readNewc(t *testing.T, b []byte) []entry {
	t.Helper()
	var out []entry
	off := 0
	for {
		if off%4 != 0 {
			t.Fatalf("record at %d not 4-byte aligned", off)
		}
		if len(b)-off < 110 {
			t.Fatalf("archive ends at %d inside a header (no trailer)", off)
		}
		h := string(b[off : off+110])
		if h[:6] != "070701" {
			t.Fatalf("magic at %d = %q; want 070701", off, h[:6])
		}
		field := func(i int) uint32 {
			v, err := strconv.ParseUint(h[6+8*i:14+8*i], 16, 32)
			if err != nil {
				t.Fatalf("field %d at %d: %v", i, off, err)
			}
			return uint32(v)
		}
		mode, size, rmajor, rminor, namesize := field(1), field(6), field(9), field(10), field(11)
		nameEnd := off + 110 + int(namesize)
		if b[nameEnd-1] != 0 {
			t.Fatalf("name at %d not NUL-terminated", off)
		}
		name := string(b[off+110 : nameEnd-1])
		dataStart := nameEnd + pad4(nameEnd)
		e := entry{name: name, mode: mode, rmajor: rmajor, rminor: rminor,
			data: string(b[dataStart : dataStart+int(size)]), headerOffset: off}
		off = dataStart + int(size)
		off += pad4(off)
		if name == "TRAILER!!!" {
			if off != len(b) {
				t.Errorf("%d bytes after the trailer", len(b)-off)
			}
			return out
		}
		out = append(out, e)
	}
}

func TestInitramfsEntries(t *testing.T) {
	var buf bytes.Buffer
	a := newInitramfs(&buf)
	// Data and names of every length modulo 4 exercise the padding.
	files := map[string]string{"a": "", "bb/c": "1", "bb/dd/e": "22", "f": "333", "/g/h": "4444"}
	for _, n := range []string{"a", "bb/c", "bb/dd/e", "f", "/g/h"} {
		if err := a.File(n, 0o640, int64(len(files[n])), strings.NewReader(files[n])); err != nil {
			t.Fatal(err)
		}
	}
	a.Symlink("bin/cat", "/init")
	a.CharDev("dev/console", 0o600, 5, 1)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}

	got := map[string]entry{}
	var order []string
	for _, e := range readNewc(t, buf.Bytes()) {
		if _, dup := got[e.name]; dup {
			t.Errorf("entry %s written twice", e.name)
		}
		if parent := path.Dir(e.name); parent != "." {
			if _, ok := got[parent]; !ok {
				t.Errorf("entry %s comes before its directory %s", e.name, parent)
			}
		}
		got[e.name] = e
		order = append(order, e.name)
	}
	for _, tc := range []struct {
		name   string
		mode   uint32
		data   string
		rmajor uint32
		rminor uint32
	}{
		{"a", 0o100640, "", 0, 0},
		{"bb", 0o040755, "", 0, 0},
		{"bb/dd", 0o040755, "", 0, 0},
		{"bb/dd/e", 0o100640, "22", 0, 0},
		{"f", 0o100640, "333", 0, 0},
		{"g/h", 0o100640, "4444", 0, 0},
		{"bin/cat", 0o120777, "/init", 0, 0},
		{"dev/console", 0o020600, "", 5, 1},
	} {
		e, ok := got[tc.name]
		if !ok {
			t.Errorf("entry %s missing; have %v", tc.name, order)
			continue
		}
		if e.mode != tc.mode || e.data != tc.data || e.rmajor != tc.rmajor || e.rminor != tc.rminor {
			t.Errorf("entry %s = mode %o data %q rdev %d:%d; want mode %o data %q rdev %d:%d",
				tc.name, e.mode, e.data, e.rmajor, e.rminor, tc.mode, tc.data, tc.rmajor, tc.rminor)
		}
	}
}

func TestInitramfsShortReader(t *testing.T) {
	a := newInitramfs(io.Discard)
	err := a.File("x", 0o644, 10, strings.NewReader("short"))
	if err == nil {
		t.Fatal("File with 5 of 10 bytes: no error")
	}
	if err2 := a.Close(); err2 == nil {
		t.Error("Close after a failed File: no error; want the first error again")
	}
}

func TestWriteInitramfs(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	img := image{
		init: write("init", "INIT"),
		repo: dir,
		pkgs: []pkg{{importPath: "example.com/m/x/y", dir: filepath.Join(dir, "x", "y"), rel: "x/y", binary: write("y.test", "TEST")}},
		config: vmproto.Config{Env: []string{"A=1"}, Tests: []vmproto.Test{
			{Name: "./x/y", Path: "/repo/x/y/y.test", Dir: "/repo/x/y", Args: []string{"-test.v"}}}},
		includes: []string{"shared"},
		extra:    []extraBinary{{pkg: "./cmd/vigil", host: write("bin/vigil", "VIGIL")}},
	}
	write("x/y/testdata/golden.txt", "GOLDEN")
	write("shared/data.json", "{}")

	var gz bytes.Buffer
	if err := writeInitramfs(&gz, img); err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(&gz)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]entry{}
	for _, e := range readNewc(t, raw) {
		got[e.name] = e
	}
	want := map[string]string{
		"init":                         "INIT",
		"repo/x/y/y.test":              "TEST",
		"repo/x/y/testdata/golden.txt": "GOLDEN",
		"repo/shared/data.json":        "{}",
		"etc/hostname":                 "vigil-vm\n",
	}
	for _, a := range vmproto.Applets {
		want["bin/"+a] = "/init"
	}
	for name, data := range want {
		if e, ok := got[name]; !ok || e.data != data {
			t.Errorf("entry %s = %q (present %v); want %q", name, e.data, ok, data)
		}
	}
	if e := got["dev/console"]; e.mode != 0o020600 || e.rmajor != 5 || e.rminor != 1 {
		t.Errorf("dev/console = mode %o rdev %d:%d; want char device 5:1", e.mode, e.rmajor, e.rminor)
	}
	var cfg vmproto.Config
	if err := json.Unmarshal([]byte(got[strings.TrimPrefix(vmproto.ConfigPath, "/")].data), &cfg); err != nil {
		t.Fatalf("config: %v", err)
	}
	if fmt.Sprint(cfg) != fmt.Sprint(img.config) {
		t.Errorf("config = %+v; want %+v", cfg, img.config)
	}
}
