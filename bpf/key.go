package bpf

import (
	"strconv"
	"strings"
)

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
// is the one in Key and in the key_* functions of bpf/lib/key.h and
// bpf/lsm.bpf.c. The pathname of a file is mixed in as CanonicalPath
// gives it, the name the event description prints too; a file created in
// the event's namespace (CreatedTag.In) is mixed in by the directory part
// of its name and its instance, the invariant name TSEM hashes (less the
// owner's task id), so that a model's keys hold in the next run.
//
// Not every event is decided by its key: Decides says which events always
// pass (anonymous data mappings, signals within the sender's own process)
// and which are keyed coarsely (anonymous executable mappings), and why.
const (
	keyOffset uint64 = 0xcbf29ce484222325
	keyPrime  uint64 = 0x100000001b3
)

// Decision is how the kernel decides an event of an enforcing namespace.
type Decision uint8

const (
	// DecideNever: the kernel never checks the record (task lifecycle).
	DecideNever Decision = iota
	// DecideKey: denied unless Key is in the namespace's allow set or when
	// the task is untrusted. Key covers what the kernel sees of the event
	// but not what it cannot compute (file digests, task ids), so an
	// event the kernel passed whose coefficient is out of the model makes
	// the task untrusted (userspace calls Capture.MarkUntrusted).
	DecideKey
	// DecideCoarseKey: like DecideKey, but Key deliberately leaves out
	// fields that vary from run to run without changing what the event
	// can do (an anonymous executable mapping's MAP_FIXED, MAP_NORESERVE,
	// MAP_POPULATE, ... flags): an out-of-model coefficient of an event
	// the kernel passed is forensics only, it does not untrust the task.
	DecideCoarseKey
	// DecidePass: always passes, even for an untrusted task; the event is
	// still recorded and modeled, and forensics when out of the model.
	// Anonymous mappings without PROT_EXEC (heap and stack growth,
	// whose sizes and flags depend on allocation timing) and signals a
	// task sends to its own thread group (a runtime's preemption
	// signals) reach nothing outside the process.
	DecidePass
)

func (d Decision) String() string {
	switch d {
	case DecideNever:
		return "never"
	case DecideKey:
		return "key"
	case DecideCoarseKey:
		return "coarse-key"
	case DecidePass:
		return "pass"
	}
	return "decision(" + strconv.FormatUint(uint64(d), 10) + ")"
}

// Protection and mapping type bits of mmap(2), as the kernel's mmap_file
// hook sees them.
const (
	protExec    = 0x4
	protMask    = 0x7 // PROT_READ | PROT_WRITE | PROT_EXEC
	mapTypeMask = 0xf // MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE
)

// Decides returns how the kernel decides r in an enforcing namespace
// (check in bpf/lib/enforce.h).
func Decides(r Record) Decision {
	switch r := r.(type) {
	case *TaskFork, *TaskExit:
		return DecideNever
	case *MmapFile:
		if r.File.Present {
			return DecideKey
		}
		if r.Prot&protExec == 0 {
			return DecidePass
		}
		return DecideCoarseKey
	case *TaskKill:
		if r.TGID != 0 && r.Target.TGID == r.TGID {
			return DecidePass
		}
	}
	if _, ok := Key(r); !ok {
		return DecideNever
	}
	return DecideKey
}

// Filesystem magics (statfs(2) f_type; include/uapi/linux/magic.h, and
// mqueue's and configfs's own) the allow key and the event descriptions
// treat specially. bpf/lib/common.h names the same.
const (
	procSuperMagic   = 0x9fa0
	devptsSuperMagic = 0x1cd1
	pipefsMagic      = 0x50495045
	sockfsMagic      = 0x534f434b
	anonInodeFSMagic = 0x09041934
	securityfsMagic  = 0x73636673
	debugfsMagic     = 0x64626720
	tracefsMagic     = 0x74726163
	nsfsMagic        = 0x6e736673
	binfmtfsMagic    = 0x42494e4d
	mqueueMagic      = 0x19800202
	configfsMagic    = 0x62656570
	pstorefsMagic    = 0x6165676c
	efivarfsMagic    = 0xde5e81e4
	selinuxMagic     = 0xf97cff8c
	smackMagic       = 0x43415d53
	bdevfsMagic      = 0x62646576
	dmaBufMagic      = 0x444d4142
	secretmemMagic   = 0x5345434d
)

// pseudoFS lists the pseudo filesystems on an anonymous device whose
// files have names the kernel generates ("pipe:[1234]", "socket:[99]",
// "anon_inode:[eventfd]"); key_pseudo_fs in bpf/lib/key.h lists the same.
var pseudoFS = map[uint32]bool{
	procSuperMagic: true, devptsSuperMagic: true, pipefsMagic: true, sockfsMagic: true,
	anonInodeFSMagic: true, securityfsMagic: true, debugfsMagic: true, tracefsMagic: true,
	nsfsMagic: true, binfmtfsMagic: true, mqueueMagic: true, configfsMagic: true,
	pstorefsMagic: true, efivarfsMagic: true, selinuxMagic: true, smackMagic: true,
	bdevfsMagic: true, dmaBufMagic: true, secretmemMagic: true,
}

// PseudoFS reports whether magic is a pseudo filesystem whose files have
// generated names (pipefs, sockfs, anon_inodefs, procfs, ...).
func PseudoFS(magic uint32) bool { return pseudoFS[magic] }

// CanonicalPath returns the pathname of a file as the allow key hashes it
// and the event description prints it: the same for the same file from
// one run of a workload to the next.
//
//   - On procfs, "/proc/<tgid>" where tgid is the acting process (what
//     /proc/self resolves to) becomes "/proc/self": a runtime reading
//     /proc/self/cgroup opens /proc/4711/cgroup, another number each run.
//     Other processes' directories keep their number.
//   - On a pseudo filesystem on an anonymous device (PseudoFS, device
//     major 0), a generated name "pipe:[1234]" becomes its prefix and
//     ":/", "pipe:/", as TSEM prints it. A pipe, socket or anonymous
//     inode file whose name the kernel walk could not reach ("/", the
//     file has no place in any directory) is named so too: "pipe:/",
//     "socket:/", "anon_inode:/".
//
// Names already canonical are returned unchanged, so CanonicalPath of a
// description's pathname is that pathname.
func CanonicalPath(name string, magic, devMajor, tgid uint32) string {
	if magic == procSuperMagic && tgid != 0 {
		if rest, ok := procSelf(name, tgid); ok {
			return "/proc/self" + rest
		}
	}
	if devMajor == 0 && PseudoFS(magic) {
		if i := strings.IndexAny(name, ":/"); i > 0 && name[i] == ':' {
			return name[:i] + ":/"
		}
		if p := unnamedPrefix[magic]; p != "" && name == "/" {
			return p + ":/"
		}
	}
	return name
}

// unnamedPrefix names the files of the pseudo filesystems whose files live
// in no directory (a walk up from them reaches nothing but "/"): the
// prefix of the names the kernel generates for them.
var unnamedPrefix = map[uint32]string{
	pipefsMagic:      "pipe",
	sockfsMagic:      "socket",
	anonInodeFSMagic: "anon_inode",
}

// procSelf returns what follows "/proc/<tgid>" in name. Like the kernel's
// twin (VG_PID_DIGITS) it reads at most pidDigits digits.
func procSelf(name string, tgid uint32) (string, bool) {
	const (
		prefix    = "/proc/"
		pidDigits = 10
	)
	if !strings.HasPrefix(name, prefix) {
		return "", false
	}
	i := len(prefix)
	var n uint64
	for ; i < len(name) && i < len(prefix)+pidDigits && name[i] >= '0' && name[i] <= '9'; i++ {
		n = n*10 + uint64(name[i]-'0')
	}
	if i == len(prefix) || n != uint64(tgid) || (i < len(name) && name[i] != '/') {
		return "", false
	}
	return name[i:], true
}

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

// file mixes a file's cell as key_file does; tgid is the acting process
// and ns its namespace.
func (h *keyHash) file(f *File, tgid uint32, ns uint64) {
	h.mix(uint64(f.Flags))
	h.mix(uint64(f.Inode.UID))
	h.mix(uint64(f.Inode.GID))
	h.mix(uint64(f.Inode.Mode))
	h.mix(uint64(f.Inode.SMagic))
	name := f.Path.Name
	if len(name) > PathMax-1 {
		name = name[:PathMax-1]
	}
	if f.Inode.Created.In(ns) {
		h.created(name, f.Inode.Created.Instance)
		return
	}
	h.str(CanonicalPath(name, f.Inode.SMagic, f.Inode.DevMajor, tgid))
}

// created mixes the name of a file created in the namespace as key_created
// does: TSEM's invariant name without the owner (a task id the kernel
// cannot know): the directory part of name (through its last '/'), its
// length, then the instance.
func (h *keyHash) created(name string, instance uint64) {
	h.str(name[:strings.LastIndexByte(name, '/')+1])
	h.mix(instance)
}

// name mixes a directory entry's name as key_name does.
func (h *keyHash) name(p *Path, t CreatedTag, ns uint64) {
	name := p.Name
	if len(name) > PathMax-1 {
		name = name[:PathMax-1]
	}
	if t.In(ns) {
		h.created(name, t.Instance)
		return
	}
	h.str(name)
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
		h.file(&r.File, hd.TGID, hd.NS)
	case *Exec:
		h.file(&r.File, hd.TGID, hd.NS)
	case *MmapFile:
		if !r.File.Present {
			// Anonymous: only the protection and the mapping type
			// (Decides: DecideCoarseKey, or DecidePass without
			// PROT_EXEC).
			h.mix(uint64(r.Prot & protMask))
			h.mix(uint64(r.MmapFlags & mapTypeMask))
			break
		}
		h.mix(uint64(r.Prot))
		h.mix(uint64(r.MmapFlags))
		h.file(&r.File, hd.TGID, hd.NS)
	case *FileIoctl:
		h.mix(uint64(r.Cmd))
		h.file(&r.File, hd.TGID, hd.NS)
	case *KernelReadFile:
		h.mix(uint64(r.ID))
		if r.File.Present {
			h.file(&r.File, hd.TGID, hd.NS)
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
			h.str(cstring(r.Addr.Raw[:unixPathMax]))
		}
	case *TaskKill:
		h.mix(uint64(r.Sig))
		h.mix(uint64(r.CrossNS))
	case *PtraceAccessCheck:
		h.mix(uint64(r.Mode))
	case *InodeCreate:
		h.mix(uint64(r.Mode))
		h.name(&r.Path, r.Created, hd.NS)
	case *InodeUnlink:
		h.name(&r.Path, r.Inode.Created, hd.NS)
	case *InodeRename:
		h.name(&r.OldPath, r.OldInode.Created, hd.NS)
		h.name(&r.NewPath, r.NewInode.Created, hd.NS)
	case *InodeSetattr:
		h.mix(uint64(r.Valid))
		h.name(&r.Path, r.Inode.Created, hd.NS)
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

// Address families (include/linux/socket.h) and the size of an AF_UNIX
// address's path (sockaddr_un.sun_path).
const (
	afUnix  = 1
	afInet  = 2
	afInet6 = 10

	unixPathMax = 108
)
