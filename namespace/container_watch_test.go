package namespace

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// watchRecorder runs a ContainerWatcher in the background and hands its
// events to the test.
type watchRecorder struct {
	events chan ContainerEvent
	done   chan error
}

func startWatcher(t *testing.T, w *ContainerWatcher) *watchRecorder {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &watchRecorder{events: make(chan ContainerEvent, 100), done: make(chan error, 1)}
	go func() { r.done <- w.Run(ctx, func(e ContainerEvent) { r.events <- e }) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("ContainerWatcher.Run() = %v; want nil after cancel", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("ContainerWatcher.Run did not return after cancel")
		}
	})
	return r
}

// expect waits for the next event and checks it.
func (r *watchRecorder) expect(t *testing.T, kind ContainerEventKind, cgroup string) ContainerEvent {
	t.Helper()
	select {
	case e := <-r.events:
		if e.Kind != kind || e.Container.Cgroup != cgroup {
			t.Fatalf("event = %v %s; want %v %s", e.Kind, e.Container.Cgroup, kind, cgroup)
		}
		return e
	case <-time.After(5 * time.Second):
		t.Fatalf("no event within 5s; want %v %s", kind, cgroup)
	}
	return ContainerEvent{}
}

func (r *watchRecorder) expectQuiet(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case e := <-r.events:
		t.Fatalf("unexpected event %v %s", e.Kind, e.Container.Cgroup)
	case <-time.After(d):
	}
}

func mkdirs(t *testing.T, root string, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func TestContainerWatcherFixture(t *testing.T) {
	pod := "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + testUIDu + ".slice"
	existing := pod + "/cri-containerd-" + testID + ".scope"
	for _, mode := range []struct {
		name      string
		noInotify bool
		resync    time.Duration
	}{
		{"inotify", false, time.Hour}, // the resync never fires: inotify alone must do it
		{"scan", true, 20 * time.Millisecond},
	} {
		t.Run(mode.name, func(t *testing.T) {
			root := t.TempDir()
			mkdirs(t, root, existing, existing+"/container", "/system.slice/sshd.service",
				pod+"/crio-conmon-"+testID2+".scope")
			w := &ContainerWatcher{Root: root, Resync: mode.resync, NoInotify: mode.noInotify}
			r := startWatcher(t, w)
			e := r.expect(t, ContainerStarted, existing)
			if e.Container.PodUID != testUID || e.Container.Runtime != RuntimeContainerd {
				t.Errorf("started container = %+v; want containerd in pod %s", e.Container, testUID)
			}
			r.expectQuiet(t, 50*time.Millisecond)

			// A runtime creates the pod and container directories in one go.
			newPod := "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + testUIDu[:35] + "f.slice"
			fresh := newPod + "/crio-" + testID2 + ".scope"
			mkdirs(t, root, fresh+"/container")
			e = r.expect(t, ContainerStarted, fresh)
			if e.Container.Runtime != RuntimeCRIO || e.Container.QoS != "besteffort" {
				t.Errorf("started container = %+v; want a cri-o besteffort container", e.Container)
			}
			docker := "/system.slice/docker-" + testID2 + ".scope"
			mkdirs(t, root, docker)
			r.expect(t, ContainerStarted, docker)
			mkdirs(t, root, "/system.slice/cron.service")
			r.expectQuiet(t, 50*time.Millisecond)

			if err := os.RemoveAll(filepath.Join(root, newPod)); err != nil {
				t.Fatal(err)
			}
			r.expect(t, ContainerStopped, fresh)
			if err := os.Remove(filepath.Join(root, docker)); err != nil {
				t.Fatal(err)
			}
			r.expect(t, ContainerStopped, docker)
			got := w.Containers()
			if len(got) != 1 || got[0].Cgroup != existing {
				t.Errorf("Containers() = %+v; want only %s", got, existing)
			}
		})
	}
}

func TestContainerWatcherMissingRoot(t *testing.T) {
	w := &ContainerWatcher{Root: filepath.Join(t.TempDir(), "absent")}
	err := w.Run(context.Background(), func(ContainerEvent) {})
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Run(missing root) = %v; want an error wrapping ErrNotExist", err)
	}
}

// TestContainerWatcherHost creates a container-shaped cgroup in the host's
// real cgroup v2 tree, the way a runtime does, and watches it come and go.
func TestContainerWatcherHost(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: creating cgroups needs root")
	}
	root, err := FindCgroup2Root("/sys/fs/cgroup")
	if err != nil {
		t.Skipf("skipping: %v", err)
	}
	slice := fmt.Sprintf("/vigil-test-%d.slice", os.Getpid())
	if err := os.Mkdir(filepath.Join(root, slice), 0o755); err != nil {
		t.Skipf("skipping: cannot create a cgroup: %v", err)
	}
	t.Cleanup(func() {
		os.Remove(filepath.Join(root, slice, "docker-"+testID+".scope"))
		os.Remove(filepath.Join(root, slice))
	})
	w := &ContainerWatcher{Root: root, Resync: time.Hour}
	r := startWatcher(t, w)
	time.Sleep(100 * time.Millisecond) // let the initial scan report the host's containers
	for len(r.events) > 0 {
		<-r.events
	}
	cg := slice + "/docker-" + testID + ".scope"
	if err := os.Mkdir(filepath.Join(root, cg), 0o755); err != nil {
		t.Fatal(err)
	}
	e := r.expect(t, ContainerStarted, cg)
	if e.Container.Runtime != RuntimeDocker || e.Container.ID != testID {
		t.Errorf("started container = %+v; want docker %s", e.Container, testID)
	}
	if err := os.Remove(filepath.Join(root, cg)); err != nil {
		t.Fatal(err)
	}
	r.expect(t, ContainerStopped, cg)
}

func TestFindCgroup2Root(t *testing.T) {
	if _, err := FindCgroup2Root(t.TempDir()); !errors.Is(err, ErrNoCgroup2Mount) {
		t.Errorf("FindCgroup2Root(tempdir) = %v; want ErrNoCgroup2Mount", err)
	}
}

func BenchmarkContainerWatcherScan(b *testing.B) {
	root := b.TempDir()
	for i := range 200 {
		d := fmt.Sprintf("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod%s%04d.slice/cri-containerd-%s.scope",
			testUIDu[:32], i, testID)
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			b.Fatal(err)
		}
	}
	w := &ContainerWatcher{Root: root}
	w.known = make(map[string]Container)
	for b.Loop() {
		if err := w.scan(nil, "", func(ContainerEvent) {}); err != nil {
			b.Fatal(err)
		}
	}
}
