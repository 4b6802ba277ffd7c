// Package export writes the agent's exported event descriptions — one JSON
// object a line, TSEM or ECS as the events package encodes them — to
// standard output or to a file that rotates by size, and filters them to
// forensics only when asked.
//
// # Latency and loss
//
// Sink.Export appends a line to an in-memory batch and returns; it never
// waits for the destination, because its caller is the ring-buffer reader
// and a stalled reader loses kernel records, which breaks the models (far
// worse than a missing copy of an event). A writer goroutine writes each
// batch when it reaches 64 KiB, when its first line is FlushInterval old
// (default 1 s), and at once when it holds a forensics event: a line is on
// its way to the kernel within a second, so a crash or a kill -9 loses at
// most the last second of export. When the destination is slower than the
// events (a pipe whose reader stalls), at most 16 batches wait for it; past
// that new lines are dropped and counted. A failed write (a full disk, a
// closed pipe) loses its batch's lines and is counted too. Both show in
// Stats (the agent's vigil_export_* metrics) and in an error log line at
// most every 10 s; nothing is lost without a count.
//
// # Rotation
//
// A Rotating file renames itself, when the next lines would take it past
// its maximum size, to PATH.<UTC time>.<sequence> (for example
// events.json.20261206T103000.000042) and starts a new PATH. A rotated
// file is never renamed again: the sequence, which grows across restarts,
// orders them; the oldest beyond the number to keep is removed at that
// rotation. So a rotation costs the same with 5 kept files or 10,000.
// Lines are never split across files: a write is cut at a line boundary,
// and a line longer than the maximum size goes to a file alone. A write
// that fails part way is cut back to its last whole line.
//
// Concurrency: a Rotating file and a Sink are safe for concurrent use; a
// Rotating file's writes are serialised, a Sink's lines keep the order of
// their Export calls.
package export
