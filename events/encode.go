package events

import (
	"strconv"
	"unicode/utf8"
)

// AppendTSEM appends e as one TSEM JSON line (without a newline) in the
// kernel's member names, order and spacing:
//
//	{"event": {...}, "COE": {...}, "<type>": {...}}
//
// Every scalar is a string; mode is octal with a leading 0, capeff,
// s_magic and the capability sets are 0x-hex, digests lowercase hex.
// Strings are escaped so that Parse returns the same bytes: control
// characters as JSON escapes, and each byte that is not part of valid
// UTF-8 as the lone surrogate \udcXX (XX the byte), which Parse maps back.
func (e *Event) AppendTSEM(dst []byte) []byte {
	w := writer{b: dst}
	w.b = append(w.b, '{')
	h := &e.Header
	w.open("event")
	if h.HasPid {
		w.u("pid", uint64(h.Pid))
	}
	w.u("context", h.Context)
	w.u("number", h.Number)
	w.str("process", h.Process)
	w.str("type", h.Type)
	w.u("ttd", h.TTD)
	w.u("p_ttd", h.PTTD)
	w.hex("task_id", h.TaskID.Bytes())
	w.hex("p_task_id", h.PTaskID.Bytes())
	w.u("ts", h.TS)
	w.close()
	w.open("COE")
	w.coe(&e.COE)
	w.close()
	w.open(h.Type)
	if e.Payload != nil {
		w.b = e.Payload.appendTSEM(w.b, h.Type)
	}
	w.close()
	w.b = append(w.b, '}')
	return w.b
}

// writer emits TSEM-style JSON: `"key": "value"` members separated by ", ".
type writer struct {
	b     []byte
	comma bool
}

func (w *writer) key(k string) {
	if w.comma {
		w.b = append(w.b, ',', ' ')
	}
	w.b = appendString(w.b, k)
	w.b = append(w.b, ':', ' ')
	w.comma = true
}

func (w *writer) open(k string) {
	w.key(k)
	w.b = append(w.b, '{')
	w.comma = false
}

func (w *writer) close() {
	w.b = append(w.b, '}')
	w.comma = true
}

func (w *writer) str(k, v string) {
	w.key(k)
	w.b = appendString(w.b, v)
}

func (w *writer) u(k string, v uint64) {
	w.key(k)
	w.b = append(w.b, '"')
	w.b = strconv.AppendUint(w.b, v, 10)
	w.b = append(w.b, '"')
}

func (w *writer) i(k string, v int32) {
	w.key(k)
	w.b = append(w.b, '"')
	w.b = strconv.AppendInt(w.b, int64(v), 10)
	w.b = append(w.b, '"')
}

func (w *writer) oct(k string, v uint32) {
	w.key(k)
	w.b = append(w.b, '"', '0')
	w.b = strconv.AppendUint(w.b, uint64(v), 8)
	w.b = append(w.b, '"')
}

func (w *writer) x(k string, v uint64) {
	w.key(k)
	w.b = append(w.b, '"', '0', 'x')
	w.b = strconv.AppendUint(w.b, v, 16)
	w.b = append(w.b, '"')
}

const hexDigits = "0123456789abcdef"

func (w *writer) hex(k string, v []byte) {
	w.key(k)
	w.b = append(w.b, '"')
	w.b = appendHex(w.b, v)
	w.b = append(w.b, '"')
}

func appendHex(b, v []byte) []byte {
	for _, c := range v {
		b = append(b, hexDigits[c>>4], hexDigits[c&15])
	}
	return b
}

// appendString appends s as a JSON string that Parse reads back to the
// same bytes.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < 0x80 && c != '"' && c != '\\' {
			i++
			continue
		}
		if c >= 0x80 {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r != utf8.RuneError || size != 1 {
				i += size
				continue
			}
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		default:
			// Control characters as \u00XX; a byte that is not UTF-8
			// as the lone low surrogate \udcXX.
			if c < 0x80 {
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&15])
			} else {
				b = append(b, '\\', 'u', 'd', 'c', hexDigits[c>>4], hexDigits[c&15])
			}
		}
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

func (w *writer) coe(c *COE) {
	w.u("uid", uint64(c.UID))
	w.u("euid", uint64(c.EUID))
	w.u("suid", uint64(c.SUID))
	w.u("gid", uint64(c.GID))
	w.u("egid", uint64(c.EGID))
	w.u("sgid", uint64(c.SGID))
	w.u("fsuid", uint64(c.FSUID))
	w.u("fsgid", uint64(c.FSGID))
	w.x("capeff", c.CapEff)
}

func (w *writer) cred(k string, c *Cred) {
	w.open(k)
	w.coe(&c.COE)
	w.u("securebits", uint64(c.Securebits))
	w.close()
}

func (w *writer) inode(k string, in *Inode) {
	w.open(k)
	w.u("uid", uint64(in.UID))
	w.u("gid", uint64(in.GID))
	w.oct("mode", in.Mode)
	w.x("s_magic", uint64(in.SMagic))
	w.str("s_id", in.SID)
	w.hex("s_uuid", in.SUUID[:])
	w.close()
}

func (w *writer) dev(k string, d Dev) {
	w.open(k)
	w.u("major", uint64(d.Major))
	w.u("minor", uint64(d.Minor))
	w.close()
}

func (w *writer) path(k string, p *Path) {
	w.open(k)
	if p.HasDev {
		w.dev("dev", p.Dev)
	}
	if p.Created {
		w.hex("owner", p.Owner.Bytes())
		w.u("instance", p.Instance)
	}
	w.str("type", p.Type)
	w.str("pathname", p.Pathname)
	w.close()
}

func (w *writer) dentry(k string, d *Dentry) {
	w.open(k)
	if d.HasInode {
		w.inode("inode", &d.Inode)
	}
	w.path("path", &d.Path)
	w.close()
}

func (w *writer) file(f *File) {
	w.open("file")
	w.u("flags", uint64(f.Flags))
	w.inode("inode", &f.Inode)
	w.path("path", &f.Path)
	w.hex("digest", f.Digest.Bytes())
	w.close()
}

func (w *writer) sock(k string, s *Sock) {
	w.open(k)
	w.i("family", int32(s.Family))
	w.i("type", int32(s.Type))
	w.i("protocol", int32(s.Protocol))
	w.hex("owner", s.Owner.Bytes())
	w.close()
}

func (w *writer) addr(a *SockAddr) {
	w.open("addr")
	switch a.Kind {
	case AddrInet:
		w.open("af_inet")
		w.u("port", uint64(a.Port))
		if a.Addrress {
			w.u("addrress", uint64(a.Address))
		} else {
			w.u("address", uint64(a.Address))
		}
		w.close()
	case AddrInet6:
		w.open("af_inet6")
		w.u("port", uint64(a.Port))
		if a.HasFlowScope {
			w.u("flow", uint64(a.Flow))
			w.u("scope", uint64(a.Scope))
		}
		w.hex("address", a.Addr6[:])
		w.close()
	case AddrUnix:
		w.open("af_unix")
		w.str("address", a.Unix)
		w.close()
	case AddrOther:
		w.open("af_other")
		w.hex("address", a.Other.Bytes())
		w.close()
	}
	w.close()
}

func (p *FileEvent) appendTSEM(b []byte, _ string) []byte {
	w := writer{b: b}
	w.file(&p.File)
	return w.b
}

func (p *FileCmd) appendTSEM(b []byte, _ string) []byte {
	w := writer{b: b}
	w.file(&p.File)
	w.u("cmd", uint64(p.Cmd))
	return w.b
}

func (p *MmapFile) appendTSEM(b []byte, _ string) []byte {
	w := writer{b: b}
	if p.HasFile {
		w.file(&p.File)
	}
	w.u("prot", uint64(p.Prot))
	w.u("flags", uint64(p.Flags))
	return w.b
}

func (p *InodeGetattr) appendTSEM(b []byte, _ string) []byte {
	w := writer{b: b}
	w.dentry("path", &p.Path)
	return w.b
}

func (p *DentryEvent) appendTSEM(b []byte, _ string) []byte {
	w := writer{b: b}
	w.dentry("dentry", &p.Dentry)
	return w.b
}

func (p *InodeCreate) appendTSEM(b []byte, _ string) []byte {
	w := writer{b: b}
	w.inode("dir", &p.Dir)
	w.dentry("dentry", &p.Dentry)
	w.oct("mode", p.Mode)
	return w.b
}

func (p *InodeRemove) appendTSEM(b []byte, _ string) []byte {
	w := writer{b: b}
	w.inode("dir", &p.Dir)
	w.dentry("dentry", &p.Dentry)
	return w.b
}

func (p *InodeSymlink) appendTSEM(b []byte, _ string) []byte {
	w := writer{b: b}
	w.inode("dir", &p.Dir)
	w.dentry("dentry", &p.Dentry)
	w.str("old_name", p.OldName)
	return w.b
}

func (p *InodeMknod) appendTSEM(b []byte, _ string) []byte {
	w := writer{b: b}
	w.inode("dir", &p.Dir)
	w.dentry("dentry", &p.Dentry)
	w.oct("mode", p.Mode)
	w.dev("dev", p.Dev)
	return w.b
}

func (p *InodeLink) appendTSEM(b []byte, _ string) []byte {
	w := writer{b: b}
	w.dentry("old_dentry", &p.OldDentry)
	w.inode("dir", &p.Dir)
	w.dentry("new_dentry", &p.NewDentry)
	return w.b
}

func (p *InodeRename) appendTSEM(b []byte, _ string) []byte {
	w := writer{b: b}
	w.inode("old_dir", &p.OldDir)
	w.dentry("old_dentry", &p.OldDentry)
	w.inode("new_dir", &p.NewDir)
	w.dentry("new_dentry", &p.NewDentry)
	return w.b
}

func (p *InodeSetattr) appendTSEM(b []byte, _ string) []byte {
	w := writer{b: b}
	w.dentry("dentry", &p.Dentry)
	w.open("attr")
	w.u("valid", uint64(p.Valid))
	w.oct("mode", p.Mode)
	w.u("uid", uint64(p.UID))
	w.u("gid", uint64(p.GID))
	w.u("size", p.Size)
	w.close()
	return w.b
}

func (p *InodeXattr) appendTSEM(b []byte, typ string) []byte {
	w := writer{b: b}
	w.dentry("dentry", &p.Dentry)
	w.str("name", p.Name)
	if typ == "inode_setxattr" {
		w.str("value", p.Value)
		w.i("flags", p.Flags)
	}
	return w.b
}

func (p *SbMount) appendTSEM(b []byte, _ string) []byte {
	w := writer{b: b}
	if p.HasDevName {
		w.str("dev_name", p.DevName)
	}
	w.path("path", &p.Path)
	if p.HasFSType {
		w.str("type", p.FSType)
	}
	w.u("flags", p.Flags)
	return w.b
}

func (p *SbUmount) appendTSEM(b []byte, _ string) []byte {
	w := writer{b: b}
	w.dentry("mnt", &p.Mnt)
	w.i("flags", p.Flags)
	return w.b
}

func (p *SbRemount) appendTSEM(b []byte, _ string) []byte {
	w := writer{b: b}
	w.open("sb")
	w.dentry("dentry", &p.Dentry)
	w.str("fstype", p.FSType)
	w.u("s_flags", p.Flags)
	w.close()
	return w.b
}

func (p *PathPair) appendTSEM(b []byte, typ string) []byte {
	w := writer{b: b}
	if typ == "move_mount" {
		w.path("from_path", &p.Old)
		w.path("to_path", &p.New)
		return w.b
	}
	w.path("old_path", &p.Old)
	w.path("new_path", &p.New)
	return w.b
}

func (p *SocketCreate) appendTSEM(b []byte, _ string) []byte {
	w := writer{b: b}
	w.u("family", uint64(p.Family))
	w.u("type", uint64(p.Type))
	w.u("protocol", uint64(p.Protocol))
	w.u("kern", uint64(p.Kern))
	return w.b
}

func (p *SocketAddr) appendTSEM(b []byte, _ string) []byte {
	w := writer{b: b}
	w.sock("sock", &p.Sock)
	w.addr(&p.Addr)
	return w.b
}

func (p *SocketMsg) appendTSEM(b []byte, _ string) []byte {
	w := writer{b: b}
	w.sock("sock", &p.Sock)
	if p.HasAddr {
		w.addr(&p.Addr)
	}
	return w.b
}

func (p *SockPair) appendTSEM(b []byte, typ string) []byte {
	w := writer{b: b}
	if typ == "socket_socketpair" {
		w.sock("socka", &p.A)
		w.sock("sockb", &p.B)
		return w.b
	}
	w.sock("sock", &p.A)
	w.sock("other", &p.B)
	return w.b
}

func (p *SockEvent) appendTSEM(b []byte, _ string) []byte {
	w := writer{b: b}
	w.sock("sock", &p.Sock)
	return w.b
}

func (p *SockValue) appendTSEM(b []byte, typ string) []byte {
	w := writer{b: b}
	w.sock("sock", &p.Sock)
	if typ == "socket_shutdown" {
		w.i("how", p.Value)
	} else {
		w.i("backlog", p.Value)
	}
	return w.b
}

func (p *SocketSetsockopt) appendTSEM(b []byte, _ string) []byte {
	w := writer{b: b}
	w.sock("sock", &p.Sock)
	w.i("level", p.Level)
	w.i("optname", p.Optname)
	return w.b
}

func (p *TaskKill) appendTSEM(b []byte, _ string) []byte {
	w := writer{b: b}
	w.hex("target", p.Target.Bytes())
	w.u("sig", uint64(p.Sig))
	w.u("cross_ns", uint64(p.CrossNS))
	return w.b
}

func (p *TaskSetpgid) appendTSEM(b []byte, _ string) []byte {
	w := writer{b: b}
	w.hex("task", p.Task.Bytes())
	w.hex("source", p.Source.Bytes())
	return w.b
}

func (p *TaskTarget) appendTSEM(b []byte, _ string) []byte {
	w := writer{b: b}
	w.hex("task", p.Task.Bytes())
	return w.b
}

func (p *TaskValue) appendTSEM(b []byte, typ string) []byte {
	w := writer{b: b}
	w.hex("task", p.Task.Bytes())
	if typ == "task_setioprio" {
		w.i("ioprio", p.Value)
	} else {
		w.i("nice", p.Value)
	}
	return w.b
}

func (p *TaskPrlimit) appendTSEM(b []byte, _ string) []byte {
	w := writer{b: b}
	w.cred("cred", &p.Cred)
	w.cred("tcred", &p.TCred)
	w.u("flags", uint64(p.Flags))
	return w.b
}

func (p *TaskSetrlimit) appendTSEM(b []byte, _ string) []byte {
	w := writer{b: b}
	w.hex("task", p.Task.Bytes())
	w.open("new_rlim")
	w.u("resource", uint64(p.Resource))
	w.u("current", p.Current)
	w.u("max", p.Max)
	w.close()
	return w.b
}

func (p *TaskPrctl) appendTSEM(b []byte, _ string) []byte {
	w := writer{b: b}
	w.i("option", int32(p.Option))
	w.u("arg2", p.Arg2)
	w.u("arg3", p.Arg3)
	w.u("arg4", p.Arg4)
	w.u("arg5", p.Arg5)
	return w.b
}

func (p *PtraceAccessCheck) appendTSEM(b []byte, _ string) []byte {
	w := writer{b: b}
	w.hex("child", p.Child.Bytes())
	w.u("mode", uint64(p.Mode))
	return w.b
}

func (p *PtraceTraceme) appendTSEM(b []byte, _ string) []byte {
	w := writer{b: b}
	w.hex("source", p.Source.Bytes())
	return w.b
}

func (p *Capable) appendTSEM(b []byte, _ string) []byte {
	w := writer{b: b}
	w.i("cap", int32(p.Cap))
	w.u("opts", uint64(p.Opts))
	return w.b
}

func (p *Capget) appendTSEM(b []byte, _ string) []byte {
	w := writer{b: b}
	w.hex("target", p.Target.Bytes())
	w.x("effective", p.Effective)
	w.x("inheritable", p.Inheritable)
	w.x("permitted", p.Permitted)
	return w.b
}

func (p *Capset) appendTSEM(b []byte, _ string) []byte {
	w := writer{b: b}
	w.x("effective", p.Effective)
	w.x("inheritable", p.Inheritable)
	w.x("permitted", p.Permitted)
	return w.b
}

func (p *KeyAlloc) appendTSEM(b []byte, _ string) []byte {
	w := writer{b: b}
	w.cred("cred", &p.Cred)
	w.u("flags", p.Flags)
	return w.b
}

func (p *KeyPermission) appendTSEM(b []byte, _ string) []byte {
	w := writer{b: b}
	w.open("key_ref")
	w.u("possessed", uint64(p.Possessed))
	w.u("uid", uint64(p.UID))
	w.u("gid", uint64(p.GID))
	w.u("flags", p.Flags)
	w.close()
	w.cred("cred", &p.Cred)
	w.u("perm", uint64(p.Perm))
	return w.b
}

func (p *Generic) appendTSEM(b []byte, _ string) []byte {
	w := writer{b: b}
	w.fields(p.Fields)
	return w.b
}

func (w *writer) fields(fs []Field) {
	for i := range fs {
		f := &fs[i]
		if f.Object {
			w.open(f.Key)
			w.fields(f.Fields)
			w.close()
		} else {
			w.str(f.Key, f.Value)
		}
	}
}
