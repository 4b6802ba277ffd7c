package agent

import (
	"fmt"
	"os"
	"sync/atomic"

	"github.com/vigil-tsem/vigil/bpf"
	"github.com/vigil-tsem/vigil/internal/control"
	"github.com/vigil-tsem/vigil/model"
	"github.com/vigil-tsem/vigil/namespace"
)

// The host namespace (host_namespace: true) is namespace 0, named "host":
// the kernel puts every task that is in no other namespace into it at the
// task's first event (bpf.NamespaceConfig.Model), so it models everything
// on the node the containers and `vigil run` namespaces do not. It learns
// and seals like any other namespace and starts sealed to
// <model_dir>/host.model when that file exists.
//
// Enforcing it is refused unless host_enforce is set. An enforcing host
// denies every action of every process on the node that its model does not
// hold: a package upgrade, an operator's new command, a log rotation. That
// is a choice for an operator to make knowingly, never a default that
// enforce: true turns on for every namespace.
//
// The agent itself is not modeled: its reads of /proc and of files it
// hashes, its log appends and its metrics would otherwise be events of the
// host, each new one a model point and a register extend, in a loop with
// the host's own activity. Before the host is modeled the agent asks the
// kernel to leave its own process out of namespace 0 (bpf.Capture.Ignore):
// its threads and the processes it starts then make no host records and
// an enforcing host never denies them. selfFilter stays behind it as a
// backstop, dropping and counting any host record of the agent's that
// still arrives (Ignore failed, or the kernel's table of ignored
// processes was full when the agent forked).

// ignorer is the kernel's way to leave a process out of the host.
type ignorer interface {
	Ignore(tgid int) error
}

var _ ignorer = (*bpf.Capture)(nil)

// hostName is the name of namespace 0.
const hostName = "host"

// errHostEnforce refuses to make the host enforce without host_enforce.
var errHostEnforce = fmt.Errorf("the host namespace enforces only with host_enforce: true (it would deny every out-of-model action on the node but the agent's own): %w", control.ErrConflict)

// startHost leaves the agent's own process out of the host in the kernel,
// then creates namespace 0 and tells the kernel to model the host. When
// the kernel cannot leave the agent out, the host is modeled all the same
// and selfFilter drops the agent's records.
func (t *table) startHost() (*nsState, error) {
	if k, ok := t.kern.(ignorer); ok {
		if err := k.Ignore(os.Getpid()); err != nil {
			t.log.Warn("the kernel cannot leave the agent out of the host; its records are dropped in userspace", "err", err)
		}
	}
	settings := t.defaults
	settings.Enforce = settings.Enforce && t.hostEnforce
	var m *model.Model
	if path := t.modelFile(hostName); path != "" {
		if _, err := os.Stat(path); err == nil {
			loaded, err := model.LoadFileHash(path, settingsHash(settings))
			if err != nil {
				return nil, fmt.Errorf("start namespace %s: %w", hostName, err)
			}
			loaded.Seal()
			m, settings.Model = loaded, path
		}
	}
	return t.create(namespace.Options{Name: hostName, Origin: namespace.OriginHost, Model: m, KTime: t.ktime()}, nil, "", nil, settings)
}

// selfFilter recognises the host namespace's records of the agent's own
// process, of its threads and of the processes it forks (and theirs): the
// backstop behind the kernel's (startHost), so Dropped counts what the
// kernel let through. It runs on the reader goroutine only, except
// Dropped.
type selfFilter struct {
	pid uint32
	// tasks holds the agent's pid and every thread or process id forked
	// from one in the set; an id leaves it when its task exits, so a
	// recycled id is not mistaken for the agent's.
	tasks   map[uint32]struct{}
	dropped atomic.Uint64
}

func newSelfFilter(pid int) *selfFilter {
	return &selfFilter{pid: uint32(pid), tasks: map[uint32]struct{}{uint32(pid): {}}}
}

// drop reports whether r is a host record of the agent's own, keeping the
// set of the agent's tasks up to date from fork and exit records.
func (f *selfFilter) drop(r bpf.Record) bool {
	h := r.Head()
	if h.NS != 0 {
		return false
	}
	_, mine := f.tasks[h.TGID]
	if !mine {
		_, mine = f.tasks[h.PID]
	}
	if !mine {
		return false
	}
	switch r := r.(type) {
	case *bpf.TaskFork:
		f.tasks[r.ChildPID] = struct{}{}
		if r.ChildTGID != 0 {
			f.tasks[r.ChildTGID] = struct{}{}
		}
	case *bpf.TaskExit:
		if h.PID != f.pid {
			delete(f.tasks, h.PID)
		}
	}
	f.dropped.Add(1)
	return true
}

// Dropped is the number of records dropped as the agent's own.
func (f *selfFilter) Dropped() uint64 { return f.dropped.Load() }
