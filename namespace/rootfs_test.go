package namespace

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestImageResolverFileSystem(t *testing.T) {
	r := &ImageResolver{Root: runtimeRoot}
	under := func(p string) string { return filepath.Join(runtimeRoot, p) }
	proc := SpecMount{Destination: "/proc"}
	dev := SpecMount{Destination: "/dev"}
	tests := []struct {
		name    string
		c       Container
		want    FileSystemSpec
		wantErr []string // all must appear in the error; nil: no error
		none    bool     // the error is ErrNoFileSystem
	}{
		{"podman: absolute root, file and directory binds", Container{Runtime: RuntimePodman, ID: id2("f4")}, FileSystemSpec{
			Spec: under("run/containers/storage/overlay-containers/" + id2("f4") + "/userdata/config.json"),
			Root: under("var/lib/containers/storage/overlay/b5af7fdeaaf8bd324715f8262139b1089e81c13594b78a723e139fb8fb4103f8/merged"),
			Mounts: []SpecMount{proc, dev,
				{Destination: "/etc/hosts", Source: under("run/containers/storage/overlay-containers/" + id2("f4") + "/userdata/hosts")},
				{Destination: "/dev/shm", Source: under("var/lib/containers/storage/overlay-containers/" + id2("f4") + "/userdata/shm")},
				{Destination: "/run/.containerenv", Source: under("run/containers/storage/overlay-containers/" + id2("f4") + "/userdata/.containerenv")},
			},
		}, nil, false},
		{"cri-o: root relative to the bundle", Container{Runtime: RuntimeCRIO, ID: id2("c3")}, FileSystemSpec{
			Spec: under("run/containers/storage/overlay-containers/" + id2("c3") + "/userdata/config.json"),
			Root: under("run/containers/storage/overlay-containers/" + id2("c3") + "/userdata/rootfs"),
		}, nil, false},
		{"containerd: the bundle's rootfs", Container{Runtime: RuntimeContainerd, ID: id2("a1")}, FileSystemSpec{
			Spec: under("run/containerd/io.containerd.runtime.v2.task/k8s.io/" + id2("a1") + "/config.json"),
			Root: under("run/containerd/io.containerd.runtime.v2.task/k8s.io/" + id2("a1") + "/rootfs"),
		}, nil, false},
		{"cgroupfs CRI container found in containerd", Container{Runtime: RuntimeCRI, ID: id2("a1")}, FileSystemSpec{
			Spec: under("run/containerd/io.containerd.runtime.v2.task/k8s.io/" + id2("a1") + "/config.json"),
			Root: under("run/containerd/io.containerd.runtime.v2.task/k8s.io/" + id2("a1") + "/rootfs"),
		}, nil, false},
		{"docker on the system's containerd: rbinds, tmpfs /dev/shm", Container{Runtime: RuntimeDocker, ID: id2("d0")}, FileSystemSpec{
			Spec: under("run/containerd/io.containerd.runtime.v2.task/moby/" + id2("d0") + "/config.json"),
			Root: under("var/lib/docker/overlay2/0604e8f937d8983289e682b1e2719ac64693d459c8977379d0c8fb32c2252a5e/merged"),
			Mounts: []SpecMount{proc, dev, {Destination: "/dev/shm"},
				{Destination: "/etc/hostname", Source: under("var/lib/docker/containers/" + id2("d0") + "/hostname"), Recursive: true},
				{Destination: "/data", Source: under("srv/data"), Recursive: true},
			},
		}, nil, false},
		{"docker on its own containerd", Container{Runtime: RuntimeDocker, ID: id2("d7")}, FileSystemSpec{
			Spec: under("run/docker/containerd/daemon/io.containerd.runtime.v2.task/moby/" + id2("d7") + "/config.json"),
			Root: under("var/lib/docker/overlay2/7777777777777777777777777777777777777777777777777777777777777777/merged"),
			Mounts: []SpecMount{proc, dev,
				{Destination: "/etc/resolv.conf", Source: under("var/lib/docker/containers/" + id2("d7") + "/resolv.conf"), Recursive: true},
			},
		}, nil, false},
		{"no spec", Container{Runtime: RuntimeDocker, ID: id2("99")}, FileSystemSpec{}, []string{"docker-" + id2("99")}, true},
		{"another runtime's spec is not read", Container{Runtime: RuntimePodman, ID: id2("d0")}, FileSystemSpec{}, nil, true},
		{"not a container id", Container{Runtime: RuntimePodman, ID: "../../etc"}, FileSystemSpec{}, []string{"not a container id"}, true},
		{"truncated spec", Container{Runtime: RuntimeContainerd, ID: id2("b5")}, FileSystemSpec{},
			[]string{filepath.Join("k8s.io", id2("b5"), "config.json") + ":5:1", "unexpected end"}, false},
		{"bind mount without a source", Container{Runtime: RuntimeContainerd, ID: id2("b8")}, FileSystemSpec{},
			[]string{filepath.Join("k8s.io", id2("b8"), "config.json"), "mounts[2].source", "/config"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := r.FileSystem(tc.c)
			switch {
			case tc.none:
				if !errors.Is(err, ErrNoFileSystem) {
					t.Fatalf("FileSystem(%s) = %+v, %v; want ErrNoFileSystem", tc.c.NamespaceName(), got, err)
				}
			case tc.wantErr != nil:
				if err == nil || errors.Is(err, ErrNoFileSystem) {
					t.Fatalf("FileSystem(%s) = %+v, %v; want a parse error", tc.c.NamespaceName(), got, err)
				}
			case err != nil:
				t.Fatalf("FileSystem(%s): %v", tc.c.NamespaceName(), err)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("FileSystem(%s) error %q; want it to contain %q", tc.c.NamespaceName(), err, w)
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("FileSystem(%s) =\n%+v\nwant\n%+v", tc.c.NamespaceName(), got, tc.want)
			}
		})
	}
}

// TestImageResolverFileSystemOnHost: with no Root, a spec's absolute paths
// are the host's as written.
func TestImageResolverFileSystemOnHost(t *testing.T) {
	abs, err := filepath.Abs(runtimeRoot)
	if err != nil {
		t.Fatal(err)
	}
	r := &ImageResolver{StorageDirs: []string{filepath.Join(abs, "run/containers/storage")}}
	got, err := r.FileSystem(Container{Runtime: RuntimePodman, ID: id2("f4")})
	if err != nil {
		t.Fatal(err)
	}
	if want := "/var/lib/containers/storage/overlay/b5af7fdeaaf8bd324715f8262139b1089e81c13594b78a723e139fb8fb4103f8/merged"; got.Root != want {
		t.Errorf("Root = %q; want %q", got.Root, want)
	}
}
