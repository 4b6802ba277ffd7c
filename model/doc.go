// Package model owns TSEM's security model of one modeling namespace: the
// coefficients events map to, and what a namespace accumulates from them.
//
// # Points, trajectory, forensics
//
// Every security event maps to a coefficient (a digest of the namespace's
// hash; the mapping from an event description lives in coefficient.go). A Model keeps each
// unique coefficient once, as a Point with a count and the TSEM JSON
// description of its first event. While the model is learning, a new
// coefficient becomes a model point; the descriptions of the model points,
// in arrival order, are the trajectory. Seal freezes the model: a later
// coefficient outside it becomes a forensics point (again once, with a
// count and first description) and Add reports it as Forensic, so the
// caller can mark the task untrusted and, when enforcing, deny. Repeated
// events only bump counts, so memory grows with unique points, never with
// the event rate.
//
// # Measurement and state
//
// With H the namespace's hash and extend(m, x) = H(m ‖ H(base ‖ x)):
//
//   - the measurement starts as extend(0, aggregate) and is extended with
//     each new unique coefficient in arrival order, model and forensics
//     points alike, as TSEM's kernel agent does: a sealed namespace that
//     strays no longer reproduces its model's values;
//   - the state is the same fold over those coefficients sorted bytewise,
//     so it does not depend on scheduling order.
//
// MeasurementOf and StateOf compute both from a list of coefficients, for a
// verifier replaying a log. An Observer set in Options (or with
// SetObserver) is told about each new unique coefficient exactly once, in
// the order the measurement took them; the measurement stage extends a
// register from it.
//
// # Task identity
//
// TaskID is the task_id a task gets at exec, from its previous task_id
// (its new p_task_id) and the executed file's cell:
//
//	H("bprm_committed_creds" ‖ p_task_id ‖ zero task id ‖ H(40 zero bytes) ‖ H(file cell))
//
// the coefficient of an exec event with zero task_id and zero COE: the TSEM
// kernel hashes the credentials of an event it has not filled yet, so two
// execs of one file from one parent get one task id whatever their
// credentials. The file cell is the ordinary one, flags 32800
// (O_LARGEFILE|__FMODE_EXEC) and path type included; for a "#!" script it
// is the interpreter's. The reference data reproduces every task id it lets
// one derive (taskid_test.go).
//
// # Namespace hash
//
// As in TSEM, each namespace has its digest algorithm (Options.Hash:
// SHA-256 by default, SHA-384, SHA-512; Model.Hash). The coefficients,
// task ids (TaskIDHash), pseudonyms (PseudonymOfHash), the zero digest a
// pseudonym's file gets (H("") of the namespace's hash), the aggregate,
// base, measurement and state all have its length; EventCoefficientHash
// refuses a description whose task ids or digests have another length
// (ErrHashMismatch), and so does Add for a coefficient. Where the kernel
// hashes a task id kept in a HASH_MAX_DIGESTSIZE array with sizeof (a
// socket's owner, task_setpgid, task_setnice, task_setioprio), the task id
// is zero padded to 64 bytes whatever the hash: the 32 zero bytes of the
// SHA-256 layouts below. EventCoefficient, TaskID, MeasurementOf and
// StateOf take the hash from the length of their digests, SHA-256 for a
// zero-length one.
//
// A Coefficient (events.Digest) is a 65-byte comparable value; a Model
// indexes its points by their first 32 bytes and keeps the rest of a
// SHA-384 or SHA-512 coefficient aside, so a SHA-256 model's memory is
// what it was when coefficients were 32-byte arrays.
//
// A model file says its hash and dialect in comment lines (see Model
// files); LoadHash refuses a model of another hash than the namespace's,
// naming the file and line.
//
// # Dialects
//
// A Mapping (a Model's: Model.Mapping, Model.Coefficient) maps events to
// coefficients and task ids in a hash and a Dialect. DialectTSEM, the zero
// value and what EventCoefficient, EventCoefficientHash, TaskID and
// TaskIDHash compute, hashes every value as the TSEM kernel does. The
// kernel already hashes tmpfs's s_uuid, drawn at random at every mount,
// as zeros; DialectInvariant does the same for every value the kernel
// chooses afresh at a mount: the s_uuid of overlayfs and kernfs (sysfs,
// cgroup, cgroup2), random per mount from Linux 6.6 on, and anonymous
// device numbers (major 0, minor allocated at mount time), hashed as no
// device, as the kernel hashes 0:0. Two instances of a container (new
// mounts of the same image) then give the same coefficients and task ids.
// Descriptions keep what the kernel printed. A model file of the
// invariant dialect starts with a "#dialect invariant" comment line; one
// without is the kernel's.
//
// # Cell layouts beyond the reference data
//
// The layouts in testdata/tsem/README.md are checked against the kernel's
// own coefficients. The following ones follow the TSEM kernel source
// (security/tsem/map.c, get_cell_mapping, of the TSEM v3 patch series,
// April 2024) and are checked by their bytes and sizes only: no reference
// output exists for them. inode, dentry, file, sock and str are as in the
// README; u32 of a signed value is its two's complement.
//
//	inode_link                 dentry of old_dentry ‖ inode of dir ‖ dentry of new_dentry
//	inode_rename               inode of old_dir ‖ dentry of old_dentry ‖ inode of new_dir ‖ dentry of new_dentry
//	inode_killpriv, inode_listxattr, quota_on, sb_statfs
//	                           dentry
//	inode_getxattr, inode_removexattr
//	                           dentry ‖ str(name)
//	sb_remount                 dentry ‖ str(fstype) ‖ u64 s_flags
//	socket_getsockname, socket_getpeername
//	                           sock
//	socket_listen, socket_shutdown
//	                           sock ‖ u32 backlog or how
//	socket_setsockopt          sock ‖ u32 level ‖ u32 optname
//	task_setnice, task_setioprio
//	                           task[32] ‖ 32 zero bytes ‖ u32 nice or ioprio
//	task_prlimit               u32 cred.uid ‖ u32 tcred.uid ‖ u32 flags
//	ptrace_traceme             source[32]
//	kernel_module_request      str(kmod_name)
//	kernel_load_data           u32 id ‖ u32 contents
//	kernel_read_file           file ‖ u32 id ‖ u32 contents (events.KernelReadFile)
//	syslog                     u32 type
//	bpf                        u32 cmd
//	bpf_map                    u32 map.map_type
//	bpf_prog                   u32 prog.type
//	generic event              type-name bytes (no length) ‖ H("")
//
// The kernel quirks behind some of these are kept on purpose: the task
// fields of task_setnice and task_setpgid are hashed with the size of a
// 64-byte array holding a 32-byte task id (hence the zero bytes, as the
// reference data shows for task_setpgid); its credential helper stops
// after the uid (as key_alloc in the reference data shows), so
// task_prlimit hashes one uid per credential; its bpf helpers stop after
// the first member, so bpf hashes cmd but not attr.size, and bpf_map and
// bpf_prog only their first field. A generic event is one the kernel
// models without parameters: its description has an empty cell object
// and its cell is the event's type name followed by the digest of nothing
// (the namespace's zero digest). kernel_module_request, kernel_load_data,
// syslog and bpf* are read from events.Generic members, as events parses
// them.
//
// Still without a layout (EventCoefficient returns ErrNoCellLayout, and a
// namespace counts the event as unmodeled): the kinds the catalogue
// lists with a reason (events.Kind.Unmodeled; inode_setxattr, settime,
// netlink_send, the IPC events, quotactl, tun_dev_attach_queue,
// file_ioctl_compat), a kernel_read_file given as events.Generic (no file
// cell), and any events.Generic description with members whose type the
// source does not lay out. Whether an events.Generic description gets the
// generic rule is the catalogue's call too (events.CellGeneric).
//
// # Pseudonyms
//
// A pseudonym, PseudonymOf(pathname) = H(u32 length ‖ pathname), marks a
// file whose content digest is replaced by H("") when its events are
// mapped; IsPseudonym is what the event mapping asks (Model.Mapping and
// Model.Coefficient use it). A pseudonym added after points were learned
// does not change them: it applies to the events mapped from then on.
//
// # Merging
//
// Merge unites models that agree on hash, dialect, pseudonyms, aggregate
// and base: the first model's points in its order, then each later one's
// new points, each with the first description any model has.
//
// # Model files
//
// Load, LoadHash, WriteTo and SaveFile read and write TSEM's model file
// format as the Quixote tools do, with Vigil's comment lines ("#hash",
// "#dialect", and "#trajectory" after each state line, which keeps the
// trajectory the kernel allow sets are built from); docs/model-format.md
// in the repository describes the format. Load parses every trajectory
// description (events.Parse) and refuses the file at the first that does
// not parse. Errors from Load name the file and line (*lineio.PlaceError)
// and match ErrInvalidModel; SaveFile replaces a file atomically or not at
// all.
//
// # Description stores
//
// A point keeps the TSEM description of its first event, about 800 bytes
// for a file_open: 40 MB for 50,000 points, twice that with the garbage
// collector's headroom. Options.Store moves them out of the heap: the
// model keeps a DescriptionRef (8 bytes) per point and the store the
// bytes. Spool (store.go) is the agent's store: an append-only file,
// unlinked as soon as it is created (so it is gone when the process ends,
// however it ends), written 64 KiB at a time so that a new point costs a
// copy rather than a system call, each description framed by its length
// and CRC-32C so that a truncated or changed spool is reported
// (*SpoolError naming the file and offset, ErrCorruptSpool) instead of
// returning other bytes. Without a store (the default, and what the
// offline commands use) descriptions stay in memory as before; a
// description the store refuses is kept in memory too, and Add reports
// the store's error.
//
// Reading descriptions back can then fail: ReadPoints, ReadForensics and
// ReadTrajectory return every point and an error per description that
// could not be read; WriteTo fails rather than write a model file without
// a trajectory line. Points, Forensics, Trajectory and SetObserver keep
// their signatures for models without a store and leave an unreadable
// description nil. An Observer of a model with a store gets the caller's
// description buffer, valid during NewPoint only. Close releases the
// store.
//
// # Concurrency
//
// A Model is safe for concurrent use. Adding a repeated coefficient takes a
// read lock and an atomic increment; a new one takes the write lock briefly.
// Observer calls happen outside that lock but are serialised and ordered by
// arrival, so the measurement and a register extended by the observer take
// the points in the same order; a slow observer delays only other new
// points, not repeated events. A store's Put runs under the write lock
// (the order of the spool is the order of arrival); reads of stored
// descriptions run outside the lock, on entries whose reference never
// changes once published.
package model
