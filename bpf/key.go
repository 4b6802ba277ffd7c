package bpf

// The kernel allow key of an event is what the BPF programs can compute
// without userspace: a 64-bit FNV-1a style hash over the record type, the
// COE and the cell fields the kernel has (no content digests, no task ids).
// It is coarser than a TSEM coefficient: an allowed key lets the kernel pass
// the event, and userspace still checks the full coefficient right after
// (marking the task untrusted when it is out of the model).
//
// The hash, word by word: h = keyOffset; for each value v (widened to
// 64 bits) h = (h ^ v) * keyPrime; byte strings mix in byte by byte the
// same way, then their length as one value. The order of values per type
// is the one in Key and in key_* in bpf/vigil.bpf.c.
const (
	keyOffset uint64 = 0xcbf29ce484222325
	keyPrime  uint64 = 0x100000001b3
)

type keyHash uint64

func (h *keyHash) mix(v uint64) { *h = keyHash((uint64(*h) ^ v) * keyPrime) }

func (h *keyHash) str(s string) {
	for i := 0; i < len(s); i++ {
		h.mix(uint64(s[i]))
	}
	h.mix(uint64(len(s)))
}

func (h *keyHash) coe(c *COE) {
	for _, v := range [...]uint32{c.UID, c.EUID, c.SUID, c.GID, c.EGID, c.SGID, c.FSUID, c.FSGID} {
		h.mix(uint64(v))
	}
	h.mix(c.CapEff)
}

func (h *keyHash) file(f *File) {
	h.mix(uint64(f.Flags))
	h.mix(uint64(f.Inode.UID))
	h.mix(uint64(f.Inode.GID))
	h.mix(uint64(f.Inode.Mode))
	h.mix(uint64(f.Inode.SMagic))
	h.str(f.Path.Name)
}

// Key returns the kernel allow key of a record, the value the kernel puts
// in Header.Key (with FlagKey) in an enforcing namespace, and false for
// records the kernel never checks (TaskFork, TaskExit). Userspace fills a
// namespace's allow set (Capture.Allow) with the keys of the records of
// its model when it seals the namespace.
func Key(r Record) (uint64, bool) {
	h := keyHash(keyOffset)
	hd := r.Head()
	h.mix(uint64(hd.Type))
	h.coe(&hd.COE)
	switch r := r.(type) {
	case *FileOpen:
		h.file(&r.File)
	case *Exec:
		h.file(&r.File)
	case *MmapFile:
		h.mix(uint64(r.Prot))
		h.mix(uint64(r.MmapFlags))
		if r.File.Present {
			h.file(&r.File)
		}
	case *FileIoctl:
		h.mix(uint64(r.Cmd))
		h.file(&r.File)
	case *KernelReadFile:
		h.mix(uint64(r.ID))
		if r.File.Present {
			h.file(&r.File)
		}
	case *SocketCreate:
		h.mix(uint64(r.Family))
		h.mix(uint64(r.Type))
		h.mix(uint64(r.Protocol))
		h.mix(uint64(r.Kern))
	case *SocketAddr:
		h.mix(uint64(r.Sock.Family))
		h.mix(uint64(r.Sock.Type))
		h.mix(uint64(r.Sock.Protocol))
		h.mix(uint64(r.Addr.Family))
		switch r.Addr.Family {
		case afInet:
			h.mix(uint64(r.Addr.Port))
			h.mix(uint64(r.Addr.Addr4))
		case afInet6:
			h.mix(uint64(r.Addr.Port))
			for _, b := range r.Addr.Addr6 {
				h.mix(uint64(b))
			}
		case afUnix:
			h.str(cstring(r.Addr.Raw[:108]))
		}
	case *TaskKill:
		h.mix(uint64(r.Sig))
		h.mix(uint64(r.CrossNS))
	case *PtraceAccessCheck:
		h.mix(uint64(r.Mode))
	case *InodeCreate:
		h.mix(uint64(r.Mode))
		h.str(r.Path.Name)
	case *InodeUnlink:
		h.str(r.Path.Name)
	case *InodeRename:
		h.str(r.OldPath.Name)
		h.str(r.NewPath.Name)
	case *InodeSetattr:
		h.mix(uint64(r.Valid))
		h.str(r.Path.Name)
	case *SbMount:
		h.mix(r.MountFlags)
		h.str(r.Path.Name)
		h.str(r.FSType)
	case *KernelModuleRequest:
		h.str(r.Name)
	case *Bpf:
		h.mix(uint64(r.Cmd))
	case *Capable:
		h.mix(uint64(r.Cap))
		h.mix(uint64(r.Opts))
	default:
		return 0, false
	}
	return uint64(h), true
}

const (
	afUnix  = 1
	afInet  = 2
	afInet6 = 10
)
