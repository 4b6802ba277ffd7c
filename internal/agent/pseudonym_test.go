package agent

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vigil-tsem/vigil/events"
	"github.com/vigil-tsem/vigil/internal/control"
	"github.com/vigil-tsem/vigil/model"
)

// openOf is a file_open of pathname whose content digest starts with b.
func openOf(pathname string, b byte) *events.Event {
	var d [32]byte
	d[0] = b
	f := events.File{
		Flags:  32768,
		Inode:  events.Inode{Mode: 0o100644, SMagic: 0x794c7630, SID: "overlay"},
		Path:   events.Path{Type: "root", Pathname: pathname},
		Digest: events.Digest32(d),
	}
	return &events.Event{Header: events.Header{Type: "file_open", Process: "app"}, Payload: &events.FileEvent{File: f}}
}

// TestContainerPseudonyms: a learning container namespace gets the
// configured pseudonyms, so the files the runtime writes for each instance
// keep one coefficient whatever their content; more are added through the
// control socket while learning, never once sealed; the model file has
// them, and a container sealed to that file has them again.
func TestContainerPseudonyms(t *testing.T) {
	dir := t.TempDir()
	f := newFixture(t, false, control.Settings{HashAlgorithm: "sha256"}, dir)
	f.tab.containerPseudonyms = []string{"/etc/hostname", "/etc/hosts"}
	c := serveTable(t, f.tab)
	ctx := context.Background()

	st, err := f.tab.startContainer(testContainer(1), "/nonexistent")
	if err != nil {
		t.Fatal(err)
	}
	name := st.ns.Name()
	info, err := c.Namespace(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(info.Settings.Pseudonyms, f.tab.containerPseudonyms) || info.Pseudonyms != 2 || info.Settings.Dialect != "invariant" {
		t.Errorf("new container: pseudonyms %q (%d in the model), dialect %q; want %q, 2, invariant", info.Settings.Pseudonyms, info.Pseudonyms, info.Settings.Dialect, f.tab.containerPseudonyms)
	}

	// Two instances write two hostnames: one point. Another file with
	// two contents: two.
	for i, e := range []*events.Event{openOf("/etc/hostname", 1), openOf("/etc/hostname", 2), openOf("/etc/app.conf", 1), openOf("/etc/app.conf", 2)} {
		if _, err := st.ns.Add(e); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	if n := st.ns.Model().Len(); n != 3 {
		t.Errorf("%d points; want 3 (one /etc/hostname, two /etc/app.conf)", n)
	}

	// Through the control socket: bad paths, then one more pseudonym.
	for _, bad := range [][]string{{"etc/app.conf"}, {}, {"/a\x00b"}} {
		if _, err := c.AddPseudonyms(ctx, name, bad); !errors.Is(err, control.ErrInvalid) {
			t.Errorf("AddPseudonyms(%q) = %v; want ErrInvalid", bad, err)
		}
	}
	if _, err := c.AddPseudonyms(ctx, "docker-nope", []string{"/x"}); !errors.Is(err, control.ErrNotFound) {
		t.Errorf("AddPseudonyms(unknown namespace) = %v; want ErrNotFound", err)
	}
	info, err = c.AddPseudonyms(ctx, name[:16], []string{"/etc/app.conf", "/etc/hosts"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/etc/hostname", "/etc/hosts", "/etc/app.conf"}; !slices.Equal(info.Settings.Pseudonyms, want) || info.Pseudonyms != 3 {
		t.Errorf("after AddPseudonyms: %q (%d in the model); want %q, 3", info.Settings.Pseudonyms, info.Pseudonyms, want)
	}
	st.ns.Add(openOf("/etc/app.conf", 3))
	st.ns.Add(openOf("/etc/app.conf", 4))
	if n := st.ns.Model().Len(); n != 4 {
		t.Errorf("%d points; want 4 (the pseudonym's later events are one point)", n)
	}

	var file bytes.Buffer
	if err := c.Model(ctx, name, &file); err != nil {
		t.Fatal(err)
	}
	for _, p := range info.Settings.Pseudonyms {
		if line := "pseudonym " + model.PseudonymOf(p).String() + "\n"; !strings.Contains(file.String(), line) {
			t.Errorf("model file lacks %q for %s:\n%s", line, p, file.String())
		}
	}

	if _, err := c.Seal(ctx, name); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AddPseudonyms(ctx, name, []string{"/etc/other"}); !errors.Is(err, control.ErrConflict) {
		t.Errorf("AddPseudonyms(sealed) = %v; want ErrConflict", err)
	}

	// The saved model seals the next instance, pseudonyms included: its
	// own hostname is in the model.
	next := testContainer(2)
	if err := os.WriteFile(filepath.Join(dir, next.NamespaceName()+".model"), file.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	st2, err := f.tab.startContainer(next, "/nonexistent")
	if err != nil {
		t.Fatal(err)
	}
	info2, _ := c.Namespace(ctx, st2.ns.Name())
	if info2.Mode != control.ModeSealed || info2.Pseudonyms != 3 || len(info2.Settings.Pseudonyms) != 0 {
		t.Errorf("container sealed to the file: mode %s, %d pseudonyms in the model, settings %q; want sealed, 3, none added", info2.Mode, info2.Pseudonyms, info2.Settings.Pseudonyms)
	}
	res, err := st2.ns.Add(openOf("/etc/hostname", 9))
	if err != nil || res.Forensic {
		t.Errorf("another instance's /etc/hostname: forensic %v, %v; want in the model", res.Forensic, err)
	}
}

// TestNoContainerPseudonyms: an empty container_pseudonyms gives none.
func TestNoContainerPseudonyms(t *testing.T) {
	f := newFixture(t, false, control.Settings{HashAlgorithm: "sha256"}, "")
	st, err := f.tab.startContainer(testContainer(1), "/nonexistent")
	if err != nil {
		t.Fatal(err)
	}
	if info := f.tab.info(st); info.Pseudonyms != 0 || len(info.Settings.Pseudonyms) != 0 {
		t.Errorf("pseudonyms %d %q; want none", info.Pseudonyms, info.Settings.Pseudonyms)
	}
	// A run namespace asks for its own.
	info, err := f.tab.Create(control.CreateRequest{Settings: control.Settings{Pseudonyms: []string{"/var/run/app.pid"}}})
	if err != nil {
		t.Fatal(err)
	}
	if info.Pseudonyms != 1 || !slices.Equal(info.Settings.Pseudonyms, []string{"/var/run/app.pid"}) {
		t.Errorf("run namespace: %d pseudonyms %q; want /var/run/app.pid", info.Pseudonyms, info.Settings.Pseudonyms)
	}
	if _, err := f.tab.Create(control.CreateRequest{Settings: control.Settings{Pseudonyms: []string{"app.pid"}}}); !errors.Is(err, control.ErrInvalid) {
		t.Errorf("Create(relative pseudonym) = %v; want ErrInvalid", err)
	}
}
