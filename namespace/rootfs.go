package namespace

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"slices"
)

// A container's files on the host: the kernel records the pathname of a
// file as the container's tasks see it, and userspace hashes the file's
// content afterwards (events.DigestCache). A short-lived container's
// tasks, and with them /proc/PID/root, are gone by then, and its pathnames
// mean nothing on the host. Every OCI runtime, though, starts a container
// from a runtime spec (config.json) that says where its root file system
// and the sources of its bind mounts are on the host, and the runtime has
// mounted the root before it creates the container's cgroup, where the
// agent finds the container. The spec is kept in the same state
// directories the image is read from (image.go):
//
//	containerd (CRI, nerdctl, Docker)   <task dir>/<namespace>/<id>/config.json
//	                                    Docker's own containerd keeps its
//	                                    task dir under /run/docker/containerd
//	CRI-O, Podman                       <storage dir>/<driver>-containers/<id>/userdata/config.json
//
// root.path is the root file system (relative to the spec's directory, the
// bundle, when not absolute); a mount of type "bind" or with a "bind" or
// "rbind" option has its source on the host. Every other mount (proc,
// tmpfs, devpts, ...) exists only inside the container's mount namespace.

// ErrNoFileSystem means no runtime spec of the container was found under
// the resolver's directories.
var ErrNoFileSystem = errors.New("no runtime spec recorded for the container")

// FileSystemSpec is where a container's files are on the host, as its
// runtime spec says. ImageResolver.FileSystem gives host paths under the
// resolver's Root; parsed alone, a spec's paths are as written (relative
// ones relative to the spec's directory).
type FileSystemSpec struct {
	// Spec is the runtime spec file this was read from.
	Spec string
	// Root is the container's root file system.
	Root string
	// Mounts are the spec's mounts (destinations cleaned, absolute).
	Mounts []SpecMount
}

// SpecMount is one mount of a runtime spec.
type SpecMount struct {
	// Destination is where the container sees the mount.
	Destination string
	// Source is a bind mount's source; "" for any other kind of mount,
	// whose files the host cannot reach.
	Source string
	// Recursive: the source's own submounts are bound too (rbind).
	Recursive bool
}

// FileSystem returns where c's files are on the host: its runtime spec's
// root file system and mounts. It fails with an error naming the file
// when a spec is not what its runtime writes, and with ErrNoFileSystem
// when no spec of c is found.
func (r *ImageResolver) FileSystem(c Container) (FileSystemSpec, error) {
	if !isContainerID(c.ID) {
		return FileSystemSpec{}, fmt.Errorf("find file system of container %q: not a container id: %w", c.ID, ErrNoFileSystem)
	}
	var specs []string
	switch c.Runtime {
	case RuntimeContainerd, RuntimeDocker:
		specs = r.containerdSpecs(c.ID)
	case RuntimeCRIO, RuntimePodman:
		specs = r.storageSpecs(c.ID)
	case RuntimeCRI:
		specs = append(r.containerdSpecs(c.ID), r.storageSpecs(c.ID)...)
	}
	for _, p := range specs {
		data, err := readState(p)
		if err != nil {
			return FileSystemSpec{}, fmt.Errorf("find file system of %s: %w", c.NamespaceName(), err)
		}
		if data == nil {
			continue
		}
		spec, err := parseSpecFileSystem(p, data)
		if err != nil {
			return FileSystemSpec{}, fmt.Errorf("find file system of %s: %w", c.NamespaceName(), err)
		}
		spec.Root = r.hostPath(p, spec.Root)
		for i := range spec.Mounts {
			if spec.Mounts[i].Source != "" {
				spec.Mounts[i].Source = r.hostPath(p, spec.Mounts[i].Source)
			}
		}
		return spec, nil
	}
	return FileSystemSpec{}, fmt.Errorf("find file system of %s: %w", c.NamespaceName(), ErrNoFileSystem)
}

// containerdSpecs lists the places of container id's spec in every
// containerd namespace of every task directory.
func (r *ImageResolver) containerdSpecs(id string) []string {
	var out []string
	for _, dir := range r.dirs(r.ContainerdDirs, DefaultContainerdDirs) {
		m, _ := filepath.Glob(filepath.Join(dir, "*", id, "config.json"))
		slices.Sort(m)
		out = append(out, m...)
	}
	return out
}

// storageSpecs lists the places of container id's spec in every
// containers/storage store.
func (r *ImageResolver) storageSpecs(id string) []string {
	var out []string
	for _, store := range r.storageStores() {
		out = append(out, filepath.Join(store, id, "userdata", "config.json"))
	}
	return out
}

// hostPath is path p of the spec at spec as the resolver reaches it: an
// absolute path is the host's, under Root; a relative one is relative to
// the spec's directory, the bundle.
func (r *ImageResolver) hostPath(spec, p string) string {
	if !filepath.IsAbs(p) {
		return filepath.Join(filepath.Dir(spec), p)
	}
	root := r.Root
	if root == "" {
		root = "/"
	}
	return filepath.Join(root, p)
}

// parseSpecFileSystem reads the root file system and mounts of the OCI
// runtime spec at path.
func parseSpecFileSystem(path string, data []byte) (FileSystemSpec, error) {
	var spec struct {
		Root *struct {
			Path string `json:"path"`
		} `json:"root"`
		Mounts []struct {
			Destination string   `json:"destination"`
			Type        string   `json:"type"`
			Source      string   `json:"source"`
			Options     []string `json:"options"`
		} `json:"mounts"`
	}
	if err := decodeState(path, data, &spec); err != nil {
		return FileSystemSpec{}, err
	}
	if spec.Root == nil || spec.Root.Path == "" {
		// Optional in the OCI spec (a virtual machine's runtime).
		return FileSystemSpec{}, fmt.Errorf("parse %s: no root.path: %w", path, ErrNoFileSystem)
	}
	out := FileSystemSpec{Spec: path, Root: filepath.Clean(spec.Root.Path)}
	for i, m := range spec.Mounts {
		if m.Destination == "" {
			return FileSystemSpec{}, fmt.Errorf("parse %s: mounts[%d].destination: missing", path, i)
		}
		sm := SpecMount{Destination: cleanAbs(m.Destination)}
		bind := m.Type == "bind"
		for _, o := range m.Options {
			switch o {
			case "bind":
				bind = true
			case "rbind":
				bind, sm.Recursive = true, true
			}
		}
		if bind {
			if m.Source == "" {
				return FileSystemSpec{}, fmt.Errorf("parse %s: mounts[%d].source: missing for a bind mount of %s", path, i, sm.Destination)
			}
			sm.Source = filepath.Clean(m.Source)
		}
		out.Mounts = append(out.Mounts, sm)
	}
	return out, nil
}

// cleanAbs is a destination inside the container as an absolute, clean
// path (runc takes a relative one relative to the root).
func cleanAbs(p string) string { return path.Clean("/" + p) }
