package lsmprobe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
)

// ErrNoBPFLSM: the kernel's active LSM list does not include bpf.
var ErrNoBPFLSM = errors.New("bpf is not an active LSM")

// LSMList is where securityfs lists the active LSMs.
const LSMList = "/sys/kernel/security/lsm"

// CheckActive reads an LSM list file (LSMList) and returns ErrNoBPFLSM unless bpf is
// in it; a missing file (securityfs not mounted) is ErrNoBPFLSM too.
func CheckActive(lsmList string) error {
	b, err := os.ReadFile(lsmList)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read %s: %w: %w", lsmList, ErrNoBPFLSM, err)
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", lsmList, err)
	}
	for _, name := range strings.Split(strings.TrimSpace(string(b)), ",") {
		if name == "bpf" {
			return nil
		}
	}
	return fmt.Errorf("%s is %q: %w", lsmList, strings.TrimSpace(string(b)), ErrNoBPFLSM)
}

// Actions of a watched file.
const (
	Allow uint32 = 0 // count the opens, allow them
	Deny  uint32 = 1 // count the opens, fail them with EPERM
)

// key identifies a file as the kernel sees it: inode number and the superblock's
// kernel-encoded device.
type key struct {
	Ino uint64
	Dev uint32
	Pad uint32
}

type value struct {
	Action uint32
	Pad    uint32
	Hits   uint64
}

// Probe is the loaded program and its map of watched files.
type Probe struct {
	files *ebpf.Map
	prog  *ebpf.Program
	link  link.Link
}

// offsets of the fields the program reads, from the running kernel's BTF.
type offsets struct {
	fileInode, inodeIno, inodeSB, sbDev int16
}

func kernelOffsets() (offsets, error) {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return offsets{}, fmt.Errorf("load kernel btf: %w", err)
	}
	var o offsets
	for _, f := range []struct {
		strct, member string
		dst           *int16
	}{
		{"file", "f_inode", &o.fileInode},
		{"inode", "i_ino", &o.inodeIno},
		{"inode", "i_sb", &o.inodeSB},
		{"super_block", "s_dev", &o.sbDev},
	} {
		var s *btf.Struct
		if err := spec.TypeByName(f.strct, &s); err != nil {
			return offsets{}, fmt.Errorf("find struct %s in kernel btf: %w", f.strct, err)
		}
		off, ok := memberOffset(s.Members, f.member)
		if !ok {
			return offsets{}, fmt.Errorf("find %s.%s in kernel btf: no such member", f.strct, f.member)
		}
		*f.dst = int16(off)
	}
	return o, nil
}

// memberOffset finds a member's byte offset, looking into anonymous structs and unions.
func memberOffset(members []btf.Member, name string) (uint32, bool) {
	for _, m := range members {
		if m.Name == name {
			return m.Offset.Bytes(), true
		}
		if m.Name != "" {
			continue
		}
		var inner []btf.Member
		switch t := btf.UnderlyingType(m.Type).(type) {
		case *btf.Struct:
			inner = t.Members
		case *btf.Union:
			inner = t.Members
		}
		if off, ok := memberOffset(inner, name); ok {
			return m.Offset.Bytes() + off, true
		}
	}
	return 0, false
}

// instructions is the file_open program:
//
//	k = {file->f_inode->i_ino, file->f_inode->i_sb->s_dev}
//	if v = files[k]: v.hits++; if v.action == Deny: return -EPERM
//	return 0
func instructions(o offsets, filesFD int) asm.Instructions {
	return asm.Instructions{
		asm.LoadMem(asm.R2, asm.R1, 0, asm.DWord), // struct file *
		asm.LoadMem(asm.R3, asm.R2, o.fileInode, asm.DWord),
		asm.LoadMem(asm.R4, asm.R3, o.inodeIno, asm.DWord),
		asm.LoadMem(asm.R5, asm.R3, o.inodeSB, asm.DWord),
		asm.LoadMem(asm.R5, asm.R5, o.sbDev, asm.Word),
		asm.StoreMem(asm.RFP, -16, asm.R4, asm.DWord),
		asm.StoreMem(asm.RFP, -8, asm.R5, asm.Word),
		asm.StoreImm(asm.RFP, -4, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, filesFD),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -16),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "allow"),
		asm.Mov.Imm(asm.R1, 1),
		asm.AddAtomic.Mem(asm.R0, asm.R1, asm.DWord, 8),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.Word),
		asm.JNE.Imm(asm.R1, int32(Deny), "allow"),
		asm.Mov.Imm(asm.R0, -int32(syscall.EPERM)),
		asm.Return(),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("allow"),
		asm.Return(),
	}
}

// Load creates the map and loads the program into the kernel; it does not attach.
// Where the kernel refuses LSM programs the error wraps ebpf.ErrNotSupported or
// os.ErrPermission (EPERM).
func Load() (*Probe, error) {
	o, err := kernelOffsets()
	if err != nil {
		return nil, err
	}
	files, err := ebpf.NewMap(&ebpf.MapSpec{
		Name: "lsmprobe_files", Type: ebpf.Hash,
		KeySize: uint32(binary.Size(key{})), ValueSize: uint32(binary.Size(value{})), MaxEntries: 16,
	})
	if err != nil {
		return nil, fmt.Errorf("create map: %w", err)
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "lsmprobe_open", Type: ebpf.LSM, AttachType: ebpf.AttachLSMMac, AttachTo: "file_open",
		License: "GPL", Instructions: instructions(o, files.FD()),
	})
	if err != nil {
		files.Close()
		return nil, fmt.Errorf("load lsm program on file_open: %w", err)
	}
	return &Probe{files: files, prog: prog}, nil
}

// Attach links the program to the file_open hook.
func (p *Probe) Attach() error {
	l, err := link.AttachLSM(link.LSMOptions{Program: p.prog})
	if err != nil {
		return fmt.Errorf("attach lsm program on file_open: %w", err)
	}
	p.link = l
	return nil
}

// Detach removes the program from the hook, if attached.
func (p *Probe) Detach() error {
	if p.link == nil {
		return nil
	}
	err := p.link.Close()
	p.link = nil
	return err
}

// Close detaches and frees the program and map.
func (p *Probe) Close() error {
	return errors.Join(p.Detach(), p.prog.Close(), p.files.Close())
}

func fileKey(path string) (key, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return key{}, fmt.Errorf("stat %s: %w", path, err)
	}
	// Userspace sees the device as glibc encodes it; the kernel's dev_t is major<<20|minor.
	major := (st.Dev>>8)&0xfff | (st.Dev>>32)&^0xfff
	minor := st.Dev&0xff | (st.Dev>>12)&^0xff
	return key{Ino: st.Ino, Dev: uint32(major<<20 | minor)}, nil
}

// Watch makes the program count opens of path and apply action to them.
func (p *Probe) Watch(path string, action uint32) error {
	k, err := fileKey(path)
	if err != nil {
		return err
	}
	if err := p.files.Put(k, value{Action: action}); err != nil {
		return fmt.Errorf("watch %s: %w", path, err)
	}
	return nil
}

// Hits is how many opens of path the program saw since Watch.
func (p *Probe) Hits(path string) (uint64, error) {
	k, err := fileKey(path)
	if err != nil {
		return 0, err
	}
	var v value
	if err := p.files.Lookup(k, &v); err != nil {
		return 0, fmt.Errorf("read hits of %s: %w", path, err)
	}
	return v.Hits, nil
}
