// Package events owns the TSEM security event description: the Go types of
// an event (Header, COE and one typed Payload per TSEM layout), the parser
// for TSEM JSON lines, and the encoders that write an Event back as a TSEM
// line or as an Elastic Common Schema document.
//
// # The description
//
// A description is one JSON object a line,
//
//	{"event": {...}, "COE": {...}, "<type>": {...}}
//
// with every scalar a string. Values are kept in binary form (uint32 and
// uint64, Digest task ids and digests, [16]byte s_uuid) so that computing
// the coefficient of a decoded event (package model) needs no further
// parsing. Names (process, pathnames, s_id) are Go strings holding the exact
// bytes the kernel printed.
//
// # Namespace hash
//
// TSEM lets each modeling namespace choose its digest algorithm when it is
// created (sha256 by default); everything digest-sized in the namespace's
// descriptions has that algorithm's length: task ids, socket and file
// owners, file content digests, af_other address digests. Hash names the
// algorithms Vigil supports (SHA256, SHA384, SHA512) and Digest holds a
// digest of any of them as a comparable 65-byte value (a 64-byte array
// and the length in use), so a description of any namespace parses and
// re-encodes byte for byte with 64, 96 or 128 hex digits. The converter
// asks HashOf for a record's namespace hash; the DigestCache keeps one
// digest per file version and algorithm (SHA-256 ones in a map of 32-byte
// values, so the default costs what it did).
//
// Every layout the TSEM kernel prints that Vigil models has a payload type
// (*FileEvent, *MmapFile, *InodeCreate, *SocketAddr, *TaskKill, ...; see the
// type list). One type may serve several event names with the same layout;
// Header.Type names the event. Any other TSEM event name (Names lists all of
// them) is parsed into a *Generic, an ordered key/value tree, and re-encoded
// byte for byte. An event name TSEM does not have is an error.
//
// # The catalogue
//
// Kinds (kinds.go) is one table of every TSEM event name with what Vigil
// knows of it: its payload type, its ECS categorisation, how package model
// lays out its coefficient cell or why it cannot (Kind.Unmodeled), and
// which capture backends record it. Names, Known, the parser's name check
// and the ECS encoder read it; the parser, the encoders and the model keep
// their type switches on payloads, and tests hold them to the catalogue
// with one sample description per kind (eventstest/kinds.jsonl).
// docs/adding-an-event.md gives the steps to add a kind.
//
// # Parsing
//
// The kernel prints names without escaping them: a pathname may contain a
// raw tab or bytes that are not UTF-8, so real TSEM output is not always
// strict JSON. Parse therefore uses its own small scanner instead of
// github.com/goccy/go-json (or encoding/json): both reject raw control
// characters in strings and replace invalid UTF-8 with U+FFFD, which would
// change the bytes the coefficient hashes. The scanner keeps such bytes as
// they are, decodes the standard JSON escapes, reads strings as slices of
// the line when they have no escapes, builds a flat pointer-free tree, and
// decodes numbers the way C strtoll(s, 0) does (leading 0 octal, 0x hex,
// else decimal). In BenchmarkParse it is more than twice as fast as
// goccy/go-json decoding the same lines into a map, with 2 allocations a
// line instead of about 100; it is the JSON reader of the hot path
// (`vigil model points`).
//
// Typed payloads are strict: a missing member, an unknown or repeated
// member, a bad number or bad hex is a *ParseError that gives the byte
// offset and the dotted member path (file_open.file.inode.mode) and wraps
// one of ErrSyntax, ErrUnknownType, ErrMissingField, ErrUnknownField,
// ErrBadHex, ErrBadNumber.
//
// # Encoding
//
// Event.AppendTSEM writes the kernel's member names, order and spacing,
// mode in octal with a leading 0, capeff and s_magic as 0x-hex, digests
// lowercase hex; for every reference line it reproduces the input byte for
// byte. It escapes what the kernel does not: control characters become JSON
// escapes, and a byte that is not part of valid UTF-8 becomes the lone low
// surrogate escape \udcXX (XX the byte), which Parse maps back to the byte.
// The output is therefore valid JSON and UTF-8, and Parse returns the same
// bytes. (A standard JSON reader turns such an escape into U+FFFD.)
//
// AppendECS (and the ECS encoder) writes an ECS 8.x document: @timestamp,
// event.* (kind, category and type from the ECS allowed values, action =
// the TSEM event name, outcome, hash = the coefficient, sequence),
// process.*, user.*, group.*, the effective capabilities by name, file.*,
// source/destination ip and port converted from TSEM's network-order
// integers, network.transport/type, and everything else under vigil.* in
// TSEM's own encoding. TSEM and ECS both implement the one-method Encoder.
//
// Files named record*.go, enrich*.go and digest*.go hold the decoding of
// kernel ring-buffer records into Events.
//
// # Unhashable files
//
// TSEM hashes a file's content in the kernel when the event happens.
// Vigil's kernel programs cannot read file content, so the kernel records
// the file's content stamps with the event (device, inode number, size,
// ctime and mtime in nanoseconds; see bpf.Inode) and userspace hashes
// afterwards (DigestCache): through the namespace's held file system
// (FileSystem: a container's root and bind mounts, held open by the agent
// from the container's start, so that a container that has ended and
// been removed still has its files read), by path (as the host sees it,
// then through the roots of the namespace's processes), else through a
// descriptor a process of the namespace still holds (/proc/PID/fd), and
// keeps the digest only when the file it read has the event's stamps
// before and after reading. The check is exact: an overlayfs file's
// stat gives the overlay's device and the inode number the kernel
// recorded when the overlay's layers share one file system (the runtimes'
// usual layout); where they do not, stat's numbers differ from the
// kernel's inode and the file is unhashable rather than taken on trust. ctime cannot be set from user space and changes with
// every write, truncate, chmod, chown, link, unlink or rename, so equal
// stamps mean the content read is the content the event saw; a cached
// digest is reused only for equal stamps.
//
// A file whose content Vigil cannot read that way (changed, deleted or
// renamed before userspace read it, on a mount of the container that
// only its mount namespace has, such as a tmpfs, once its tasks are gone,
// or otherwise unreachable) gets the unhashable
// digest, Hash.Unhashable: every byte 0xff, of the namespace hash's
// length. It is a marked state, not a digest of anything: no content
// hashes to it in practice, and an event that carries it
// (Event.HasUnhashableFile) is never learned. A learning namespace counts
// it apart, a sealed one records it as forensics even when the same
// event occurred while learning, so a workload that reads a file and
// deletes or rewrites it at once cannot have any content accepted under
// that name. Metrics count such files per namespace
// (vigil_unhashable_files_total), and `vigil run` reports them. A digest
// taken in the kernel at open time, or a reference to the file held
// until userspace hashed it, would avoid the state altogether; neither is
// available to tracepoint programs on the kernels Vigil supports. A file
// whose pathname is a pseudonym of the model is never in this state: its
// description has the zero digest, its content unread (package
// namespace).
//
// # Created files
//
// A file a task of the record's own namespace created (its kernel tag,
// bpf.CreatedTag.In) is described as TSEM describes it: its Path has
// Created, Owner (the task id of the creating task's TTD) and Instance, so
// that its coefficient hashes the directory part of the pathname, the
// instance and the owner instead of the (often random) name, and its
// content digest is the namespace's zero digest, H(""), without reading
// it. inode_setattr and inode_rename name the acting task as the owner,
// as TSEM's fill_dentry does. A file created by another namespace (an
// earlier run) keeps its plain name and digest.
//
// # Concurrency
//
// Parse, AppendTSEM, AppendECS and the encoders are safe for concurrent use
// (Parse draws scratch space from a sync.Pool). An Event is a plain value:
// do not mutate one while another goroutine reads it.
package events
