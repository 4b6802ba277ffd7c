package events

import (
	"strconv"
	"strings"
	"sync"
)

var scanners = sync.Pool{New: func() any { return &decoder{intern: make(map[string]string)} }}

// Parse decodes one TSEM JSON event description (without the newline). It
// accepts what the kernel really writes: raw control characters and bytes
// that are not UTF-8 inside strings are kept byte-exact, and the standard
// JSON escapes are decoded. The returned Event does not refer to line.
// Errors are *ParseError values wrapping one of the Err* sentinels.
func Parse(line []byte) (*Event, error) {
	d := scanners.Get().(*decoder)
	defer d.release()
	d.s.reset(line)
	d.err = nil
	if !d.s.scan() {
		return nil, d.s.err
	}
	e := new(Event)
	d.event(e)
	if d.err != nil {
		return nil, d.err
	}
	return e, nil
}

type decoder struct {
	s      scanner
	err    *ParseError
	intern map[string]string
}

// release returns d to the pool without keeping the caller's line alive.
func (d *decoder) release() {
	d.s.in = nil
	if cap(d.s.nodes) > 1<<12 || cap(d.s.scratch) > 1<<16 {
		d.s.nodes, d.s.scratch = nil, nil
	}
	scanners.Put(d)
}

func (d *decoder) fail(n int32, sentinel error, detail string) {
	if d.err != nil {
		return
	}
	off := 0
	if n >= 0 {
		off = int(d.s.nodes[n].off)
	}
	d.err = &ParseError{Offset: off, Field: d.fieldPath(n), Err: sentinel, Detail: detail}
}

// fieldPath is the dotted member path of node n.
func (d *decoder) fieldPath(n int32) string {
	var parts []string
	for ; n > 0; n = d.s.nodes[n].parent {
		parts = append(parts, string(d.s.bytes(d.s.nodes[n].key)))
	}
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	return strings.Join(parts, ".")
}

// object is a cursor over an object's members that remembers which were
// read, so that unknown or repeated members are reported.
type object struct {
	n    int32
	seen uint64
	// cur and curIdx are the member after the last one found and its
	// position: members are usually read in the order TSEM prints them.
	cur    int32
	curIdx int
}

func (d *decoder) obj(n int32) object {
	if n < 0 || d.err != nil {
		return object{n: -1}
	}
	if d.s.nodes[n].kind != kindObject {
		d.fail(n, ErrSyntax, "want an object")
		return object{n: -1}
	}
	return object{n: n, cur: d.s.nodes[n].child}
}

// get returns the member named key, or -1.
func (d *decoder) get(o *object, key string) int32 {
	if o.n < 0 {
		return -1
	}
	// Search from the cursor to the end, then from the start.
	if c, i := d.find(o.cur, o.curIdx, -1, key); c >= 0 {
		return o.found(d, c, i)
	}
	if c, i := d.find(d.s.nodes[o.n].child, 0, o.cur, key); c >= 0 {
		return o.found(d, c, i)
	}
	return -1
}

func (d *decoder) find(from int32, idx int, stop int32, key string) (int32, int) {
	for c := from; c >= 0 && c != stop; c = d.s.nodes[c].next {
		if string(d.s.bytes(d.s.nodes[c].key)) == key {
			return c, idx
		}
		idx++
	}
	return -1, 0
}

func (o *object) found(d *decoder, c int32, i int) int32 {
	if i < 64 {
		o.seen |= 1 << i
	}
	o.cur, o.curIdx = d.s.nodes[c].next, i+1
	return c
}

// req returns the member named key and reports it missing when absent.
func (d *decoder) req(o *object, key string) int32 {
	c := d.get(o, key)
	if c < 0 && o.n >= 0 {
		if d.err == nil {
			f := d.fieldPath(o.n)
			if f != "" {
				f += "."
			}
			d.err = &ParseError{Offset: int(d.s.nodes[o.n].off), Field: f + key, Err: ErrMissingField}
		}
	}
	return c
}

// end reports the first member that was not read.
func (d *decoder) end(o *object) {
	if o.n < 0 || d.err != nil {
		return
	}
	i := 0
	for c := d.s.nodes[o.n].child; c >= 0; c = d.s.nodes[c].next {
		if i >= 64 || o.seen&(1<<i) == 0 {
			detail := "not part of this layout"
			probe := object{n: o.n, cur: d.s.nodes[o.n].child}
			if d.get(&probe, string(d.s.bytes(d.s.nodes[c].key))) != c {
				detail = "repeated"
			}
			d.fail(c, ErrUnknownField, detail)
			return
		}
		i++
	}
}

func (d *decoder) raw(n int32) ([]byte, bool) {
	if n < 0 || d.err != nil {
		return nil, false
	}
	nd := &d.s.nodes[n]
	if nd.kind != kindString {
		d.fail(n, ErrSyntax, "want a string")
		return nil, false
	}
	return d.s.bytes(nd.val), true
}

func (d *decoder) str(n int32) string {
	b, ok := d.raw(n)
	if !ok {
		return ""
	}
	return string(b)
}

// istr returns a string that likely repeats (a process name, a filesystem
// id, a path type) from a bounded intern table.
func (d *decoder) istr(n int32) string {
	b, ok := d.raw(n)
	if !ok {
		return ""
	}
	if s, ok := d.intern[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(b) <= 64 && len(d.intern) < 4096 {
		d.intern[s] = s
	}
	return s
}

func (d *decoder) num(n int32, bits int, signed bool) (uint64, bool) {
	b, ok := d.raw(n)
	if !ok {
		return 0, false
	}
	neg, v, ok := parseNumber(b)
	if ok {
		switch {
		case !signed && neg && v != 0:
			ok = false
		case signed && neg:
			ok = v <= 1<<(bits-1)
		case signed:
			ok = v < 1<<(bits-1)
		case bits < 64:
			ok = v < 1<<bits
		}
	}
	if !ok {
		d.fail(n, ErrBadNumber, strconv.Quote(string(b)))
		return 0, false
	}
	if neg {
		v = -v
	}
	return v, true
}

func (d *decoder) u32(n int32) uint32 { v, _ := d.num(n, 32, false); return uint32(v) }
func (d *decoder) u64(n int32) uint64 { v, _ := d.num(n, 64, false); return v }
func (d *decoder) i32(n int32) int32  { v, _ := d.num(n, 32, true); return int32(v) }

// parseNumber reads an integer the way C strtoll(s, 0) does (leading 0x
// hexadecimal, leading 0 octal, else decimal), but insists on consuming
// every byte.
func parseNumber(b []byte) (neg bool, v uint64, ok bool) {
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		neg = b[0] == '-'
		b = b[1:]
	}
	if len(b) == 0 {
		return false, 0, false
	}
	base := uint64(10)
	switch {
	case len(b) > 1 && b[0] == '0' && (b[1] == 'x' || b[1] == 'X'):
		base, b = 16, b[2:]
		if len(b) == 0 {
			return false, 0, false
		}
	case b[0] == '0':
		base = 8
	}
	for _, c := range b {
		h := hexValue[c]
		x := uint64(h)
		if h < 0 || x >= base {
			return false, 0, false
		}
		hi := v * base
		if v != 0 && hi/base != v {
			return false, 0, false
		}
		v = hi + x
		if v < hi {
			return false, 0, false
		}
	}
	return neg, v, true
}

func (d *decoder) hex(n int32, dst []byte) {
	b, ok := d.raw(n)
	if !ok {
		return
	}
	if len(b) != 2*len(dst) {
		d.fail(n, ErrBadHex, "want "+strconv.Itoa(2*len(dst))+" hex digits, got "+strconv.Quote(string(b)))
		return
	}
	b = b[:2*len(dst)]
	for i := range dst {
		hi, lo := hexValue[b[2*i]], hexValue[b[2*i+1]]
		if hi|lo < 0 {
			d.fail(n, ErrBadHex, strconv.Quote(string(b)))
			return
		}
		dst[i] = byte(hi)<<4 | byte(lo)
	}
}

// digest decodes a digest of any supported length (64, 96 or 128 hex
// digits): the namespace's hash decides it, and a description carries it.
func (d *decoder) digest(n int32) (h Digest) {
	b, ok := d.raw(n)
	if !ok {
		return h
	}
	size := len(b) / 2
	if _, known := HashOfSize(size); !known || len(b)%2 != 0 {
		d.fail(n, ErrBadHex, "want 64, 96 or 128 hex digits, got "+strconv.Quote(string(b)))
		return h
	}
	d.hex(n, h.b[:size])
	h.n = uint8(size)
	return h
}

func (d *decoder) event(e *Event) {
	root := d.obj(0)
	h := d.obj(d.req(&root, "event"))
	if n := d.get(&h, "pid"); n >= 0 {
		e.Header.Pid = d.u32(n)
		e.Header.HasPid = true
	}
	e.Header.Context = d.u64(d.req(&h, "context"))
	e.Header.Number = d.u64(d.req(&h, "number"))
	e.Header.Process = d.istr(d.req(&h, "process"))
	tn := d.req(&h, "type")
	e.Header.TTD = d.u64(d.req(&h, "ttd"))
	e.Header.PTTD = d.u64(d.req(&h, "p_ttd"))
	e.Header.TaskID = d.digest(d.req(&h, "task_id"))
	e.Header.PTaskID = d.digest(d.req(&h, "p_task_id"))
	e.Header.TS = d.u64(d.req(&h, "ts"))
	d.end(&h)
	typ, ok := d.raw(tn)
	if !ok {
		return
	}
	e.Header.Type = canonicalName(typ)
	if e.Header.Type == "" {
		d.fail(tn, ErrUnknownType, strconv.Quote(string(typ)))
		return
	}
	e.COE = d.coe(d.req(&root, "COE"))
	p := d.req(&root, e.Header.Type)
	d.end(&root)
	if d.err != nil {
		return
	}
	e.Payload = d.payload(e.Header.Type, p)
}

// canonicalName returns the catalogue's copy of a known name, or "".
func canonicalName(b []byte) string {
	s := string(b) // does not allocate: only compared
	lo, hi := 0, len(sortedNames)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if sortedNames[m] < s {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(sortedNames) && sortedNames[lo] == s {
		return sortedNames[lo]
	}
	return ""
}

func (d *decoder) coe(n int32) (c COE) {
	o := d.obj(n)
	d.coeMembers(&o, &c)
	d.end(&o)
	return c
}

func (d *decoder) coeMembers(o *object, c *COE) {
	c.UID = d.u32(d.req(o, "uid"))
	c.EUID = d.u32(d.req(o, "euid"))
	c.SUID = d.u32(d.req(o, "suid"))
	c.GID = d.u32(d.req(o, "gid"))
	c.EGID = d.u32(d.req(o, "egid"))
	c.SGID = d.u32(d.req(o, "sgid"))
	c.FSUID = d.u32(d.req(o, "fsuid"))
	c.FSGID = d.u32(d.req(o, "fsgid"))
	c.CapEff = d.u64(d.req(o, "capeff"))
}

func (d *decoder) cred(n int32) (c Cred) {
	o := d.obj(n)
	d.coeMembers(&o, &c.COE)
	c.Securebits = d.u32(d.req(&o, "securebits"))
	d.end(&o)
	return c
}

func (d *decoder) inode(n int32) (in Inode) {
	o := d.obj(n)
	in.UID = d.u32(d.req(&o, "uid"))
	in.GID = d.u32(d.req(&o, "gid"))
	in.Mode = d.u32(d.req(&o, "mode"))
	in.SMagic = d.u32(d.req(&o, "s_magic"))
	in.SID = d.istr(d.req(&o, "s_id"))
	d.hex(d.req(&o, "s_uuid"), in.SUUID[:])
	d.end(&o)
	return in
}

func (d *decoder) dev(n int32) (v Dev) {
	o := d.obj(n)
	v.Major = d.u32(d.req(&o, "major"))
	v.Minor = d.u32(d.req(&o, "minor"))
	d.end(&o)
	return v
}

func (d *decoder) path(n int32) (p Path) {
	o := d.obj(n)
	if c := d.get(&o, "dev"); c >= 0 {
		p.HasDev = true
		p.Dev = d.dev(c)
	}
	if c := d.get(&o, "owner"); c >= 0 {
		p.Created = true
		p.Owner = d.digest(c)
		p.Instance = d.u64(d.req(&o, "instance"))
	} else if c := d.get(&o, "instance"); c >= 0 {
		d.req(&o, "owner")
	}
	p.Type = d.istr(d.req(&o, "type"))
	p.Pathname = d.str(d.req(&o, "pathname"))
	d.end(&o)
	return p
}

func (d *decoder) dentry(n int32) (de Dentry) {
	o := d.obj(n)
	if c := d.get(&o, "inode"); c >= 0 {
		de.HasInode = true
		de.Inode = d.inode(c)
	}
	de.Path = d.path(d.req(&o, "path"))
	d.end(&o)
	return de
}

func (d *decoder) fileMembers(o *object) (f File) {
	fo := d.obj(d.req(o, "file"))
	f = d.fileObject(&fo)
	return f
}

func (d *decoder) fileObject(o *object) (f File) {
	f.Flags = d.u32(d.req(o, "flags"))
	f.Inode = d.inode(d.req(o, "inode"))
	f.Path = d.path(d.req(o, "path"))
	f.Digest = d.digest(d.req(o, "digest"))
	d.end(o)
	return f
}

func (d *decoder) sock(n int32) (s Sock) {
	o := d.obj(n)
	s.Family = uint32(d.i32(d.req(&o, "family")))
	s.Type = uint32(d.i32(d.req(&o, "type")))
	s.Protocol = uint32(d.i32(d.req(&o, "protocol")))
	s.Owner = d.digest(d.req(&o, "owner"))
	d.end(&o)
	return s
}

func (d *decoder) addr(n int32) (a SockAddr) {
	o := d.obj(n)
	if o.n < 0 {
		return a
	}
	k := d.s.nodes[o.n].child
	if k < 0 || d.s.nodes[k].next >= 0 {
		d.fail(n, ErrSyntax, "want exactly one of af_inet, af_inet6, af_unix, af_other")
		return a
	}
	var m object
	switch string(d.s.bytes(d.s.nodes[k].key)) {
	case "af_inet":
		a.Kind = AddrInet
		m = d.obj(d.get(&o, "af_inet"))
		a.Port = d.u32(d.req(&m, "port"))
		c := d.get(&m, "address")
		if c < 0 {
			if c = d.get(&m, "addrress"); c >= 0 {
				a.Addrress = true
			} else {
				d.req(&m, "address")
			}
		}
		a.Address = d.u32(c)
	case "af_inet6":
		a.Kind = AddrInet6
		m = d.obj(d.get(&o, "af_inet6"))
		a.Port = d.u32(d.req(&m, "port"))
		if c := d.get(&m, "flow"); c >= 0 {
			a.HasFlowScope = true
			a.Flow = d.u32(c)
			a.Scope = d.u32(d.req(&m, "scope"))
		}
		d.hex(d.req(&m, "address"), a.Addr6[:])
	case "af_unix":
		a.Kind = AddrUnix
		m = d.obj(d.get(&o, "af_unix"))
		a.Unix = d.str(d.req(&m, "address"))
	case "af_other":
		a.Kind = AddrOther
		m = d.obj(d.get(&o, "af_other"))
		a.Other = d.digest(d.req(&m, "address"))
	default:
		d.fail(k, ErrUnknownField, "want af_inet, af_inet6, af_unix or af_other")
		return a
	}
	d.end(&m)
	d.end(&o)
	return a
}

func (d *decoder) payload(typ string, n int32) Payload {
	o := d.obj(n)
	if o.n < 0 {
		return nil
	}
	var p Payload
	switch typ {
	case "file_open", "file_receive", "bprm_committed_creds":
		p = &FileEvent{File: d.fileMembers(&o)}
	case "file_ioctl", "file_lock", "file_fcntl":
		p = &FileCmd{File: d.fileMembers(&o), Cmd: d.u32(d.req(&o, "cmd"))}
	case "mmap_file":
		m := &MmapFile{}
		if c := d.get(&o, "file"); c >= 0 {
			m.HasFile = true
			fo := d.obj(c)
			m.File = d.fileObject(&fo)
		}
		m.Prot = d.u32(d.req(&o, "prot"))
		m.Flags = d.u32(d.req(&o, "flags"))
		p = m
	case "inode_getattr":
		p = &InodeGetattr{Path: d.dentry(d.req(&o, "path"))}
	case "sb_statfs", "inode_killpriv", "inode_listxattr", "quota_on":
		p = &DentryEvent{Dentry: d.dentry(d.req(&o, "dentry"))}
	case "inode_create", "inode_mkdir":
		p = &InodeCreate{Dir: d.inode(d.req(&o, "dir")), Dentry: d.dentry(d.req(&o, "dentry")), Mode: d.u32(d.req(&o, "mode"))}
	case "inode_unlink", "inode_rmdir":
		p = &InodeRemove{Dir: d.inode(d.req(&o, "dir")), Dentry: d.dentry(d.req(&o, "dentry"))}
	case "inode_symlink":
		p = &InodeSymlink{Dir: d.inode(d.req(&o, "dir")), Dentry: d.dentry(d.req(&o, "dentry")), OldName: d.str(d.req(&o, "old_name"))}
	case "inode_mknod":
		p = &InodeMknod{Dir: d.inode(d.req(&o, "dir")), Dentry: d.dentry(d.req(&o, "dentry")), Mode: d.u32(d.req(&o, "mode")), Dev: d.dev(d.req(&o, "dev"))}
	case "inode_link":
		p = &InodeLink{OldDentry: d.dentry(d.req(&o, "old_dentry")), Dir: d.inode(d.req(&o, "dir")), NewDentry: d.dentry(d.req(&o, "new_dentry"))}
	case "inode_rename":
		p = &InodeRename{OldDir: d.inode(d.req(&o, "old_dir")), OldDentry: d.dentry(d.req(&o, "old_dentry")), NewDir: d.inode(d.req(&o, "new_dir")), NewDentry: d.dentry(d.req(&o, "new_dentry"))}
	case "inode_setattr":
		s := &InodeSetattr{Dentry: d.dentry(d.req(&o, "dentry"))}
		a := d.obj(d.req(&o, "attr"))
		s.Valid = d.u32(d.req(&a, "valid"))
		s.Mode = d.u32(d.req(&a, "mode"))
		s.UID = d.u32(d.req(&a, "uid"))
		s.GID = d.u32(d.req(&a, "gid"))
		s.Size = d.u64(d.req(&a, "size"))
		d.end(&a)
		p = s
	case "inode_setxattr":
		p = &InodeXattr{Dentry: d.dentry(d.req(&o, "dentry")), Name: d.str(d.req(&o, "name")), Value: d.str(d.req(&o, "value")), Flags: d.i32(d.req(&o, "flags"))}
	case "inode_getxattr", "inode_removexattr":
		p = &InodeXattr{Dentry: d.dentry(d.req(&o, "dentry")), Name: d.str(d.req(&o, "name"))}
	case "sb_mount":
		m := &SbMount{}
		if c := d.get(&o, "dev_name"); c >= 0 {
			m.HasDevName = true
			m.DevName = d.str(c)
		}
		m.Path = d.path(d.req(&o, "path"))
		if c := d.get(&o, "type"); c >= 0 {
			m.HasFSType = true
			m.FSType = d.istr(c)
		}
		m.Flags = d.u64(d.req(&o, "flags"))
		p = m
	case "sb_umount":
		p = &SbUmount{Mnt: d.dentry(d.req(&o, "mnt")), Flags: d.i32(d.req(&o, "flags"))}
	case "sb_remount":
		sb := d.obj(d.req(&o, "sb"))
		r := &SbRemount{Dentry: d.dentry(d.req(&sb, "dentry")), FSType: d.istr(d.req(&sb, "fstype")), Flags: d.u64(d.req(&sb, "s_flags"))}
		d.end(&sb)
		p = r
	case "sb_pivotroot":
		p = &PathPair{Old: d.path(d.req(&o, "old_path")), New: d.path(d.req(&o, "new_path"))}
	case "move_mount":
		p = &PathPair{Old: d.path(d.req(&o, "from_path")), New: d.path(d.req(&o, "to_path"))}
	case "socket_create":
		p = &SocketCreate{Family: d.u32(d.req(&o, "family")), Type: d.u32(d.req(&o, "type")), Protocol: d.u32(d.req(&o, "protocol")), Kern: d.u32(d.req(&o, "kern"))}
	case "socket_connect", "socket_bind", "socket_accept":
		p = &SocketAddr{Sock: d.sock(d.req(&o, "sock")), Addr: d.addr(d.req(&o, "addr"))}
	case "socket_sendmsg", "socket_recvmsg":
		m := &SocketMsg{Sock: d.sock(d.req(&o, "sock"))}
		if c := d.get(&o, "addr"); c >= 0 {
			m.HasAddr = true
			m.Addr = d.addr(c)
		}
		p = m
	case "unix_stream_connect", "unix_may_send":
		p = &SockPair{A: d.sock(d.req(&o, "sock")), B: d.sock(d.req(&o, "other"))}
	case "socket_socketpair":
		p = &SockPair{A: d.sock(d.req(&o, "socka")), B: d.sock(d.req(&o, "sockb"))}
	case "socket_getsockname", "socket_getpeername":
		p = &SockEvent{Sock: d.sock(d.req(&o, "sock"))}
	case "socket_listen":
		p = &SockValue{Sock: d.sock(d.req(&o, "sock")), Value: d.i32(d.req(&o, "backlog"))}
	case "socket_shutdown":
		p = &SockValue{Sock: d.sock(d.req(&o, "sock")), Value: d.i32(d.req(&o, "how"))}
	case "socket_setsockopt":
		p = &SocketSetsockopt{Sock: d.sock(d.req(&o, "sock")), Level: d.i32(d.req(&o, "level")), Optname: d.i32(d.req(&o, "optname"))}
	case "task_kill":
		p = &TaskKill{Target: d.digest(d.req(&o, "target")), Sig: d.u32(d.req(&o, "sig")), CrossNS: d.u32(d.req(&o, "cross_ns"))}
	case "task_setpgid":
		p = &TaskSetpgid{Task: d.digest(d.req(&o, "task")), Source: d.digest(d.req(&o, "source"))}
	case "task_getpgid", "task_getsid", "task_getioprio", "task_setscheduler", "task_getscheduler":
		p = &TaskTarget{Task: d.digest(d.req(&o, "task"))}
	case "task_setnice":
		p = &TaskValue{Task: d.digest(d.req(&o, "task")), Value: d.i32(d.req(&o, "nice"))}
	case "task_setioprio":
		p = &TaskValue{Task: d.digest(d.req(&o, "task")), Value: d.i32(d.req(&o, "ioprio"))}
	case "task_prlimit":
		p = &TaskPrlimit{Cred: d.cred(d.req(&o, "cred")), TCred: d.cred(d.req(&o, "tcred")), Flags: d.u32(d.req(&o, "flags"))}
	case "task_setrlimit":
		r := &TaskSetrlimit{Task: d.digest(d.req(&o, "task"))}
		l := d.obj(d.req(&o, "new_rlim"))
		r.Resource = d.u32(d.req(&l, "resource"))
		r.Current = d.u64(d.req(&l, "current"))
		r.Max = d.u64(d.req(&l, "max"))
		d.end(&l)
		p = r
	case "task_prctl":
		p = &TaskPrctl{Option: uint32(d.i32(d.req(&o, "option"))), Arg2: d.u64(d.req(&o, "arg2")), Arg3: d.u64(d.req(&o, "arg3")), Arg4: d.u64(d.req(&o, "arg4")), Arg5: d.u64(d.req(&o, "arg5"))}
	case "ptrace_access_check":
		p = &PtraceAccessCheck{Child: d.digest(d.req(&o, "child")), Mode: d.u32(d.req(&o, "mode"))}
	case "ptrace_traceme":
		p = &PtraceTraceme{Source: d.digest(d.req(&o, "source"))}
	case "capable":
		p = &Capable{Cap: uint32(d.i32(d.req(&o, "cap"))), Opts: d.u32(d.req(&o, "opts"))}
	case "capget":
		p = &Capget{Target: d.digest(d.req(&o, "target")), Effective: d.u64(d.req(&o, "effective")), Inheritable: d.u64(d.req(&o, "inheritable")), Permitted: d.u64(d.req(&o, "permitted"))}
	case "capset":
		p = &Capset{Effective: d.u64(d.req(&o, "effective")), Inheritable: d.u64(d.req(&o, "inheritable")), Permitted: d.u64(d.req(&o, "permitted"))}
	case "key_alloc":
		p = &KeyAlloc{Cred: d.cred(d.req(&o, "cred")), Flags: d.u64(d.req(&o, "flags"))}
	case "key_permission":
		k := &KeyPermission{}
		r := d.obj(d.req(&o, "key_ref"))
		k.Possessed = d.u32(d.req(&r, "possessed"))
		k.UID = d.u32(d.req(&r, "uid"))
		k.GID = d.u32(d.req(&r, "gid"))
		k.Flags = d.u64(d.req(&r, "flags"))
		d.end(&r)
		k.Cred = d.cred(d.req(&o, "cred"))
		k.Perm = d.u32(d.req(&o, "perm"))
		p = k
	case "kernel_read_file":
		// With its file it has a typed layout; without one (a read
		// that names no file) it stays generic.
		if d.get(&o, "file") < 0 {
			return &Generic{Fields: d.generic(n)}
		}
		p = &KernelReadFile{File: d.fileMembers(&o), ID: d.i32(d.req(&o, "id")), Contents: d.i32(d.req(&o, "contents"))}
	default:
		return &Generic{Fields: d.generic(n)}
	}
	d.end(&o)
	return p
}

func (d *decoder) generic(n int32) []Field {
	var fs []Field
	for c := d.s.nodes[n].child; c >= 0; c = d.s.nodes[c].next {
		nd := &d.s.nodes[c]
		f := Field{Key: string(d.s.bytes(nd.key))}
		if nd.kind == kindObject {
			f.Object = true
			f.Fields = d.generic(c)
		} else {
			f.Value = string(d.s.bytes(nd.val))
		}
		fs = append(fs, f)
	}
	return fs
}
