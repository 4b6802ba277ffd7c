package events

// Event is one TSEM security event description: the header ("event"), the
// credentials of the task that caused it ("COE") and the typed payload named
// by Header.Type.
type Event struct {
	Header  Header
	COE     COE
	Payload Payload
}

// Header is the "event" object of a description.
type Header struct {
	// Pid is printed only on export paths; HasPid says whether it is.
	Pid    uint32
	HasPid bool
	// Context is the security modeling namespace id, Number the event's
	// sequence number inside it.
	Context uint64
	Number  uint64
	// Process is the task's comm, byte-exact (it may hold any byte).
	Process string
	// Type is the TSEM event name, e.g. "file_open"; it names the payload.
	Type string
	// TTD and PTTD are the task trust domain counters of the task and
	// its parent.
	TTD     uint64
	PTTD    uint64
	TaskID  Digest
	PTaskID Digest
	// TS is the kernel timestamp (nanoseconds since boot).
	TS uint64
}

// COE holds the credentials of the context of execution.
type COE struct {
	UID, EUID, SUID, GID, EGID, SGID, FSUID, FSGID uint32
	CapEff                                         uint64
}

// Cred is a full credential set as printed inside key_alloc,
// key_permission and task_prlimit payloads.
type Cred struct {
	COE
	Securebits uint32
}

// Payload is the event specific part of a description. The concrete types
// are the pointer types in this package (*FileEvent, *Capable, ...); a
// TSEM event without a typed layout here is a *Generic.
type Payload interface {
	// appendTSEM appends the payload object's members (without braces).
	appendTSEM(dst []byte, typ string) []byte
}

// Dev is a device number.
type Dev struct{ Major, Minor uint32 }

// Inode describes an inode: owner, mode and the filesystem it lives on.
type Inode struct {
	UID, GID uint32
	Mode     uint32 // printed in octal with a leading 0
	SMagic   uint32 // printed as 0x-hex
	SID      string
	SUUID    [16]byte
}

// Path is a pathname with its device and path type ("root", "namespace"...).
// A file created inside the modeling namespace carries the task id of its
// creator (Owner) and an instance counter; Created says so.
type Path struct {
	HasDev   bool
	Dev      Dev
	Created  bool
	Owner    Digest
	Instance uint64
	Type     string
	Pathname string
}

// Dentry is a path with, optionally, its inode.
type Dentry struct {
	HasInode bool
	Inode    Inode
	Path     Path
}

// File is an open file: open flags, inode, path and content digest.
type File struct {
	Flags  uint32
	Inode  Inode
	Path   Path
	Digest Digest
}

// Sock describes a socket; Owner is the task id of the task that created it.
type Sock struct {
	Family   uint32
	Type     uint32
	Protocol uint32
	Owner    Digest
}

// Address families of SockAddr.
const (
	AFInet  = 2
	AFUnix  = 1
	AFInet6 = 10
)

// AddrKind says which member of the TSEM "addr" object is present.
type AddrKind uint8

// The TSEM address kinds.
const (
	AddrInet  AddrKind = iota + 1 // "af_inet"
	AddrInet6                     // "af_inet6"
	AddrUnix                      // "af_unix"
	AddrOther                     // "af_other"
)

// SockAddr is a socket address as TSEM prints it. Port and IPv4 Address
// keep TSEM's convention: the raw network-order fields read as host
// integers (port 80 is 20480 on x86). Use NetPort and NetIPv4 for the real
// values.
type SockAddr struct {
	Kind    AddrKind
	Port    uint32
	Address uint32   // af_inet
	Addr6   [16]byte // af_inet6
	// HasFlowScope is false for accept and message events, which do not
	// print the IPv6 flow and scope.
	HasFlowScope bool
	Flow, Scope  uint32
	Unix         string // af_unix path
	Other        Digest // af_other digest of the address
	// Addrress records that the af_inet address key was spelled
	// "addrress", as some TSEM versions print for socket_sendmsg.
	Addrress bool
}

// FileEvent is the payload of file_open, file_receive and
// bprm_committed_creds.
type FileEvent struct{ File File }

// FileCmd is the payload of file_ioctl, file_lock and file_fcntl.
type FileCmd struct {
	File File
	Cmd  uint32
}

// MmapFile is the payload of mmap_file; anonymous mappings have no file.
type MmapFile struct {
	HasFile bool
	File    File
	Prot    uint32
	Flags   uint32
}

// InodeGetattr is the payload of inode_getattr (a dentry printed as "path").
type InodeGetattr struct{ Path Dentry }

// DentryEvent is the payload of sb_statfs, inode_killpriv,
// inode_listxattr and quota_on.
type DentryEvent struct{ Dentry Dentry }

// InodeCreate is the payload of inode_create and inode_mkdir.
type InodeCreate struct {
	Dir    Inode
	Dentry Dentry
	Mode   uint32
}

// InodeRemove is the payload of inode_unlink and inode_rmdir.
type InodeRemove struct {
	Dir    Inode
	Dentry Dentry
}

// InodeSymlink is the payload of inode_symlink.
type InodeSymlink struct {
	Dir     Inode
	Dentry  Dentry
	OldName string
}

// InodeMknod is the payload of inode_mknod.
type InodeMknod struct {
	Dir    Inode
	Dentry Dentry
	Mode   uint32
	Dev    Dev
}

// InodeLink is the payload of inode_link.
type InodeLink struct {
	OldDentry Dentry
	Dir       Inode
	NewDentry Dentry
}

// InodeRename is the payload of inode_rename.
type InodeRename struct {
	OldDir    Inode
	OldDentry Dentry
	NewDir    Inode
	NewDentry Dentry
}

// InodeSetattr is the payload of inode_setattr.
type InodeSetattr struct {
	Dentry   Dentry
	Valid    uint32
	Mode     uint32
	UID, GID uint32
	Size     uint64
}

// InodeXattr is the payload of inode_setxattr (all fields),
// inode_getxattr and inode_removexattr (Dentry and Name only).
type InodeXattr struct {
	Dentry Dentry
	Name   string
	Value  string
	Flags  int32
}

// SbMount is the payload of sb_mount. DevName and FSType ("type") are
// optional in the description.
type SbMount struct {
	HasDevName bool
	DevName    string
	Path       Path
	HasFSType  bool
	FSType     string
	Flags      uint64
}

// SbUmount is the payload of sb_umount.
type SbUmount struct {
	Mnt   Dentry
	Flags int32
}

// SbRemount is the payload of sb_remount.
type SbRemount struct {
	Dentry Dentry
	FSType string
	Flags  uint64
}

// PathPair is the payload of sb_pivotroot (old_path, new_path) and
// move_mount (from_path, to_path).
type PathPair struct{ Old, New Path }

// SocketCreate is the payload of socket_create.
type SocketCreate struct{ Family, Type, Protocol, Kern uint32 }

// SocketAddr is the payload of socket_connect, socket_bind and
// socket_accept.
type SocketAddr struct {
	Sock Sock
	Addr SockAddr
}

// SocketMsg is the payload of socket_sendmsg and socket_recvmsg.
type SocketMsg struct {
	Sock    Sock
	HasAddr bool
	Addr    SockAddr
}

// SockPair is the payload of unix_stream_connect and unix_may_send
// (sock, other) and socket_socketpair (socka, sockb).
type SockPair struct{ A, B Sock }

// SockEvent is the payload of socket_getsockname and socket_getpeername.
type SockEvent struct{ Sock Sock }

// SockValue is the payload of socket_listen (backlog) and
// socket_shutdown (how).
type SockValue struct {
	Sock  Sock
	Value int32
}

// SocketSetsockopt is the payload of socket_setsockopt.
type SocketSetsockopt struct {
	Sock           Sock
	Level, Optname int32
}

// TaskKill is the payload of task_kill.
type TaskKill struct {
	Target  Digest
	Sig     uint32
	CrossNS uint32
}

// TaskSetpgid is the payload of task_setpgid.
type TaskSetpgid struct{ Task, Source Digest }

// TaskTarget is the payload of task_getpgid, task_getsid, task_getioprio,
// task_setscheduler and task_getscheduler.
type TaskTarget struct{ Task Digest }

// TaskValue is the payload of task_setnice (nice) and task_setioprio
// (ioprio).
type TaskValue struct {
	Task  Digest
	Value int32
}

// TaskPrlimit is the payload of task_prlimit.
type TaskPrlimit struct {
	Cred, TCred Cred
	Flags       uint32
}

// TaskSetrlimit is the payload of task_setrlimit.
type TaskSetrlimit struct {
	Task         Digest
	Resource     uint32
	Current, Max uint64
}

// TaskPrctl is the payload of task_prctl.
type TaskPrctl struct {
	Option                 uint32
	Arg2, Arg3, Arg4, Arg5 uint64
}

// PtraceAccessCheck is the payload of ptrace_access_check.
type PtraceAccessCheck struct {
	Child Digest
	Mode  uint32
}

// PtraceTraceme is the payload of ptrace_traceme.
type PtraceTraceme struct{ Source Digest }

// Capable is the payload of capable.
type Capable struct{ Cap, Opts uint32 }

// Capget is the payload of capget.
type Capget struct {
	Target                            Digest
	Effective, Inheritable, Permitted uint64
}

// Capset is the payload of capset.
type Capset struct{ Effective, Inheritable, Permitted uint64 }

// KeyAlloc is the payload of key_alloc.
type KeyAlloc struct {
	Cred  Cred
	Flags uint64
}

// KeyPermission is the payload of key_permission.
type KeyPermission struct {
	Possessed, UID, GID uint32
	Flags               uint64
	Cred                Cred
	Perm                uint32
}

// Generic is the payload of a TSEM event without a typed layout in this
// package: its members in order, kept byte-exact.
type Generic struct{ Fields []Field }

// Field is one member of a Generic payload: a string value, or (Object
// true) a nested object.
type Field struct {
	Key    string
	Value  string
	Object bool
	Fields []Field
}

// File returns the file cell of e's payload (file_open, mmap_file of a
// file, file_ioctl, kernel_read_file), nil when it has none.
func (e *Event) File() *File {
	switch p := e.Payload.(type) {
	case *FileEvent:
		return &p.File
	case *FileCmd:
		return &p.File
	case *MmapFile:
		if p.HasFile {
			return &p.File
		}
	case *KernelReadFile:
		return &p.File
	}
	return nil
}

// HasUnhashableFile reports whether a file of e's payload carries the
// unhashable digest (Digest.IsUnhashable): Vigil could not hash its
// content, so the event cannot be vouched for by any model.
func (e *Event) HasUnhashableFile() bool {
	f := e.File()
	return f != nil && f.Digest.IsUnhashable()
}
