package bpf

import (
	"encoding/binary"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// Unprivileged tests of the embedded objects: no kernel needed.

func TestSpecPrograms(t *testing.T) {
	tests := []struct {
		backend  Backend
		sections []string
	}{
		{BackendLSM, []string{
			"lsm/bpf", "lsm/bprm_check_security", "lsm/bprm_committed_creds", "lsm/capable",
			"lsm/d_instantiate", "lsm/file_ioctl", "lsm/file_open", "lsm/inode_create", "lsm/inode_mkdir",
			"lsm/inode_rename", "lsm/inode_setattr", "lsm/inode_unlink", "lsm/kernel_module_request",
			"lsm/kernel_read_file", "lsm/mmap_file", "lsm/ptrace_access_check", "lsm/sb_mount",
			"lsm/socket_accept", "lsm/socket_bind", "lsm/socket_connect", "lsm/socket_create",
			"lsm/task_kill", "iter/task",
			"tracepoint/sched/sched_process_exit", "tracepoint/sched/sched_process_fork",
			"tracepoint/sched/sched_process_free", "tracepoint/cgroup/cgroup_attach_task",
		}},
		{BackendTracepoint, []string{
			"iter/task", "tracepoint/cgroup/cgroup_attach_task", "raw_tracepoint/sched_process_exec", "tracepoint/sched/sched_process_exit",
			"tracepoint/sched/sched_process_fork", "tracepoint/sched/sched_process_free",
			"raw_tracepoint/sys_enter", "raw_tracepoint/sys_exit", "syscall",
		}},
	}
	for _, tc := range tests {
		t.Run(string(tc.backend), func(t *testing.T) {
			spec, err := collectionSpec(tc.backend)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range spec.Programs {
				got = append(got, p.SectionName)
				if want := sectionType(p.SectionName); p.Type != want {
					t.Errorf("program %s (%s): type %s; want %s", p.Name, p.SectionName, p.Type, want)
				}
			}
			slices.Sort(got)
			want := slices.Sorted(slices.Values(tc.sections))
			if !slices.Equal(got, want) {
				t.Errorf("sections = %v;\nwant %v", got, want)
			}
			for name, typ := range map[string]ebpf.MapType{
				"events": ebpf.RingBuf, "task_state": ebpf.TaskStorage, "pending": ebpf.Hash,
				"ns_config": ebpf.Hash, "allow": ebpf.Hash, "ctr_cgroup": ebpf.Hash, "loss": ebpf.PerCPUHash,
				"loss_overflow": ebpf.PerCPUArray, "ttd_counter": ebpf.Array, "scratch": ebpf.PerCPUArray,
				"task_memo": ebpf.TaskStorage, "rep_gen": ebpf.Array, "repeats": ebpf.ArrayOfMaps,
			} {
				m, ok := spec.Maps[name]
				if !ok {
					t.Errorf("map %s missing", name)
					continue
				}
				if m.Type != typ {
					t.Errorf("map %s: type %s; want %s", name, m.Type, typ)
				}
			}
		})
	}
}

// sectionType is the program type of an ELF section name.
func sectionType(section string) ebpf.ProgramType {
	for prefix, typ := range map[string]ebpf.ProgramType{
		"lsm/": ebpf.LSM, "tracepoint/": ebpf.TracePoint, "raw_tracepoint/": ebpf.RawTracepoint,
		"iter/": ebpf.Tracing, "syscall": ebpf.Syscall,
	} {
		if strings.HasPrefix(section, prefix) {
			return typ
		}
	}
	return ebpf.UnspecifiedProgram
}

// TestRecordSizes checks the C record layouts (BTF of the compiled object)
// against the sizes the decoder expects.
func TestRecordSizes(t *testing.T) {
	spec, err := collectionSpec(BackendLSM)
	if err != nil {
		t.Fatal(err)
	}
	structs := map[string]RecordType{
		"rec_file": RecFileOpen, "rec_exec": RecExec, "rec_mmap": RecMmapFile,
		"rec_ioctl": RecFileIoctl, "rec_sock_create": RecSocketCreate,
		"rec_sock_addr": RecSocketConnect, "rec_task_kill": RecTaskKill,
		"rec_ptrace": RecPtraceAccessCheck, "rec_inode_create": RecInodeCreate,
		"rec_inode_unlink": RecInodeUnlink, "rec_inode_rename": RecInodeRename,
		"rec_inode_setattr": RecInodeSetattr, "rec_sb_mount": RecSbMount,
		"rec_kmod": RecKernelModuleRequest, "rec_kread": RecKernelReadFile,
		"rec_bpf": RecBpf, "rec_capable": RecCapable, "rec_fork": RecTaskFork,
		"rec_exit": RecTaskExit,
	}
	for name, typ := range structs {
		var s *btf.Struct
		if err := spec.Types.TypeByName(name, &s); err != nil {
			t.Errorf("struct %s: %v", name, err)
			continue
		}
		want, _ := RecordSize(typ)
		if int(s.Size) != want {
			t.Errorf("sizeof(struct %s) = %d; RecordSize(%s) = %d", name, s.Size, typ, want)
		}
	}
	for name, want := range map[string]int{
		"vg_hdr": HeaderSize, "vg_inode": inodeSize, "vg_path": pathSize, "vg_file": fileSize,
		"vg_sock": sockSize, "vg_addr": addrSize, "vg_task": 56,
	} {
		var s *btf.Struct
		if err := spec.Types.TypeByName(name, &s); err != nil {
			t.Errorf("struct %s: %v", name, err)
			continue
		}
		if int(s.Size) != want {
			t.Errorf("sizeof(struct %s) = %d; want %d", name, s.Size, want)
		}
	}
	// The loader's own mirrors of map keys and values.
	for name, v := range map[string]any{
		"vg_task": taskValue{}, "vg_ns_cfg": nsValue{}, "vg_allow_key": allowKey{}, "vg_loss_key": lossKey{},
	} {
		var s *btf.Struct
		if err := spec.Types.TypeByName(name, &s); err != nil {
			t.Errorf("struct %s: %v", name, err)
			continue
		}
		if got := binary.Size(v); got != int(s.Size) {
			t.Errorf("Go mirror of %s: %d bytes; C %d", name, got, s.Size)
		}
	}
	// The repeat cache table: the loader reads its values (repeatValue)
	// and the namespace from the start of its keys.
	for _, b := range []Backend{BackendLSM, BackendTracepoint} {
		sp, err := collectionSpec(b)
		if err != nil {
			t.Fatal(err)
		}
		inner := sp.Maps["repeats"].InnerMap
		if inner == nil {
			t.Errorf("%s: map repeats has no inner map", b)
			continue
		}
		if got := binary.Size(repeatValue{}); got != int(inner.ValueSize) {
			t.Errorf("%s: Go mirror of vg_rval: %d bytes; C %d", b, got, inner.ValueSize)
		}
		for name, size := range map[string]uint32{"vg_rkey": repeatKeySize, "vg_rhkey": inner.KeySize} {
			var k *btf.Struct
			if err := sp.Types.TypeByName(name, &k); err != nil {
				t.Errorf("%s: struct %s: %v", b, name, err)
			} else if k.Size != size || k.Members[0].Name != "ns" || k.Members[0].Offset != 0 {
				t.Errorf("%s: %s: %d bytes starting with %s; want %d starting with ns", b, name, k.Size, k.Members[0].Name, size)
			}
		}
	}
	// Both objects share lib/records.h: same layouts.
	tp, err := collectionSpec(BackendTracepoint)
	if err != nil {
		t.Fatal(err)
	}
	for name := range structs {
		var a, b *btf.Struct
		if spec.Types.TypeByName(name, &a) != nil || tp.Types.TypeByName(name, &b) != nil {
			continue // rec types the tracepoint object does not use may be absent
		}
		if a.Size != b.Size {
			t.Errorf("struct %s: %d bytes in lsm, %d in tp", name, a.Size, b.Size)
		}
	}
}
