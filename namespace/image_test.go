package namespace

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runtimeRoot is a host's runtime state in miniature: one container of
// each runtime and a few broken state files (see testdata/runtime).
const runtimeRoot = "testdata/runtime"

func id2(pair string) string { return strings.Repeat(pair, 32) }

func TestImageResolver(t *testing.T) {
	r := &ImageResolver{Root: runtimeRoot}
	tests := []struct {
		name    string
		c       Container
		want    string
		wantErr []string // all must appear in the error; nil: no error
		noImage bool     // the error is ErrNoImage
	}{
		{"containerd CRI annotation", Container{Runtime: RuntimeContainerd, ID: id2("a1")}, "registry.example:5000/team/app:1.2", nil, false},
		{"cgroupfs CRI container found in containerd", Container{Runtime: RuntimeCRI, ID: id2("a1")}, "registry.example:5000/team/app:1.2", nil, false},
		{"docker config.v2.json", Container{Runtime: RuntimeDocker, ID: id2("d0")}, "nginx:1.27", nil, false},
		{"cri-o spec annotation", Container{Runtime: RuntimeCRIO, ID: id2("c3")}, "quay.io/org/app:2.0", nil, false},
		{"cgroupfs CRI container found in CRI-O", Container{Runtime: RuntimeCRI, ID: id2("c3")}, "quay.io/org/app:2.0", nil, false},
		{"podman containers.json metadata", Container{Runtime: RuntimePodman, ID: id2("f4")}, "docker.io/library/postgres:16", nil, false},
		{"containerd without the CRI annotation", Container{Runtime: RuntimeContainerd, ID: id2("e2")}, "", []string{"containerd-" + id2("e2")}, true},
		{"no state at all", Container{Runtime: RuntimeDocker, ID: id2("99")}, "", []string{"docker-"}, true},
		{"runtime's state not read for another runtime", Container{Runtime: RuntimeDocker, ID: id2("a1")}, "", nil, true},
		{"not a container id", Container{Runtime: RuntimeDocker, ID: "../../etc"}, "", []string{"not a container id"}, true},
		{"truncated spec", Container{Runtime: RuntimeContainerd, ID: id2("b5")},
			"", []string{filepath.Join("k8s.io", id2("b5"), "config.json") + ":5:1", "unexpected end"}, false},
		{"image of the wrong type", Container{Runtime: RuntimeDocker, ID: id2("b6")},
			"", []string{"config.v2.json:4:15", "Config.Image", "number"}, false},
		{"metadata that is not JSON", Container{Runtime: RuntimePodman, ID: id2("b7")},
			"", []string{"containers.json", "container 2 (b7b7b7b7b7b7) metadata"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := r.Image(tc.c)
			switch {
			case tc.noImage:
				if !errors.Is(err, ErrNoImage) {
					t.Fatalf("Image(%s) = %q, %v; want ErrNoImage", tc.c.NamespaceName(), got, err)
				}
			case tc.wantErr != nil:
				if err == nil || errors.Is(err, ErrNoImage) {
					t.Fatalf("Image(%s) = %q, %v; want a parse error", tc.c.NamespaceName(), got, err)
				}
			case err != nil:
				t.Fatalf("Image(%s): %v", tc.c.NamespaceName(), err)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Image(%s) error %q; want it to contain %q", tc.c.NamespaceName(), err, w)
				}
			}
			if got != tc.want {
				t.Errorf("Image(%s) = %q; want %q", tc.c.NamespaceName(), got, tc.want)
			}
		})
	}
}

// TestImageResolverDirs checks that configured directories replace the
// defaults and are taken under Root.
func TestImageResolverDirs(t *testing.T) {
	root := t.TempDir()
	id := id2("12")
	dir := filepath.Join(root, "srv", "docker", "containers", id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.v2.json"), []byte(`{"Config":{"Image":"app:relocated"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	c := Container{Runtime: RuntimeDocker, ID: id}
	if img, err := (&ImageResolver{Root: root}).Image(c); !errors.Is(err, ErrNoImage) {
		t.Errorf("default dirs: Image = %q, %v; want ErrNoImage (the data root moved)", img, err)
	}
	r := &ImageResolver{Root: root, DockerDirs: []string{"/srv/docker/containers"}}
	if img, err := r.Image(c); err != nil || img != "app:relocated" {
		t.Errorf("DockerDirs set: Image = %q, %v; want app:relocated", img, err)
	}
}

func TestImageFileName(t *testing.T) {
	long := "registry.example/" + strings.Repeat("a", 250) + ":1"
	tests := []struct{ image, want string }{
		{"registry.example:5000/team/app:1.2", "registry.example_5000_team_app_1.2"},
		{"nginx", "nginx"},
		{"quay.io/org/app@sha256:" + strings.Repeat("0", 64), "quay.io_org_app_sha256_" + strings.Repeat("0", 64)},
		{"..", "_.."},
		{".hidden", "_.hidden"},
		{"a/../../b", "a_.._.._b"},
		{"", ""},
	}
	for _, tc := range tests {
		if got := ImageFileName(tc.image); got != tc.want {
			t.Errorf("ImageFileName(%q) = %q; want %q", tc.image, got, tc.want)
		}
	}
	a, b := ImageFileName(long), ImageFileName(long+"2")
	if len(a) != 200 || a == b || strings.ContainsAny(a, "/:") {
		t.Errorf("ImageFileName of long references = %q (%d), %q; want 200 bytes, distinct, no separators", a, len(a), b)
	}
}

// FuzzParseState feeds arbitrary bytes to every state file parser: they
// must return an image (or a file system) or an error, never panic, and an
// error must name the file.
func FuzzParseState(f *testing.F) {
	for _, p := range []string{
		"run/containerd/io.containerd.runtime.v2.task/k8s.io/" + id2("a1") + "/config.json",
		"run/containerd/io.containerd.runtime.v2.task/k8s.io/" + id2("b5") + "/config.json",
		"var/lib/docker/containers/" + id2("d0") + "/config.v2.json",
		"var/lib/docker/containers/" + id2("b6") + "/config.v2.json",
		"var/lib/containers/storage/overlay-containers/containers.json",
		"run/containers/storage/overlay-containers/" + id2("f4") + "/userdata/config.json",
		"run/containerd/io.containerd.runtime.v2.task/k8s.io/" + id2("b8") + "/config.json",
	} {
		data, err := os.ReadFile(filepath.Join(runtimeRoot, p))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`[{"id":"` + id2("f4") + `","metadata":"{\"image-name\":5}"}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		const path = "state.json"
		check := func(what, img string, err error) {
			if err != nil && !strings.Contains(err.Error(), path) {
				t.Errorf("%s error %q does not name the file", what, err)
			}
		}
		img, err := parseSpecImage(path, data, annotationCRIImage)
		check("spec", img, err)
		img, err = parseDockerImage(path, data)
		check("docker", img, err)
		img, err = parseStorageList(path, data, id2("f4"))
		check("containers.json", img, err)
		spec, err := parseSpecFileSystem(path, data)
		check("spec file system", spec.Root, err)
		for _, m := range spec.Mounts {
			if !strings.HasPrefix(m.Destination, "/") {
				t.Errorf("mount destination %q is not absolute", m.Destination)
			}
		}
		ImageFileName(string(data))
	})
}
