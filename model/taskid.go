package model

import "github.com/vigil-tsem/vigil/events"

// execEvent is the event name TSEM derives task identities from.
const execEvent = "bprm_committed_creds"

// TaskID returns the task identity a task gets when it executes file,
// parent being the task_id it had before the exec (which becomes its
// p_task_id):
//
//	H("bprm_committed_creds" ‖ parent ‖ zero task id ‖ H(40 zero bytes) ‖ H(file cell))
//
// that is the coefficient of a bprm_committed_creds event whose task_id
// and COE are all zeros. The TSEM kernel computes the id from an event it
// allocates zeroed and leaves its exec branch before filling the COE, so
// the credentials never enter a task id; the kernel's reference data
// (testdata/tsem) reproduces only so. file is the executed file's ordinary
// file cell in the kernel dialect, flags included (an executed file is
// opened O_LARGEFILE|__FMODE_EXEC, 32800, see events.ExecFlags); for a
// "#!" script it is the interpreter, the file the kernel holds when the
// new credentials are committed. A forked task keeps its parent's task id;
// only an exec changes it.
//
// H is the hash of parent's length (SHA-256 for the zero Coefficient); see
// TaskIDHash.
func TaskID(parent Coefficient, file *events.File) Coefficient {
	h, _ := parent.Hash()
	return TaskIDHash(h, parent, file)
}

// TaskIDHash is TaskID in a namespace whose hash is h: parent and the
// file's digest have h's length (a zero-length parent is zero bytes), and
// so does the task id. The zero task id and the 40 zero bytes of the COE
// do not depend on h. TaskIDHash is the TSEM dialect; Mapping.TaskID computes the task id in
// another one.
func TaskIDHash(h Hash, parent Coefficient, file *events.File) Coefficient {
	return Mapping{Hash: h}.TaskID(parent, file)
}
