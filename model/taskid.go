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
//
// H is the hash of parent's length (SHA-256 for the zero Coefficient); see
// TaskIDHash.
func TaskID(parent Coefficient, coe events.COE, file *events.File) Coefficient {
	h, _ := parent.Hash()
	return TaskIDHash(h, parent, coe, file)
}

// TaskIDHash is TaskID in a namespace whose hash is h: parent and the
// file's digest have h's length (a zero-length parent is zero bytes), and
// so does the task id. The "32 zero bytes" are a zero task id of h's
// length.
func TaskIDHash(h Hash, parent Coefficient, coe events.COE, file *events.File) Coefficient {
	m := mapper{h: h}
	var stack [512]byte
	cell := m.appendFile(stack[:0], file, nil)
	zero := h.Zero()
	return m.coefficient(execEvent, &parent, &zero, &coe, cell)
}
