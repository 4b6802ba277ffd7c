package bpf

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
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

// Mode is the state of a modeling namespace as the kernel sees it.
type Mode uint32

// Modes. The kernel only acts on ModeEnforce; ModeSeal is kept for
// userspace and for Lost/records bookkeeping.
const (
	ModeLearn   Mode = 0
	ModeSeal    Mode = 1
	ModeEnforce Mode = 2
)

func (m Mode) String() string {
	switch m {
	case ModeLearn:
		return "learn"
	case ModeSeal:
		return "seal"
	case ModeEnforce:
		return "enforce"
	}
	return fmt.Sprintf("mode(%d)", uint32(m))
}

// NamespaceConfig is the kernel side configuration of a namespace.
type NamespaceConfig struct {
	Mode Mode
	// Model enables modeling of namespace 0 (the host); ignored for others,
	// which are modeled as soon as a task is enrolled in them.
	Model bool
	// NoCapable skips capable events (the hottest hook).
	NoCapable bool
	// FailClosed denies events of an enforcing namespace whose record
	// cannot be delivered (ring buffer full), instead of letting them pass
	// (they are counted as lost either way).
	FailClosed bool
	// NoRepeatCache turns off the kernel's repeat cache for the namespace:
	// every event then makes its own record. With the cache on (the
	// default; file_open only for now), an event identical to one already
	// recorded in the current repeat window (Options.RepeatWindow; same
	// task identity, COE, open flags, file object, owner, mode and
	// content stamps) only counts in the kernel, and Run delivers the
	// counts as *RepeatCount records naming the record they repeat
	// (Header.RepeatID) when the window ends. Model counts stay exact; a
	// stream of every record sees one record per key and window plus its
	// count. A path that changes without its file changing (a parent
	// directory renamed) is seen in the next window. In an enforcing
	// namespace only events the kernel allowed are cached; a denial
	// always makes a record.
	NoRepeatCache bool
}

const (
	nsModel      = 1 << 0
	nsNoCapable  = 1 << 1
	nsFailClosed = 1 << 2
	nsNoRepeat   = 1 << 3

	taskEnrolled  = 1 << 0
	taskUntrusted = 1 << 1
	taskDormant   = 1 << 2

	ignoreLive = 1 // enum vg_ignore: VG_IGN_LIVE
)

// LossReason says why the kernel could not deliver a record.
type LossReason uint32

// Loss reasons. LossOverflow counts losses the kernel could not attribute
// to a namespace (its loss table was full); LossDecode counts records the
// reader could not decode.
const (
	LossRingBuffer LossReason = 1 // the ring buffer was full
	LossTaskState  LossReason = 2 // no task storage for a member task
	LossPending    LossReason = 3 // fork inheritance table full
	// LossCreated: a file a namespace task created could not be tagged
	// (no room for the process's counters or the tag), so its events
	// name it by its path.
	LossCreated  LossReason = 4
	LossOverflow LossReason = 100
	LossDecode   LossReason = 101
)

func (r LossReason) String() string {
	switch r {
	case LossRingBuffer:
		return "ringbuf_full"
	case LossTaskState:
		return "task_storage"
	case LossPending:
		return "fork_table_full"
	case LossCreated:
		return "created_tag"
	case LossOverflow:
		return "unattributed"
	case LossDecode:
		return "decode"
	}
	return fmt.Sprintf("reason(%d)", uint32(r))
}

// LossKey identifies a loss counter.
type LossKey struct {
	NS     uint64
	Reason LossReason
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
	coll    *ebpf.Collection
	// scriptFiles: the tracepoint backend found ____fput (findFput).
	scriptFiles bool
	links       []link.Link
	rd          *ringbuf.Reader
	// fillMu orders RingFill against Close, which unmaps the ring.
	fillMu     sync.RWMutex
	fillClosed bool

	events, taskState, nsConfig, allow, loss, lossOverflow, ignore *ebpf.Map
	ctrCgroup, pending                                             *ebpf.Map
	// createdIno holds the created-file tags of the tracepoint backend
	// (nil on the LSM backend, where they live with the inodes).
	createdIno *ebpf.Map

	// The repeat cache: repeats holds the current table (repCur) in slot
	// 0; repMu orders its replacement against Close. ridCounter holds the
	// last RepeatID handed out. Under readMu (the rotation runs in Run):
	// repCarry, the namespaces whose entries the last finish markers did
	// not cover (see rotateRepeats), and the batch buffers.
	repMu      sync.Mutex
	repeats    *ebpf.Map
	repCur     *ebpf.Map
	repGen     uint32    // the window of repCur (rep_gen[0])
	repGenMap  *ebpf.Map // rep_gen
	collect    *link.Iter
	memoBuf    map[uint64]memoCount
	repSpec    *ebpf.MapSpec
	repClosed  bool
	ridCounter *ebpf.Map
	repCarry   map[uint64]struct{}
	repKeys    []repeatKey
	repVals    []repeatValue
	noBatch    bool // the kernel has no batch lookup: iterate

	// FlushRepeats asks Run for a rotation (flushAsk) and waits on a
	// channel in flushWait; running says whether a Run serves them.
	flushMu   sync.Mutex
	flushWait []chan error
	flushAsk  atomic.Bool
	running   bool

	// nsMu orders namespace configuration changes (read-modify-write of
	// ns_config); gen numbers them so that the kernel forgets cached
	// enforcement decisions made under an earlier configuration.
	nsMu        sync.Mutex
	nsGen       uint32
	cfgEpoch    uint32 // last value written to cfg_epoch_now
	cfgEpochNow *ebpf.Map
	window      time.Duration

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

func openBackend(b Backend, opts Options, cache *btf.Cache) (c *Capture, err error) {
	spec, err := collectionSpec(b)
	if err != nil {
		return nil, fmt.Errorf("load %s spec: %w", b, err)
	}
	if opts.RingBufferBytes != 0 {
		spec.Maps["events"].MaxEntries = opts.RingBufferBytes
	}
	if opts.AllowEntries != 0 {
		spec.Maps["allow"].MaxEntries = opts.AllowEntries
	}
	if b == BackendTracepoint {
		// No allow set without enforcement: its preallocated
		// entries would only cost time and memory.
		spec.Maps["allow"].MaxEntries = 1
	}
	repSpec := spec.Maps["repeats"].InnerMap.Copy()
	if opts.RepeatEntries != 0 {
		spec.Maps["repeats"].InnerMap.MaxEntries = opts.RepeatEntries
		repSpec.MaxEntries = opts.RepeatEntries
	}
	window := opts.RepeatWindow
	if window <= 0 {
		window = time.Second
	}
	wake := opts.WakeupBytes
	if wake == 0 {
		wake = 64 << 10
	}
	if half := uint64(spec.Maps["events"].MaxEntries / 2); wake > half {
		wake = half
	}
	if err := spec.Variables["wakeup_bytes"].Set(wake); err != nil {
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
	if err := spec.Variables["host_mnt_inum"].Set(hostNS); err != nil {
		return nil, fmt.Errorf("set host mount namespace: %w", err)
	}
	if b == BackendTracepoint {
		if err := ensureTracefs(opts.TracefsDir); err != nil {
			return nil, err
		}
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{Cache: cache})
	if err != nil {
		err = fmt.Errorf("load %s programs: %w", b, err)
		if b == BackendLSM {
			err = fmt.Errorf("%w: %w", ErrNoBPFLSM, err)
		}
		return nil, err
	}
	c = &Capture{
		backend:      b,
		poll:         opts.PollInterval,
		coll:         coll,
		events:       coll.Maps["events"],
		taskState:    coll.Maps["task_state"],
		nsConfig:     coll.Maps["ns_config"],
		allow:        coll.Maps["allow"],
		loss:         coll.Maps["loss"],
		lossOverflow: coll.Maps["loss_overflow"],
		ignore:       coll.Maps["ignore_tgid"],
		ctrCgroup:    coll.Maps["ctr_cgroup"],
		pending:      coll.Maps["pending"],
		createdIno:   coll.Maps["created_ino"],
		repeats:      coll.Maps["repeats"],
		cfgEpochNow:  coll.Maps["cfg_epoch_now"],
		ridCounter:   coll.Maps["rid_counter"],
		repGenMap:    coll.Maps["rep_gen"],
		repSpec:      repSpec,
		window:       window,
	}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	if c.ridCounter == nil || c.repGenMap == nil || coll.Programs["vg_collect"] == nil {
		return nil, fmt.Errorf("load %s programs: no rid_counter, rep_gen or vg_collect", b)
	}
	c.collect, err = link.AttachIter(link.IterOptions{Program: coll.Programs["vg_collect"]})
	if err != nil {
		return nil, fmt.Errorf("attach %s repeat memo collector: %w", b, err)
	}
	c.scriptFiles = findFput(coll)
	var zero uint32
	if err := coll.Maps["ttd_counter"].Update(zero, uint64(0), ebpf.UpdateAny); err != nil {
		return nil, fmt.Errorf("reset ttd counter: %w", err)
	}
	if err := c.rotateRepeats(context.Background(), nil); err != nil {
		return nil, err
	}
	if err := c.bumpEpoch(); err != nil {
		return nil, err
	}
	if c.links, err = attachAll(spec, coll); err != nil {
		err = fmt.Errorf("attach %s %w", b, err)
		if b == BackendLSM {
			err = fmt.Errorf("%w: %w", ErrNoBPFLSM, err)
		}
		return nil, err
	}
	if c.poll <= 0 {
		c.poll = 20 * time.Millisecond
	}
	c.rd, err = ringbuf.NewReader(c.events)
	if err != nil {
		return nil, fmt.Errorf("create ring buffer reader: %w", err)
	}
	return c, nil
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
func (c *Capture) RepeatWindow() time.Duration { return c.window }

// Read blocks until the next record and decodes it, or until ctx ends
// (ctx.Err()) or the Capture is closed (ErrClosed). A record that does not
// decode is counted (LossDecode) and returned as an error saying why.
func (c *Capture) Read(ctx context.Context) (Record, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	stop := context.AfterFunc(ctx, func() { c.rd.Flush() })
	defer stop()
	return c.readLocked(ctx, time.Time{})
}

// errIdle: readLocked saw no record before its until time, or Run is
// asked for a rotation (FlushRepeats).
var errIdle = errors.New("no record")

// readLocked reads and decodes the next record; see nextLocked.
func (c *Capture) readLocked(ctx context.Context, until time.Time) (Record, error) {
	if err := c.nextLocked(ctx, until); err != nil {
		return nil, err
	}
	return c.decodeLocked()
}

// nextLocked reads the next record into c.rec. With until set it returns
// errIdle when no record came by then (the ring buffer was empty at that
// moment) or when FlushRepeats asks for a rotation; it returns ctx's error
// when ctx ended and the ring buffer was empty.
func (c *Capture) nextLocked(ctx context.Context, until time.Time) error {
	for {
		// The kernel wakes the reader only every WakeupBytes; the
		// deadline bounds how long fewer bytes wait.
		c.rd.SetDeadline(time.Now().Add(c.poll))
		err := c.rd.ReadInto(&c.rec)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, ringbuf.ErrClosed), errors.Is(err, os.ErrClosed):
			return ErrClosed
		case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, ringbuf.ErrFlushed):
			if err := ctx.Err(); err != nil {
				return err
			}
			if !until.IsZero() && (c.flushAsk.Load() || time.Now().After(until)) {
				return errIdle
			}
		default:
			return fmt.Errorf("read ring buffer: %w", err)
		}
	}
}

// decodeLocked decodes c.rec; a record that does not decode is counted.
func (c *Capture) decodeLocked() (Record, error) {
	if c.onRaw != nil {
		c.onRaw(c.rec.RawSample)
	}
	r, err := ParseRecord(c.rec.RawSample)
	if err != nil {
		c.decodeErrs.Add(1)
		return nil, err
	}
	return r, nil
}

// ringBytes is how much of the ring buffer c.rec took: the kernel's 8
// byte record header and the data, padded to 8 bytes.
func (c *Capture) ringBytes() int {
	return 8 + (len(c.rec.RawSample)+7)&^7
}

// Run reads records until ctx is done or the Capture is closed, calling fn
// for each in order. The kernel never waits for Run: when fn is slower
// than the event rate the ring buffer fills and the kernel counts the lost
// records (Lost). Records that do not decode are counted (LossDecode) and
// skipped. Run returns nil when ctx ends or the Capture is closed.
//
// Run also runs the kernel's repeat cache: every Options.RepeatWindow, at
// FlushRepeats, and once more when ctx ends (after the last record in the
// ring buffer), it replaces the cache, delivers every record the kernel
// made before the replacement, then calls fn with a *RepeatCount for each
// entry of the old cache that was repeated and with a finish marker per
// namespace (see RepeatCount). Use Run, not Read, where counts matter.
// fn must not call FlushRepeats (it would wait for itself).
func (c *Capture) Run(ctx context.Context, fn func(Record)) (err error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	c.flushMu.Lock()
	c.running = true
	c.flushMu.Unlock()
	defer func() {
		c.flushMu.Lock()
		c.running = false
		waiting := c.flushWait
		c.flushWait = nil
		c.flushMu.Unlock()
		for _, w := range waiting {
			w <- ErrNoRun
		}
	}()
	stop := context.AfterFunc(ctx, func() { c.rd.Flush() })
	defer stop()
	nextSweep := time.Now().Add(c.window)
	for {
		if now := time.Now(); now.After(nextSweep) || c.flushAsk.Load() {
			if err := c.rotateAndReport(ctx, fn); err != nil {
				return noClosed(err)
			}
			nextSweep = time.Now().Add(c.window)
		}
		err := c.nextLocked(ctx, nextSweep)
		if err == nil {
			if r, err := c.decodeLocked(); err == nil {
				fn(r)
			}
			// else counted in decodeLocked
			continue
		}
		switch {
		case errors.Is(err, errIdle):
		case errors.Is(err, ErrClosed):
			return nil
		case ctx.Err() != nil:
			// Every record is delivered: now the counts the
			// kernel holds.
			return noClosed(c.rotateAndReport(ctx, fn))
		default:
			return err
		}
	}
}

// noClosed turns ErrClosed (Run's end when the Capture is closed) into nil.
func noClosed(err error) error {
	if errors.Is(err, ErrClosed) {
		return nil
	}
	return err
}

// rotateAndReport rotates the repeat cache for Run and answers the
// FlushRepeats calls made before the rotation began.
func (c *Capture) rotateAndReport(ctx context.Context, fn func(Record)) error {
	c.flushMu.Lock()
	waiting := c.flushWait
	c.flushWait = nil
	c.flushAsk.Store(false)
	c.flushMu.Unlock()
	err := c.rotateRepeats(ctx, fn)
	for _, w := range waiting {
		w <- err
	}
	return err
}

// FlushRepeats has Run replace the repeat cache now and returns when Run
// has handed its fn every record the kernel made and every repeat it
// counted before the call (the counts and finish markers included): the
// counts of events that have happened are then complete without waiting
// for the repeat window. It returns ErrNoRun when no Run is reading (or
// Run ends first without a last rotation), ctx's error when ctx ends
// first, or the rotation's error. Call it from any goroutine but Run's.
func (c *Capture) FlushRepeats(ctx context.Context) error {
	done := make(chan error, 1)
	c.flushMu.Lock()
	if !c.running {
		c.flushMu.Unlock()
		return fmt.Errorf("flush repeat counts: %w", ErrNoRun)
	}
	c.flushWait = append(c.flushWait, done)
	c.flushMu.Unlock()
	c.flushAsk.Store(true)
	// Wake a Run waiting for records.
	c.fillMu.RLock()
	if !c.fillClosed {
		c.rd.Flush()
	}
	c.fillMu.RUnlock()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("flush repeat counts: %w", err)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// repeatValue mirrors struct vg_rval.
type repeatValue struct {
	ID      uint64
	Count   uint64
	Gen     uint32
	Allowed uint16
	Valid   uint16
	Key     [repeatKeySize]byte // struct vg_rkey
}

// repeatKey mirrors struct vg_rhkey, the table's key.
type repeatKey struct {
	NS   uint64
	Hash uint64
}

// repeatKeySize is sizeof(struct vg_rkey), the whole key an entry holds.
const repeatKeySize = 168

// repeatBatch is how many entries one batch lookup of the old repeat
// cache table reads (49 KiB of buffers).
const repeatBatch = 256

// rotateRepeats puts a fresh repeat cache table in place and, with fn,
// hands fn the records made before the swap, then the counts of the old
// table (with the memos' counts of its window) and the finish markers.
//
// Why this order is exact (doc.go, "Repeat cache", has the whole
// argument). The table of window g is in slot g&1 of repeats, and a
// program reads rep_gen[0] once and uses that slot. The new table goes
// into the other slot, then rep_gen[0] is bumped, then a second update of
// the slot waits for every running program (the kernel waits when a
// map-in-map slot changes): from then on no program counts in window g,
// and every record a program made with one of its entries is committed
// in the ring buffer before the reader's position as it is now. Reading
// up to there first puts every record before its count. Counts of window
// g still held by memos are frozen; the collector takes each with a
// compare-and-swap (a task's exit may take it first and add it to the old
// table, which stays in its slot); one more slot update waits for such
// exits, after which the old table and the collector's counts are final.
// RepeatIDs come from one counter; a program takes its id after it looked
// the table up (repeat_begin), so every id handed out before the swap
// began (below, read first) belongs to the old table or an earlier one:
// all of them are finished after this rotation. An old entry with a
// larger id (taken during the swap) is finished by the next rotation's
// markers: repCarry keeps its namespace for them.
func (c *Capture) rotateRepeats(ctx context.Context, fn func(Record)) error {
	c.repMu.Lock()
	if c.repClosed {
		c.repMu.Unlock()
		return ErrClosed
	}
	var below uint64
	if err := c.ridCounter.Lookup(uint32(0), &below); err != nil {
		c.repMu.Unlock()
		return fmt.Errorf("read repeat id counter: %w", err)
	}
	next, err := ebpf.NewMap(c.repSpec)
	if err != nil {
		c.repMu.Unlock()
		return fmt.Errorf("create repeat cache table: %w", err)
	}
	gen := c.repGen + 1
	if gen == 0 {
		gen = 2 // never 0; keep the slot parity
	}
	// The new window's slot held the table two windows back, read at the
	// last rotation: nothing uses it.
	if err := c.repeats.Update(gen&1, next, ebpf.UpdateAny); err != nil {
		c.repMu.Unlock()
		next.Close()
		return fmt.Errorf("install repeat cache table: %w", err)
	}
	if err := c.repGenMap.Update(uint32(0), gen, ebpf.UpdateAny); err != nil {
		c.repMu.Unlock()
		next.Close()
		return fmt.Errorf("start repeat window: %w", err)
	}
	// Wait for the programs that read the old window.
	if err := c.repeats.Update(gen&1, next, ebpf.UpdateAny); err != nil {
		c.repMu.Unlock()
		next.Close()
		return fmt.Errorf("end repeat window: %w", err)
	}
	old, oldGen := c.repCur, c.repGen
	c.repCur, c.repGen = next, gen
	c.repMu.Unlock()
	if old == nil {
		return nil
	}
	defer old.Close()
	if fn == nil {
		return nil
	}
	if err := c.drainLocked(ctx, fn); err != nil {
		return err
	}
	memos, err := c.collectMemos(oldGen)
	if err != nil {
		return err
	}
	// Wait for the exits that took a count of the old window before the
	// collector did: they have added it to old.
	c.repMu.Lock()
	if c.repClosed {
		c.repMu.Unlock()
		return ErrClosed
	}
	err = c.repeats.Update(oldGen&1, old, ebpf.UpdateAny)
	c.repMu.Unlock()
	if err != nil {
		return fmt.Errorf("finish repeat window: %w", err)
	}

	var ts unix.Timespec
	// KTime: when the counts were taken, on the kernel's clock.
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	now := uint64(ts.Nano())
	mark := c.repCarry
	c.repCarry = nil
	emit := func(ns, id, count uint64) {
		if mark == nil {
			mark = make(map[uint64]struct{})
		}
		mark[ns] = struct{}{}
		if id > below {
			if c.repCarry == nil {
				c.repCarry = make(map[uint64]struct{})
			}
			c.repCarry[ns] = struct{}{}
		}
		if count != 0 {
			fn(&RepeatCount{Header: Header{Type: RecRepeatCount, NS: ns, KTime: now, RepeatID: id}, Count: count})
		}
	}
	err = c.eachRepeat(old, func(ns uint64, v *repeatValue) {
		if v.Valid == 0 {
			return // no record was made for it, so nothing counted
		}
		count := v.Count
		if m, ok := memos[v.ID]; ok {
			count += m.count
			delete(memos, v.ID)
		}
		emit(ns, v.ID, count)
	})
	if err != nil {
		return err
	}
	// A memo names an entry of its window's table; none should be left.
	for id, m := range memos {
		emit(m.ns, id, m.count)
		delete(memos, id)
	}
	if below == 0 {
		return nil // no id handed out before the swap
	}
	for ns := range mark {
		fn(&RepeatCount{Header: Header{Type: RecRepeatCount, NS: ns, KTime: now}, Below: below + 1})
	}
	return nil
}

// memoCount is what the collector took from the memos of one entry.
type memoCount struct {
	ns, count uint64
}

// memoOutSize is sizeof(struct vg_memo_out): ns, rid, count.
const memoOutSize = 24

// collectMemos runs the collector (vg_collect) over every task for the
// memos of window gen, which has ended, and returns their counts by
// RepeatID.
func (c *Capture) collectMemos(gen uint32) (map[uint64]memoCount, error) {
	if err := c.repGenMap.Update(uint32(1), gen, ebpf.UpdateAny); err != nil {
		return nil, fmt.Errorf("set collected repeat window: %w", err)
	}
	rd, err := c.collect.Open()
	if err != nil {
		return nil, fmt.Errorf("run repeat memo collector: %w", err)
	}
	defer rd.Close()
	out, err := io.ReadAll(rd)
	if err != nil {
		return nil, fmt.Errorf("read repeat memo collector: %w", err)
	}
	if len(out)%memoOutSize != 0 {
		return nil, fmt.Errorf("read repeat memo collector: %d bytes, not a multiple of %d", len(out), memoOutSize)
	}
	if c.memoBuf == nil {
		c.memoBuf = make(map[uint64]memoCount)
	}
	for ; len(out) > 0; out = out[memoOutSize:] {
		ns := binary.LittleEndian.Uint64(out)
		id := binary.LittleEndian.Uint64(out[8:])
		m := c.memoBuf[id]
		m.ns = ns
		m.count += binary.LittleEndian.Uint64(out[16:])
		c.memoBuf[id] = m
	}
	return c.memoBuf, nil
}

// drainLocked hands fn the records in the ring buffer up to the writer's
// position now. A record the ring buffer marks discarded is skipped
// without being seen, so the byte count can fall short: an empty ring
// buffer (a read that times out, or ctx ended) ends the drain too.
func (c *Capture) drainLocked(ctx context.Context, fn func(Record)) error {
	c.fillMu.RLock()
	if c.fillClosed {
		c.fillMu.RUnlock()
		return ErrClosed
	}
	left := c.rd.AvailableBytes()
	c.fillMu.RUnlock()
	for left > 0 {
		err := c.nextLocked(ctx, time.Now())
		switch {
		case err == nil:
		case errors.Is(err, errIdle), ctx.Err() != nil:
			return nil
		default:
			return err
		}
		left -= c.ringBytes()
		if r, err := c.decodeLocked(); err == nil {
			fn(r)
		}
		if c.rec.Remaining == 0 {
			return nil // the reader caught up with the writer
		}
	}
	return nil
}

// eachRepeat calls fn for every entry of the repeat cache table m, which
// no program uses any more.
func (c *Capture) eachRepeat(m *ebpf.Map, fn func(ns uint64, v *repeatValue)) error {
	if !c.noBatch {
		if c.repKeys == nil {
			c.repKeys = make([]repeatKey, repeatBatch)
			c.repVals = make([]repeatValue, repeatBatch)
		}
		var cursor ebpf.MapBatchCursor
		for first := true; ; first = false {
			n, err := m.BatchLookup(&cursor, c.repKeys, c.repVals, nil)
			if first && errors.Is(err, ebpf.ErrNotSupported) {
				c.noBatch = true // before 5.6
				break
			}
			for i := range n {
				fn(c.repKeys[i].NS, &c.repVals[i])
			}
			if errors.Is(err, ebpf.ErrKeyNotExist) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("read repeat cache table: %w", err)
			}
		}
	}
	var (
		k repeatKey
		v repeatValue
	)
	it := m.Iterate()
	for it.Next(&k, &v) {
		fn(k.NS, &v)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read repeat cache table: %w", err)
	}
	return nil
}

// taskValue mirrors struct vg_task.
type taskValue struct {
	NS       uint64
	TTD      uint64
	PTTD     uint64
	Flags    uint32
	CfgEpoch uint32  // the kernel's copy of the namespace configuration:
	Cfg      nsValue // Enroll clears it, the kernel refills it
	CfgSet   uint32
	_        uint32
}

// Enroll puts the task pid into namespace ns. Call it before the task
// execs the workload (e.g. while it waits on a pipe) so nothing it does is
// missed; its children inherit the membership at fork. The task gets a
// fresh TTD at its first event and PTTD 0.
func (c *Capture) Enroll(pid int, ns uint64) error {
	return c.setTask(pid, func(v *taskValue) {
		*v = taskValue{NS: ns, Flags: taskEnrolled}
	}, false)
}

// EnrollDormant puts the task pid into namespace ns dormant until it
// execs outside the host's mount namespace (Options.HostMountNS): until
// then it makes no record and is never denied, and the tasks it forks
// (threads included) are dormant members too. That exec wakes it with TTD
// 0 and PTTD 0, as Enroll leaves a task, so the program it executes gets
// a namespace root's identity; an exec in the host's mount namespace (runc
// running a copy of itself) leaves it dormant. The agent enrols a
// container runtime's own process this way (runc init, which prepares the
// container and then execs the workload): what it does before the exec
// names the container's id and per-container state and would differ in
// every instance of the same image.
func (c *Capture) EnrollDormant(pid int, ns uint64) error {
	return c.setTask(pid, func(v *taskValue) {
		*v = taskValue{NS: ns, Flags: taskEnrolled | taskDormant}
	}, false)
}

// MarkUntrusted marks an enrolled task untrusted (userspace found an
// out-of-model event the kernel could not judge, e.g. a file digest). In
// an enforcing namespace every later event of the task is denied.
func (c *Capture) MarkUntrusted(pid int) error {
	return c.setTask(pid, func(v *taskValue) { v.Flags |= taskUntrusted }, true)
}

func (c *Capture) setTask(pid int, edit func(*taskValue), mustExist bool) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return fmt.Errorf("open pidfd of %d: %w", pid, err)
	}
	defer unix.Close(fd)
	var v taskValue
	if err := c.taskState.Lookup(uint32(fd), &v); err != nil {
		if mustExist || !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("look up task %d: %w", pid, err)
		}
	}
	edit(&v)
	if err := c.taskState.Update(uint32(fd), &v, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("update task %d: %w", pid, err)
	}
	return nil
}

// Ignore leaves process tgid (all its threads, and the processes it forks
// from now on, and theirs) out of namespace 0: while the host is modeled
// its tasks there make no records and are never denied. Tasks enrolled in
// another namespace are not affected. The kernel forgets the process when
// its group leader is freed, after every thread has exited. The table
// holds 4096 processes; a fork past that is not ignored.
func (c *Capture) Ignore(tgid int) error {
	if tgid <= 0 {
		return fmt.Errorf("ignore process %d: not a process id", tgid)
	}
	if err := c.ignore.Update(uint32(tgid), uint8(ignoreLive), ebpf.UpdateAny); err != nil {
		return fmt.Errorf("ignore process %d: %w", tgid, err)
	}
	return nil
}

// TaskState returns the kernel's state of task pid: its namespace, TTD,
// PTTD and whether it is untrusted; ok is false for a task the kernel
// tracks no state for (not in a modeling namespace). A task a member forked
// is a member from its fork, although the kernel keeps its state in the
// fork's pending table until the task's first event: TaskState reports
// that state, so that nobody enrols the task anew (which would make it a
// namespace root with a new identity).
func (c *Capture) TaskState(pid int) (ns, ttd, pttd uint64, untrusted, ok bool, err error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return 0, 0, 0, false, false, fmt.Errorf("open pidfd of %d: %w", pid, err)
	}
	defer unix.Close(fd)
	var v taskValue
	err = c.taskState.Lookup(uint32(fd), &v)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		// The pending table holds a struct vg_task, as the task
		// storage, keyed by the pid in the initial pid namespace (the
		// capture's).
		var p taskValue
		if err := c.pending.Lookup(uint32(pid), &p); err == nil {
			return p.NS, p.TTD, p.PTTD, p.Flags&taskUntrusted != 0, true, nil
		} else if !errors.Is(err, ebpf.ErrKeyNotExist) {
			return 0, 0, 0, false, false, fmt.Errorf("look up pending task %d: %w", pid, err)
		}
		return 0, 0, 0, false, false, nil
	}
	if err != nil {
		return 0, 0, 0, false, false, fmt.Errorf("look up task %d: %w", pid, err)
	}
	return v.NS, v.TTD, v.PTTD, v.Flags&taskUntrusted != 0, true, nil
}

type nsValue struct {
	Mode  uint32
	Flags uint32
	Gen   uint32
	_     uint32
}

// SetNamespace sets the kernel configuration of namespace ns. Enforce on
// the tracepoint backend returns ErrObserveOnly.
func (c *Capture) SetNamespace(ns uint64, cfg NamespaceConfig) error {
	if cfg.Mode == ModeEnforce && !c.CanEnforce() {
		return fmt.Errorf("set namespace %d: %w", ns, ErrObserveOnly)
	}
	if cfg.Mode > ModeEnforce {
		return fmt.Errorf("set namespace %d: unknown mode %d", ns, cfg.Mode)
	}
	c.nsMu.Lock()
	defer c.nsMu.Unlock()
	return c.setNamespaceLocked(ns, cfg)
}

func (c *Capture) setNamespaceLocked(ns uint64, cfg NamespaceConfig) error {
	c.nsGen++
	v := nsValue{Mode: uint32(cfg.Mode), Gen: c.nsGen}
	if cfg.Model {
		v.Flags |= nsModel
	}
	if cfg.NoCapable {
		v.Flags |= nsNoCapable
	}
	if cfg.FailClosed {
		v.Flags |= nsFailClosed
	}
	if cfg.NoRepeatCache {
		v.Flags |= nsNoRepeat
	}
	if err := c.nsConfig.Update(ns, v, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("set namespace %d: %w", ns, err)
	}
	if err := c.bumpEpoch(); err != nil {
		return fmt.Errorf("set namespace %d: %w", ns, err)
	}
	return nil
}

// bumpEpoch makes every task refresh its copy of its namespace's
// configuration at its next event; call it after changing ns_config,
// with nsMu held.
func (c *Capture) bumpEpoch() error {
	c.cfgEpoch++
	if c.cfgEpoch == 0 {
		c.cfgEpoch = 1
	}
	if err := c.cfgEpochNow.Update(uint32(0), c.cfgEpoch, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("bump configuration epoch: %w", err)
	}
	return nil
}

// SetMode changes only the mode of namespace ns.
func (c *Capture) SetMode(ns uint64, m Mode) error {
	if m == ModeEnforce && !c.CanEnforce() {
		return fmt.Errorf("set namespace %d: %w", ns, ErrObserveOnly)
	}
	c.nsMu.Lock()
	defer c.nsMu.Unlock()
	cfg, err := c.namespaceLocked(ns)
	if err != nil {
		return fmt.Errorf("set mode of namespace %d: %w", ns, err)
	}
	cfg.Mode = m
	return c.setNamespaceLocked(ns, cfg)
}

// namespaceLocked reads the configuration of ns (zero when unset).
func (c *Capture) namespaceLocked(ns uint64) (NamespaceConfig, error) {
	var v nsValue
	if err := c.nsConfig.Lookup(ns, &v); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return NamespaceConfig{}, err
	}
	return NamespaceConfig{
		Mode:          Mode(v.Mode),
		Model:         v.Flags&nsModel != 0,
		NoCapable:     v.Flags&nsNoCapable != 0,
		FailClosed:    v.Flags&nsFailClosed != 0,
		NoRepeatCache: v.Flags&nsNoRepeat != 0,
	}, nil
}

// bumpGen makes the kernel forget the enforcement decisions it cached for
// ns (the allow set shrank).
func (c *Capture) bumpGen(ns uint64) error {
	c.nsMu.Lock()
	defer c.nsMu.Unlock()
	var v nsValue
	if err := c.nsConfig.Lookup(ns, &v); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil
		}
		return err
	}
	c.nsGen++
	v.Gen = c.nsGen
	if err := c.nsConfig.Update(ns, v, ebpf.UpdateExist); err != nil {
		return err
	}
	return c.bumpEpoch()
}

// DropNamespace removes the configuration, the allow set and the
// created-file tags of ns.
func (c *Capture) DropNamespace(ns uint64) error {
	c.nsMu.Lock()
	err := c.nsConfig.Delete(ns)
	if err == nil {
		err = c.bumpEpoch()
	}
	c.nsMu.Unlock()
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("drop namespace %d: %w", ns, err)
	}
	if err := c.ClearAllow(ns); err != nil {
		return err
	}
	return c.dropCreated(ns)
}

// createdKey and createdTag mirror struct vg_ckey and struct vg_ctag.
type createdKey struct {
	Ino      uint64
	Dev, Gen uint32
}

type createdTag struct {
	NS, OwnerTTD, Instance uint64
}

// dropCreated deletes the created-file tags of namespace ns (tracepoint
// backend): no event of ns names those files any more, and the table is
// bounded.
func (c *Capture) dropCreated(ns uint64) error {
	if c.createdIno == nil {
		return nil
	}
	dead, err := keysWhere(c.createdIno, func(_ *createdKey, v *createdTag) bool { return v.NS == ns })
	if err == nil {
		err = deleteKeys(c.createdIno, dead)
	}
	if err != nil {
		return fmt.Errorf("drop created-file tags of namespace %d: %w", ns, err)
	}
	return nil
}

// CreatedTags returns the number of created-file tags the tracepoint
// backend holds (at most 65,536: created_ino in bpf/created.h); 0 on the
// LSM backend, whose tags live with their inodes.
func (c *Capture) CreatedTags() (int, error) {
	if c.createdIno == nil {
		return 0, nil
	}
	all, err := keysWhere(c.createdIno, func(*createdKey, *createdTag) bool { return true })
	if err != nil {
		return 0, fmt.Errorf("count created-file tags: %w", err)
	}
	return len(all), nil
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

type allowKey struct {
	NS  uint64
	Key uint64
}

// Allow adds kernel allow keys (Key of the model's records) to the allow
// set of namespace ns. Fill it before SetMode(ns, ModeEnforce).
func (c *Capture) Allow(ns uint64, keys ...uint64) error {
	if len(keys) == 0 {
		return nil
	}
	ks := make([]allowKey, len(keys))
	vs := make([]uint8, len(keys))
	for i, k := range keys {
		ks[i] = allowKey{NS: ns, Key: k}
		vs[i] = 1
	}
	if _, err := c.allow.BatchUpdate(ks, vs, nil); err == nil {
		return nil
	} else if !errors.Is(err, ebpf.ErrNotSupported) {
		return fmt.Errorf("allow %d keys in namespace %d: %w", len(keys), ns, err)
	}
	for i := range ks {
		if err := c.allow.Update(ks[i], vs[i], ebpf.UpdateAny); err != nil {
			return fmt.Errorf("allow key %#x in namespace %d: %w", ks[i].Key, ns, err)
		}
	}
	return nil
}

// ClearAllow empties the allow set of namespace ns.
func (c *Capture) ClearAllow(ns uint64) error {
	dead, err := keysWhere(c.allow, func(k *allowKey, _ *uint8) bool { return k.NS == ns })
	if err != nil {
		return fmt.Errorf("clear allow set of namespace %d: %w", ns, err)
	}
	// Forget cached decisions first: from here on an event of ns is
	// checked against the allow set as it is being emptied.
	if err := c.bumpGen(ns); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("clear allow set of namespace %d: %w", ns, err)
	}
	if err := deleteKeys(c.allow, dead); err != nil {
		return fmt.Errorf("clear allow set of namespace %d: %w", ns, err)
	}
	return nil
}

type lossKey struct {
	NS     uint64
	Reason uint32
	_      uint32
}

// Lost returns every non-zero loss counter, summed over CPUs: the kernel's
// per namespace and reason, LossOverflow (namespace 0) for losses the
// kernel could not attribute, and LossDecode (namespace 0) for records
// the reader could not decode.
func (c *Capture) Lost() (map[LossKey]uint64, error) {
	out := make(map[LossKey]uint64)
	var (
		k  lossKey
		vs []uint64
	)
	it := c.loss.Iterate()
	for it.Next(&k, &vs) {
		var sum uint64
		for _, v := range vs {
			sum += v
		}
		if sum != 0 {
			out[LossKey{NS: k.NS, Reason: LossReason(k.Reason)}] += sum
		}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read loss counters: %w", err)
	}
	var zero uint32
	if err := c.lossOverflow.Lookup(zero, &vs); err != nil {
		return nil, fmt.Errorf("read loss overflow counter: %w", err)
	}
	var sum uint64
	for _, v := range vs {
		sum += v
	}
	if sum != 0 {
		out[LossKey{Reason: LossOverflow}] = sum
	}
	if n := c.decodeErrs.Load(); n != 0 {
		out[LossKey{Reason: LossDecode}] = n
	}
	return out, nil
}

// RingFill returns how full the ring buffer is, from 0 to 1: the bytes the
// kernel has written that the reader has not consumed yet. It is a sample,
// safe to call from any goroutine, and 0 once the Capture is closed.
func (c *Capture) RingFill() float64 {
	c.fillMu.RLock()
	defer c.fillMu.RUnlock()
	if c.fillClosed || c.rd == nil || c.rd.BufferSize() <= 0 {
		return 0
	}
	return float64(c.rd.AvailableBytes()) / float64(c.rd.BufferSize())
}

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
		c.repMu.Lock()
		c.repClosed = true
		if c.repCur != nil {
			c.repCur.Close()
		}
		c.repMu.Unlock()
		errs = append(errs, closeLinks(c.links))
		if c.collect != nil {
			errs = append(errs, c.collect.Close())
		}
		if c.coll != nil {
			c.coll.Close()
		}
		if err := errors.Join(errs...); err != nil {
			c.closeErr = fmt.Errorf("close capture: %w", err)
		}
	})
	return c.closeErr
}
