package namespace

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// Finding a container's image: a cgroup path names the runtime and the
// container id, never the image. Every runtime keeps the container's
// state on the host, though, in files any root process can read:
//
//	containerd (Kubernetes CRI, Docker >= 23, nerdctl)
//	  <task dir>/<containerd namespace>/<id>/config.json (Docker's
//	  own containerd, when it starts one, has its task dir under
//	  /run/docker/containerd/daemon)
//	  the OCI runtime spec; the CRI plugin records the image in the
//	  annotation io.kubernetes.cri.image-name
//	CRI-O, Podman (containers/storage)
//	  <storage dir>/<driver>-containers/<id>/userdata/config.json
//	  the OCI runtime spec; CRI-O records io.kubernetes.cri-o.ImageName
//	  <storage dir>/<driver>-containers/containers.json
//	  every container of the store, whose "metadata" (a JSON document in a
//	  string) holds "image-name" for both CRI-O and Podman
//	Docker
//	  <docker dir>/<id>/config.v2.json, whose Config.Image is the image
//	  as the user named it
//
// The image is the reference the runtime recorded (for example
// "docker.io/library/nginx:1.27" from Kubernetes, "nginx:1.27" from
// docker run): no normalisation, so the same spelling names the same
// model file.

// ErrNoImage means no runtime state names an image for the container: its
// files do not exist under the resolver's directories, or they carry no
// image (a containerd container not made by the CRI plugin, a sandbox).
var ErrNoImage = errors.New("no image recorded for the container")

// Default runtime state directories of an ImageResolver, relative to its
// Root.
var (
	DefaultContainerdDirs = []string{"/run/containerd/io.containerd.runtime.v2.task", "/run/docker/containerd/daemon/io.containerd.runtime.v2.task"}
	DefaultStorageDirs    = []string{"/run/containers/storage", "/var/lib/containers/storage"}
	DefaultDockerDirs     = []string{"/var/lib/docker/containers"}
)

// The annotations of the OCI runtime spec that name the image.
const (
	annotationCRIImage  = "io.kubernetes.cri.image-name"
	annotationCRIOImage = "io.kubernetes.cri-o.ImageName"
)

// maxStateFile bounds what the resolver reads of one state file:
// containers.json lists every container of a store, a few KiB each.
const maxStateFile = 32 << 20

// ImageResolver finds the image a container was started from, and where
// its files are (FileSystem), in the state its runtime keeps on the host. The zero value reads the default
// directories of the host it runs on. It holds no state: safe for
// concurrent use.
type ImageResolver struct {
	// Root prefixes every directory below: "" or "/" on the host, the mount
	// of the host's root (or of its runtime directories) in a pod.
	Root string
	// ContainerdDirs are containerd's v2 task state directories (the
	// system's and Docker's own); DefaultContainerdDirs when nil.
	ContainerdDirs []string
	// StorageDirs are containers/storage run and graph roots (CRI-O,
	// Podman); DefaultStorageDirs when nil.
	StorageDirs []string
	// DockerDirs are Docker's container directories; DefaultDockerDirs
	// when nil.
	DockerDirs []string
}

// source looks for the image of container id in one kind of state file.
// It returns "" and no error when its file does not exist or names no
// image, so that the next source is tried; an error means a state file
// exists but cannot be read or parsed.
type source func(id string) (string, error)

// Image returns the image of c. It tries the state files of c's runtime in
// order and returns the first image named; it fails with an error naming
// the file (and the place in it) when a state file is not what its runtime
// writes, and with ErrNoImage when none names an image.
func (r *ImageResolver) Image(c Container) (string, error) {
	if !isContainerID(c.ID) {
		// The id becomes a path element: never anything but 64 hex digits.
		return "", fmt.Errorf("find image of container %q: not a container id: %w", c.ID, ErrNoImage)
	}
	var sources []source
	switch c.Runtime {
	case RuntimeContainerd:
		sources = []source{r.containerd}
	case RuntimeCRIO, RuntimePodman:
		sources = []source{r.storageSpec, r.storageList}
	case RuntimeDocker:
		// Docker's containers also have a containerd bundle (namespace
		// moby), but Docker records the image only in its own file.
		sources = []source{r.docker}
	case RuntimeCRI:
		sources = []source{r.containerd, r.storageSpec, r.storageList}
	default:
		return "", fmt.Errorf("find image of %s: runtime %q: %w", c.NamespaceName(), c.Runtime, ErrNoImage)
	}
	for _, src := range sources {
		img, err := src(c.ID)
		if err != nil {
			return "", fmt.Errorf("find image of %s: %w", c.NamespaceName(), err)
		}
		if img != "" {
			return img, nil
		}
	}
	return "", fmt.Errorf("find image of %s: %w", c.NamespaceName(), ErrNoImage)
}

func (r *ImageResolver) dirs(set, def []string) []string {
	if set == nil {
		set = def
	}
	root := r.Root
	if root == "" {
		root = "/"
	}
	out := make([]string, len(set))
	for i, d := range set {
		out[i] = filepath.Join(root, d)
	}
	return out
}

// containerd reads <task dir>/<namespace>/<id>/config.json in every
// containerd namespace.
func (r *ImageResolver) containerd(id string) (string, error) {
	for _, dir := range r.dirs(r.ContainerdDirs, DefaultContainerdDirs) {
		nss, err := os.ReadDir(dir)
		if err != nil {
			continue // no containerd here
		}
		for _, ns := range nss {
			if !ns.IsDir() {
				continue
			}
			img, err := specImage(filepath.Join(dir, ns.Name(), id, "config.json"), annotationCRIImage)
			if img != "" || err != nil {
				return img, err
			}
		}
	}
	return "", nil
}

// storageSpec reads <storage dir>/<driver>-containers/<id>/userdata/config.json.
func (r *ImageResolver) storageSpec(id string) (string, error) {
	for _, store := range r.storageStores() {
		img, err := specImage(filepath.Join(store, id, "userdata", "config.json"), annotationCRIOImage)
		if img != "" || err != nil {
			return img, err
		}
	}
	return "", nil
}

// storageList reads <storage dir>/<driver>-containers/containers.json.
func (r *ImageResolver) storageList(id string) (string, error) {
	for _, store := range r.storageStores() {
		img, err := storageListImage(filepath.Join(store, "containers.json"), id)
		if img != "" || err != nil {
			return img, err
		}
	}
	return "", nil
}

// storageStores lists the <driver>-containers directories of every
// storage root (overlay-containers, vfs-containers, ...), sorted.
func (r *ImageResolver) storageStores() []string {
	var out []string
	for _, dir := range r.dirs(r.StorageDirs, DefaultStorageDirs) {
		m, _ := filepath.Glob(filepath.Join(dir, "*-containers"))
		sort.Strings(m)
		out = append(out, m...)
	}
	return out
}

// docker reads <docker dir>/<id>/config.v2.json.
func (r *ImageResolver) docker(id string) (string, error) {
	for _, dir := range r.dirs(r.DockerDirs, DefaultDockerDirs) {
		path := filepath.Join(dir, id, "config.v2.json")
		data, err := readState(path)
		if data == nil || err != nil {
			return "", err
		}
		img, err := parseDockerImage(path, data)
		if img != "" || err != nil {
			return img, err
		}
	}
	return "", nil
}

// parseDockerImage returns Config.Image of a Docker config.v2.json.
func parseDockerImage(path string, data []byte) (string, error) {
	var v struct {
		Config *struct {
			Image string `json:"Image"`
		} `json:"Config"`
	}
	if err := decodeState(path, data, &v); err != nil {
		return "", err
	}
	if v.Config == nil {
		return "", nil
	}
	return v.Config.Image, nil
}

// specImage reads the image annotation of an OCI runtime spec.
func specImage(path, annotation string) (string, error) {
	data, err := readState(path)
	if data == nil || err != nil {
		return "", err
	}
	return parseSpecImage(path, data, annotation)
}

// parseSpecImage returns an annotation of an OCI runtime spec.
func parseSpecImage(path string, data []byte, annotation string) (string, error) {
	var spec struct {
		Annotations map[string]string `json:"annotations"`
	}
	if err := decodeState(path, data, &spec); err != nil {
		return "", err
	}
	return spec.Annotations[annotation], nil
}

// storageListImage finds container id in a containers/storage
// containers.json and returns the image-name of its metadata.
func storageListImage(path, id string) (string, error) {
	data, err := readState(path)
	if data == nil || err != nil {
		return "", err
	}
	return parseStorageList(path, data, id)
}

// parseStorageList returns the image-name in the metadata of container id
// in a containers/storage containers.json.
func parseStorageList(path string, data []byte, id string) (string, error) {
	var list []struct {
		ID       string `json:"id"`
		Metadata string `json:"metadata"`
	}
	if err := decodeState(path, data, &list); err != nil {
		return "", err
	}
	for i, c := range list {
		if c.ID != id || c.Metadata == "" {
			continue
		}
		var md struct {
			ImageName string `json:"image-name"`
		}
		if err := json.Unmarshal([]byte(c.Metadata), &md); err != nil {
			return "", fmt.Errorf("parse %s: container %d (%s) metadata: %s", path, i, shortID(id), jsonMessage(err))
		}
		return md.ImageName, nil
	}
	return "", nil
}

func shortID(id string) string { return Container{ID: id}.ShortID() }

// readState reads a runtime state file; nil without an error when it does
// not exist (the container is not this runtime's, or is gone).
func readState(path string) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read runtime state: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxStateFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > maxStateFile {
		return nil, fmt.Errorf("read %s: larger than %d bytes", path, maxStateFile)
	}
	if data == nil {
		data = []byte{}
	}
	return data, nil
}

// decodeState decodes a JSON state file into v. Unknown fields are
// fine (runtimes add them all the time); bad syntax and a known field of
// the wrong type are errors naming the file, line and column.
func decodeState(path string, data []byte, v any) error {
	err := json.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Errorf("parse %s:%s: %s", path, position(data, syn.Offset), syn.Error())
	case errors.As(err, &typ):
		return fmt.Errorf("parse %s:%s: %s", path, position(data, typ.Offset), jsonMessage(err))
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return fmt.Errorf("parse %s: empty file", path)
	}
	return fmt.Errorf("parse %s: %s", path, jsonMessage(err))
}

// jsonMessage is a JSON error without the package prefix.
func jsonMessage(err error) string {
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		field := typ.Field
		if field == "" {
			field = "value"
		}
		return fmt.Sprintf("%s: %s where %s was expected", field, typ.Value, typ.Type)
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// position turns a byte offset into "line:column" (1-based).
func position(data []byte, off int64) string {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	if off < 0 {
		off = 0
	}
	before := data[:off]
	line := bytes.Count(before, []byte{'\n'}) + 1
	col := int(off) - bytes.LastIndexByte(before, '\n')
	return fmt.Sprintf("%d:%d", line, col)
}

// ImageFileName turns an image reference into a file name stem that is
// safe on every file system and as a Kubernetes ConfigMap key: every byte
// outside [A-Za-z0-9._-] becomes '_' ("registry:5000/app:1.2" ->
// "registry_5000_app_1.2"), a leading '.' gets a '_' in front (no hidden
// files, no "." or ".."), and a reference longer than 200 bytes is cut and
// ends in 16 hex digits of its SHA-256 so that long references stay
// distinct. It returns "" for an empty reference.
func ImageFileName(image string) string {
	if image == "" {
		return ""
	}
	b := []byte(image)
	for i, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	name := string(b)
	if name[0] == '.' {
		name = "_" + name
	}
	const maxLen = 200
	if len(name) > maxLen {
		sum := sha256.Sum256([]byte(image))
		name = name[:maxLen-17] + "-" + hex.EncodeToString(sum[:8])
	}
	return name
}
