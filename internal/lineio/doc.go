// Package lineio reads line-oriented inputs (TSEM trajectories, model files)
// from files or standard input, keeping each line's file name and number so
// errors can name the place, and writes output files atomically. Every line
// has a cap (MaxLine for an event description, twice that for the formats
// that wrap one), so that a single bad line cannot take memory in
// proportion to its length; NextLine is the one reader that enforces it.
//
// Nothing here is safe for concurrent use by several goroutines; each reader
// or writer belongs to one caller.
package lineio
