package agent

import (
	"fmt"
	"path/filepath"

	"github.com/vigil-tsem/vigil/measure"
	"github.com/vigil-tsem/vigil/model"
	"github.com/vigil-tsem/vigil/namespace"
)

// logQueue bounds the measured log's queue of records waiting for their
// group commit (measure.BatchOptions.Queue). A queued point holds its
// event description (about 900 bytes; the record's content is built by the
// committer), twice that with the garbage collector's headroom: measure's
// default of 4096 would cost several MiB of RSS while the committer lags
// behind a burst of new points on a disk (fdatasync). A reader waiting for
// room leaves records in the ring buffer, whose memory is paid for anyway.
// It equals measure.MaxBatch, so a full queue goes out in one commit, and
// the reader fills the queue again while that commit syncs.
const logQueue = measure.MaxBatch

// withModel gives opts an empty learning model whose points' first
// descriptions live in a spool file next to the measured log instead of
// the agent's heap (about 800 bytes a point: 50,000 points would be 40 MB
// of heap, twice that with the garbage collector's headroom), unless opts
// already has a model (a loaded one) or the agent keeps no log (then the
// registry's in-memory model is used). The spool is unlinked at once, so
// it disappears with the agent however it ends; Model.Close frees it.
//
// It returns a function that releases the model if the namespace is not
// created after all.
func (t *table) withModel(opts *namespace.Options) (release func(), err error) {
	if opts.Model != nil || t.mlog == nil {
		return func() {}, nil
	}
	s, err := model.CreateSpool(filepath.Dir(t.mlog.Path()))
	if err != nil {
		return nil, fmt.Errorf("start namespace %s: %w", opts.Name, err)
	}
	m := model.New(model.Options{Store: s, Hash: opts.Hash, Dialect: opts.Dialect})
	opts.Model = m
	return func() { m.Close() }, nil
}

// closeModel releases the model of a namespace that was removed.
func (t *table) closeModel(n *namespace.Namespace) {
	if err := n.Model().Close(); err != nil {
		t.log.Warn("close the model's description spool", "namespace", n.Name(), "err", err)
	}
}
