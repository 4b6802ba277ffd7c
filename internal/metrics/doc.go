// Package metrics owns the agent's Prometheus metrics: one non-global
// registry holding what an operator needs to see that modeling works and
// keeps up — security events by type and namespace, records lost by reason
// and namespace, forensics and denials, model points per namespace,
// measurement register extends and their latency, the measured log's
// failed writes, waiting records and unrecorded points, pipeline latency, file
// digest cache hits and misses, ring-buffer fill and the capture backend in
// use — and the HTTP server that exposes them on /metrics.
//
// Labels are bounded: event types and loss reasons come from the fixed sets
// the capture layer defines, registers and backends are a handful of names,
// and every series labelled with a namespace is deleted by RemoveNamespace
// when the namespace ends, so a node that runs containers for months does
// not grow without limit.
//
// Concurrency: every method of Metrics is safe for concurrent use. Hot paths
// should hold on to the counter returned by EventCounter rather than look
// the labels up per event.
package metrics
