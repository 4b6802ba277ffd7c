// Package bpf owns Vigil's kernel side: the eBPF programs that capture
// security events of the tasks in a modeling namespace, the maps that hold
// namespace membership, modes and allow sets, and the loader and ring
// buffer reader that hand the events to userspace as typed records.
//
// # Backends
//
// Two objects are compiled from C (lsm.bpf.c, tp.bpf.c, sharing lib/*.h;
// see "Files") with bpf2go and committed with their generated Go wrappers
// (lsm_bpfel.*, tp_bpfel.*), so building needs no clang:
//
//   - BackendLSM: BPF LSM programs on file_open, bprm_check_security,
//     bprm_committed_creds, mmap_file, file_ioctl, socket_create,
//     socket_connect, socket_bind, socket_accept, task_kill, inode_create,
//     inode_unlink, inode_mkdir, inode_rename, inode_setattr, sb_mount,
//     ptrace_access_check, kernel_module_request, kernel_read_file, bpf and
//     capable, and d_instantiate (no record: it tags created files). It
//     can enforce.
//   - BackendTracepoint: for kernels where BPF LSM programs cannot be
//     loaded. Raw syscall and scheduler tracepoints produce the same
//     records after the fact, flagged FlagObserved. One raw sys_enter
//     and one raw sys_exit program (vg_sys_enter, vg_sys_exit) see every
//     syscall of every ABI (64-bit, 32-bit through int $0x80, x32; the
//     syscalls:* tracepoints skip the last two on x86-64) and report the
//     exits of the syscalls that open a file and return it (open, openat,
//     openat2, creat, open_by_handle_at, mq_open), mmap with PROT_EXEC,
//     connect, bind and the signal syscalls (kill, tkill, tgkill,
//     rt_sigqueueinfo, rt_tgsigqueueinfo, pidfd_send_signal); a raw
//     sched_process_exec program reports execs and the script of an
//     interpreter exec (RecExecScript). An O_PATH open makes no record
//     (the kernel opens nothing, TSEM's file_open does not see it). It
//     never denies anything; SetNamespace with ModeEnforce returns
//     ErrObserveOnly.
//
// The "Capture backends" tables of docs/architecture.md list, per backend,
// each syscall or hook and the TSEM event it becomes.
//
// Both attach sched_process_fork and sched_process_exit, which carry
// membership to children and report task lifecycle, sched_process_free,
// which ends a process's Ignore, and cgroup_attach_task, which enrols a
// task moved into a watched container cgroup (WatchCgroup). Open picks the backend
// by a real load and attach (BackendAuto: LSM, else tracepoints, else
// ErrNoBackend naming both reasons); it first tries a minimal LSM program
// (and reads securityfs's lsm list), so that a kernel that refuses LSM
// programs costs no full load of the LSM object. Programs are attached and
// detached concurrently: a tracepoint detach waits for an RCU grace period.
//
// # Records
//
// Every record starts with Header (HeaderSize bytes: size, type, flags,
// namespace, time, pid/tgid, comm, COE, TTD, PTTD, allow key, repeat
// cache id) followed by a fixed payload per RecordType; ParseRecord
// decodes one into the matching *FileOpen, *Exec, ... value. Sizes are fixed per type (paths
// are PathMax-byte buffers, flagged PathTruncated when cut) and are checked
// against the compiled objects' BTF by the tests.
//
// Scripts. TSEM sees a "#!" script exec as file_open of the script (exec
// flags, by the task before the exec), file_open of the interpreter, and
// the exec of the interpreter (bprm_committed_creds). The LSM backend's
// file_open hook sees both opens. The tracepoint backend sees only the
// completed exec, so its exec program looks for the script: the kernel
// released the script's file before loading the interpreter, and a task's
// last release of a file waits on its task work list until the exec
// returns to user space, where the program finds it (the address of the
// kernel's release function comes from vg_find_fput, a syscall program
// the loader runs once; Capture.ScriptFiles says whether it was found).
// It reports it as an *ExecScript before the *Exec record; without the
// file, the record names the script by the path the exec was given
// (File.Present false).
//
// # Created files
//
// A file a task of a modeling namespace creates carries a tag
// (CreatedTag: the namespace, the creating task's TTD and an instance
// number), and every record whose inode is that file carries the tag in
// Inode.Created: file_open, bprm_committed_creds, mmap_file, file_ioctl,
// kernel_read_file, inode_unlink, inode_setattr and both entries of
// inode_rename; inode_create and inode_mkdir carry the tag they give.
// Userspace names the file, in the events of the namespace that created
// it, as TSEM does: directory part ‖ instance ‖ task id of the owner, with
// the zero content digest, so that temporary files with random names
// (mkstemp) have the same coefficients in every run. Instances count the
// files one process created in one directory since its exec, from 1: TSEM
// counts per task id, which makes the numbers of parallel processes of one
// program (make -j) depend on their interleaving. The LSM backend gives the
// number at inode_create and inode_mkdir and puts the tag on the new inode
// (inode storage) at d_instantiate; the tracepoint backend tags a file its
// open created (FMODE_CREATED) at the syscall's exit, in a table of 65,536
// entries that DropNamespace empties for its namespace, and does not see
// mkdir. A tag that cannot be given is counted as LossCreated. See
// lib/created.h.
//
// Task identity: the kernel cannot hash, so it numbers. Every task in a
// namespace has a TTD, a number handed out at each exec (and at the first
// event after Enroll) that never repeats while the Capture is open; a fork
// child keeps its parent's TTD and gets PTTD = the parent's TTD. Userspace
// computes task_id(TTD) from the Exec record that created the TTD (its
// COE, its file and task_id(PTTD)), as TSEM does.
//
// # Repeat cache
//
// Most events of a workload repeat: the same task opens the same file
// with the same credentials again and again. With the repeat cache on (the
// default; NamespaceConfig.NoRepeatCache turns it off per namespace), the
// kernel keeps a table of the events it recorded in the current window,
// keyed by everything that decides the event's TSEM coefficient and
// description: namespace, TTD and PTTD, COE, untrusted flag, event type,
// open flags, the file's inode, dentry and vfsmount, inode number, device,
// mode, owner, size, ctime and mtime, and the file's created tag when the
// namespace created it (its owner and instance name the file; the memo
// below compares keys without it: the rest of the key is the same inode,
// whose tag does not change once another task can reach it). The first event of a key makes a
// record carrying the entry's id (Header.RepeatID); its repeats only count
// in the entry. Run replaces the table every Options.RepeatWindow (1s) and
// when it ends, and hands the counts on as *RepeatCount records naming the
// id: the kernel waits for running programs when the table is swapped, so
// every suppressed event is counted once, and records + counts equal the
// events. After each replacement Run first delivers every record still in
// the ring buffer, then one *RepeatCount per key that was repeated (Count
// > 0, after its record), then one finish marker per namespace
// (RepeatCount.Below: every id below it is final), so keys that did not
// repeat cost no record. FlushRepeats makes Run replace the table now and
// returns once all of that has been handed on (the agent's sync for
// `vigil run` uses it). The kernel must look the table up before it takes
// an id from rid_counter and submit the record in the same program run;
// the marker's correctness rests on both. A key therefore makes at least one record per window: a changed
// file (mtime, size, ctime) is a new key at once; a path that changes
// without its file changing (a parent directory renamed) shows in the next
// window. In an enforcing namespace an entry suppresses only events the
// kernel allowed under the namespace's current configuration (ClearAllow
// and SetNamespace invalidate it); denials and untrusted tasks always take
// the full path. It covers file_open on both backends; on the tracepoint
// backend it needs bpf_rdonly_cast (6.2+), else every open is recorded.
//
// Repeat memo. Outside enforcing namespaces a task keeps its last cached
// key in its own task storage (task_memo, apart from task_state so that
// Enroll and fork never copy a count): the key, the entry's id, the
// window number gen and one word holding gen's low 24 bits and a count.
// A repeat of that key in the same window only adds one to the count,
// with no table lookup (only the task itself adds, so a plain add). On
// another key the task takes the table path as before and then moves its
// memo: a count of the current window is added to the old key's entry
// first; a count of an ended window stays for the collector, and so does
// the memo. The windows and their order:
//
//   - rep_gen[0] is the current window g; the table of window g sits in
//     slot g&1 of repeats, and a program reads rep_gen[0] once and uses
//     that slot for everything it does.
//   - Rotation g to g+1: the fresh table goes into slot (g+1)&1 (its old
//     table, of window g-1, was read at the last rotation), rep_gen[0]
//     becomes g+1, then a second update of that slot waits for every
//     running program (the kernel's map-in-map grace period). After it no
//     program counts anything under window g: the old table's entries
//     and the memo counts of window g are frozen, and their records are
//     in the ring buffer, which Run drains first.
//   - The collector, an iter/task program (vg_collect) run by userspace
//     with rep_gen[1] = g, takes each task's count of window g with a
//     compare-and-swap of the memo word and writes (namespace, id,
//     count); while a memo holds a count of an ended window its task
//     leaves it alone, so the id read before the swap is the count's.
//   - A task that exits (sched_process_exit) takes its memo's count with
//     the same compare-and-swap, marks the memo dead (later events take
//     the table) and adds the count to its entry in the table of the
//     memo's window, slot gen&1: the current table, or the old one, which
//     stays in its slot. Exactly one of the collector and the exit gets a
//     count. A task that has not passed the exit hook is still visible to
//     the iterator, so the collector misses no count an exit does not take.
//   - Userspace then updates the old table's slot with the same table: a
//     grace period after which every exit that took a count of window g
//     before the collector has added it. Only then is the old table read;
//     its counts plus the collector's (by id) are the window's counts,
//     delivered as before, then the finish markers.
//
// Enforcing namespaces keep the table path (an allowed entry of the
// current configuration generation is what suppresses there); a memo's
// pending count survives a namespace turning to enforcement, turning the
// cache off or a configuration change, because the collector takes it at
// the end of its window whatever the namespace does since.
//
// # Namespaces, modes and enforcement
//
// Enroll puts a task (by pid, through a pidfd) in a namespace; children
// inherit membership at fork and cannot leave it. Tasks outside every
// namespace produce nothing unless namespace 0 (the host) is configured
// with NamespaceConfig.Model. Enroll affects the one task given: enroll a
// process before it starts threads, e.g. a stub that waits on a pipe and
// then execs the workload (everything after the exec inherits).
//
// EnrollDormant enrols a task dormant until exec (lib/dormant.h): a
// member that makes no record and is never denied, whose forks (threads
// too) are dormant members, until it execs outside the host's mount
// namespace (Options.HostMountNS); then it is an enrolled task with TTD 0
// and PTTD 0, and its exec makes it a namespace root. The agent enrols a
// container runtime's init this way, so that a container is modeled from
// its workload's first exec and not from the runtime's per-container
// setup. An exec in the host's mount namespace (runc executing a copy of
// itself) leaves the task dormant. WatchCgroup has the kernel do the same
// for the tasks moved into a container's cgroup and the children forked
// there by tasks in no namespace.
//
// Ignore leaves a process out of namespace 0 in the kernel: its threads,
// and the processes it forks after the call (and theirs), make no host
// records and are never denied by an enforcing host, while tasks enrolled
// in other namespaces are unaffected. The agent ignores itself when it
// models the host. The kernel forgets a process when it has exited (at
// sched_process_free of its group leader).
//
// In ModeEnforce (LSM only) each hook computes the event's allow key (Key
// gives the same value in Go for a record; build a record from an
// imported event to get its key) and returns -EPERM when the key is not
// in the namespace's allow set (Allow) or when the task is untrusted; a
// denied event marks the task untrusted. MarkUntrusted lets userspace do
// the same after checks the kernel cannot make (file digests). Records
// are still emitted for denied events, with FlagDenied. Not every event is
// decided by its exact key: Decides says which pass by policy (anonymous
// mappings without PROT_EXEC, signals within the sender's own process)
// and which are keyed coarsely (executable anonymous mappings); pathnames
// in keys and in event descriptions are CanonicalPath's (/proc/<own
// pid>/ as /proc/self/, pipe:/, socket:/, anon_inode:/), and a file the
// namespace created is keyed by its directory and instance, so that a
// sealed model's keys hold in the next run.
//
// # Loss
//
// The kernel never waits for userspace. A record that cannot be reserved
// is counted in a per-CPU table per namespace and reason (Lost), together
// with the reader's decode failures; NamespaceConfig.FailClosed makes an
// enforcing namespace deny the events it cannot report.
//
// # Concurrency
//
// A Capture's methods are safe for concurrent use; Run and Read
// serialise on one reader. Run calls its function on Run's goroutine, in
// ring buffer order. Records returned are owned by the caller.
//
// # Files
//
// The C: lsm.bpf.c and tp.bpf.c hold each backend's own programs and
// include the shared headers of lib/ in the order they build on each
// other (each header includes what it uses, too, and starts with what it
// owns): common.h (vmlinux.h, libbpf, the kernel's constants, next_id),
// records.h (record layouts, the ring buffer), loss.h (loss counters),
// namespace.h (ns_config and its epoch), ignore.h (the ignore table),
// task.h (task state, fork inheritance, current_state), rcache.h (the
// repeat cache's tables, key and hash), scratch.h (per-CPU scratch),
// path.h (the dentry walk), created.h (created-file tags), fill.h
// (filling records), key.h (the allow key), enforce.h (allow sets and
// the decision), memo.h (the repeat memo and its collector), repeat.h
// (the repeat cache as an event uses it), dormant.h (dormant tasks,
// container cgroups) and lifecycle.h (fork, exit, free). bpf/.clang-format
// is their style. headers/ holds vmlinux.h and libbpf's headers
// (headers/update.sh regenerates them).
//
// The Go: objects.go binds the maps, programs and variables Capture uses
// by name (a missing one fails the load) and keeps the generated names in
// one place; load.go probes the BPF LSM and attaches; capture.go opens
// and closes a Capture; read.go reads the ring buffer (Read, Run);
// repeats.go runs the repeat cache (rotation, memo collector,
// FlushRepeats); namespace.go, allow.go, tasks.go, ignore.go, dormant.go,
// created.go and loss.go are the userspace side of the matching kernel
// tables; record.go and key.go decode records and compute allow keys.
//
// Kernel requirements: BTF (CONFIG_DEBUG_INFO_BTF), ring buffers and task
// storage (5.11+), bpf_loop (5.17+); the LSM backend needs "bpf" in the
// active LSM list (lsm=...,bpf). Regenerating the objects needs clang,
// llvm, libbpf-dev and bpftool (see headers/update.sh and gen.go).
package bpf
