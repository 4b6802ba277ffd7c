// Package agent is the host agent behind `vigil agent`: it wires the
// capture programs, the namespace registry and dispatcher, container
// discovery, the measured event log, the Prometheus metrics, the event
// export and the control API into one process that models every container
// of a node in its own security modeling namespace. A standalone `vigil
// run` (no agent on the host) runs the same pipeline in its own process.
//
// # How the parts fit
//
//	bpf.Capture.Run -> namespace.Dispatcher -> Namespace.Add -> model
//	                                       \-> export sink, metrics
//	model (new point) -> measure.Namespace (queued) -> committer goroutine
//	                     (records written, one fdatasync, extends in order)
//	ContainerWatcher -> table.startContainer -> enroller (cgroup.procs)
//	control.Server -> Backend (the table) -> namespace transitions + kernel
//
// The pipeline (pipeline.go) is the first two lines, with the namespace
// table, the loss poller and the drain: it carries every namespace's
// records from the kernel to the models and the log. Agent puts container
// discovery, the enroller, the control socket and the metrics listener
// around it. Standalone (standalone.go) puts nothing around it: `vigil
// run` without an agent creates one run namespace in it with the table's
// createRun, enrols its command with the table's AddTask (as the control
// API does for `vigil run` through an agent), and drains it when the
// command has exited; so the two ways of running a command model it with
// the same code, and cannot drift apart.
//
// New opens everything that can fail (capture, register and log, control
// socket, metrics listener, export destination) so that a misconfigured
// agent fails before it runs; Run serves until its context ends and then
// shuts down in the order that loses nothing: stop discovery, drain the
// ring buffer into the models, record the last losses, flush the export,
// close the log and the register, detach the programs.
//
// # Namespace transitions
//
// Every change of a namespace's mode goes through the namespace (the model
// in userspace), the measured log and the kernel (its configuration, mode
// and allow set) in one order, whatever asked for it (a container's model
// file, the control API, a standalone `vigil run --model --enforce`); the
// functions are in transitions.go, under the namespace's lock:
//
//   - create: the registry's namespace; the log's "created" record, the
//     points of a loaded model and, if it is sealed, "sealed"; then the
//     kernel's configuration (learn or seal); then enforce, when the
//     settings ask for it.
//   - seal: the model is sealed; the log's "sealed" record; the kernel's
//     allow set (on a backend that can deny); the kernel's seal mode.
//   - enforce (sealing first if learning): the allow set; the namespace
//     enforces (userspace marks tasks untrusted); the kernel's enforce
//     mode; the log's "enforcing" record.
//   - load: the file's pseudonyms and points join the learning model,
//     measured like learned points; then seal.
//   - remove: the registry, the kernel's configuration and allow set,
//     the metrics; the log keeps what it recorded.
//
// Why this order: sealing is a change of the model, which decides from
// then on what is a point and what is forensics, so its record follows the
// model's seal at once, and any point recorded after it is known to be
// forensics; the kernel follows, since its seal mode decides nothing
// alone. Enforcing is the kernel's: the allow set is in place before the
// kernel judges by it, and the log says "enforcing" only once the kernel
// does, so that a failed switch leaves no claim in the log that the
// namespace enforced. A namespace starting sealed (a model file, `vigil
// run --model`) takes the same steps in create as a learning one sealed
// later.
//
// # Enrolment
//
// The capture layer enrols tasks by pid (a pidfd), not by cgroup. The
// agent therefore enrols every process listed in a container cgroup's
// cgroup.procs (and its sub-cgroups') as soon as it sees them: when the
// container's cgroup directory appears (inotify on the cgroup tree, through
// namespace.ContainerWatcher), when the cgroup becomes populated (inotify
// on its cgroup.events), and on a periodic resync. Children inherit the
// membership at fork, so a container whose first process is enrolled
// before it execs the workload (runc's init waits for `runc start`) is
// modeled from its first exec: a process that has not executed the
// container's workload yet (the runtime's init, in the host's mount
// namespace or running a binary from outside its root) is enrolled
// dormant (dormant.go), so that the runtime's per-container setup, which
// names the container's id and state directories, is not in the model.
// The kernel also watches each container's cgroup (bpf
// Capture.WatchCgroup): a task moved into it becomes a dormant member,
// and a task in no namespace that forks there gives the namespace its
// child at once, so a runtime's later stages and an exec into the
// container are members from their start even when the enroller finds
// them late. A process whose parent is a member is never enrolled: it is
// a member from its fork (the kernel hands the parent's state over at its
// first event), and enrolling it in between would make it a namespace
// root with an identity of that instance only. Limits: threads other than
// a process's main thread are not enrolled individually (a pidfd names a
// process), so a multi-threaded process already running when its cgroup
// is found is modeled through its main thread and the tasks it forks from
// then on.
//
// The files a container's tasks open are hashed through the container's
// file system, held open from the host from the container's discovery to
// its namespace's removal (containerfs.go), so that a container that has
// ended, even one removed at once (--rm), has the files it read hashed.
//
// The agent's own container (when it runs as a DaemonSet pod) is not
// modeled. A container that stops keeps its namespace for a grace period
// (its last records drain, its forensics stay readable, and a container
// restarted under the same id continues in it); then the namespace, its
// kernel configuration and its metric series are removed. A container
// that appears with a model file named after its namespace in model_dir
// starts sealed to that model; with model_key image, a model named after
// its image comes first (image.go), so that a restarted container (a new
// id) is sealed again, and with learn_instances or learn_period the agent
// writes that model itself from the image's first instances (learn.go).
// A container that learns from nothing gets
// pseudonyms for container_pseudonyms (the files its runtime writes for
// each instance); one sealed to a model file has the file's pseudonyms and
// dialect instead. New namespaces use the configured dialect (invariant by
// default), so that a model learned from one instance holds in the next.
//
// # The host
//
// With host_namespace, namespace 0 ("host") models every task no other
// namespace claims, picked up by the kernel at the task's first event; the
// enroller moves such a task to its container's namespace when it finds
// it in a container cgroup. The agent's own process, threads and children
// are left out by the kernel (bpf Capture.Ignore: no records, never
// denied); any record of them that still arrives is dropped before the
// model and counted. Enforcing the host needs host_enforce (host.go says
// why).
//
// # Memory
//
// A namespace's model keeps only a reference per point to its first event
// description; the descriptions go to a description spool (model.Spool)
// in the measured log's directory, one per namespace, unlinked at once and
// closed when the namespace is removed (descriptions.go). The log already
// holds the same bytes durably; the spool is a cache the process owns, in
// the page cache rather than the heap. Without a measured log the models
// keep descriptions in memory. What else the agent's RSS holds: the
// binary's text (about 13 MiB), the ring buffer twice over (the kernel
// maps its data pages twice, so the default 16 MiB costs 32 MiB), and
// about 170 bytes of heap per point (entry, index, order).
//
// # The measured log
//
// At start the agent begins a run of the log (a start record saying how
// the log stood and whether the previous run ended with its stop record)
// and warns when earlier records cannot be attested (a software register
// is set by replaying them) or the previous run ended unclean; closing
// the log at shutdown writes the stop record. When the log cannot be
// written (a full disk), its records wait in memory and are retried
// (measure.ErrLogUnwritable); log_full says what namespaces do meanwhile
// (logfull.go: gap, keep modeling and count the points beyond the hold
// in gap records; stop, stop modeling until the log has caught up). The
// poller reports the log's state in the agent's log and metrics, and the
// control API in each namespace's LogState.
//
// # Concurrency
//
// Run's goroutines: the pipeline's ring-buffer reader (the only caller of
// the dispatcher, so records of a task stay in order) and loss and
// statistics poller, the container watcher, the enroller, and the two
// HTTP servers;
// plus the measured log's committer (measure.Log.StartBatching): a new
// point is queued by the reader and made durable and extended by the
// committer in groups, so a burst of new points does not stall the ring
// buffer; the reader waits only when the bounded queue is full. Closing the
// log at shutdown commits what is queued before the register is printed.
// The export has its own writer (export.Sink): the reader only appends a
// line to a batch and never waits for the destination; lines a stalled
// destination cannot take are dropped and counted (vigil_export_lines_total)
// rather than holding the reader, whose stall would lose kernel records.
// The table (the control Backend) is safe for concurrent use: the control
// server calls it from many goroutines while the reader adds events. A
// Standalone runs only the reader and the poller; its methods are called
// from one goroutine.
package agent
