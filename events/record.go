package events

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/vigil-tsem/vigil/bpf"
)

// ErrNotEvent is returned by Convert for a record that carries task
// lifecycle only (bpf.TaskFork, bpf.TaskExit) or task identity (bpf.Exec);
// the namespace layer consumes those itself.
var ErrNotEvent = errors.New("record is not a security event")

// TaskIDs resolves the kernel's task trust domain numbers (bpf.Header.TTD)
// to TSEM task ids. The namespace layer implements it; TaskID of an unknown
// TTD, and of 0, is the zero Digest (zero bytes of the namespace's hash
// length).
type TaskIDs interface {
	TaskID(ttd uint64) Digest
}

// Converter turns ring-buffer records into TSEM event descriptions: the
// header and COE from the record header, task ids through Tasks, file
// digests through Digests, pathnames, devices, addresses and the rest as
// TSEM writes them. It is safe for concurrent use when Digests and Tasks
// are.
type Converter struct {
	// Digests computes file content digests; nil gives every file
	// EmptyDigest (for tests and benchmarks that have no files).
	Digests *DigestCache
	Tasks   TaskIDs
	// HashOf returns the hash algorithm of a namespace (bpf.Header.NS):
	// file digests, zero task ids and address digests of its events are
	// computed with it. nil means SHA-256 for every namespace.
	HashOf func(ns uint64) Hash
	// FileSystemOf returns the held file system of a namespace (a
	// container's, see FileSystem) through which its files are read
	// first; nil, or a nil result, means none.
	FileSystemOf func(ns uint64) FileSystem
	// IsPseudonym reports whether pathname is a pseudonym of namespace
	// ns's model: such a file is given the zero digest, H(""), its
	// content not read, as in TSEM. nil means no pseudonyms.
	IsPseudonym func(ns uint64, pathname string) bool

	digestFailures atomic.Uint64

	// The processes of each namespace seen last (recentTasks of them),
	// through which a file may still be reached once the process that
	// opened it has exited (its container's root, an open descriptor).
	recentMu sync.Mutex
	recent   map[uint64]*[recentTasks]uint32
}

// recentTasks is how many processes per namespace Converter remembers,
// for up to maxRecentNamespaces namespaces (then it starts over).
const (
	recentTasks         = 4
	maxRecentNamespaces = 4096
)

// DigestFailures counts files whose digest could not be known (their cell
// carries the unhashable digest, Hash.Unhashable).
func (c *Converter) DigestFailures() uint64 { return c.digestFailures.Load() }

// Convert returns the TSEM event description of a security event record.
// Header.Number is left 0 (the namespace numbers its events) and Header.TS
// is the kernel's timestamp (nanoseconds since boot). A record that is no
// security event returns an error wrapping ErrNotEvent.
func (c *Converter) Convert(r bpf.Record) (*Event, error) {
	h := r.Head()
	alg := c.hashOf(h.NS)
	e := &Event{Header: c.header(h, h.TTD, h.PTTD, alg), COE: COE(h.COE)}
	e.Header.Type = h.Type.String()
	switch r := r.(type) {
	case *bpf.FileOpen:
		e.Payload = &FileEvent{File: c.file(&r.File, h, alg)}
	case *bpf.ExecScript:
		// The open of the script, by the task before the exec: its name
		// then is the namespace layer's to set (see ExecScriptOpen).
		e.Payload = &FileEvent{File: c.scriptFile(r, alg)}
	case *bpf.MmapFile:
		p := &MmapFile{HasFile: r.File.Present, Prot: r.Prot, Flags: r.MmapFlags}
		if r.File.Present {
			p.File = c.file(&r.File, h, alg)
		}
		e.Payload = p
	case *bpf.FileIoctl:
		e.Payload = &FileCmd{File: c.file(&r.File, h, alg), Cmd: r.Cmd}
	case *bpf.SocketCreate:
		e.Payload = &SocketCreate{Family: r.Family, Type: r.Type, Protocol: r.Protocol, Kern: r.Kern}
	case *bpf.SocketAddr:
		e.Payload = &SocketAddr{
			Sock: Sock{Family: r.Sock.Family, Type: r.Sock.Type, Protocol: r.Sock.Protocol, Owner: c.taskID(r.Sock.OwnerTTD, alg)},
			Addr: sockAddr(&r.Addr, h.Type != bpf.RecSocketAccept, alg),
		}
	case *bpf.TaskKill:
		e.Payload = &TaskKill{Target: c.target(&r.Target, alg), Sig: r.Sig, CrossNS: r.CrossNS}
	case *bpf.PtraceAccessCheck:
		e.Payload = &PtraceAccessCheck{Child: c.target(&r.Target, alg), Mode: r.Mode}
	case *bpf.InodeCreate:
		p := &InodeCreate{Dir: inode(&r.Dir), Dentry: Dentry{Path: path(&r.Path, &r.Dir, 0)}, Mode: r.Mode}
		c.created(&p.Dentry.Path, r.Created, h.NS, r.Created.OwnerTTD, alg)
		e.Payload = p
	case *bpf.InodeUnlink:
		p := &InodeRemove{Dir: inode(&r.Dir), Dentry: Dentry{HasInode: true, Inode: inode(&r.Inode), Path: path(&r.Path, &r.Inode, 0)}}
		c.created(&p.Dentry.Path, r.Inode.Created, h.NS, r.Inode.Created.OwnerTTD, alg)
		e.Payload = p
	case *bpf.InodeRename:
		e.Payload = &InodeRename{
			OldDir: inode(&r.OldDir), OldDentry: c.dentry(&r.OldPath, &r.OldDir, &r.OldInode, r.HasOld, h, alg),
			NewDir: inode(&r.NewDir), NewDentry: c.dentry(&r.NewPath, &r.NewDir, &r.NewInode, r.HasNew, h, alg),
		}
	case *bpf.InodeSetattr:
		p := &InodeSetattr{
			Dentry: Dentry{HasInode: true, Inode: inode(&r.Inode), Path: path(&r.Path, &r.Inode, 0)},
			Valid:  r.Valid, Mode: r.Mode, UID: r.UID, GID: r.GID, Size: r.Size,
		}
		// TSEM's fill_dentry names the acting task as the owner here.
		c.created(&p.Dentry.Path, r.Inode.Created, h.NS, h.TTD, alg)
		e.Payload = p
	case *bpf.SbMount:
		e.Payload = &SbMount{
			HasDevName: true, DevName: r.DevName,
			Path:      Path{Type: pathTypeRoot, Pathname: r.Path.Name},
			HasFSType: true, FSType: r.FSType, Flags: r.MountFlags,
		}
	case *bpf.Capable:
		e.Payload = &Capable{Cap: r.Cap, Opts: r.Opts}
	case *bpf.KernelModuleRequest:
		e.Payload = &Generic{Fields: []Field{{Key: "kmod_name", Value: r.Name}}}
	case *bpf.KernelReadFile:
		if r.File.Present {
			e.Payload = &KernelReadFile{File: c.file(&r.File, h, alg), ID: int32(r.ID), Contents: int32(r.Contents)}
			break
		}
		// A read that names no file has no file cell: kept generic,
		// and the model reports it as unmodeled.
		e.Payload = &Generic{Fields: []Field{{Key: "id", Value: strconv.FormatUint(uint64(r.ID), 10)}, {Key: "contents", Value: strconv.FormatUint(uint64(r.Contents), 10)}}}
	case *bpf.Bpf:
		e.Payload = &Generic{Fields: []Field{{Key: "cmd", Value: strconv.FormatUint(uint64(r.Cmd), 10)}, {Key: "size", Value: strconv.FormatUint(uint64(r.AttrSize), 10)}}}
	case *bpf.Exec, *bpf.TaskFork, *bpf.TaskExit:
		return nil, fmt.Errorf("convert %s record: %w", h.Type, ErrNotEvent)
	default:
		return nil, fmt.Errorf("convert %s record: %w", h.Type, ErrNotEvent)
	}
	return e, nil
}

// ExecFlags are the flags of an executed file's cell: the kernel opens
// every file it executes (the program, or a script's interpreter) with
// O_LARGEFILE|__FMODE_EXEC (x86-64), and TSEM prints them as 32800.
const ExecFlags = 0x8000 | 0x20

// ExecScriptOpen returns the file_open event of the script of an
// interpreter exec as TSEM reports it: made by the task before the exec
// (the record's TTD), named process (its name before the exec), with the
// exec's credentials as for ExecOpen. A script the kernel could not find
// (File.Present false) is named by the path the exec was given and
// carries the unhashable digest.
func (c *Converter) ExecScriptOpen(r *bpf.ExecScript, process string) *Event {
	alg := c.hashOf(r.NS)
	e := &Event{Header: c.header(&r.Header, r.TTD, r.PTTD, alg), COE: COE(r.COE)}
	e.Header.Type = "file_open"
	e.Header.Process = process
	e.Payload = &FileEvent{File: c.scriptFile(r, alg)}
	return e
}

func (c *Converter) scriptFile(r *bpf.ExecScript, alg Hash) File {
	if r.File.Present {
		return c.file(&r.File, &r.Header, alg)
	}
	c.digestFailures.Add(1)
	return File{Flags: r.File.Flags, Path: Path{Type: pathTypeRoot, Pathname: r.File.Path.Name}, Digest: alg.Unhashable()}
}

// ExecFile returns the file cell of the file an exec record says the task
// executed, as the TSEM kernel prints it: the cell model.TaskID hashes into
// the task's new identity. Both backends report the file the kernel holds
// once the new credentials are committed, which for a "#!" script is its
// interpreter. Its flags are ExecFlags whatever the record read from the
// struct file, and its path has the path type of any other file.
func (c *Converter) ExecFile(r *bpf.Exec) File {
	f := c.file(&r.File, &r.Header, c.hashOf(r.NS))
	f.Flags = ExecFlags
	return f
}

func (c *Converter) hashOf(ns uint64) Hash {
	if c.HashOf == nil {
		return SHA256
	}
	return c.HashOf(ns)
}

// ExecOpen returns the file_open event of an exec's file as the BPF LSM's
// file_open hook reports it: made by the task before the exec (its
// previous TTD, task id and process name), with the exec's credentials.
// The tracepoint backend cannot see that open, so its exec records stand in
// for it; file is ExecFile(r) and process the task's name before the exec.
func (c *Converter) ExecOpen(r *bpf.Exec, file File, process string) *Event {
	e := &Event{Header: c.header(&r.Header, r.PrevTTD, r.PTTD, c.hashOf(r.NS)), COE: COE(r.COE)}
	e.Header.Type = "file_open"
	e.Header.Process = process
	e.Payload = &FileEvent{File: file}
	return e
}

func (c *Converter) header(h *bpf.Header, ttd, pttd uint64, alg Hash) Header {
	return Header{
		Pid:     h.PID,
		Context: h.NS,
		Process: h.Process(),
		TTD:     ttd,
		PTTD:    pttd,
		TaskID:  c.taskID(ttd, alg),
		PTaskID: c.taskID(pttd, alg),
		TS:      h.KTime,
	}
}

// taskID is the task id of ttd, zero bytes of alg's length when unknown.
func (c *Converter) taskID(ttd uint64, alg Hash) Digest {
	if ttd == 0 || c.Tasks == nil {
		return alg.Zero()
	}
	id := c.Tasks.TaskID(ttd)
	if id.Len() == 0 {
		return alg.Zero()
	}
	return id
}

// target is the task id of a task_kill or ptrace target; zero when the
// backend could not name the target's trust domain.
func (c *Converter) target(t *bpf.TaskTarget, alg Hash) Digest {
	if !t.TargetKnown {
		return alg.Zero()
	}
	return c.taskID(t.TTD, alg)
}

// file converts the file of the record with header h. A file created in
// h's namespace is named by its created tag and gets the zero digest,
// H(""), as in TSEM: its content is the workload's own doing and differs
// from run to run. So does a pseudonym's file, unread.
func (c *Converter) file(f *bpf.File, h *bpf.Header, alg Hash) File {
	out := File{Flags: f.Flags, Inode: inode(&f.Inode), Path: path(&f.Path, &f.Inode, h.TGID)}
	if c.created(&out.Path, f.Inode.Created, h.NS, f.Inode.Created.OwnerTTD, alg) || c.Digests == nil ||
		c.IsPseudonym != nil && c.IsPseudonym(h.NS, out.Path.Pathname) {
		out.Digest = alg.Empty()
		return out
	}
	var tasks [1 + recentTasks]uint32
	r := Reach{Tasks: c.tasksOf(h.NS, h.TGID, tasks[:0])}
	if c.FileSystemOf != nil {
		r.FS = c.FileSystemOf(h.NS)
	}
	d, err := c.Digests.DigestIn(f, r, alg)
	if err != nil {
		c.digestFailures.Add(1)
	}
	out.Digest = d
	return out
}

// tasksOf appends tgid and the other processes of namespace ns seen
// lately to out, and remembers tgid among them.
func (c *Converter) tasksOf(ns uint64, tgid uint32, out []uint32) []uint32 {
	out = append(out, tgid)
	c.recentMu.Lock()
	defer c.recentMu.Unlock()
	if c.recent == nil || len(c.recent) >= maxRecentNamespaces {
		c.recent = make(map[uint64]*[recentTasks]uint32)
	}
	r := c.recent[ns]
	if r == nil {
		r = new([recentTasks]uint32)
		c.recent[ns] = r
	}
	seen := false
	for _, t := range r {
		if t == tgid {
			seen = true
		} else if t != 0 {
			out = append(out, t)
		}
	}
	if !seen {
		copy(r[1:], r[:recentTasks-1])
		r[0] = tgid
	}
	return out
}

// created marks p as the name of a file created in namespace ns (t.In):
// TSEM hashes the directory part of its pathname, t.Instance and the task
// id of owner instead of the pathname, and prints both. A file created by
// another namespace (an earlier run) keeps its plain name.
func (c *Converter) created(p *Path, t bpf.CreatedTag, ns, owner uint64, alg Hash) bool {
	if !t.In(ns) {
		return false
	}
	p.Created = true
	p.Owner = c.taskID(owner, alg)
	p.Instance = t.Instance
	return true
}

// dentry converts a directory entry of inode_rename: with its inode when
// the entry has one (TSEM's fill_dentry), named by the created tag with
// the acting task as the owner, as fill_dentry does.
func (c *Converter) dentry(p *bpf.Path, dir, in *bpf.Inode, has bool, h *bpf.Header, alg Hash) Dentry {
	if !has {
		return Dentry{Path: path(p, dir, 0)}
	}
	d := Dentry{HasInode: true, Inode: inode(in), Path: path(p, in, 0)}
	c.created(&d.Path, in.Created, h.NS, h.TTD, alg)
	return d
}

func inode(in *bpf.Inode) Inode {
	return Inode{UID: in.UID, GID: in.GID, Mode: in.Mode, SMagic: in.SMagic, SID: in.SIDString(), SUUID: in.SUUID}
}

// pathTypeRoot is the path type TSEM prints for a path of the modeling
// namespace's file system view.
const pathTypeRoot = "root"

// path converts a kernel path of a file on the filesystem of in; tgid is
// the acting process for a file it opened, mapped, executed or used (0 for
// a directory entry). The pathname is bpf.CanonicalPath's, the one the
// kernel's allow key hashes, so that the description and the key agree
// and neither changes from one run to the next: "/proc/self/..." for the
// acting process's own /proc directory, and for a pseudo filesystem on an
// anonymous device (bpf.PseudoFS) a generated name "pipe:[1234]" as
// TSEM prints it, "pipe:/", without a device.
func path(p *bpf.Path, in *bpf.Inode, tgid uint32) Path {
	out := Path{Type: pathTypeRoot, Pathname: bpf.CanonicalPath(p.Name, in.SMagic, in.DevMajor, tgid)}
	if in.DevMajor != 0 || !bpf.PseudoFS(in.SMagic) {
		out.HasDev = in.DevMajor != 0 || in.DevMinor != 0
		out.Dev = Dev{Major: in.DevMajor, Minor: in.DevMinor}
	}
	return out
}

// sockAddr converts an address; flowScope is false for socket_accept,
// whose IPv6 flow and scope TSEM neither prints nor hashes.
func sockAddr(a *bpf.Addr, flowScope bool, alg Hash) SockAddr {
	switch a.Family {
	case AFInet:
		return SockAddr{Kind: AddrInet, Port: uint32(a.Port), Address: a.Addr4}
	case AFInet6:
		return SockAddr{Kind: AddrInet6, Port: uint32(a.Port), Addr6: a.Addr6, HasFlowScope: flowScope, Flow: a.Flow, Scope: a.Scope}
	case AFUnix:
		// TSEM copies at most the address length's worth of sun_path,
		// up to the first NUL: an abstract address prints as "".
		n := int(a.Len) - 2
		if n < 0 {
			n = 0
		}
		if n > 108 {
			n = 108
		}
		b := a.Raw[:n]
		for i, ch := range b {
			if ch == 0 {
				b = b[:i]
				break
			}
		}
		return SockAddr{Kind: AddrUnix, Unix: string(b)}
	}
	// Any other family: the digest of the address bytes after the family,
	// with the namespace's hash (TSEM's get_socket_address); accept has
	// no peer address to hash and gets the namespace's zero digest, H("")
	// (TSEM's get_socket_accept).
	if !flowScope {
		return SockAddr{Kind: AddrOther, Other: alg.Empty()}
	}
	n := int(a.Len) - 2
	if n < 0 {
		n = 0
	}
	if n > len(a.Raw) {
		n = len(a.Raw)
	}
	return SockAddr{Kind: AddrOther, Other: alg.Sum(a.Raw[:n])}
}
