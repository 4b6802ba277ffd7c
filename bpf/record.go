package bpf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// The layout of every record is fixed by bpf/lib/records.h; the sizes below are
// checked against the BTF of the compiled object by the spec tests, so a
// change on one side without the other fails `go test`.
const (
	// HeaderSize is the size of the header that starts every record.
	HeaderSize = 120
	// PathMax is the size of a path buffer in a record, including the
	// terminating NUL; longer paths are cut and flagged PathTruncated.
	PathMax = 512
	// CommLen is the size of the task name (TASK_COMM_LEN).
	CommLen = 16

	inodeSize = 136
	ctagSize  = 24
	pathSize  = 8 + PathMax
	fileSize  = 8 + inodeSize + pathSize
	sockSize  = 24
	addrSize  = 168

	// String fields, NUL included: SbMount's device name and file
	// system type, KernelModuleRequest's name.
	devNameMax  = 256
	fsTypeMax   = 64
	kmodNameMax = 64
)

// RecordType says which payload follows the header. The numbers are part
// of the kernel ABI of this package (bpf/lib/records.h); names are TSEM's.
type RecordType uint16

// Record types. Each names the TSEM event it describes, except TaskFork
// and TaskExit, which carry task lifecycle only (for task identity).
const (
	RecFileOpen            RecordType = 1  // file_open
	RecExec                RecordType = 2  // bprm_committed_creds
	RecMmapFile            RecordType = 3  // mmap_file
	RecFileIoctl           RecordType = 4  // file_ioctl
	RecSocketCreate        RecordType = 5  // socket_create
	RecSocketConnect       RecordType = 6  // socket_connect
	RecSocketBind          RecordType = 7  // socket_bind
	RecSocketAccept        RecordType = 8  // socket_accept
	RecTaskKill            RecordType = 9  // task_kill
	RecInodeCreate         RecordType = 10 // inode_create
	RecInodeUnlink         RecordType = 11 // inode_unlink
	RecInodeMkdir          RecordType = 12 // inode_mkdir
	RecInodeRename         RecordType = 13 // inode_rename
	RecInodeSetattr        RecordType = 14 // inode_setattr
	RecSbMount             RecordType = 15 // sb_mount
	RecPtraceAccessCheck   RecordType = 16 // ptrace_access_check
	RecKernelModuleRequest RecordType = 17 // kernel_module_request
	RecKernelReadFile      RecordType = 18 // kernel_read_file
	RecBpf                 RecordType = 19 // bpf
	RecCapable             RecordType = 20 // capable
	RecTaskFork            RecordType = 21 // (lifecycle) a task forked
	RecTaskExit            RecordType = 22 // (lifecycle) a task exited
	RecExecScript          RecordType = 23 // file_open of the script of an interpreter exec (tracepoint)
	recTypeEnd             RecordType = 24

	// RecRepeatCount is made by Capture.Run, not by the kernel: the
	// suppressed repeats of a repeat cache entry (*RepeatCount).
	RecRepeatCount RecordType = 0x100
)

var recordNames = [recTypeEnd]string{
	RecFileOpen:            "file_open",
	RecExec:                "bprm_committed_creds",
	RecMmapFile:            "mmap_file",
	RecFileIoctl:           "file_ioctl",
	RecSocketCreate:        "socket_create",
	RecSocketConnect:       "socket_connect",
	RecSocketBind:          "socket_bind",
	RecSocketAccept:        "socket_accept",
	RecTaskKill:            "task_kill",
	RecInodeCreate:         "inode_create",
	RecInodeUnlink:         "inode_unlink",
	RecInodeMkdir:          "inode_mkdir",
	RecInodeRename:         "inode_rename",
	RecInodeSetattr:        "inode_setattr",
	RecSbMount:             "sb_mount",
	RecPtraceAccessCheck:   "ptrace_access_check",
	RecKernelModuleRequest: "kernel_module_request",
	RecKernelReadFile:      "kernel_read_file",
	RecBpf:                 "bpf",
	RecCapable:             "capable",
	RecTaskFork:            "task_fork",
	RecTaskExit:            "task_exit",
	RecExecScript:          "file_open",
}

// String returns the TSEM event name of the record type ("file_open"), or
// "task_fork"/"task_exit" for the lifecycle records, or "type(N)".
func (t RecordType) String() string {
	if t < recTypeEnd && recordNames[t] != "" {
		return recordNames[t]
	}
	if t == RecRepeatCount {
		return "repeat_count"
	}
	return fmt.Sprintf("type(%d)", uint16(t))
}

// recordSizes is the exact size of each record type, header included.
var recordSizes = [recTypeEnd]int{
	RecFileOpen:            HeaderSize + fileSize,
	RecExec:                HeaderSize + 8 + fileSize,
	RecMmapFile:            HeaderSize + 8 + fileSize,
	RecFileIoctl:           HeaderSize + 16 + fileSize,
	RecSocketCreate:        HeaderSize + 16,
	RecSocketConnect:       HeaderSize + sockSize + addrSize,
	RecSocketBind:          HeaderSize + sockSize + addrSize,
	RecSocketAccept:        HeaderSize + sockSize + addrSize,
	RecTaskKill:            HeaderSize + 32,
	RecInodeCreate:         HeaderSize + inodeSize + 8 + ctagSize + pathSize,
	RecInodeUnlink:         HeaderSize + 2*inodeSize + pathSize,
	RecInodeMkdir:          HeaderSize + inodeSize + 8 + ctagSize + pathSize,
	RecInodeRename:         HeaderSize + 4*inodeSize + 8 + 2*pathSize,
	RecInodeSetattr:        HeaderSize + inodeSize + 24 + pathSize,
	RecSbMount:             HeaderSize + 8 + pathSize + devNameMax + fsTypeMax,
	RecPtraceAccessCheck:   HeaderSize + 32,
	RecKernelModuleRequest: HeaderSize + kmodNameMax,
	RecKernelReadFile:      HeaderSize + 8 + fileSize,
	RecBpf:                 HeaderSize + 8,
	RecCapable:             HeaderSize + 8,
	RecTaskFork:            HeaderSize + 16,
	RecTaskExit:            HeaderSize + 8,
	RecExecScript:          HeaderSize + fileSize,
}

// RecordSize returns the size in bytes of a record of type t, header
// included, and false for an unknown type.
func RecordSize(t RecordType) (int, bool) {
	if t == 0 || t >= recTypeEnd {
		return 0, false
	}
	return recordSizes[t], true
}

// HeaderFlags are the flag bits of Header.Flags.
type HeaderFlags uint32

// Header flags.
const (
	// FlagUntrusted: the task was marked untrusted when the event happened.
	FlagUntrusted HeaderFlags = 1 << 0
	// FlagDenied: the kernel refused the event with EPERM (enforce mode).
	FlagDenied HeaderFlags = 1 << 1
	// FlagObserved: the event was seen by the tracepoint backend after the
	// fact (observe only; it could not have been denied).
	FlagObserved HeaderFlags = 1 << 2
	// FlagKey: Header.Key holds the kernel allow key of the event.
	FlagKey HeaderFlags = 1 << 3
)

// COE holds the credentials of the acting task, ids in the initial user
// namespace. It has the field set of events.COE, so events.COE(h.COE)
// converts it.
type COE struct {
	UID, EUID, SUID, GID, EGID, SGID, FSUID, FSGID uint32
	CapEff                                         uint64
}

// Header starts every record.
type Header struct {
	Size  uint16
	Type  RecordType
	Flags HeaderFlags
	// NS is the modeling namespace of the task (0: the host).
	NS uint64
	// KTime is bpf_ktime_get_ns() at the event (nanoseconds since boot).
	KTime uint64
	// PID is the thread id and TGID the process id, in the initial pid
	// namespace.
	PID, TGID uint32
	Comm      [CommLen]byte
	COE       COE
	// TTD is the task's trust domain: a number the kernel gives a task at
	// every exec (and at its first event after Enroll), never repeated
	// while the Capture is open. Forked tasks keep their parent's TTD.
	// PTTD is the TTD the task's parent had when it forked (0 for a task
	// enrolled from outside the namespace). Userspace maps TTDs to TSEM
	// task ids: task_id(TTD) is computed at the RecExec record that
	// created it, p_task_id is task_id(PTTD).
	TTD, PTTD uint64
	// Key is the kernel allow key of the event when FlagKey is set (the
	// kernel computes it only in enforcing namespaces); see Key.
	Key uint64
	// RepeatID names the kernel's repeat cache entry of the event (0: not
	// cached). Events identical to it (the same repeat cache key, so the
	// same TSEM coefficient) that the kernel suppressed are delivered
	// later as a *RepeatCount with the same RepeatID, or, when there were
	// none, the entry ends at a *RepeatCount finish marker.
	RepeatID uint64
}

// Head returns the header; every record type embeds Header.
func (h *Header) Head() *Header { return h }

// Process returns the task name, byte-exact up to the first NUL.
func (h *Header) Process() string { return cstring(h.Comm[:]) }

// Inode is an inode with the superblock it lives on. Ino, Size and the
// times make the digest cache key together with the device.
type Inode struct {
	Ino       uint64
	Size      uint64
	CTimeSec  int64
	MTimeSec  int64
	CTimeNsec uint32
	MTimeNsec uint32
	UID, GID  uint32 // in the initial user namespace
	Mode      uint32 // i_mode: file type and permission bits
	SMagic    uint32
	DevMajor  uint32 // of the superblock's s_dev
	DevMinor  uint32
	SID       [32]byte
	SUUID     [16]byte
	// Created is the inode's tag when a task of a modeling namespace
	// created it (see CreatedTag); the LSM backend leaves it zero for the
	// directories of inode events, whose names TSEM does not hash.
	Created CreatedTag
}

// CreatedTag says that a task of a modeling namespace created a file:
// TSEM names such a file in the events of that namespace by its
// directory, Instance and the task id of its creator (OwnerTTD) instead of
// its name, which is often random (mkstemp). Instance counts the files
// the creating process made in that directory since its exec, from 1 (TSEM
// counts per task id). Instance 0 means no tag.
type CreatedTag struct {
	NS       uint64
	OwnerTTD uint64
	Instance uint64
}

// In reports whether t tags a file created in namespace ns: only then do
// ns's events name the file by its tag (a file created by an earlier
// namespace is named by its path, as TSEM does).
func (t CreatedTag) In(ns uint64) bool { return t.Instance != 0 && t.NS == ns }

// SIDString returns s_id up to its first NUL.
func (i *Inode) SIDString() string { return cstring(i.SID[:]) }

// PathFlags describe how a path was resolved.
type PathFlags uint32

// Path flags.
const (
	// PathTruncated: the path was longer than PathMax-1 bytes or deeper
	// than the kernel walks; Name holds its last components.
	PathTruncated PathFlags = 1 << 0
	// PathNoMount: the kernel had only a dentry (inode hooks), so Name is
	// relative to the root of the inode's filesystem.
	PathNoMount PathFlags = 1 << 1
	// PathDetached: the walk did not reach the task's root nor a mount
	// without parent (pseudo files, unlinked files, other mount spaces).
	PathDetached PathFlags = 1 << 2
)

// Path is a pathname as the kernel resolved it.
type Path struct {
	Flags PathFlags
	// Name is the pathname's raw bytes (not necessarily UTF-8).
	Name string
}

// File is a file: its open flags, inode and path. Present is false for
// the absent file of an anonymous mmap.
type File struct {
	Present bool
	Flags   uint32 // f_flags
	Inode   Inode
	Path    Path
}

// Sock is the socket of a socket event.
type Sock struct {
	Family, Type, Protocol uint32
	// OwnerTTD is the TTD of the task that created the socket when the
	// kernel knows it, else the acting task's.
	OwnerTTD uint64
}

// Addr is a socket address as the task gave it. Port and Addr4 keep
// TSEM's convention: the network-order bytes read as a little-endian
// integer (port 80 is 20480).
type Addr struct {
	Family uint16
	Port   uint16
	Addr4  uint32
	Flow   uint32
	Scope  uint32
	Addr6  [16]byte
	// Len is the address length the task passed.
	Len uint32
	// Raw holds the address bytes after the family (up to 126, the rest
	// of a sockaddr_storage): the sun_path of a unix address, the
	// network-order port and address of inet ones.
	Raw [128]byte
}

// UnixPath returns the unix socket path (up to the first NUL; an
// abstract address starts with a NUL and is returned with it, up to Len).
func (a *Addr) UnixPath() string {
	if a.Raw[0] == 0 {
		n := int(a.Len) - 2
		if n < 0 {
			n = 0
		}
		if n > len(a.Raw) {
			n = len(a.Raw)
		}
		return string(a.Raw[:n])
	}
	return cstring(a.Raw[:])
}

// Record is a decoded record: one of the pointer types below.
type Record interface {
	Head() *Header
}

// FileOpen is a file_open record.
type FileOpen struct {
	Header
	File File
}

// Exec is a bprm_committed_creds record: the task just executed File and
// got a new TTD (Header.TTD); PrevTTD is the one it had before.
type Exec struct {
	Header
	PrevTTD uint64
	File    File
}

// ExecScript is the file_open of a script (a "#!" file, or a file
// binfmt_misc hands to an interpreter) that an exec ran through its
// interpreter, as the tracepoint backend reports it: the header is the
// task's before the exec (its TTD; the process name and credentials are
// already the new ones), and the Exec record that follows names the
// interpreter. The kernel opened the script with exec flags before the
// interpreter, as TSEM's file_open reports it; the LSM backend reports
// that open as a FileOpen. File.Present is false when the kernel could
// not find the script's file: Path.Name is then the path the exec was
// given and the inode is zero.
type ExecScript struct {
	Header
	File File
}

// MmapFile is an mmap_file record (the tracepoint backend reports only
// mappings with PROT_EXEC). File.Present is false for anonymous memory.
type MmapFile struct {
	Header
	Prot, MmapFlags uint32
	File            File
}

// FileIoctl is a file_ioctl record.
type FileIoctl struct {
	Header
	Cmd  uint32
	Arg  uint64
	File File
}

// SocketCreate is a socket_create record.
type SocketCreate struct {
	Header
	Family, Type, Protocol, Kern uint32
}

// SocketAddr is a socket_connect, socket_bind or socket_accept record (for
// accept, Addr is the local address of the listening socket).
type SocketAddr struct {
	Header
	Sock Sock
	Addr Addr
}

// TaskTarget names the target of task_kill and ptrace_access_check. The
// tracepoint backend knows only the pid (TargetNS and TargetTTD are 0,
// TargetKnown false).
type TaskTarget struct {
	PID, TGID   uint32
	NS          uint64
	TTD         uint64
	TargetKnown bool
}

// TaskKill is a task_kill record.
type TaskKill struct {
	Header
	Target  TaskTarget
	Sig     uint32
	CrossNS uint32
}

// PtraceAccessCheck is a ptrace_access_check record.
type PtraceAccessCheck struct {
	Header
	Target TaskTarget
	Mode   uint32
}

// InodeCreate is an inode_create or inode_mkdir record; Path is relative to
// the filesystem root of Dir (PathNoMount) and its device is Dir's.
// Created is the tag the new file gets (Instance 0 when it could not get
// one; the loss is counted as LossCreated).
type InodeCreate struct {
	Header
	Dir     Inode
	Mode    uint32
	Created CreatedTag
	Path    Path
}

// InodeUnlink is an inode_unlink record.
type InodeUnlink struct {
	Header
	Dir   Inode
	Inode Inode
	Path  Path
}

// InodeRename is an inode_rename record: OldInode is the inode renamed
// (HasOld), NewInode the one the rename replaces (HasNew).
type InodeRename struct {
	Header
	OldDir, NewDir     Inode
	OldInode, NewInode Inode
	HasOld, HasNew     bool
	RenameFlags        uint32
	OldPath, NewPath   Path
}

// InodeSetattr is an inode_setattr record; Mode, UID, GID and Size are
// meaningful only where Valid (ATTR_* bits) says so.
type InodeSetattr struct {
	Header
	Inode       Inode
	Valid, Mode uint32
	UID, GID    uint32
	Size        uint64
	Path        Path
}

// SbMount is an sb_mount record.
type SbMount struct {
	Header
	MountFlags uint64
	Path       Path
	DevName    string
	FSType     string
}

// KernelModuleRequest is a kernel_module_request record.
type KernelModuleRequest struct {
	Header
	Name string
}

// KernelReadFile is a kernel_read_file record.
type KernelReadFile struct {
	Header
	ID       uint32 // enum kernel_read_file_id
	Contents uint32
	File     File
}

// Bpf is a bpf record (the bpf(2) command).
type Bpf struct {
	Header
	Cmd, AttrSize uint32
}

// Capable is a capable record.
type Capable struct {
	Header
	Cap, Opts uint32
}

// TaskFork says the task of the header forked Child; the child has the
// header's TTD and its PTTD is the header's TTD.
type TaskFork struct {
	Header
	ChildPID, ChildTGID uint32
	ChildTTD            uint64
}

// TaskExit says the task of the header exited.
type TaskExit struct {
	Header
	ExitCode uint32
}

// RepeatCount is what Capture.Run hands on from the kernel's repeat cache
// each time it replaces it (every repeat window, at FlushRepeats and when
// Run ends), after every record made before the replacement. It is one of
// two things; its header has Type RecRepeatCount, NS and KTime (when the
// counts were taken), the rest but RepeatID is zero.
//
// A count (RepeatID not 0): Count (never 0) events identical to the
// record(s) with RepeatID happened and were not recorded one by one (the
// kernel's repeat cache suppressed them). It is final: no record or count
// with that RepeatID follows it.
//
// A finish marker (RepeatID 0, Below not 0): every entry of namespace NS
// with a RepeatID below Below has ended, and those that were repeated
// had their counts before the marker; no record or count with such an id
// follows. Entries without repeats get no count, only their marker.
// RepeatIDs grow with time (the kernel hands them out from one counter),
// so a consumer keeps the ids from Below on and drops the rest.
type RepeatCount struct {
	Header
	Count uint64
	Below uint64
}

// Finished reports whether r is a finish marker.
func (r *RepeatCount) Finished() bool { return r.RepeatID == 0 && r.Below != 0 }

// Decoding errors. ParseRecord wraps them with the offending values.
var (
	ErrShortRecord   = errors.New("short record")
	ErrUnknownRecord = errors.New("unknown record type")
	ErrRecordSize    = errors.New("record size mismatch")
)

// ParseRecord decodes one record as the kernel wrote it. raw must hold at
// least the record's size; bytes past Header.Size are ignored (the ring
// buffer pads records to 8 bytes). The returned record does not alias raw.
func ParseRecord(raw []byte) (Record, error) {
	if len(raw) < HeaderSize {
		return nil, fmt.Errorf("parse record: %d bytes, header needs %d: %w", len(raw), HeaderSize, ErrShortRecord)
	}
	d := decoder{b: raw}
	var h Header
	d.header(&h)
	want, ok := RecordSize(h.Type)
	if !ok {
		return nil, fmt.Errorf("parse record: type %d at offset 2: %w", uint16(h.Type), ErrUnknownRecord)
	}
	if int(h.Size) != want {
		return nil, fmt.Errorf("parse record: %s: size field %d, want %d: %w", h.Type, h.Size, want, ErrRecordSize)
	}
	if len(raw) < want {
		return nil, fmt.Errorf("parse record: %s: %d bytes, want %d: %w", h.Type, len(raw), want, ErrShortRecord)
	}
	d.b = raw[:want]
	switch h.Type {
	case RecFileOpen:
		r := &FileOpen{Header: h}
		d.file(&r.File)
		return r, nil
	case RecExecScript:
		r := &ExecScript{Header: h}
		d.file(&r.File)
		return r, nil
	case RecExec:
		r := &Exec{Header: h}
		r.PrevTTD = d.u64()
		d.file(&r.File)
		return r, nil
	case RecMmapFile:
		r := &MmapFile{Header: h}
		r.Prot, r.MmapFlags = d.u32(), d.u32()
		d.file(&r.File)
		return r, nil
	case RecFileIoctl:
		r := &FileIoctl{Header: h}
		r.Cmd = d.u32()
		d.skip(4)
		r.Arg = d.u64()
		d.file(&r.File)
		return r, nil
	case RecSocketCreate:
		r := &SocketCreate{Header: h}
		r.Family, r.Type, r.Protocol, r.Kern = d.u32(), d.u32(), d.u32(), d.u32()
		return r, nil
	case RecSocketConnect, RecSocketBind, RecSocketAccept:
		r := &SocketAddr{Header: h}
		r.Sock.Family, r.Sock.Type, r.Sock.Protocol = d.u32(), d.u32(), d.u32()
		d.skip(4)
		r.Sock.OwnerTTD = d.u64()
		d.addr(&r.Addr)
		return r, nil
	case RecTaskKill:
		r := &TaskKill{Header: h}
		d.target(&r.Target)
		r.Sig, r.CrossNS = d.u32(), d.u32()
		return r, nil
	case RecPtraceAccessCheck:
		r := &PtraceAccessCheck{Header: h}
		d.target(&r.Target)
		r.Mode = d.u32()
		return r, nil
	case RecInodeCreate, RecInodeMkdir:
		r := &InodeCreate{Header: h}
		d.inode(&r.Dir)
		r.Mode = d.u32()
		d.skip(4)
		d.ctag(&r.Created)
		d.path(&r.Path)
		return r, nil
	case RecInodeUnlink:
		r := &InodeUnlink{Header: h}
		d.inode(&r.Dir)
		d.inode(&r.Inode)
		d.path(&r.Path)
		return r, nil
	case RecInodeRename:
		r := &InodeRename{Header: h}
		d.inode(&r.OldDir)
		d.inode(&r.NewDir)
		d.inode(&r.OldInode)
		d.inode(&r.NewInode)
		r.RenameFlags = d.u32()
		present := d.u32()
		r.HasOld, r.HasNew = present&renameOld != 0, present&renameNew != 0
		d.path(&r.OldPath)
		d.path(&r.NewPath)
		return r, nil
	case RecInodeSetattr:
		r := &InodeSetattr{Header: h}
		d.inode(&r.Inode)
		r.Valid, r.Mode, r.UID, r.GID = d.u32(), d.u32(), d.u32(), d.u32()
		r.Size = d.u64()
		d.path(&r.Path)
		return r, nil
	case RecSbMount:
		r := &SbMount{Header: h}
		r.MountFlags = d.u64()
		d.path(&r.Path)
		r.DevName = d.cstr(devNameMax)
		r.FSType = d.cstr(fsTypeMax)
		return r, nil
	case RecKernelModuleRequest:
		r := &KernelModuleRequest{Header: h}
		r.Name = d.cstr(kmodNameMax)
		return r, nil
	case RecKernelReadFile:
		r := &KernelReadFile{Header: h}
		r.ID, r.Contents = d.u32(), d.u32()
		d.file(&r.File)
		return r, nil
	case RecBpf:
		r := &Bpf{Header: h}
		r.Cmd, r.AttrSize = d.u32(), d.u32()
		return r, nil
	case RecCapable:
		r := &Capable{Header: h}
		r.Cap, r.Opts = d.u32(), d.u32()
		return r, nil
	case RecTaskFork:
		r := &TaskFork{Header: h}
		r.ChildPID, r.ChildTGID = d.u32(), d.u32()
		r.ChildTTD = d.u64()
		return r, nil
	case RecTaskExit:
		r := &TaskExit{Header: h}
		r.ExitCode = d.u32()
		return r, nil
	}
	return nil, fmt.Errorf("parse record: type %d: %w", uint16(h.Type), ErrUnknownRecord)
}

// decoder reads little-endian fields in order. Callers check the length
// first (ParseRecord checks the exact record size), so reads never run
// past the end.
type decoder struct {
	b   []byte
	off int
}

func (d *decoder) u16() uint16 {
	v := binary.LittleEndian.Uint16(d.b[d.off:])
	d.off += 2
	return v
}

func (d *decoder) u32() uint32 {
	v := binary.LittleEndian.Uint32(d.b[d.off:])
	d.off += 4
	return v
}

func (d *decoder) u64() uint64 {
	v := binary.LittleEndian.Uint64(d.b[d.off:])
	d.off += 8
	return v
}

func (d *decoder) skip(n int) { d.off += n }

func (d *decoder) bytes(dst []byte) {
	copy(dst, d.b[d.off:d.off+len(dst)])
	d.off += len(dst)
}

func (d *decoder) cstr(n int) string {
	s := cstring(d.b[d.off : d.off+n])
	d.off += n
	return s
}

func (d *decoder) header(h *Header) {
	h.Size = d.u16()
	h.Type = RecordType(d.u16())
	h.Flags = HeaderFlags(d.u32())
	h.NS = d.u64()
	h.KTime = d.u64()
	h.PID, h.TGID = d.u32(), d.u32()
	d.bytes(h.Comm[:])
	c := &h.COE
	c.UID, c.EUID, c.SUID = d.u32(), d.u32(), d.u32()
	c.GID, c.EGID, c.SGID = d.u32(), d.u32(), d.u32()
	c.FSUID, c.FSGID = d.u32(), d.u32()
	c.CapEff = d.u64()
	h.TTD, h.PTTD, h.Key = d.u64(), d.u64(), d.u64()
	h.RepeatID = d.u64()
}

func (d *decoder) inode(i *Inode) {
	i.Ino, i.Size = d.u64(), d.u64()
	i.CTimeSec, i.MTimeSec = int64(d.u64()), int64(d.u64())
	i.CTimeNsec, i.MTimeNsec = d.u32(), d.u32()
	i.UID, i.GID, i.Mode, i.SMagic = d.u32(), d.u32(), d.u32(), d.u32()
	i.DevMajor, i.DevMinor = d.u32(), d.u32()
	d.bytes(i.SID[:])
	d.bytes(i.SUUID[:])
	d.ctag(&i.Created)
}

func (d *decoder) ctag(t *CreatedTag) {
	t.NS, t.OwnerTTD, t.Instance = d.u64(), d.u64(), d.u64()
}

// enum vg_rename_present
const (
	renameOld = 1 << 0
	renameNew = 1 << 1
)

func (d *decoder) path(p *Path) {
	n := int(d.u32())
	p.Flags = PathFlags(d.u32())
	buf := d.b[d.off : d.off+PathMax]
	if n > PathMax-1 {
		n = PathMax - 1
	}
	// The kernel writes the length it resolved; a NUL before it means the
	// kernel cut the name short, so trust the shorter of the two.
	if i := bytes.IndexByte(buf[:n], 0); i >= 0 {
		n = i
	}
	p.Name = string(buf[:n])
	d.off += PathMax
}

func (d *decoder) file(f *File) {
	f.Flags = d.u32()
	f.Present = d.u32() != 0
	d.inode(&f.Inode)
	d.path(&f.Path)
}

func (d *decoder) addr(a *Addr) {
	a.Family, a.Port = d.u16(), d.u16()
	a.Addr4, a.Flow, a.Scope = d.u32(), d.u32(), d.u32()
	d.bytes(a.Addr6[:])
	a.Len = d.u32()
	d.skip(4)
	d.bytes(a.Raw[:])
}

func (d *decoder) target(t *TaskTarget) {
	t.PID, t.TGID = d.u32(), d.u32()
	t.NS, t.TTD = d.u64(), d.u64()
	t.TargetKnown = t.TTD != 0
}

func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}
