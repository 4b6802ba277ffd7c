package events

import (
	"slices"
	"strconv"
	"strings"
)

// Kind is what Vigil knows of one TSEM event name: the payload its
// description parses into, its ECS categorisation, how package model lays
// out its coefficient cell (or why it cannot), and which capture backends
// record it. The catalogue (Kinds) has one Kind per name the TSEM kernel
// prints; a Kind is immutable.
//
// The parser, the encoders and the model dispatch on payload types, where
// a type switch is the clean Go; tests hold them to the catalogue:
// kinds_test.go here and tests in model, namespace and internal/agent feed
// every kind's sample description (eventstest/kinds.jsonl) through their
// stage, and tests in bpf check record types, LSM programs and captured
// records against it. docs/adding-an-event.md lists the steps to add a
// kind.
type Kind struct {
	name string
	// payload returns a new zero payload of the kind's typed layout; nil
	// for a kind without one (parsed as *Generic).
	payload func() Payload
	ecs     ecsCat
	cell    Cell
	// unmodeled says why a kind with cell CellNone has no coefficient.
	unmodeled string
	captured  Backends
}

// Name returns the TSEM event name ("file_open").
func (k *Kind) Name() string { return k.name }

// NewPayload returns a new zero payload of the layout a description of
// the kind parses into: a typed payload (*FileEvent, ...), or a *Generic
// for a kind without a typed layout here.
func (k *Kind) NewPayload() Payload {
	if k.payload == nil {
		return &Generic{}
	}
	return k.payload()
}

// ECS returns the ECS event.category and event.type values of the kind's
// documents (copies).
func (k *Kind) ECS() (category, types []string) {
	return slices.Clone(k.ecs.category), slices.Clone(k.ecs.types)
}

// Cell says how package model lays out the kind's coefficient cell.
func (k *Kind) Cell() Cell { return k.cell }

// Unmodeled returns why the kind has no coefficient layout (Cell is
// CellNone), or "" for a modeled kind. A namespace counts an unmodeled
// event (namespace.Stats.Unmodeled) and keeps it out of the model.
func (k *Kind) Unmodeled() string { return k.unmodeled }

// CapturedBy returns the capture backends that record the kind.
func (k *Kind) CapturedBy() Backends { return k.captured }

// Cell is how a kind's coefficient cell (the CELL bytes whose hash enters
// the coefficient) is laid out.
type Cell uint8

// The cell layouts.
const (
	// CellNone: no layout is known; Kind.Unmodeled says why.
	CellNone Cell = iota
	// CellTyped: the kernel's layout of the typed payload.
	CellTyped
	// CellMembers: a kernel layout whose members are plain numbers or
	// strings, read from the *Generic payload.
	CellMembers
	// CellGeneric: the kernel models the event without parameters: its
	// description has an empty payload object, and its cell is the type
	// name followed by the namespace's zero digest.
	CellGeneric
)

func (c Cell) String() string {
	switch c {
	case CellNone:
		return "none"
	case CellTyped:
		return "typed"
	case CellMembers:
		return "members"
	case CellGeneric:
		return "generic"
	}
	return "cell(" + strconv.Itoa(int(c)) + ")"
}

// Backends is a set of capture backends (package bpf's Backend values).
type Backends uint8

// The capture backends.
const (
	// CapturedByLSM: a BPF LSM program on the hook of the kind's name
	// records it (and can deny it when enforcing).
	CapturedByLSM Backends = 1 << iota
	// CapturedByTracepoint: the tracepoint programs record it after the
	// fact (observe only).
	CapturedByTracepoint
)

func (b Backends) String() string {
	var s []string
	if b&CapturedByLSM != 0 {
		s = append(s, "lsm")
	}
	if b&CapturedByTracepoint != 0 {
		s = append(s, "tracepoint")
	}
	if rest := b &^ (CapturedByLSM | CapturedByTracepoint); rest != 0 {
		s = append(s, "backends("+strconv.Itoa(int(rest))+")")
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ",")
}

// typed is the payload constructor of a typed layout.
func typed[T any, P interface {
	*T
	Payload
}]() Payload {
	return P(new(T))
}

// Reasons a kind is unmodeled.
const (
	noPayload     = "the kernel lays out its cell, but events has no typed payload for it yet"
	noIPCPayload  = "the kernel lays out its cell (the IPC object's permissions), but events has no typed payload for it yet"
	noKernelCell  = "the kernel source Vigil follows has no cell layout for it"
	encodedXattrs = "the kernel hashes the raw attribute value; the description carries only an encoding of it, which is not pinned down"
)

const (
	lsm  = CapturedByLSM
	both = CapturedByLSM | CapturedByTracepoint
)

// kinds is the catalogue, in the order of the TSEM kernel's event
// enumeration (its name table without "undefined").
var kinds = [...]Kind{
	{name: "bprm_committed_creds", payload: typed[FileEvent], ecs: catProcStart, cell: CellTyped, captured: both},
	{name: "task_kill", payload: typed[TaskKill], ecs: catProcAccess, cell: CellTyped, captured: both},
	{name: "task_setpgid", payload: typed[TaskSetpgid], ecs: catProcChange, cell: CellTyped},
	{name: "task_getpgid", payload: typed[TaskTarget], ecs: catProcInfo, cell: CellTyped},
	{name: "task_getsid", payload: typed[TaskTarget], ecs: catProcInfo, cell: CellTyped},
	{name: "task_setnice", payload: typed[TaskValue], ecs: catProcChange, cell: CellTyped},
	{name: "task_setioprio", payload: typed[TaskValue], ecs: catProcChange, cell: CellTyped},
	{name: "task_getioprio", payload: typed[TaskTarget], ecs: catProcInfo, cell: CellTyped},
	{name: "task_prlimit", payload: typed[TaskPrlimit], ecs: catProcChange, cell: CellTyped},
	{name: "task_setrlimit", payload: typed[TaskSetrlimit], ecs: catProcChange, cell: CellTyped},
	{name: "task_setscheduler", payload: typed[TaskTarget], ecs: catProcChange, cell: CellTyped},
	{name: "task_getscheduler", payload: typed[TaskTarget], ecs: catProcInfo, cell: CellTyped},
	{name: "task_prctl", payload: typed[TaskPrctl], ecs: catProcChange, cell: CellTyped},
	{name: "file_open", payload: typed[FileEvent], ecs: catFileAccess, cell: CellTyped, captured: both},
	{name: "mmap_file", payload: typed[MmapFile], ecs: catFileAccess, cell: CellTyped, captured: both},
	{name: "file_ioctl", payload: typed[FileCmd], ecs: catFileAccess, cell: CellTyped, captured: lsm},
	{name: "file_ioctl_compat", ecs: catFileAccess, unmodeled: noKernelCell},
	{name: "file_lock", payload: typed[FileCmd], ecs: catFileAccess, cell: CellTyped},
	{name: "file_fcntl", payload: typed[FileCmd], ecs: catFileAccess, cell: CellTyped},
	{name: "file_receive", payload: typed[FileEvent], ecs: catFileAccess, cell: CellTyped},
	{name: "file_truncate", ecs: catFileChange, cell: CellGeneric},
	{name: "unix_stream_connect", payload: typed[SockPair], ecs: catNetConn, cell: CellTyped},
	{name: "unix_may_send", payload: typed[SockPair], ecs: catNetAccess, cell: CellTyped},
	{name: "socket_create", payload: typed[SocketCreate], ecs: catNetStart, cell: CellTyped, captured: lsm},
	{name: "socket_connect", payload: typed[SocketAddr], ecs: catNetConn, cell: CellTyped, captured: both},
	{name: "socket_bind", payload: typed[SocketAddr], ecs: catNetStart, cell: CellTyped, captured: both},
	{name: "socket_accept", payload: typed[SocketAddr], ecs: catNetConn, cell: CellTyped, captured: lsm},
	{name: "socket_listen", payload: typed[SockValue], ecs: catNetStart, cell: CellTyped},
	{name: "socket_socketpair", payload: typed[SockPair], ecs: catNetConn, cell: CellTyped},
	{name: "socket_sendmsg", payload: typed[SocketMsg], ecs: catNetAccess, cell: CellTyped},
	{name: "socket_recvmsg", payload: typed[SocketMsg], ecs: catNetAccess, cell: CellTyped},
	{name: "socket_getsockname", payload: typed[SockEvent], ecs: catNetInfo, cell: CellTyped},
	{name: "socket_getpeername", payload: typed[SockEvent], ecs: catNetInfo, cell: CellTyped},
	{name: "socket_setsockopt", payload: typed[SocketSetsockopt], ecs: catNetAccess, cell: CellTyped},
	{name: "socket_shutdown", payload: typed[SockValue], ecs: catNetEnd, cell: CellTyped},
	{name: "ptrace_traceme", payload: typed[PtraceTraceme], ecs: catProcAccess, cell: CellTyped},
	{name: "kernel_module_request", ecs: catDriverStart, cell: CellMembers, captured: lsm},
	{name: "kernel_load_data", ecs: catDriverStart, cell: CellMembers},
	{name: "kernel_read_file", payload: typed[KernelReadFile], ecs: catFileAccess, cell: CellTyped, captured: lsm},
	{name: "sb_mount", payload: typed[SbMount], ecs: catFileChange, cell: CellTyped, captured: lsm},
	{name: "sb_umount", payload: typed[SbUmount], ecs: catFileChange, cell: CellTyped},
	{name: "sb_remount", payload: typed[SbRemount], ecs: catFileChange, cell: CellTyped},
	{name: "sb_pivotroot", payload: typed[PathPair], ecs: catFileChange, cell: CellTyped},
	{name: "sb_statfs", payload: typed[DentryEvent], ecs: catFileInfo, cell: CellTyped},
	{name: "move_mount", payload: typed[PathPair], ecs: catFileChange, cell: CellTyped},
	{name: "shm_associate", ecs: catProcAccess, unmodeled: noIPCPayload},
	{name: "shm_shmctl", ecs: catProcAccess, unmodeled: noIPCPayload},
	{name: "shm_shmat", ecs: catProcAccess, unmodeled: noIPCPayload},
	{name: "sem_associate", ecs: catProcAccess, unmodeled: noIPCPayload},
	{name: "sem_semctl", ecs: catProcAccess, unmodeled: noIPCPayload},
	{name: "sem_semop", ecs: catProcAccess, unmodeled: noIPCPayload},
	{name: "syslog", ecs: catHostAccess, cell: CellMembers},
	{name: "settime", ecs: catHostChange, unmodeled: noPayload},
	{name: "quotactl", ecs: catFileChange, unmodeled: noPayload},
	{name: "quota_on", payload: typed[DentryEvent], ecs: catFileChange, cell: CellTyped},
	{name: "msg_queue_associate", ecs: catProcAccess, unmodeled: noIPCPayload},
	{name: "msg_queue_msgctl", ecs: catProcAccess, unmodeled: noIPCPayload},
	{name: "msg_queue_msgsnd", ecs: catProcAccess, cell: CellGeneric},
	{name: "msg_queue_msgrcv", ecs: catProcAccess, unmodeled: noIPCPayload},
	{name: "ipc_permission", ecs: catProcAccess, unmodeled: noIPCPayload},
	{name: "key_alloc", payload: typed[KeyAlloc], ecs: catIAMCreation, cell: CellTyped},
	{name: "key_permission", payload: typed[KeyPermission], ecs: catIAMInfo, cell: CellTyped},
	{name: "netlink_send", ecs: catNetProtocol, unmodeled: noPayload},
	{name: "inode_create", payload: typed[InodeCreate], ecs: catFileCreation, cell: CellTyped, captured: lsm},
	{name: "inode_link", payload: typed[InodeLink], ecs: catFileCreation, cell: CellTyped},
	{name: "inode_unlink", payload: typed[InodeRemove], ecs: catFileDeletion, cell: CellTyped, captured: lsm},
	{name: "inode_symlink", payload: typed[InodeSymlink], ecs: catFileCreation, cell: CellTyped},
	{name: "inode_mkdir", payload: typed[InodeCreate], ecs: catFileCreation, cell: CellTyped, captured: lsm},
	{name: "inode_rmdir", payload: typed[InodeRemove], ecs: catFileDeletion, cell: CellTyped},
	{name: "inode_mknod", payload: typed[InodeMknod], ecs: catFileCreation, cell: CellTyped},
	{name: "inode_rename", payload: typed[InodeRename], ecs: catFileChange, cell: CellTyped, captured: lsm},
	{name: "inode_setattr", payload: typed[InodeSetattr], ecs: catFileChange, cell: CellTyped, captured: lsm},
	{name: "inode_getattr", payload: typed[InodeGetattr], ecs: catFileInfo, cell: CellTyped},
	{name: "inode_setxattr", payload: typed[InodeXattr], ecs: catFileChange, unmodeled: encodedXattrs},
	{name: "inode_getxattr", payload: typed[InodeXattr], ecs: catFileAccess, cell: CellTyped},
	{name: "inode_listxattr", payload: typed[DentryEvent], ecs: catFileAccess, cell: CellTyped},
	{name: "inode_removexattr", payload: typed[InodeXattr], ecs: catFileChange, cell: CellTyped},
	{name: "inode_killpriv", payload: typed[DentryEvent], ecs: catFileChange, cell: CellTyped},
	{name: "tun_dev_create", ecs: catNetStart, cell: CellGeneric},
	{name: "tun_dev_attach_queue", ecs: catNetStart, unmodeled: noPayload},
	{name: "tun_dev_attach", ecs: catNetStart, cell: CellGeneric},
	{name: "tun_dev_open", ecs: catNetStart, cell: CellGeneric},
	{name: "bpf", ecs: catHostAccess, cell: CellMembers, captured: lsm},
	{name: "bpf_map", ecs: catHostAccess, cell: CellMembers},
	{name: "bpf_prog", ecs: catHostAccess, cell: CellMembers},
	{name: "ptrace_access_check", payload: typed[PtraceAccessCheck], ecs: catProcAccess, cell: CellTyped, captured: lsm},
	{name: "capable", payload: typed[Capable], ecs: catProcAccess, cell: CellTyped, captured: lsm},
	{name: "capget", payload: typed[Capget], ecs: catProcInfo, cell: CellTyped},
	{name: "capset", payload: typed[Capset], ecs: catProcChange, cell: CellTyped},
	{name: "task_alloc", ecs: catProcStart, cell: CellGeneric},
	{name: "bprm_check_security", ecs: catProcStart, cell: CellGeneric},
	{name: "cred_prepare", ecs: catProcChange, cell: CellGeneric},
	{name: "path_truncate", ecs: catFileChange, cell: CellGeneric},
	{name: "path_unlink", ecs: catFileDeletion, cell: CellGeneric},
	{name: "path_mkdir", ecs: catFileCreation, cell: CellGeneric},
	{name: "path_rmdir", ecs: catFileDeletion, cell: CellGeneric},
	{name: "path_symlink", ecs: catFileCreation, cell: CellGeneric},
}

// byName is the catalogue sorted by name, and sortedNames its names, for
// lookups by binary search.
var byName, sortedNames = func() ([]*Kind, []string) {
	ks := make([]*Kind, len(kinds))
	for i := range kinds {
		ks[i] = &kinds[i]
	}
	slices.SortFunc(ks, func(a, b *Kind) int { return strings.Compare(a.name, b.name) })
	names := make([]string, len(ks))
	for i, k := range ks {
		names[i] = k.name
	}
	return ks, names
}()

// Kinds returns the catalogue: one Kind per TSEM event name, in the
// kernel's order.
func Kinds() []*Kind {
	ks := make([]*Kind, len(kinds))
	for i := range kinds {
		ks[i] = &kinds[i]
	}
	return ks
}

// KindOf returns the Kind of a TSEM event name, or false for a name TSEM
// does not have.
func KindOf(name string) (*Kind, bool) {
	i, ok := slices.BinarySearch(sortedNames, name)
	if !ok {
		return nil, false
	}
	return byName[i], true
}

// Names returns every TSEM event name, in the kernel's order.
func Names() []string {
	s := make([]string, len(kinds))
	for i := range kinds {
		s[i] = kinds[i].name
	}
	return s
}

// Known reports whether name is a TSEM event name.
func Known(name string) bool {
	_, ok := slices.BinarySearch(sortedNames, name)
	return ok
}
