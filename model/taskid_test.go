package model_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/vigil-tsem/vigil/events"
	"github.com/vigil-tsem/vigil/model"
)

// execTransitions are the execs of the TSEM reference data (testdata/tsem):
// for each, a line of the new program (its task_id and p_task_id) and the
// line whose file cell is the file the kernel held at
// bprm_committed_creds.
var execTransitions = []struct {
	task, file, why string
}{
	{"process_1.json:5", "process_1.json:3", "bash (ttd 1096): quixote's exec open of /usr/bin/bash"},
	{"process_1.json:67", "process_1.json:65", "lesspipe (ttd 1097), a #!/bin/sh script (line 64): the interpreter /usr/bin/dash"},
	{"process_1.json:89", "process_1.json:87", "basename (ttd 1098)"},
	{"process_1.json:109", "process_1.json:108", "dirname (ttd 1099)"},
	{"process_1.json:129", "process_1.json:128", "dircolors (ttd 1100)"},
	{"process_3.json:1", "process_1.json:3", "bash (ttd 1267), another run of the same exec"},
	{"process_4.json:5", "process_1.json:3", "bash (ttd 1285), another run of the same exec"},
	{"process_6.json:1", "process_1.json:3", "bash (ttd 1384), another run of the same exec"},
}

// execWithoutFile are the execs of the reference data whose executed file
// no line of the data shows, so their task ids cannot be derived.
var execWithoutFile = map[string]string{
	"process_4.json:1": "grep (ttd 1292): /usr/bin/grep is not opened in the data",
	"process_4.json:3": "grep (ttd 1295): /usr/bin/grep is not opened in the data",
	"vectors.jsonl:9":  "httpd (ttd 3918): its container trajectory is not in the data",
}

// referenceEvents parses every line of the reference data by name
// ("process_1.json:5", "vectors.jsonl:9").
func referenceEvents(t *testing.T) (map[string]*events.Event, []string) {
	t.Helper()
	byName := make(map[string]*events.Event)
	var order []string
	for _, kc := range kernelCases(t) {
		e, err := events.Parse(kc.line)
		if err != nil {
			t.Fatalf("%s: %v", kc.name, err)
		}
		name, _, _ := strings.Cut(kc.name, " ")
		byName[name] = e
		order = append(order, name)
	}
	return byName, order
}

func execFileOf(t *testing.T, e *events.Event, where string) events.File {
	t.Helper()
	switch p := e.Payload.(type) {
	case *events.FileEvent:
		return p.File
	case *events.MmapFile:
		if p.HasFile {
			return p.File
		}
	}
	t.Fatalf("%s: %s has no file cell", where, e.Header.Type)
	return events.File{}
}

// TestTaskIDReproducesKernel derives the task id of every exec of the
// reference data whose executed file the data shows from its p_task_id and
// that file's cell, and checks it is the task_id the kernel printed; and
// that every exec of the data is accounted for.
func TestTaskIDReproducesKernel(t *testing.T) {
	byName, order := referenceEvents(t)
	reproduced := 0
	for _, tc := range execTransitions {
		task, file := byName[tc.task], byName[tc.file]
		if task == nil || file == nil {
			t.Fatalf("%s: lines %s or %s missing from the reference data", tc.why, tc.task, tc.file)
		}
		f := execFileOf(t, file, tc.file)
		if f.Flags != events.ExecFlags {
			t.Errorf("%s: %s flags %d; want an exec open's %d", tc.why, tc.file, f.Flags, events.ExecFlags)
		}
		parent := model.Coefficient(task.Header.PTaskID)
		if got := model.TaskID(parent, &f); got != task.Header.TaskID {
			t.Errorf("%s: TaskID(p_task_id of %s, file of %s) = %s; want the kernel's %s", tc.why, tc.task, tc.file, got, task.Header.TaskID)
			continue
		}
		reproduced++
	}

	// Every TTD whose task_id differs from its p_task_id is an exec;
	// each must be in one of the two tables, by the first line of it. A
	// TTD is one exec within a TSEM context (vectors.jsonl repeats lines
	// of the trajectories).
	covered := make(map[string]bool)
	for _, tc := range execTransitions {
		covered[tc.task] = true
	}
	for n := range execWithoutFile {
		covered[n] = true
	}
	type domain struct{ context, ttd uint64 }
	seen := make(map[domain]bool)
	var missing []string
	execs := 0
	for _, n := range order {
		e := byName[n]
		if e.Header.TaskID == e.Header.PTaskID {
			continue
		}
		d := domain{e.Header.Context, e.Header.TTD}
		if seen[d] {
			continue
		}
		seen[d] = true
		execs++
		if !covered[n] {
			missing = append(missing, fmt.Sprintf("%s (%s, ttd %d)", n, e.Header.Process, e.Header.TTD))
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("execs of the reference data not accounted for: %s", strings.Join(missing, ", "))
	}
	if execs != len(execTransitions)+len(execWithoutFile) {
		t.Errorf("%d execs in the reference data; the tables list %d", execs, len(execTransitions)+len(execWithoutFile))
	}
	t.Logf("%d execs in the reference data; %d with their executed file in the data, %d reproduced", execs, len(execTransitions), reproduced)
}

// TestTaskIDInputs checks that the task id depends on the parent, the
// file's digest, flags and path type, and on nothing of the credentials.
func TestTaskIDInputs(t *testing.T) {
	byName, _ := referenceEvents(t)
	exec := byName["process_1.json:3"] // file_open /usr/bin/bash, flags 32800
	file := execFileOf(t, exec, "process_1.json:3")
	parent := model.Coefficient(exec.Header.TaskID)
	want := model.TaskID(parent, &file)

	// TaskID is the coefficient of its exec event with zero task_id and COE.
	ev := &events.Event{
		Header:  events.Header{Type: "bprm_committed_creds", PTaskID: parent},
		Payload: &events.FileEvent{File: file},
	}
	if c, err := model.EventCoefficient(ev, nil); err != nil || c != want {
		t.Errorf("coefficient of a zero-COE bprm_committed_creds = %s, %v; want TaskID %s", c, err, want)
	}

	digest, flags, typ := file, file, file
	digest.Digest.Bytes()[0] ^= 1
	flags.Flags = 32768
	typ.Path.Type = ""
	for name, got := range map[string]model.Coefficient{
		"parent":    model.TaskID(c32(1), &file),
		"digest":    model.TaskID(parent, &digest),
		"flags":     model.TaskID(parent, &flags),
		"path type": model.TaskID(parent, &typ),
	} {
		if got == want {
			t.Errorf("TaskID ignores the %s", name)
		}
	}
	if got := model.TaskIDHash(model.SHA256, parent, &file); got != want {
		t.Errorf("TaskIDHash(SHA256) = %s; want %s", got, want)
	}
}
