package bpf

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
)

// Backend names a set of kernel programs.
type Backend string

// Backends. BackendAuto tries BackendLSM, then BackendTracepoint.
const (
	BackendAuto       Backend = "auto"
	BackendLSM        Backend = "lsm"
	BackendTracepoint Backend = "tracepoint"
)

// ParseBackend parses a --backend flag value ("" is auto).
func ParseBackend(s string) (Backend, error) {
	switch b := Backend(s); b {
	case "", BackendAuto:
		return BackendAuto, nil
	case BackendLSM, BackendTracepoint:
		return b, nil
	}
	return "", fmt.Errorf("parse backend %q: want auto, lsm or tracepoint", s)
}

// Options configure Open.
type Options struct {
	// Backend selects the programs; "" means BackendAuto.
	Backend Backend
	// RingBufferBytes is the ring buffer size, a power of two multiple of
	// the page size up to MaxRingBufferBytes (CheckRingBufferBytes); 0
	// means 16 MiB.
	RingBufferBytes uint32
	// AllowEntries bounds the allow set map (all namespaces); 0 means 65536.
	AllowEntries uint32
	// WakeupBytes is how many bytes of records wait in the ring buffer
	// before the kernel wakes the reader; 0 means 64 KiB, and values above
	// half the ring buffer are lowered to half. Waking on every record
	// costs the producing task several microseconds per event.
	WakeupBytes uint64
	// PollInterval bounds how long records below WakeupBytes wait for the
	// reader; 0 means 20ms.
	PollInterval time.Duration
	// TracefsDir is where tracefs is mounted when it is not yet; "" means
	// /sys/kernel/tracing.
	TracefsDir string
	// SecurityDir is where securityfs is mounted ("" means
	// /sys/kernel/security): BackendAuto skips the LSM programs at once
	// when its lsm file does not list bpf.
	SecurityDir string
	// RepeatWindow is how often Run replaces the kernel's repeat cache
	// and delivers its counts (see NamespaceConfig.NoRepeatCache): every
	// cached event makes a record at least once per window. 0 means one
	// second.
	RepeatWindow time.Duration
	// RepeatEntries bounds the repeat cache (all namespaces); 0 means
	// 65536. When it is full, new keys are not cached.
	RepeatEntries uint32
	// HostMountNS is the inode number of the host's mount namespace:
	// a task enrolled with EnrollDormant wakes at its first exec in
	// another one. 0 means HostMountNS(ProcDir).
	HostMountNS uint32
	// ProcDir is where the proc file system is mounted; "" means /proc.
	ProcDir string
}

// Errors of Open and of the namespace calls.
var (
	// ErrNoBPFLSM: the kernel refused to load or attach the LSM programs
	// (BPF LSM not active, or loading refused).
	ErrNoBPFLSM = errors.New("bpf lsm not available")
	// ErrNoBackend: neither backend could be loaded and attached.
	ErrNoBackend = errors.New("no capture backend available")
	// ErrObserveOnly: enforcement was asked of the tracepoint backend.
	ErrObserveOnly = errors.New("tracepoint backend observes only, it cannot enforce")
	// ErrClosed: the Capture was closed.
	ErrClosed = errors.New("capture closed")
	// ErrNoRun: FlushRepeats was called while no Run was reading, or Run
	// returned before it could serve the call.
	ErrNoRun = errors.New("no Run is reading the capture")
)

// Capture is a loaded and attached set of programs with its maps and a
// ring buffer reader. Its methods may be called from any goroutine; Run
// and Read share one reader (one runs at a time).
type Capture struct {
	backend Backend
	objs    *objects
	// scriptFiles: the tracepoint backend found ____fput (findFput).
	scriptFiles bool
	links       []link.Link
	rd          *ringbuf.Reader
	// fillMu orders RingFill against Close, which unmaps the ring.
	fillMu     sync.RWMutex
	fillClosed bool

	rep *repeatCache // the repeat cache: its tables, collector and FlushRepeats

	// nsMu orders namespace configuration changes (read-modify-write of
	// ns_config); gen numbers them so that the kernel forgets cached
	// enforcement decisions made under an earlier configuration.
	nsMu     sync.Mutex
	nsGen    uint32
	cfgEpoch uint32 // last value written to cfg_epoch_now

	readMu     sync.Mutex
	rec        ringbuf.Record
	poll       time.Duration
	onRaw      func([]byte) // tests: sees each raw record before decoding
	decodeErrs atomic.Uint64
	closeOnce  sync.Once
	closeErr   error
}

// Open loads and attaches the programs of the selected backend. With
// BackendAuto it tries the LSM programs first (a real load and attach) and
// falls back to the tracepoints, returning ErrNoBackend with both reasons
// when neither works. It needs CAP_BPF and CAP_PERFMON (or root).
func Open(opts Options) (*Capture, error) {
	if opts.Backend == "" {
		opts.Backend = BackendAuto
	}
	if opts.RingBufferBytes != 0 {
		if err := CheckRingBufferBytes(int64(opts.RingBufferBytes)); err != nil {
			return nil, fmt.Errorf("open capture: ring buffer size: %w", err)
		}
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("open capture: remove memlock limit: %w", err)
	}
	// The kernel's BTF is decoded once for everything loaded here.
	cache := btf.NewCache()
	switch opts.Backend {
	case BackendLSM:
		return openBackend(BackendLSM, opts, cache)
	case BackendTracepoint:
		return openBackend(BackendTracepoint, opts, cache)
	case BackendAuto:
		// A cheap probe first: loading the whole LSM object only to be
		// refused costs a large part of a short `vigil run`.
		lerr := probeLSM(opts.SecurityDir, cache)
		if lerr == nil {
			var c *Capture
			if c, lerr = openBackend(BackendLSM, opts, cache); lerr == nil {
				return c, nil
			}
		}
		c, terr := openBackend(BackendTracepoint, opts, cache)
		if terr == nil {
			return c, nil
		}
		return nil, fmt.Errorf("open capture: %w: lsm: %v; tracepoint: %v", ErrNoBackend, lerr, terr)
	}
	return nil, fmt.Errorf("open capture: backend %q: want auto, lsm or tracepoint", opts.Backend)
}

// openBackend loads the object of backend b, sets it up and attaches its
// programs.
func openBackend(b Backend, opts Options, cache *btf.Cache) (c *Capture, err error) {
	spec, err := collectionSpec(b)
	if err != nil {
		return nil, fmt.Errorf("load %s spec: %w", b, err)
	}
	table, err := setSpec(b, spec, opts)
	if err != nil {
		return nil, fmt.Errorf("load %s spec: %w", b, err)
	}
	if b == BackendTracepoint {
		if err := ensureTracefs(opts.TracefsDir); err != nil {
			return nil, err
		}
	}
	objs, err := loadObjects(b, spec, cache)
	if err != nil {
		err = fmt.Errorf("load %s programs: %w", b, err)
		if b == BackendLSM {
			err = fmt.Errorf("%w: %w", ErrNoBPFLSM, err)
		}
		return nil, err
	}
	c = &Capture{backend: b, poll: opts.PollInterval, objs: objs}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	window := opts.RepeatWindow
	if window <= 0 {
		window = time.Second
	}
	if c.rep, err = newRepeatCache(objs, table, window); err != nil {
		return nil, fmt.Errorf("%s: %w", b, err)
	}
	c.scriptFiles = objs.findFput()
	if err := objs.TTDCounter.Update(uint32(0), uint64(0), ebpf.UpdateAny); err != nil {
		return nil, fmt.Errorf("reset ttd counter: %w", err)
	}
	if err := c.rotateRepeats(context.Background(), nil); err != nil {
		return nil, err
	}
	if err := c.bumpEpoch(); err != nil {
		return nil, err
	}
	if c.links, err = attachAll(spec, objs.hooks); err != nil {
		err = fmt.Errorf("attach %s %w", b, err)
		if b == BackendLSM {
			err = fmt.Errorf("%w: %w", ErrNoBPFLSM, err)
		}
		return nil, err
	}
	if c.poll <= 0 {
		c.poll = 20 * time.Millisecond
	}
	c.rd, err = ringbuf.NewReader(objs.Events)
	if err != nil {
		return nil, fmt.Errorf("create ring buffer reader: %w", err)
	}
	return c, nil
}

// setSpec applies opts to spec before it is loaded and returns the spec
// of a repeat cache table.
func setSpec(b Backend, spec *ebpf.CollectionSpec, opts Options) (*ebpf.MapSpec, error) {
	s, err := specsOf(spec)
	if err != nil {
		return nil, err
	}
	if opts.RingBufferBytes != 0 {
		s.Events.MaxEntries = opts.RingBufferBytes
	}
	if opts.AllowEntries != 0 {
		s.Allow.MaxEntries = opts.AllowEntries
	}
	if b == BackendTracepoint {
		// No allow set without enforcement: its preallocated
		// entries would only cost time and memory.
		s.Allow.MaxEntries = 1
	}
	table := s.Repeats.InnerMap.Copy()
	if opts.RepeatEntries != 0 {
		s.Repeats.InnerMap.MaxEntries = opts.RepeatEntries
		table.MaxEntries = opts.RepeatEntries
	}
	wake := opts.WakeupBytes
	if wake == 0 {
		wake = 64 << 10
	}
	if half := uint64(s.Events.MaxEntries / 2); wake > half {
		wake = half
	}
	if err := s.WakeupBytes.Set(wake); err != nil {
		return nil, fmt.Errorf("set wakeup threshold: %w", err)
	}
	hostNS := opts.HostMountNS
	if hostNS == 0 {
		proc := opts.ProcDir
		if proc == "" {
			proc = "/proc"
		}
		if hostNS, err = HostMountNS(proc); err != nil {
			return nil, fmt.Errorf("host mount namespace: %w", err)
		}
	}
	if err := s.HostMntInum.Set(hostNS); err != nil {
		return nil, fmt.Errorf("set host mount namespace: %w", err)
	}
	return table, nil
}

// ScriptFiles reports whether the tracepoint backend can describe the
// script file of an interpreter exec (ExecScript.File.Present); the LSM
// backend reports the script's open itself.
func (c *Capture) ScriptFiles() bool { return c.backend == BackendLSM || c.scriptFiles }

// Backend returns the backend in use.
func (c *Capture) Backend() Backend { return c.backend }

// CanEnforce reports whether the backend can deny events (LSM only).
func (c *Capture) CanEnforce() bool { return c.backend == BackendLSM }

// RepeatWindow returns how often Run replaces the repeat cache
// (Options.RepeatWindow with its default applied).
func (c *Capture) RepeatWindow() time.Duration { return c.rep.window }

// Close detaches the programs and frees the maps; a blocked Read or
// Run returns.
func (c *Capture) Close() error {
	c.closeOnce.Do(func() {
		c.fillMu.Lock()
		c.fillClosed = true
		c.fillMu.Unlock()
		var errs []error
		if c.rd != nil {
			errs = append(errs, c.rd.Close())
		}
		if c.rep != nil {
			errs = append(errs, c.rep.close())
		}
		errs = append(errs, closeLinks(c.links))
		if c.objs != nil {
			errs = append(errs, c.objs.close())
		}
		if err := errors.Join(errs...); err != nil {
			c.closeErr = fmt.Errorf("close capture: %w", err)
		}
	})
	return c.closeErr
}
