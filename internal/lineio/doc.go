// Package lineio reads line-oriented inputs (TSEM trajectories, model files)
// from files or standard input, keeping each line's file name and number so
// errors can name the place, and writes output files atomically.
//
// Nothing here is safe for concurrent use by several goroutines; each reader
// or writer belongs to one caller.
package lineio
