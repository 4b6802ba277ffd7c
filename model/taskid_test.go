package model_test

import (
	"testing"

	"github.com/vigil-tsem/vigil/events"
	"github.com/vigil-tsem/vigil/model"
)

// TestTaskID checks TaskID against the coefficient of the exec event it is
// defined by (a bprm_committed_creds description with a zero task_id),
// whose layout the kernel reference data verifies, and that every input
// matters.
func TestTaskID(t *testing.T) {
	cases := kernelCases(t)
	e, err := events.Parse(cases[2].line) // file_open /usr/bin/bash
	if err != nil {
		t.Fatal(err)
	}
	file := e.Payload.(*events.FileEvent).File
	parent := model.Coefficient(e.Header.TaskID)

	exec := &events.Event{
		Header:  events.Header{Type: "bprm_committed_creds", PTaskID: parent},
		COE:     e.COE,
		Payload: &events.FileEvent{File: file},
	}
	want, err := model.EventCoefficient(exec, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := model.TaskID(parent, e.COE, &file); got != want {
		t.Errorf("TaskID = %s; want %s", got, want)
	}

	other := file
	other.Digest.Bytes()[0] ^= 1
	coe := e.COE
	coe.EUID = 1000
	parent2 := c32(1)
	for name, got := range map[string]model.Coefficient{
		"digest": model.TaskID(parent, e.COE, &other),
		"coe":    model.TaskID(parent, coe, &file),
		"parent": model.TaskID(parent2, e.COE, &file),
	} {
		if got == want {
			t.Errorf("TaskID ignores the %s", name)
		}
	}
}
