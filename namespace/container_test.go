package namespace

import (
	"errors"
	"strings"
	"testing"
)

const (
	testID   = "0b4e5c3f7d5f0b1f7b1c2b5d4f3a2e1d0c9b8a7f6e5d4c3b2a1f0e9d8c7b6a59"
	testID2  = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	testUID  = "2a4c6e8f-1b3d-4f5a-9c7e-0d2f4b6a8c1e"
	testUIDu = "2a4c6e8f_1b3d_4f5a_9c7e_0d2f4b6a8c1e"
)

func TestParseCgroupPath(t *testing.T) {
	burstablePod := "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + testUIDu + ".slice"
	tests := []struct {
		name string
		path string
		want Container
		ok   bool
	}{
		{"containerd systemd burstable", burstablePod + "/cri-containerd-" + testID + ".scope",
			Container{RuntimeContainerd, testID, testUID, "burstable", burstablePod + "/cri-containerd-" + testID + ".scope", ""}, true},
		{"containerd systemd besteffort",
			"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + testUIDu + ".slice/cri-containerd-" + testID + ".scope",
			Container{RuntimeContainerd, testID, testUID, "besteffort",
				"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + testUIDu + ".slice/cri-containerd-" + testID + ".scope", ""}, true},
		{"containerd systemd guaranteed", "/kubepods.slice/kubepods-pod" + testUIDu + ".slice/cri-containerd-" + testID + ".scope",
			Container{RuntimeContainerd, testID, testUID, "guaranteed", "/kubepods.slice/kubepods-pod" + testUIDu + ".slice/cri-containerd-" + testID + ".scope", ""}, true},
		{"cri-o systemd", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + testUIDu + ".slice/crio-" + testID + ".scope",
			Container{RuntimeCRIO, testID, testUID, "burstable", burstablePod + "/crio-" + testID + ".scope", ""}, true},
		{"cri-o conmon is not a container", burstablePod + "/crio-conmon-" + testID + ".scope", Container{}, false},
		{"cri-o systemd inner container cgroup", burstablePod + "/crio-" + testID + ".scope/container",
			Container{RuntimeCRIO, testID, testUID, "burstable", burstablePod + "/crio-" + testID + ".scope", ""}, true},
		{"docker under kubelet (cri-dockerd)", burstablePod + "/docker-" + testID + ".scope",
			Container{RuntimeDocker, testID, testUID, "burstable", burstablePod + "/docker-" + testID + ".scope", ""}, true},
		{"docker systemd", "/system.slice/docker-" + testID + ".scope",
			Container{Runtime: RuntimeDocker, ID: testID, Cgroup: "/system.slice/docker-" + testID + ".scope"}, true},
		{"docker systemd no leading slash", "system.slice/docker-" + testID + ".scope",
			Container{Runtime: RuntimeDocker, ID: testID, Cgroup: "/system.slice/docker-" + testID + ".scope"}, true},
		{"docker systemd trailing slash", "/system.slice/docker-" + testID + ".scope/",
			Container{Runtime: RuntimeDocker, ID: testID, Cgroup: "/system.slice/docker-" + testID + ".scope"}, true},
		{"docker systemd init.scope inside (cgroupns + systemd)", "/system.slice/docker-" + testID + ".scope/init.scope",
			Container{Runtime: RuntimeDocker, ID: testID, Cgroup: "/system.slice/docker-" + testID + ".scope"}, true},
		{"docker cgroupfs", "/docker/" + testID,
			Container{Runtime: RuntimeDocker, ID: testID, Cgroup: "/docker/" + testID}, true},
		{"docker cgroupfs rootless", "/user.slice/user-1000.slice/user@1000.service/docker-" + testID + ".scope",
			Container{Runtime: RuntimeDocker, ID: testID, Cgroup: "/user.slice/user-1000.slice/user@1000.service/docker-" + testID + ".scope"}, true},
		{"podman machine.slice", "/machine.slice/libpod-" + testID + ".scope",
			Container{Runtime: RuntimePodman, ID: testID, Cgroup: "/machine.slice/libpod-" + testID + ".scope"}, true},
		{"podman split container leaf", "/machine.slice/libpod-" + testID + ".scope/container",
			Container{Runtime: RuntimePodman, ID: testID, Cgroup: "/machine.slice/libpod-" + testID + ".scope"}, true},
		{"podman conmon", "/machine.slice/libpod-conmon-" + testID + ".scope", Container{}, false},
		{"podman rootless", "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + testID + ".scope",
			Container{Runtime: RuntimePodman, ID: testID, Cgroup: "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + testID + ".scope"}, true},
		{"podman cgroupfs", "/libpod_parent/libpod-" + testID,
			Container{Runtime: RuntimePodman, ID: testID, Cgroup: "/libpod_parent/libpod-" + testID}, true},
		{"podman cgroupfs bare id", "/libpod_parent/" + testID,
			Container{Runtime: RuntimePodman, ID: testID, Cgroup: "/libpod_parent/" + testID}, true},
		{"kubelet cgroupfs burstable", "/kubepods/burstable/pod" + testUID + "/" + testID,
			Container{RuntimeCRI, testID, testUID, "burstable", "/kubepods/burstable/pod" + testUID + "/" + testID, ""}, true},
		{"kubelet cgroupfs besteffort", "/kubepods/besteffort/pod" + testUID + "/" + testID,
			Container{RuntimeCRI, testID, testUID, "besteffort", "/kubepods/besteffort/pod" + testUID + "/" + testID, ""}, true},
		{"kubelet cgroupfs guaranteed", "/kubepods/pod" + testUID + "/" + testID,
			Container{RuntimeCRI, testID, testUID, "guaranteed", "/kubepods/pod" + testUID + "/" + testID, ""}, true},
		{"kubelet cgroupfs cri-o", "/kubepods/burstable/pod" + testUID + "/crio-" + testID,
			Container{RuntimeCRIO, testID, testUID, "burstable", "/kubepods/burstable/pod" + testUID + "/crio-" + testID, ""}, true},
		{"pod uid upper case", "/kubepods/pod" + strings.ToUpper(testUID) + "/" + testID,
			Container{RuntimeCRI, testID, testUID, "guaranteed", "/kubepods/pod" + strings.ToUpper(testUID) + "/" + testID, ""}, true},
		{"static pod hash uid", "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod6e9f3b7a1c2d4e5f8a9b0c1d2e3f4a5b.slice/cri-containerd-" + testID + ".scope",
			Container{RuntimeContainerd, testID, "6e9f3b7a1c2d4e5f8a9b0c1d2e3f4a5b", "besteffort",
				"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod6e9f3b7a1c2d4e5f8a9b0c1d2e3f4a5b.slice/cri-containerd-" + testID + ".scope", ""}, true},
		{"containerd cgroupfs k8s.io namespace", "/k8s.io/" + testID,
			Container{Runtime: RuntimeContainerd, ID: testID, Cgroup: "/k8s.io/" + testID}, true},
		{"containerd cgroupfs default namespace", "/default/" + testID,
			Container{Runtime: RuntimeContainerd, ID: testID, Cgroup: "/default/" + testID}, true},
		{"nerdctl systemd", "/system.slice/nerdctl-" + testID + ".scope",
			Container{Runtime: RuntimeContainerd, ID: testID, Cgroup: "/system.slice/nerdctl-" + testID + ".scope"}, true},
		{"kind: pod inside docker node, innermost wins",
			"/system.slice/docker-" + testID2 + ".scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod" + testUIDu + ".slice/cri-containerd-" + testID + ".scope",
			Container{RuntimeContainerd, testID, testUID, "besteffort",
				"/system.slice/docker-" + testID2 + ".scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod" + testUIDu + ".slice/cri-containerd-" + testID + ".scope", ""}, true},
		{"kind node container itself",
			"/system.slice/docker-" + testID2 + ".scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice",
			Container{Runtime: RuntimeDocker, ID: testID2, Cgroup: "/system.slice/docker-" + testID2 + ".scope"}, true},
		{"kind nested containerd pod", "/docker/" + testID2 + "/kubepods/besteffort/pod" + testUID + "/" + testID,
			Container{RuntimeCRI, testID, testUID, "besteffort", "/docker/" + testID2 + "/kubepods/besteffort/pod" + testUID + "/" + testID, ""}, true},
		{"pod sandbox slice alone", burstablePod, Container{}, false},
		{"kubepods root", "/kubepods.slice", Container{}, false},
		{"not a kubepods slice", "/notkubepods-pod" + testUIDu + ".slice/" + testID, Container{}, false},
		{"root", "/", Container{}, false},
		{"empty", "", Container{}, false},
		{"host service", "/system.slice/sshd.service", Container{}, false},
		{"user session", "/user.slice/user-0.slice/session-3.scope", Container{}, false},
		{"short id", "/system.slice/docker-0b4e5c3f7d5f.scope", Container{}, false},
		{"upper case id", "/system.slice/docker-" + strings.ToUpper(testID) + ".scope", Container{}, false},
		{"id too long", "/system.slice/docker-" + testID + "0.scope", Container{}, false},
		{"bare id outside any runtime", "/somewhere/" + testID, Container{}, false},
		{"bare id with .scope", "/docker/" + testID + ".scope", Container{}, false},
		{"cgroupfs pod dir outside kubepods", "/pod" + testUID + "/" + testID, Container{}, false},
		{"stray burstable dir", "/burstable/pod" + testUID + "/" + testID, Container{}, false},
		{"bad pod uid", "/kubepods/podnot-a-uid/" + testID, Container{}, false},
		{"dot elements", "/system.slice/./docker-" + testID + ".scope",
			Container{Runtime: RuntimeDocker, ID: testID, Cgroup: "/system.slice/./docker-" + testID + ".scope"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ParseCgroupPath(tc.path)
			if ok != tc.ok || got != tc.want {
				t.Errorf("ParseCgroupPath(%q) = %+v, %v; want %+v, %v", tc.path, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestContainerNames(t *testing.T) {
	c := Container{Runtime: RuntimeContainerd, ID: testID}
	if got, want := c.NamespaceName(), "containerd-"+testID; got != want {
		t.Errorf("NamespaceName() = %q; want %q", got, want)
	}
	if got, want := c.ShortID(), testID[:12]; got != want {
		t.Errorf("ShortID() = %q; want %q", got, want)
	}
}

func TestParseProcCgroup(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr error
	}{
		{"v2 only", "0::/system.slice/docker-" + testID + ".scope\n", "/system.slice/docker-" + testID + ".scope", nil},
		{"hybrid", "12:pids:/\n1:name=systemd:/user.slice\n0::/user.slice/user-0.slice/session-1.scope\n", "/user.slice/user-0.slice/session-1.scope", nil},
		{"no newline", "0::/", "/", nil},
		{"v1 only", "4:memory:/docker/" + testID + "\n", "", ErrNoCgroup2},
		{"empty", "", "", ErrNoCgroup2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseProcCgroup([]byte(tc.in))
			if got != tc.want || !errors.Is(err, tc.wantErr) {
				t.Errorf("ParseProcCgroup(%q) = %q, %v; want %q, %v", tc.in, got, err, tc.want, tc.wantErr)
			}
		})
	}
	if _, err := ParseProcCgroup([]byte("0::relative\n")); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("ParseProcCgroup(relative path) error = %v; want one naming line 1", err)
	}
}

// checkContainer states what every parse result must satisfy.
func checkContainer(t *testing.T, path string, c Container) {
	t.Helper()
	if !isContainerID(c.ID) {
		t.Fatalf("ParseCgroupPath(%q).ID = %q; not 64 lowercase hex digits", path, c.ID)
	}
	if c.Cgroup == "" || c.Cgroup[0] != '/' {
		t.Fatalf("ParseCgroupPath(%q).Cgroup = %q; want an absolute cgroup path", path, c.Cgroup)
	}
	norm := strings.TrimRight(path, "/")
	if !strings.HasPrefix(norm, "/") {
		norm = "/" + norm
	}
	if !strings.HasPrefix(norm+"/", c.Cgroup+"/") {
		t.Fatalf("ParseCgroupPath(%q).Cgroup = %q; not a prefix of the path", path, c.Cgroup)
	}
	if !strings.Contains(c.Cgroup, c.ID) {
		t.Fatalf("ParseCgroupPath(%q) = %+v; the container's cgroup does not name its id", path, c)
	}
	if c.PodUID != "" {
		if _, ok := normalizePodUID(c.PodUID); !ok || strings.ContainsAny(c.PodUID, "_ABCDEF") {
			t.Fatalf("ParseCgroupPath(%q).PodUID = %q; not normalised", path, c.PodUID)
		}
	}
	again, ok := ParseCgroupPath(c.Cgroup)
	if !ok || again != c {
		t.Fatalf("ParseCgroupPath(%q) = %+v, %v; want the same container as for %q: %+v", c.Cgroup, again, ok, path, c)
	}
}

func FuzzParseCgroupPath(f *testing.F) {
	seeds := []string{
		"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + testUIDu + ".slice/cri-containerd-" + testID + ".scope",
		"/kubepods/burstable/pod" + testUID + "/" + testID,
		"/system.slice/docker-" + testID + ".scope/init.scope",
		"/machine.slice/libpod-" + testID + ".scope/container",
		"/docker/" + testID2 + "/kubepods/besteffort/pod" + testUID + "/" + testID,
		"/libpod_parent/libpod-" + testID,
		"/kubepods/podZZ/" + testID,
		"//docker//" + testID,
		"/",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		c, ok := ParseCgroupPath(path)
		if !ok {
			if c != (Container{}) {
				t.Fatalf("ParseCgroupPath(%q) = %+v, false; want the zero Container", path, c)
			}
			return
		}
		checkContainer(t, path, c)
	})
}

func FuzzParseProcCgroup(f *testing.F) {
	f.Add([]byte("0::/system.slice/docker-" + testID + ".scope\n"))
	f.Add([]byte("1:name=systemd:/\n0::/\n"))
	f.Add([]byte("0::x"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseProcCgroup(data)
		if err == nil && (p == "" || p[0] != '/') {
			t.Fatalf("ParseProcCgroup(%q) = %q, nil; want an absolute path", data, p)
		}
	})
}

func BenchmarkParseCgroupPath(b *testing.B) {
	p := "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + testUIDu + ".slice/cri-containerd-" + testID + ".scope"
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := ParseCgroupPath(p); !ok {
			b.Fatal("no container")
		}
	}
}
