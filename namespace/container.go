package namespace

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// Container discovery: the agent gives each container its own modeling
// namespace, and the only thing every runtime has in common is the cgroup v2
// directory it puts the container's tasks in. Runtimes name those
// directories in a handful of shapes, depending on the cgroup driver:
//
//	systemd driver                                        cgroupfs driver
//	/kubepods.slice/kubepods-burstable.slice/             /kubepods/burstable/pod<uid>/<id>
//	  kubepods-burstable-pod<u_i_d>.slice/                /kubepods/pod<uid>/crio-<id>
//	  cri-containerd-<id>.scope | crio-<id>.scope |       /docker/<id>
//	  docker-<id>.scope                                   /libpod_parent/libpod-<id>
//	/system.slice/docker-<id>.scope
//	/machine.slice/libpod-<id>.scope
//	/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-<id>.scope
//
// Container ids are 64 lowercase hex digits in every runtime named here;
// anything else (crio-conmon-<id>, libpod-conmon-<id>, init.scope, a
// systemd service) is not a container. A cgroup below a container's own
// directory (runc's "container" leaf under podman --cgroups=split, systemd
// running inside the container) belongs to that container.

// Runtime names the container runtime that created a container's cgroup.
type Runtime string

// The runtimes ParseCgroupPath recognises.
const (
	RuntimeContainerd Runtime = "containerd"
	RuntimeCRIO       Runtime = "cri-o"
	RuntimeDocker     Runtime = "docker"
	RuntimePodman     Runtime = "podman"
	// RuntimeCRI is a Kubernetes container under the cgroupfs driver, whose
	// directory is the bare container id and so does not say which CRI
	// runtime (containerd or CRI-O) made it.
	RuntimeCRI Runtime = "cri"
)

// Container is a container as its cgroup v2 path describes it.
type Container struct {
	Runtime Runtime `json:"runtime"`
	// ID is the container id, 64 lowercase hex digits.
	ID string `json:"id"`
	// PodUID is the Kubernetes pod UID, normalised to lowercase with
	// dashes (static pods keep their 32-digit hash form); empty outside
	// Kubernetes.
	PodUID string `json:"pod_uid,omitempty"`
	// QoS is the pod's Kubernetes QoS class: "guaranteed", "burstable" or
	// "besteffort"; empty outside Kubernetes.
	QoS string `json:"qos,omitempty"`
	// Cgroup is the container's own cgroup directory, relative to the
	// cgroup v2 mount and starting with '/'.
	Cgroup string `json:"cgroup"`
	// Image is the image the container was started from, as its runtime
	// recorded it. A cgroup path does not say: ParseCgroupPath leaves it
	// empty and the agent fills it in with an ImageResolver (image.go).
	Image string `json:"image,omitempty"`
}

// NamespaceName is the name of the container's modeling namespace: the
// runtime and the full container id, for example "containerd-3f2a...".
func (c Container) NamespaceName() string { return string(c.Runtime) + "-" + c.ID }

// ShortID is the first 12 digits of the id, as container CLIs print it.
func (c Container) ShortID() string {
	if len(c.ID) < 12 {
		return c.ID
	}
	return c.ID[:12]
}

const containerIDLen = 64

// ParseCgroupPath finds the container a cgroup v2 path belongs to. The path
// is relative to the cgroup mount (as in /proc/PID/cgroup), with or without
// a leading '/'. It reports false for a cgroup outside any container. When
// containers nest (Kubernetes in Docker), the innermost one wins.
func ParseCgroupPath(path string) (Container, bool) {
	path = strings.TrimRight(path, "/")
	if path == "" {
		return Container{}, false
	}
	if path[0] != '/' {
		path = "/" + path
	}
	var (
		found    Container
		ok       bool
		pod, qos string
		inK8s    bool
		parent   string
	)
	end := 0
	for end < len(path) {
		start := end + 1
		end = strings.IndexByte(path[start:], '/')
		if end < 0 {
			end = len(path)
		} else {
			end += start
		}
		elem := path[start:end]
		if elem == "" || elem == "." || elem == ".." {
			parent = elem
			continue
		}
		if q, uid, isK8s := kubepodsElem(elem, inK8s); isK8s {
			inK8s = true
			if q != "" {
				qos = q
			}
			if uid != "" {
				pod = uid
			}
			parent = elem
			continue
		}
		if rt, id, isC := containerElem(elem, parent, inK8s && pod != ""); isC {
			found = Container{Runtime: rt, ID: id, Cgroup: path[:end]}
			if inK8s && pod != "" {
				found.PodUID, found.QoS = pod, qos
				if found.QoS == "" {
					found.QoS = "guaranteed"
				}
			}
			ok = true
			// A nested runtime starts a new hierarchy inside this one.
			pod, qos, inK8s = "", "", false
		}
		parent = elem
	}
	return found, ok
}

// kubepodsElem recognises the kubelet's own cgroup levels: kubepods,
// the QoS class and the pod, in either driver's spelling. It returns the
// QoS class and pod UID an element names. The cgroupfs spellings of the
// lower levels ("burstable", "pod<uid>") count only below kubepods.
func kubepodsElem(elem string, inK8s bool) (qos, pod string, ok bool) {
	name, systemd := strings.CutSuffix(elem, ".slice")
	if systemd {
		// [ROOT-]kubepods[-QOS][-podUID].slice, with the UID's dashes
		// escaped as '_'; ROOT is the kubelet's --cgroup-root slice when it
		// is not the top (kind nodes use "kubelet").
		i := strings.Index(name, "kubepods")
		if i < 0 || i > 0 && name[i-1] != '-' {
			return "", "", false
		}
		rest := name[i+len("kubepods"):]
		if rest == "" {
			return "", "", true
		}
		rest, _ = strings.CutPrefix(rest, "-")
		for _, q := range [...]string{"burstable", "besteffort"} {
			if r, isQ := strings.CutPrefix(rest, q); isQ && (r == "" || r[0] == '-') {
				qos, rest = q, strings.TrimPrefix(r, "-")
				break
			}
		}
		if rest == "" {
			return qos, "", true
		}
		uid, isPod := strings.CutPrefix(rest, "pod")
		if !isPod {
			return "", "", false
		}
		uid, valid := normalizePodUID(uid)
		if !valid {
			return "", "", false
		}
		return qos, uid, true
	}
	if elem == "kubepods" {
		return "", "", true
	}
	if !inK8s {
		return "", "", false
	}
	if elem == "burstable" || elem == "besteffort" {
		return elem, "", true
	}
	if uid, isPod := strings.CutPrefix(elem, "pod"); isPod {
		if uid, valid := normalizePodUID(uid); valid {
			return "", uid, true
		}
	}
	return "", "", false
}

// normalizePodUID accepts a pod UID as a UUID with '-' or '_' separators,
// or as the 32-digit hash the kubelet gives static pods, and returns it
// lowercase with dashes.
func normalizePodUID(s string) (string, bool) {
	switch len(s) {
	case 36:
		var b strings.Builder
		b.Grow(36)
		for i := 0; i < len(s); i++ {
			c := s[i]
			switch i {
			case 8, 13, 18, 23:
				if c != '-' && c != '_' {
					return "", false
				}
				b.WriteByte('-')
				continue
			}
			c, ok := lowerHex(c)
			if !ok {
				return "", false
			}
			b.WriteByte(c)
		}
		return b.String(), true
	case 32:
		out := []byte(s)
		for i := range out {
			c, ok := lowerHex(out[i])
			if !ok {
				return "", false
			}
			out[i] = c
		}
		return string(out), true
	}
	return "", false
}

func lowerHex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9', 'a' <= c && c <= 'f':
		return c, true
	case 'A' <= c && c <= 'F':
		return c + ('a' - 'A'), true
	}
	return 0, false
}

func isContainerID(s string) bool {
	if len(s) != containerIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// containerPrefixes maps the directory-name prefixes runtimes use to the
// runtime. Monitor processes (crio-conmon-, libpod-conmon-) are left out on
// purpose: their id part is not a container id, so they fail the id check.
var containerPrefixes = [...]struct {
	prefix  string
	runtime Runtime
}{
	{"cri-containerd-", RuntimeContainerd},
	{"nerdctl-", RuntimeContainerd},
	{"crio-", RuntimeCRIO},
	{"docker-", RuntimeDocker},
	{"libpod-", RuntimePodman},
}

// containerElem recognises one path element as a container's own cgroup.
// parent is the element above it, which names the runtime for the bare-id
// forms of the cgroupfs driver.
func containerElem(elem, parent string, underPod bool) (Runtime, string, bool) {
	name := strings.TrimSuffix(elem, ".scope")
	for _, p := range containerPrefixes {
		if id, ok := strings.CutPrefix(name, p.prefix); ok && isContainerID(id) {
			return p.runtime, id, true
		}
	}
	if name != elem || !isContainerID(name) {
		return "", "", false
	}
	switch {
	case underPod:
		return RuntimeCRI, name, true
	case parent == "docker":
		return RuntimeDocker, name, true
	case parent == "libpod_parent":
		return RuntimePodman, name, true
	case parent == "default" || parent == "k8s.io" || parent == "moby":
		// containerd's cgroupfs layout is /<containerd namespace>/<id>.
		return RuntimeContainerd, name, true
	}
	return "", "", false
}

// ErrNoCgroup2 means a /proc/PID/cgroup file has no cgroup v2 ("0::") line.
var ErrNoCgroup2 = errors.New("no cgroup v2 entry")

// ParseProcCgroup returns the cgroup v2 path from the contents of a
// /proc/PID/cgroup file (the "0::/path" line).
func ParseProcCgroup(data []byte) (string, error) {
	for n := 1; len(data) > 0; n++ {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if rest, ok := bytes.CutPrefix(line, []byte("0::")); ok {
			if len(rest) == 0 || rest[0] != '/' {
				return "", fmt.Errorf("parse cgroup line %d: path %q does not start with '/'", n, rest)
			}
			return string(rest), nil
		}
	}
	return "", ErrNoCgroup2
}
