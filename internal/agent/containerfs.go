package agent

import (
	"errors"
	"time"

	"github.com/vigil-tsem/vigil/events"
	"github.com/vigil-tsem/vigil/namespace"
)

// Container files are hashed through the container's file system held
// open from the host (namespace.ContainerFS): the agent holds it when it
// finds the container, before any of the container's tasks is a member,
// and releases it with the namespace, a grace period after the container
// stopped. So the content of a file a short-lived container read is
// there to hash when its record is converted, although the container's
// tasks and, with --rm, the container itself are gone by then.

// openContainerFS holds c's file system as its runtime spec says
// (namespace.ImageResolver.FileSystem); nil when it cannot: the
// container's files are then hashed only while its tasks live.
func (t *table) openContainerFS(c namespace.Container) *namespace.ContainerFS {
	if t.images == nil {
		return nil
	}
	name := c.NamespaceName()
	spec, err := t.images.FileSystem(c)
	if err != nil {
		if errors.Is(err, namespace.ErrNoFileSystem) {
			t.log.Warn("container file system not found: its files are hashed only while its tasks live", "namespace", name, "err", err)
		} else {
			t.log.Error("read the container's runtime spec: its files are hashed only while its tasks live", "namespace", name, "err", err)
		}
		return nil
	}
	fs, err := namespace.OpenContainerFS(spec, "")
	if err != nil {
		t.log.Warn("hold the container's file system: its files are hashed only while its tasks live", "namespace", name, "spec", spec.Spec, "err", err)
		return nil
	}
	if u := fs.Unheld(); len(u) > 0 {
		t.log.Debug("bind mounts of the container whose source is gone: their files are hashed only while its tasks live", "namespace", name, "mounts", u)
	}
	return fs
}

// reopenContainerFS holds the file system of a container restarted under
// the same id (a new root mount); the one held before is released after
// grace, when the records of the previous run have been converted.
func (t *table) reopenContainerFS(st *nsState, grace time.Duration) {
	if st.container == nil {
		return
	}
	old := st.fs.Swap(t.openContainerFS(*st.container))
	if old != nil {
		time.AfterFunc(grace, func() { old.Close() })
	}
}

// fileSystem returns the held file system of namespace id, for the record
// converter (events.Converter.FileSystemOf); nil when it has none.
func (t *table) fileSystem(id uint64) events.FileSystem {
	st, ok := t.get(id)
	if !ok {
		return nil
	}
	if fs := st.fs.Load(); fs != nil {
		return fs
	}
	return nil
}
