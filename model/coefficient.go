package model

import (
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
// have none yet: the catalogue of event kinds gives each its reason
// (events.Kind.Unmodeled).
var ErrNoCellLayout = errors.New("no coefficient layout for event type")

// EventCoefficient returns the security state coefficient of e in the TSEM
// kernel dialect:
//
//	H(type ‖ p_task_id ‖ task_id ‖ H(COE) ‖ H(CELL))
//
// with H the hash whose length e's task_id has (SHA-256 for a zero-length
// one); see EventCoefficientHash.
func EventCoefficient(e *events.Event, isPseudonym func(pathname string) bool) (Coefficient, error) {
	h, _ := e.Header.TaskID.Hash()
	return EventCoefficientHash(h, e, isPseudonym)
}

// EventCoefficientHash returns the security state coefficient of e in a
// namespace whose hash is h:
//
//	H(type ‖ p_task_id ‖ task_id ‖ H(COE) ‖ H(CELL))
//
// isPseudonym (may be nil) reports whether a file's pathname is a
// pseudonym of the model; such a file's digest is replaced by H("").
// A path with owner and instance is hashed as a file created in the
// current context (testdata/tsem/README.md's rule for imported
// descriptions). Task ids, file digests and address digests must have h's
// length (a zero-length one counts as zero bytes): anything else is an
// error wrapping ErrHashMismatch. Task ids hashed in 64-byte fields (a socket's
// owner, task_setpgid, task_setnice, task_setioprio) are zero padded to 64
// bytes, as the kernel hashes its HASH_MAX_DIGESTSIZE arrays.
// EventCoefficientHash does not allocate for the typed payloads and is
// safe for concurrent use.
//
// EventCoefficientHash is the TSEM dialect; Mapping.Coefficient computes
// the coefficient in another one.
func EventCoefficientHash(h Hash, e *events.Event, isPseudonym func(pathname string) bool) (Coefficient, error) {
	return Mapping{Hash: h, IsPseudonym: isPseudonym}.Coefficient(e)
}

// AppendCell appends the CELL bytes of e in the kernel dialect (the bytes
// whose hash enters the coefficient) to dst, for a namespace whose hash is
// the one of e's task_id length.
func AppendCell(dst []byte, e *events.Event, isPseudonym func(pathname string) bool) ([]byte, error) {
	h, _ := e.Header.TaskID.Hash()
	m := mapper{h: h}
	b, ok := m.appendCell(dst, e, isPseudonym)
	if !ok {
		return dst, fmt.Errorf("compute cell of %s: %w", e.Header.Type, ErrNoCellLayout)
	}
	if m.bad {
		return dst, fmt.Errorf("compute cell of %s: %w", e.Header.Type, ErrHashMismatch)
	}
	return b, nil
}

// mapper lays out and hashes the parts of an event with one namespace's
// hash and dialect; bad records a digest of another length.
type mapper struct {
	h       Hash
	dialect Dialect
	bad     bool
}

// digest appends d as a digest of the namespace's hash: zero bytes for the
// zero Digest.
func (m *mapper) digest(b []byte, d *events.Digest) []byte {
	if d.Len() == 0 {
		return append(b, zeroDigest[:m.h.Size()]...)
	}
	if d.Len() != m.h.Size() {
		m.bad = true
	}
	return append(b, d.Bytes()...)
}

// pad64 appends d in a 64-byte field, as the kernel hashes a task id
// kept in a HASH_MAX_DIGESTSIZE array with sizeof.
func (m *mapper) pad64(b []byte, d *events.Digest) []byte {
	n := len(b)
	b = m.digest(b, d)
	return append(b, zeroDigest[:events.MaxDigestSize-(len(b)-n)]...)
}

// empty appends H(""), the namespace's zero digest.
func (m *mapper) empty(b []byte) []byte {
	e := m.h.Empty()
	return append(b, e.Bytes()...)
}

// coefficient hashes the outer layer from the parts.
func (m *mapper) coefficient(typ string, pTaskID, taskID *events.Digest, coe *events.COE, cell []byte) Coefficient {
	var cb [40]byte
	coeHash := m.h.Sum(appendCOE(cb[:0], coe))
	cellHash := m.h.Sum(cell)
	var ob [512]byte
	b := append(ob[:0], typ...)
	b = m.digest(b, pTaskID)
	b = m.digest(b, taskID)
	b = append(b, coeHash.Bytes()...)
	b = append(b, cellHash.Bytes()...)
	return m.h.Sum(b)
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

// appendInode is the inode: the kernel zeroes tmpfs's s_uuid, the
// invariant dialect every s_uuid drawn at mount time.
func (m *mapper) appendInode(b []byte, in *events.Inode) []byte {
	b = u32(b, in.UID)
	b = u32(b, in.GID)
	b = u32(b, in.Mode)
	b = u32(b, in.SMagic)
	var sid [32]byte
	copy(sid[:], in.SID)
	b = append(b, sid[:]...)
	if in.SMagic == tmpfsMagic || m.dialect == DialectInvariant && perMountUUID(in.SMagic) {
		return append(b, zeroDigest[:16]...)
	}
	return append(b, in.SUUID[:]...)
}

// appendDev is the device, absent for 0:0, and in the invariant dialect
// for every anonymous device (major 0): its minor is allocated at mount
// time.
func (m *mapper) appendDev(b []byte, p *events.Path) []byte {
	if !p.HasDev || p.Dev.Major == 0 && (p.Dev.Minor == 0 || m.dialect == DialectInvariant) {
		return b
	}
	b = u32(b, p.Dev.Major)
	return u32(b, p.Dev.Minor)
}

// appendName is the pathname, or for a file created in the current context
// its directory, instance and owner.
func (m *mapper) appendName(b []byte, p *events.Path) []byte {
	if !p.Created {
		return str(b, p.Pathname)
	}
	b = str(b, p.Pathname[:strings.LastIndexByte(p.Pathname, '/')+1])
	b = u64(b, p.Instance)
	return m.digest(b, &p.Owner)
}

func (m *mapper) appendPath(b []byte, p *events.Path) []byte {
	b = m.appendDev(b, p)
	b = str(b, p.Type)
	return m.appendName(b, p)
}

func (m *mapper) appendDentry(b []byte, d *events.Dentry) []byte {
	if d.HasInode {
		b = m.appendInode(b, &d.Inode)
	}
	b = m.appendDev(b, &d.Path)
	return m.appendName(b, &d.Path)
}

func (m *mapper) appendFile(b []byte, f *events.File, isPseudonym func(string) bool) []byte {
	b = u32(b, f.Flags)
	b = m.appendInode(b, &f.Inode)
	b = m.appendPath(b, &f.Path)
	if isPseudonym != nil && isPseudonym(f.Path.Pathname) {
		return m.empty(b)
	}
	return m.digest(b, &f.Digest)
}

func (m *mapper) appendSock(b []byte, s *events.Sock) []byte {
	b = u32(b, s.Family)
	b = u32(b, s.Type)
	b = u32(b, s.Protocol)
	return m.pad64(b, &s.Owner)
}

// appendAddr hashes an address; flowScope is false for socket_accept.
func (m *mapper) appendAddr(b []byte, a *events.SockAddr, flowScope bool) []byte {
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
		return m.digest(b, &a.Other)
	}
	return b
}

// appendCell appends the CELL bytes of e; false when the layout is unknown.
func (m *mapper) appendCell(b []byte, e *events.Event, isPseudonym func(string) bool) ([]byte, bool) {
	switch p := e.Payload.(type) {
	case *events.FileEvent:
		return m.appendFile(b, &p.File, isPseudonym), true
	case *events.FileCmd:
		b = m.appendFile(b, &p.File, isPseudonym)
		return u32(b, p.Cmd), true
	case *events.MmapFile:
		if p.HasFile {
			b = m.appendFile(b, &p.File, isPseudonym)
		}
		b = u32(b, p.Prot)
		return u32(b, p.Flags), true
	case *events.InodeGetattr:
		return m.appendDentry(b, &p.Path), true
	case *events.DentryEvent:
		// sb_statfs, inode_killpriv, inode_listxattr, quota_on
		return m.appendDentry(b, &p.Dentry), true
	case *events.InodeCreate:
		b = m.appendInode(b, &p.Dir)
		b = m.appendDentry(b, &p.Dentry)
		return u16(b, p.Mode), true
	case *events.InodeMknod:
		b = m.appendInode(b, &p.Dir)
		b = m.appendDentry(b, &p.Dentry)
		b = u16(b, p.Mode)
		return u32(b, p.Dev.Major<<20|p.Dev.Minor), true
	case *events.InodeRemove:
		b = m.appendInode(b, &p.Dir)
		return m.appendDentry(b, &p.Dentry), true
	case *events.InodeSymlink:
		b = m.appendInode(b, &p.Dir)
		b = m.appendDentry(b, &p.Dentry)
		return str(b, p.OldName), true
	case *events.InodeSetattr:
		b = m.appendDentry(b, &p.Dentry)
		b = u32(b, p.Valid)
		b = u32(b, p.Mode)
		b = u32(b, p.UID)
		b = u32(b, p.GID)
		return u64(b, p.Size), true
	case *events.SbMount:
		b = str(b, p.DevName)
		b = m.appendPath(b, &p.Path)
		b = str(b, p.FSType)
		return u64(b, p.Flags), true
	case *events.SbUmount:
		b = m.appendDentry(b, &p.Mnt)
		return u32(b, uint32(p.Flags)), true
	case *events.PathPair:
		b = m.appendPath(b, &p.Old)
		return m.appendPath(b, &p.New), true
	case *events.SocketCreate:
		b = u32(b, p.Family)
		b = u32(b, p.Type)
		b = u32(b, p.Protocol)
		return u32(b, p.Kern), true
	case *events.SocketAddr:
		b = m.appendSock(b, &p.Sock)
		return m.appendAddr(b, &p.Addr, e.Header.Type != "socket_accept"), true
	case *events.SocketMsg:
		b = m.appendSock(b, &p.Sock)
		if p.HasAddr {
			switch p.Addr.Kind {
			case events.AddrInet, events.AddrInet6:
				b = m.appendAddr(b, &p.Addr, false)
			}
		}
		return b, true
	case *events.SockPair:
		b = m.appendSock(b, &p.A)
		return m.appendSock(b, &p.B), true
	case *events.TaskKill:
		b = m.digest(b, &p.Target)
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
		b = m.pad64(b, &p.Task)
		return m.pad64(b, &p.Source), true
	case *events.TaskTarget:
		return m.digest(b, &p.Task), true
	case *events.TaskSetrlimit:
		b = m.digest(b, &p.Task)
		b = u32(b, p.Resource)
		b = u64(b, p.Current)
		return u64(b, p.Max), true
	case *events.PtraceAccessCheck:
		b = m.digest(b, &p.Child)
		return u32(b, p.Mode), true
	case *events.Capable:
		b = u32(b, p.Cap)
		return u32(b, p.Opts), true
	case *events.Capget:
		b = m.digest(b, &p.Target)
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
		b = m.appendDentry(b, &p.OldDentry)
		b = m.appendInode(b, &p.Dir)
		return m.appendDentry(b, &p.NewDentry), true
	case *events.InodeRename:
		b = m.appendInode(b, &p.OldDir)
		b = m.appendDentry(b, &p.OldDentry)
		b = m.appendInode(b, &p.NewDir)
		return m.appendDentry(b, &p.NewDentry), true
	case *events.InodeXattr:
		if e.Header.Type == "inode_setxattr" {
			// The kernel hashes the raw value bytes; the description
			// carries only their encoding, which is not pinned down.
			return b, false
		}
		b = m.appendDentry(b, &p.Dentry)
		return str(b, p.Name), true
	case *events.SbRemount:
		b = m.appendDentry(b, &p.Dentry)
		b = str(b, p.FSType)
		return u64(b, p.Flags), true
	case *events.SockEvent:
		return m.appendSock(b, &p.Sock), true
	case *events.SockValue:
		b = m.appendSock(b, &p.Sock)
		return u32(b, uint32(p.Value)), true
	case *events.SocketSetsockopt:
		b = m.appendSock(b, &p.Sock)
		b = u32(b, uint32(p.Level))
		return u32(b, uint32(p.Optname)), true
	case *events.TaskValue:
		b = m.pad64(b, &p.Task)
		return u32(b, uint32(p.Value)), true
	case *events.TaskPrlimit:
		b = u32(b, p.Cred.UID)
		b = u32(b, p.TCred.UID)
		return u32(b, p.Flags), true
	case *events.PtraceTraceme:
		return m.digest(b, &p.Source), true
	case *events.KernelReadFile:
		b = m.appendFile(b, &p.File, isPseudonym)
		b = u32(b, uint32(p.ID))
		return u32(b, uint32(p.Contents)), true
	case *events.Generic:
		return m.appendGenericCell(b, e.Header.Type, p)
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

// appendGenericCell is the CELL of an event parsed as events.Generic: the
// few kernel layouts whose members are plain numbers or strings, read from
// the generic members, and the generic rule (type name ‖ H("")) for an
// event the kernel models generically: no layout of its own and an empty
// cell object in the description.
func (m *mapper) appendGenericCell(b []byte, typ string, g *events.Generic) ([]byte, bool) {
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
	// The generic rule holds for a kind the catalogue says the kernel
	// models without parameters (events.CellGeneric), and for a name
	// outside the catalogue; a kind with a layout of its own parsed as
	// events.Generic (kernel_read_file without its file, an unmodeled
	// kind) has none. The kernel prints a generically modeled event with
	// an empty cell object: members mean a layout that is not known here.
	if k, ok := events.KindOf(typ); ok && k.Cell() != events.CellGeneric || typ == "" || len(g.Fields) != 0 {
		return b, false
	}
	b = append(b, typ...)
	return m.empty(b), true
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
