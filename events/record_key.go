package events

import (
	"strconv"

	"github.com/vigil-tsem/vigil/bpf"
)

// recordTypes maps the TSEM event names the kernel programs report to their
// record types.
var recordTypes = map[string]bpf.RecordType{
	"file_open":             bpf.RecFileOpen,
	"mmap_file":             bpf.RecMmapFile,
	"file_ioctl":            bpf.RecFileIoctl,
	"socket_create":         bpf.RecSocketCreate,
	"socket_connect":        bpf.RecSocketConnect,
	"socket_bind":           bpf.RecSocketBind,
	"socket_accept":         bpf.RecSocketAccept,
	"task_kill":             bpf.RecTaskKill,
	"inode_create":          bpf.RecInodeCreate,
	"inode_unlink":          bpf.RecInodeUnlink,
	"inode_mkdir":           bpf.RecInodeMkdir,
	"inode_rename":          bpf.RecInodeRename,
	"inode_setattr":         bpf.RecInodeSetattr,
	"sb_mount":              bpf.RecSbMount,
	"ptrace_access_check":   bpf.RecPtraceAccessCheck,
	"capable":               bpf.RecCapable,
	"kernel_module_request": bpf.RecKernelModuleRequest,
	"kernel_read_file":      bpf.RecKernelReadFile,
	"bpf":                   bpf.RecBpf,
}

// fmodeExec is __FMODE_EXEC in f_flags: the open an exec makes.
const fmodeExec = 0x20

// KernelKeys returns the kernel allow keys (bpf.Key) of the events of a
// trajectory, the set a sealed namespace's kernel programs let pass when
// enforcing. An exec's file_open also allows the exec itself. skipped
// counts descriptions that are nil, do not parse, or describe an event the
// kernel does not check; the kernel will deny such events.
//
// Keys are computed from the descriptions. A file's pathname there is
// already the one the kernel's key hashes (bpf.CanonicalPath: "/proc/self"
// for the acting process's /proc directory, "pipe:/" for a pipe), and a
// file created in the namespace has its instance there, so the key of a
// description is the key of the record it came from.
func KernelKeys(trajectory [][]byte) (keys []uint64, skipped int) {
	seen := make(map[uint64]bool, len(trajectory))
	add := func(r bpf.Record) bool {
		k, ok := bpf.Key(r)
		if ok && !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
		return ok
	}
	for _, line := range trajectory {
		if line == nil {
			skipped++
			continue
		}
		e, err := Parse(line)
		if err != nil {
			skipped++
			continue
		}
		r, ok := RecordOf(e)
		if !ok || !add(r) {
			skipped++
			continue
		}
		if fo, ok := r.(*bpf.FileOpen); ok && fo.File.Flags&fmodeExec != 0 {
			x := &bpf.Exec{Header: fo.Header, File: fo.File}
			x.Type = bpf.RecExec
			add(x)
		}
	}
	return keys, skipped
}

// RecordOf rebuilds the fields of a kernel record that its allow key
// covers from an event description; false for an event type the kernel
// programs do not report or a payload of another shape.
func RecordOf(e *Event) (bpf.Record, bool) {
	t, ok := recordTypes[e.Header.Type]
	if !ok {
		return nil, false
	}
	h := bpf.Header{Type: t, COE: bpf.COE(e.COE)}
	switch p := e.Payload.(type) {
	case *FileEvent:
		return &bpf.FileOpen{Header: h, File: recordFile(&p.File)}, true
	case *MmapFile:
		r := &bpf.MmapFile{Header: h, Prot: p.Prot, MmapFlags: p.Flags}
		if p.HasFile {
			r.File = recordFile(&p.File)
		}
		return r, true
	case *FileCmd:
		return &bpf.FileIoctl{Header: h, Cmd: p.Cmd, File: recordFile(&p.File)}, true
	case *SocketCreate:
		return &bpf.SocketCreate{Header: h, Family: p.Family, Type: p.Type, Protocol: p.Protocol, Kern: p.Kern}, true
	case *SocketAddr:
		r := &bpf.SocketAddr{Header: h, Sock: bpf.Sock{Family: p.Sock.Family, Type: p.Sock.Type, Protocol: p.Sock.Protocol}}
		switch p.Addr.Kind {
		case AddrInet:
			r.Addr.Family, r.Addr.Port, r.Addr.Addr4 = AFInet, uint16(p.Addr.Port), p.Addr.Address
		case AddrInet6:
			r.Addr.Family, r.Addr.Port, r.Addr.Addr6 = AFInet6, uint16(p.Addr.Port), p.Addr.Addr6
		case AddrUnix:
			r.Addr.Family = AFUnix
			copy(r.Addr.Raw[:107], p.Addr.Unix)
		default:
			return nil, false
		}
		return r, true
	case *TaskKill:
		return &bpf.TaskKill{Header: h, Sig: p.Sig, CrossNS: p.CrossNS}, true
	case *PtraceAccessCheck:
		return &bpf.PtraceAccessCheck{Header: h, Mode: p.Mode}, true
	case *InodeCreate:
		return &bpf.InodeCreate{Header: h, Mode: p.Mode, Created: createdTag(&p.Dentry.Path), Path: bpf.Path{Name: p.Dentry.Path.Pathname}}, true
	case *InodeRemove:
		return &bpf.InodeUnlink{Header: h, Inode: bpf.Inode{Created: createdTag(&p.Dentry.Path)}, Path: bpf.Path{Name: p.Dentry.Path.Pathname}}, true
	case *InodeRename:
		return &bpf.InodeRename{Header: h,
			OldInode: bpf.Inode{Created: createdTag(&p.OldDentry.Path)}, NewInode: bpf.Inode{Created: createdTag(&p.NewDentry.Path)},
			HasOld: p.OldDentry.HasInode, HasNew: p.NewDentry.HasInode,
			OldPath: bpf.Path{Name: p.OldDentry.Path.Pathname}, NewPath: bpf.Path{Name: p.NewDentry.Path.Pathname}}, true
	case *InodeSetattr:
		return &bpf.InodeSetattr{Header: h, Valid: p.Valid, Inode: bpf.Inode{Created: createdTag(&p.Dentry.Path)}, Path: bpf.Path{Name: p.Dentry.Path.Pathname}}, true
	case *SbMount:
		return &bpf.SbMount{Header: h, MountFlags: p.Flags, Path: bpf.Path{Name: p.Path.Pathname}, FSType: p.FSType}, true
	case *Capable:
		return &bpf.Capable{Header: h, Cap: p.Cap, Opts: p.Opts}, true
	case *KernelReadFile:
		return &bpf.KernelReadFile{Header: h, ID: uint32(p.ID), Contents: uint32(p.Contents), File: recordFile(&p.File)}, true
	case *Generic:
		return genericRecord(h, p)
	}
	return nil, false
}

// genericRecord rebuilds the kernel records whose descriptions Vigil keeps
// generic (see Converter.Convert): bpf, kernel_module_request, and
// kernel_read_file without a file.
func genericRecord(h bpf.Header, p *Generic) (bpf.Record, bool) {
	num := func(key string) (uint32, bool) {
		for _, f := range p.Fields {
			if f.Key == key && !f.Object {
				v, err := strconv.ParseUint(f.Value, 10, 32)
				return uint32(v), err == nil
			}
		}
		return 0, false
	}
	switch h.Type {
	case bpf.RecBpf:
		cmd, ok := num("cmd")
		size, _ := num("size")
		return &bpf.Bpf{Header: h, Cmd: cmd, AttrSize: size}, ok
	case bpf.RecKernelReadFile:
		id, ok := num("id")
		contents, _ := num("contents")
		return &bpf.KernelReadFile{Header: h, ID: id, Contents: contents}, ok
	case bpf.RecKernelModuleRequest:
		if len(p.Fields) == 1 && p.Fields[0].Key == "kmod_name" && !p.Fields[0].Object {
			return &bpf.KernelModuleRequest{Header: h, Name: p.Fields[0].Value}, true
		}
	}
	return nil, false
}

func recordFile(f *File) bpf.File {
	return bpf.File{
		Present: true,
		Flags:   f.Flags,
		Inode: bpf.Inode{UID: f.Inode.UID, GID: f.Inode.GID, Mode: f.Inode.Mode, SMagic: f.Inode.SMagic,
			DevMajor: f.Path.Dev.Major, DevMinor: f.Path.Dev.Minor, Created: createdTag(&f.Path)},
		Path: bpf.Path{Name: f.Path.Pathname},
	}
}

// createdTag is the created tag a rebuilt record (namespace 0) needs for
// its key to name a created file as the kernel does: by its instance.
func createdTag(p *Path) bpf.CreatedTag {
	if !p.Created {
		return bpf.CreatedTag{}
	}
	return bpf.CreatedTag{Instance: p.Instance}
}
