// Package measure is Vigil's measurement stage: every new point of a
// namespace's model becomes one record of an event log and one extend of a
// measurement register, so that a verifier can replay the log, check that it
// explains the register (read directly or from a TDX quote), and recompute
// each namespace's measurement and state.
//
// How the parts fit:
//
//   - Register (register.go) is the register behind a 5-method interface: a
//     TDX RTMR (measure/tdx), a TPM PCR (measure/tpm) or Software, a
//     SHA-384 register in memory. OpenRegister and Detect choose one.
//   - Record (record.go) is one line of the log in the TCG Canonical Event
//     Log JSON shape, written in one fixed layout by AppendLine and read back
//     by ParseLine. The digest is the register's hash of the exact bytes of
//     the record's "content" value, never of a re-serialisation.
//   - Content (content.go) is Vigil's record of a namespace: created (with
//     aggregate and base, and the namespace's hash when it is not sha256),
//     point (coefficient and event description), sealed, enforcing, gap
//     (lost events, or points the log could not record); or of a run of
//     the log: start and stop, which belong to no namespace. Coefficients have the namespace's hash length (64, 96
//     or 128 hex digits); the register extends the digest of the record
//     with its own algorithm whatever the namespace's, and the verifier
//     recomputes each namespace's measurement and state with its hash (a
//     created record without one is sha256, as every log before it).
//   - Log (log.go) appends records: write, fdatasync, then extend, all under
//     the log's mutex and an exclusive flock held from OpenLog to Close.
//     OpenLog detects and repairs what a crash can leave (a partial last line,
//     missing last extends) and refuses anything else. Namespace adapts a
//     Log to model.Observer for one modeling namespace.
//   - Group commit (batch.go): after StartBatching, records are queued and a
//     committer goroutine writes up to MaxBatch waiting records, fdatasyncs
//     once and then extends each digest in order, so the register is never
//     ahead of the log; a crash can leave it behind by up to MaxBatch
//     records, which OpenLog extends. NewPoint then returns once queued
//     (waiting only while the bounded queue is full); Flush and Close wait
//     for the queue.
//   - A full disk (full.go): a write or fdatasync that fails cuts the log
//     back to its last measured record (never leaving a partial line before
//     a later one) and the batch is held and retried; points beyond the
//     queue's bound are counted into a gap record of their namespace,
//     written once the log can be written (ErrLogUnwritable). Status and
//     Namespace.Status say how far behind the log is.
//   - Runs (run.go): BeginRun writes a start record saying how the log
//     stood (records, register value, whether the last run ended with a
//     stop record) and Close a stop record saying the same of the run, so
//     a log cut short before a restart shows a run that ended unclean.
//   - Replayer, Scan and Verify (replay.go, verify.go, verify_runs.go)
//     recompute a register value from a log and check it, runs included;
//     Report.Incomplete lists gaps and unclean runs. ExportCEL (cel.go)
//     writes CEL TLV.
//   - QuoteReportData (quote.go) is the binding of a verifier's nonce and a
//     log position into a TDX quote's report data.
//
// Concurrency: Log, Namespace and Software are safe for concurrent use (a
// Log's locks are described on its type); a
// Replayer belongs to one goroutine. One process appends to a log at a time
// (the flock), and a register should be owned by one log: anything else
// extending it makes the log fail verification, which is the point.
package measure
