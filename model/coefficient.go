package model

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/vigil-tsem/vigil/events"
)

// ErrNoCellLayout is returned for an event whose CELL layout in the TSEM
// kernel dialect is not known: the layouts are those of
// testdata/tsem/README.md and those the package documentation lists from
// the kernel source; the rest (inode_setxattr, settime, the IPC events...)
// have none yet.
var ErrNoCellLayout = errors.New("no coefficient layout for event type")

// tmpfsMagic is the s_magic of tmpfs; TSEM hashes a zero s_uuid for it.
const tmpfsMagic = 0x01021994

// emptyDigest is H(""), the digest a pseudonym's file contributes.
var emptyDigest = sha256.Sum256(nil)

// EventCoefficient returns the security state coefficient of e in the TSEM
// kernel dialect:
//
//	H(type ‖ p_task_id ‖ task_id ‖ H(COE) ‖ H(CELL))
//
// isPseudonym (may be nil) reports whether a file's pathname is a
// pseudonym of the model; such a file's digest is replaced by H("").
// A path with owner and instance is hashed as a file created in the
// current context (the README's rule for imported descriptions).
// EventCoefficient does not allocate for the typed payloads and is safe for
// concurrent use.
func EventCoefficient(e *events.Event, isPseudonym func(pathname string) bool) (Coefficient, error) {
	var stack [1024]byte
	cell, ok := appendCell(stack[:0], e, isPseudonym)
	if !ok {
		return Coefficient{}, fmt.Errorf("compute coefficient of %s: %w", e.Header.Type, ErrNoCellLayout)
	}
	return coefficient(e.Header.Type, &e.Header.PTaskID, &e.Header.TaskID, &e.COE, cell), nil
}

// AppendCell appends the CELL bytes of e in the kernel dialect (the bytes
// whose hash enters the coefficient) to dst.
func AppendCell(dst []byte, e *events.Event, isPseudonym func(pathname string) bool) ([]byte, error) {
	b, ok := appendCell(dst, e, isPseudonym)
	if !ok {
		return dst, fmt.Errorf("compute cell of %s: %w", e.Header.Type, ErrNoCellLayout)
	}
	return b, nil
}

// coefficient hashes the outer layer from the parts.
func coefficient(typ string, pTaskID, taskID *[32]byte, coe *events.COE, cell []byte) Coefficient {
	var cb [40]byte
	coeHash := sha256.Sum256(appendCOE(cb[:0], coe))
	cellHash := sha256.Sum256(cell)
	var ob [256]byte
	b := append(ob[:0], typ...)
	b = append(b, pTaskID[:]...)
	b = append(b, taskID[:]...)
	b = append(b, coeHash[:]...)
	b = append(b, cellHash[:]...)
	return sha256.Sum256(b)
}

func appendCOE(b []byte, c *events.COE) []byte {
	b = u32(b, c.UID)
	b = u32(b, c.EUID)
	b = u32(b, c.SUID)
	b = u32(b, c.GID)
	b = u32(b, c.EGID)
	b = u32(b, c.SGID)
	b = u32(b, c.FSUID)
	b = u32(b, c.FSGID)
	return u64(b, c.CapEff)
}

func u16(b []byte, v uint32) []byte { return binary.LittleEndian.AppendUint16(b, uint16(v)) }
func u32(b []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(b, v) }
func u64(b []byte, v uint64) []byte { return binary.LittleEndian.AppendUint64(b, v) }

// str is a length-prefixed string.
func str(b []byte, s string) []byte {
	b = u32(b, uint32(len(s)))
	return append(b, s...)
}

var zero32 [32]byte

func appendInode(b []byte, in *events.Inode) []byte {
	b = u32(b, in.UID)
	b = u32(b, in.GID)
	b = u32(b, in.Mode)
	b = u32(b, in.SMagic)
	var sid [32]byte
	copy(sid[:], in.SID)
	b = append(b, sid[:]...)
	if in.SMagic == tmpfsMagic {
		return append(b, zero32[:16]...)
	}
	return append(b, in.SUUID[:]...)
}

func appendDev(b []byte, p *events.Path) []byte {
	if p.HasDev && (p.Dev.Major != 0 || p.Dev.Minor != 0) {
		b = u32(b, p.Dev.Major)
		b = u32(b, p.Dev.Minor)
	}
	return b
}

// appendName is the pathname, or for a file created in the current context
// its directory, instance and owner.
func appendName(b []byte, p *events.Path) []byte {
	if !p.Created {
		return str(b, p.Pathname)
	}
	b = str(b, p.Pathname[:strings.LastIndexByte(p.Pathname, '/')+1])
	b = u64(b, p.Instance)
	return append(b, p.Owner[:]...)
}

func appendPath(b []byte, p *events.Path) []byte {
	b = appendDev(b, p)
	b = str(b, p.Type)
	return appendName(b, p)
}

func appendDentry(b []byte, d *events.Dentry) []byte {
	if d.HasInode {
		b = appendInode(b, &d.Inode)
	}
	b = appendDev(b, &d.Path)
	return appendName(b, &d.Path)
}

func appendFile(b []byte, f *events.File, isPseudonym func(string) bool) []byte {
	b = u32(b, f.Flags)
	b = appendInode(b, &f.Inode)
	b = appendPath(b, &f.Path)
	if isPseudonym != nil && isPseudonym(f.Path.Pathname) {
		return append(b, emptyDigest[:]...)
	}
	return append(b, f.Digest[:]...)
}

func appendSock(b []byte, s *events.Sock) []byte {
	b = u32(b, s.Family)
	b = u32(b, s.Type)
	b = u32(b, s.Protocol)
	b = append(b, s.Owner[:]...)
	return append(b, zero32[:]...)
}

// appendAddr hashes an address; flowScope is false for socket_accept.
func appendAddr(b []byte, a *events.SockAddr, flowScope bool) []byte {
	switch a.Kind {
	case events.AddrInet:
		b = u16(b, a.Port)
		return u32(b, a.Address)
	case events.AddrInet6:
		b = u16(b, a.Port)
		b = append(b, a.Addr6[:]...)
		if flowScope {
			b = u32(b, a.Flow)
			b = u32(b, a.Scope)
		}
		return b
	case events.AddrUnix:
		return append(b, a.Unix...)
	case events.AddrOther:
		return append(b, a.Other[:]...)
	}
	return b
}

// appendCell appends the CELL bytes of e; false when the layout is unknown.
func appendCell(b []byte, e *events.Event, isPseudonym func(string) bool) ([]byte, bool) {
	switch p := e.Payload.(type) {
	case *events.FileEvent:
		return appendFile(b, &p.File, isPseudonym), true
	case *events.FileCmd:
		b = appendFile(b, &p.File, isPseudonym)
		return u32(b, p.Cmd), true
	case *events.MmapFile:
		if p.HasFile {
			b = appendFile(b, &p.File, isPseudonym)
		}
		b = u32(b, p.Prot)
		return u32(b, p.Flags), true
	case *events.InodeGetattr:
		return appendDentry(b, &p.Path), true
	case *events.DentryEvent:
		// sb_statfs, inode_killpriv, inode_listxattr, quota_on
		return appendDentry(b, &p.Dentry), true
	case *events.InodeCreate:
		b = appendInode(b, &p.Dir)
		b = appendDentry(b, &p.Dentry)
		return u16(b, p.Mode), true
	case *events.InodeMknod:
		b = appendInode(b, &p.Dir)
		b = appendDentry(b, &p.Dentry)
		b = u16(b, p.Mode)
		return u32(b, p.Dev.Major<<20|p.Dev.Minor), true
	case *events.InodeRemove:
		b = appendInode(b, &p.Dir)
		return appendDentry(b, &p.Dentry), true
	case *events.InodeSymlink:
		b = appendInode(b, &p.Dir)
		b = appendDentry(b, &p.Dentry)
		return str(b, p.OldName), true
	case *events.InodeSetattr:
		b = appendDentry(b, &p.Dentry)
		b = u32(b, p.Valid)
		b = u32(b, p.Mode)
		b = u32(b, p.UID)
		b = u32(b, p.GID)
		return u64(b, p.Size), true
	case *events.SbMount:
		b = str(b, p.DevName)
		b = appendPath(b, &p.Path)
		b = str(b, p.FSType)
		return u64(b, p.Flags), true
	case *events.SbUmount:
		b = appendDentry(b, &p.Mnt)
		return u32(b, uint32(p.Flags)), true
	case *events.PathPair:
		b = appendPath(b, &p.Old)
		return appendPath(b, &p.New), true
	case *events.SocketCreate:
		b = u32(b, p.Family)
		b = u32(b, p.Type)
		b = u32(b, p.Protocol)
		return u32(b, p.Kern), true
	case *events.SocketAddr:
		b = appendSock(b, &p.Sock)
		return appendAddr(b, &p.Addr, e.Header.Type != "socket_accept"), true
	case *events.SocketMsg:
		b = appendSock(b, &p.Sock)
		if p.HasAddr {
			switch p.Addr.Kind {
			case events.AddrInet, events.AddrInet6:
				b = appendAddr(b, &p.Addr, false)
			}
		}
		return b, true
	case *events.SockPair:
		b = appendSock(b, &p.A)
		return appendSock(b, &p.B), true
	case *events.TaskKill:
		b = append(b, p.Target[:]...)
		b = u32(b, p.Sig)
		return u32(b, p.CrossNS), true
	case *events.TaskPrctl:
		b = u32(b, p.Option)
		if p.Option == 2 { // PR_GET_PDEATHSIG: arg2 is a user pointer
			b = u64(b, 0)
		} else {
			b = u64(b, p.Arg2)
		}
		b = u64(b, p.Arg4)
		return u64(b, p.Arg5), true
	case *events.TaskSetpgid:
		b = append(b, p.Task[:]...)
		b = append(b, zero32[:]...)
		b = append(b, p.Source[:]...)
		return append(b, zero32[:]...), true
	case *events.TaskTarget:
		return append(b, p.Task[:]...), true
	case *events.TaskSetrlimit:
		b = append(b, p.Task[:]...)
		b = u32(b, p.Resource)
		b = u64(b, p.Current)
		return u64(b, p.Max), true
	case *events.PtraceAccessCheck:
		b = append(b, p.Child[:]...)
		return u32(b, p.Mode), true
	case *events.Capable:
		b = u32(b, p.Cap)
		return u32(b, p.Opts), true
	case *events.Capget:
		b = append(b, p.Target[:]...)
		b = u64(b, p.Effective)
		b = u64(b, p.Inheritable)
		return u64(b, p.Permitted), true
	case *events.Capset:
		b = u64(b, p.Effective)
		b = u64(b, p.Inheritable)
		return u64(b, p.Permitted), true
	case *events.KeyAlloc:
		b = u32(b, p.Cred.UID)
		return u64(b, p.Flags), true
	case *events.InodeLink:
		b = appendDentry(b, &p.OldDentry)
		b = appendInode(b, &p.Dir)
		return appendDentry(b, &p.NewDentry), true
	case *events.InodeRename:
		b = appendInode(b, &p.OldDir)
		b = appendDentry(b, &p.OldDentry)
		b = appendInode(b, &p.NewDir)
		return appendDentry(b, &p.NewDentry), true
	case *events.InodeXattr:
		if e.Header.Type == "inode_setxattr" {
			// The kernel hashes the raw value bytes; the description
			// carries only their encoding, which is not pinned down.
			return b, false
		}
		b = appendDentry(b, &p.Dentry)
		return str(b, p.Name), true
	case *events.SbRemount:
		b = appendDentry(b, &p.Dentry)
		b = str(b, p.FSType)
		return u64(b, p.Flags), true
	case *events.SockEvent:
		return appendSock(b, &p.Sock), true
	case *events.SockValue:
		b = appendSock(b, &p.Sock)
		return u32(b, uint32(p.Value)), true
	case *events.SocketSetsockopt:
		b = appendSock(b, &p.Sock)
		b = u32(b, uint32(p.Level))
		return u32(b, uint32(p.Optname)), true
	case *events.TaskValue:
		b = append(b, p.Task[:]...)
		b = append(b, zero32[:]...)
		return u32(b, uint32(p.Value)), true
	case *events.TaskPrlimit:
		b = u32(b, p.Cred.UID)
		b = u32(b, p.TCred.UID)
		return u32(b, p.Flags), true
	case *events.PtraceTraceme:
		return append(b, p.Source[:]...), true
	case *events.KernelReadFile:
		b = appendFile(b, &p.File, isPseudonym)
		b = u32(b, uint32(p.ID))
		return u32(b, uint32(p.Contents)), true
	case *events.Generic:
		return appendGenericCell(b, e.Header.Type, p)
	case *events.KeyPermission:
		b = u32(b, p.Possessed)
		b = u16(b, p.UID)
		b = u16(b, p.GID)
		b = u64(b, p.Flags)
		b = u32(b, p.Cred.UID)
		return u32(b, p.Perm), true
	}
	return b, false
}

// kernelTyped lists the event types for which the TSEM kernel has a cell
// layout of its own (security/tsem/map.c, get_cell_mapping): a description
// of one of these parsed as events.Generic must not be hashed with the
// generic rule. file_ioctl_compat is listed because its layout is not known.
var kernelTyped = map[string]bool{
	"netlink_send": true, "ipc_permission": true,
	"shm_associate": true, "shm_shmctl": true, "shm_shmat": true,
	"sem_associate": true, "sem_semctl": true, "sem_semop": true,
	"msg_queue_associate": true, "msg_queue_msgctl": true, "msg_queue_msgrcv": true,
	"syslog": true, "settime": true, "quotactl": true, "quota_on": true,
	"inode_create": true, "inode_mkdir": true, "inode_rmdir": true, "inode_unlink": true,
	"inode_link": true, "inode_symlink": true, "inode_mknod": true, "inode_rename": true,
	"inode_killpriv": true, "inode_getattr": true, "inode_setattr": true,
	"inode_setxattr": true, "inode_getxattr": true, "inode_removexattr": true, "inode_listxattr": true,
	"file_open": true, "bprm_committing_creds": true, "bprm_committed_creds": true,
	"file_ioctl": true, "file_ioctl_compat": true, "file_lock": true, "file_fcntl": true,
	"file_receive": true, "mmap_file": true,
	"unix_stream_connect": true, "unix_may_send": true, "socket_socketpair": true,
	"socket_sendmsg": true, "socket_recvmsg": true, "socket_getsockname": true,
	"socket_getpeername": true, "tun_dev_attach_queue": true, "socket_create": true,
	"socket_connect": true, "socket_bind": true, "socket_accept": true,
	"socket_listen": true, "socket_shutdown": true, "socket_setsockopt": true,
	"kernel_module_request": true, "kernel_load_data": true, "kernel_read_file": true,
	"task_kill": true, "ptrace_access_check": true, "ptrace_traceme": true,
	"capget": true, "capset": true, "capable": true,
	"task_setpgid": true, "task_getpgid": true, "task_getsid": true, "task_getioprio": true,
	"task_setscheduler": true, "task_getscheduler": true, "task_setnice": true,
	"task_setioprio": true, "task_prlimit": true, "task_setrlimit": true, "task_prctl": true,
	"key_alloc": true, "key_permission": true,
	"sb_mount": true, "sb_umount": true, "sb_remount": true, "sb_statfs": true,
	"sb_pivotroot": true, "move_mount": true,
	"bpf": true, "bpf_map": true, "bpf_prog": true,
}

// appendGenericCell is the CELL of an event parsed as events.Generic: the
// few kernel layouts whose members are plain numbers or strings, read from
// the generic members, and the generic rule (type name ‖ H("")) for an
// event the kernel models generically: no layout of its own and an empty
// cell object in the description.
func appendGenericCell(b []byte, typ string, g *events.Generic) ([]byte, bool) {
	switch typ {
	case "kernel_module_request":
		name, ok := genericField(g.Fields, "kmod_name")
		if !ok {
			return b, false
		}
		return str(b, name), true
	case "kernel_load_data":
		id, ok1 := genericInt(g.Fields, "id")
		contents, ok2 := genericInt(g.Fields, "contents")
		if !ok1 || !ok2 {
			return b, false
		}
		b = u32(b, id)
		return u32(b, contents), true
	case "syslog":
		v, ok := genericInt(g.Fields, "type")
		if !ok {
			return b, false
		}
		return u32(b, v), true
	case "bpf":
		// Only the command: the kernel's helper stops after it.
		v, ok := genericInt(g.Fields, "cmd")
		if !ok {
			return b, false
		}
		return u32(b, v), true
	case "bpf_map":
		v, ok := genericInt(genericObject(g.Fields, "map"), "map_type")
		if !ok {
			return b, false
		}
		return u32(b, v), true
	case "bpf_prog":
		v, ok := genericInt(genericObject(g.Fields, "prog"), "type")
		if !ok {
			return b, false
		}
		return u32(b, v), true
	}
	// The kernel prints a generically modeled event with an empty cell
	// object; members mean a layout of its own that is not known here.
	if kernelTyped[typ] || typ == "" || len(g.Fields) != 0 {
		return b, false
	}
	b = append(b, typ...)
	return append(b, emptyDigest[:]...), true
}

func genericField(fs []events.Field, key string) (string, bool) {
	for i := range fs {
		if fs[i].Key == key && !fs[i].Object {
			return fs[i].Value, true
		}
	}
	return "", false
}

func genericObject(fs []events.Field, key string) []events.Field {
	for i := range fs {
		if fs[i].Key == key && fs[i].Object {
			return fs[i].Fields
		}
	}
	return nil
}

// genericInt reads a member printed by the kernel as a C integer (%d or
// %u) and returns it as the u32 the kernel hashes.
func genericInt(fs []events.Field, key string) (uint32, bool) {
	s, ok := genericField(fs, key)
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(s, 0, 64)
	if err != nil || v < -1<<31 || v > 1<<32-1 {
		return 0, false
	}
	return uint32(v), true
}
