package model

import "github.com/vigil-tsem/vigil/events"

// execEvent is the event name TSEM derives task identities from.
const execEvent = "bprm_committed_creds"

// TaskID returns the task identity a task gets when it executes file with
// the credentials coe, parent being the task_id it had before the exec
// (which becomes its p_task_id):
//
//	H("bprm_committed_creds" ‖ parent ‖ 32 zero bytes ‖ H(COE) ‖ H(file cell))
//
// the file cell in the layout of the kernel dialect. A forked task keeps its
// parent's task id; only an exec changes it.
func TaskID(parent Coefficient, coe events.COE, file *events.File) Coefficient {
	var stack [512]byte
	cell := appendFile(stack[:0], file, nil)
	p := [32]byte(parent)
	return coefficient(execEvent, &p, &zero32, &coe, cell)
}
