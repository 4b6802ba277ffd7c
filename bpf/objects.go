package bpf

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// The loader layer between the generated objects (lsm_bpfel.go,
// tp_bpfel.go) and the rest of the package: the maps, programs and
// variables Capture uses are fields of tagged structs, bound by their ELF
// names when an object is loaded, so that an object that lacks one fails
// to load with its name. No generated identifier is used outside this
// file.

// collectionSpec returns the embedded spec of a backend's object.
func collectionSpec(b Backend) (*ebpf.CollectionSpec, error) {
	switch b {
	case BackendLSM:
		return loadLsm()
	case BackendTracepoint:
		return loadTp()
	}
	return nil, fmt.Errorf("backend %q has no programs", b)
}

// objectSpecs are the parts of an object's spec Open sets before loading.
type objectSpecs struct {
	Events      *ebpf.MapSpec      `ebpf:"events"`
	Allow       *ebpf.MapSpec      `ebpf:"allow"`
	Repeats     *ebpf.MapSpec      `ebpf:"repeats"`
	WakeupBytes *ebpf.VariableSpec `ebpf:"wakeup_bytes"`
	HostMntInum *ebpf.VariableSpec `ebpf:"host_mnt_inum"`
}

// specsOf binds the objectSpecs of spec.
func specsOf(spec *ebpf.CollectionSpec) (*objectSpecs, error) {
	var s objectSpecs
	if err := spec.Assign(&s); err != nil {
		return nil, err
	}
	if s.Repeats.InnerMap == nil {
		return nil, errors.New("map repeats: no inner map (the repeat cache table)")
	}
	return &s, nil
}

// sharedObjects are the maps and programs of both objects that Capture
// uses.
type sharedObjects struct {
	Events       *ebpf.Map `ebpf:"events"`        // the ring buffer
	TaskState    *ebpf.Map `ebpf:"task_state"`    // struct vg_task by task
	NSConfig     *ebpf.Map `ebpf:"ns_config"`     // struct vg_ns_cfg by namespace
	CfgEpochNow  *ebpf.Map `ebpf:"cfg_epoch_now"` // bumped after each ns_config change
	Allow        *ebpf.Map `ebpf:"allow"`         // the allow sets
	Loss         *ebpf.Map `ebpf:"loss"`          // per-CPU counters by namespace and reason
	LossOverflow *ebpf.Map `ebpf:"loss_overflow"` // per-CPU: losses loss had no room for
	IgnoreTGID   *ebpf.Map `ebpf:"ignore_tgid"`   // processes left out of the host
	CtrCgroup    *ebpf.Map `ebpf:"ctr_cgroup"`    // watched container cgroups
	Pending      *ebpf.Map `ebpf:"pending"`       // struct vg_task of forked tasks before their first event
	TTDCounter   *ebpf.Map `ebpf:"ttd_counter"`   // the last TTD handed out
	Repeats      *ebpf.Map `ebpf:"repeats"`       // the repeat cache's two table slots
	RepGen       *ebpf.Map `ebpf:"rep_gen"`       // the repeat windows
	RIDCounter   *ebpf.Map `ebpf:"rid_counter"`   // the last RepeatID handed out

	Collect *ebpf.Program `ebpf:"vg_collect"` // the repeat memo collector (iter/task)
}

// tracepointObjects are what only the tracepoint object has.
type tracepointObjects struct {
	CreatedIno *ebpf.Map      `ebpf:"created_ino"`  // created-file tags by inode
	FindFput   *ebpf.Program  `ebpf:"vg_find_fput"` // run once: finds ____fput
	FputWorkFn *ebpf.Variable `ebpf:"fput_work_fn"` // what vg_find_fput found
}

// objects are a backend's object loaded into the kernel.
type objects struct {
	sharedObjects
	tp tracepointObjects // zero on the LSM backend

	// hooks are the programs to attach: every program but the ones
	// bound above, which are run instead, by name.
	hooks map[string]*ebpf.Program
	// coll holds the rest: the hooks and the maps only the programs use.
	coll *ebpf.Collection
}

// loadObjects loads spec, the object of backend b, into the kernel and
// binds its objects.
func loadObjects(b Backend, spec *ebpf.CollectionSpec, cache *btf.Cache) (*objects, error) {
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{Cache: cache})
	if err != nil {
		return nil, err
	}
	o := &objects{coll: coll}
	var to any = &o.sharedObjects
	if b == BackendTracepoint {
		// One Assign: on error it has taken nothing from coll.
		to = &struct {
			Shared     *sharedObjects
			Tracepoint *tracepointObjects
		}{&o.sharedObjects, &o.tp}
	}
	if err := coll.Assign(to); err != nil {
		coll.Close()
		return nil, fmt.Errorf("bind %s object: %w", b, err)
	}
	o.hooks = coll.Programs
	return o, nil
}

// close frees everything loaded.
func (o *objects) close() error {
	s, t := &o.sharedObjects, &o.tp
	err := closeAll(s.Events, s.TaskState, s.NSConfig, s.CfgEpochNow, s.Allow, s.Loss, s.LossOverflow,
		s.IgnoreTGID, s.CtrCgroup, s.TTDCounter, s.Repeats, s.RepGen, s.RIDCounter, s.Collect,
		t.CreatedIno, t.FindFput)
	o.coll.Close()
	return err
}

// closeAll closes every c (nil maps and programs are no-ops).
func closeAll(cs ...interface{ Close() error }) error {
	var errs []error
	for _, c := range cs {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// findFput runs vg_find_fput (tracepoint backend), which looks up the
// kernel's deferred file release function so that exec can find the
// script file an interpreter exec released (see tp.bpf.c), and reports
// whether it was found. Without it script records name the script by the
// path the exec was given only (FileOpen-like records with File.Present
// false).
func (o *objects) findFput() bool {
	if o.tp.FindFput == nil {
		return false
	}
	if _, err := o.tp.FindFput.Run(&ebpf.RunOptions{}); err != nil {
		return false
	}
	var addr uint64
	return o.tp.FputWorkFn.Get(&addr) == nil && addr != 0
}

// keysWhere returns the keys of the entries of m that match.
func keysWhere[K, V any](m *ebpf.Map, match func(*K, *V) bool) ([]K, error) {
	var (
		k   K
		v   V
		out []K
	)
	it := m.Iterate()
	for it.Next(&k, &v) {
		if match(&k, &v) {
			out = append(out, k)
		}
	}
	return out, it.Err()
}

// deleteKeys deletes keys from m; a key already gone is no error.
func deleteKeys[K any](m *ebpf.Map, keys []K) error {
	for _, k := range keys {
		if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return err
		}
	}
	return nil
}
