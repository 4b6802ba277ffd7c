package agent

import (
	"errors"
	"path/filepath"

	"github.com/vigil-tsem/vigil/namespace"
)

// Models keyed by image (model_key: image): a restarted Kubernetes
// container has a new container id, so a model kept under its namespace
// name would not find it again. Its image does: the agent looks the
// image up in the runtime's state on the host (namespace.ImageResolver,
// under runtime_root) and seals the new namespace to
// <model_dir>/<namespace.ImageFileName(image)>.model when that exists,
// else to <model_dir>/<namespace>.model. A container whose image cannot be
// found (no state file, or one that does not parse: the error names the
// file) still gets its namespace, under its name.

// containerImage returns c's image, "" when it cannot be found.
func (t *table) containerImage(c namespace.Container) string {
	if t.images == nil {
		return ""
	}
	img, err := t.images.Image(c)
	if err == nil {
		return img
	}
	switch {
	case !t.keyByImage:
		t.log.Debug("container image not found", "namespace", c.NamespaceName(), "err", err)
	case errors.Is(err, namespace.ErrNoImage):
		t.log.Warn("container image not found: its model is looked up by namespace name", "namespace", c.NamespaceName(), "err", err)
	default:
		t.log.Error("read the container's image: its model is looked up by namespace name", "namespace", c.NamespaceName(), "err", err)
	}
	return ""
}

// containerModelFiles lists the model files a container's namespace is
// sealed to, the first that exists winning: its image's (with
// keyByImage), then its name's.
func (t *table) containerModelFiles(name, image string) []string {
	if t.modelDir == "" {
		return nil
	}
	var files []string
	if t.keyByImage && image != "" {
		files = append(files, filepath.Join(t.modelDir, namespace.ImageFileName(image)+".model"))
	}
	return append(files, t.modelFile(name))
}
