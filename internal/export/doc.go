// Package export writes the agent's exported event descriptions — one JSON
// object a line, TSEM or ECS as the events package encodes them — to
// standard output or to a file that rotates by size (path, path.1, ...,
// path.N, oldest dropped), and filters them to forensics only when asked.
//
// Lines are never split across files: rotation happens between writes, and
// each Write must hold whole lines.
//
// Concurrency: a Rotating file and a Sink are safe for concurrent use; their
// writes are serialised.
package export
