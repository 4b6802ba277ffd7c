// Package eventstest has test data of package events for the tests of any
// package: a sample description of every kind of the events catalogue
// (events.Kinds), so that a test can feed each kind through its own stage
// (the coefficient in model, the unmodeled count in namespace and the
// agent) and name the kind that fails.
//
// The samples are in kinds.jsonl, one TSEM line per kind in the
// catalogue's order, '#' lines being comments; the tests of package
// events read the same file.
package eventstest
