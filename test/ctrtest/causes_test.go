package ctrtest

import (
	"reflect"
	"strings"
	"testing"
)

func fileOpen(pathname, uuid, taskID string) string {
	return `{"event": {"context": "3", "number": "9", "process": "cat", "type": "file_open", "ttd": "7", "p_ttd": "6", "task_id": "` + taskID +
		`", "p_task_id": "00", "ts": "1"}, "COE": {"uid": "0"}, "file_open": {"file": {"flags": "32768", "inode": {"uid": "0", "s_uuid": "` + uuid +
		`"}, "path": {"pathname": "` + pathname + `"}, "digest": "d"}}}`
}

func TestCauses(t *testing.T) {
	model := strings.Join([]string{
		fileOpen("/app/data.txt", "aa", "t1"),
		fileOpen("/etc/hostname", "aa", "t1"),
		`{"event": {"process": "py", "type": "socket_bind", "task_id": "t1", "p_task_id": "00"}, "COE": {"uid": "0"}, "socket_bind": {"sock": {"family": "2"}, "addr": {"af_inet": {"port": "36895", "address": "16777343"}}}}`,
	}, "\n")
	forensics := strings.Join([]string{
		fileOpen("/app/data.txt", "bb", "t1"),
		fileOpen("/etc/hostname", "bb", "t1"),
		fileOpen("/app/data.txt", "bb", "t2"),
		fileOpen("/etc/passwd", "aa", "t1"),
		`{"event": {"process": "py", "type": "socket_bind", "task_id": "t1", "p_task_id": "00"}, "COE": {"uid": "0"}, "socket_bind": {"sock": {"family": "2"}, "addr": {"af_inet": {"port": "20480", "address": "16777343"}}}}`,
		`{"event": {"process": "py", "type": "task_kill", "task_id": "t1", "p_task_id": "00"}, "COE": {"uid": "0"}, "task_kill": {"sig": "9"}}`,
	}, "\n")
	got, err := Causes([]byte(model), []byte(forensics))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{
		"file_open /app/data.txt: file_open.file.inode.s_uuid":                                   1,
		"file_open /etc/hostname: file_open.file.inode.s_uuid":                                   1,
		"file_open /app/data.txt: event.task_id,file_open.file.inode.s_uuid":                     1,
		"file_open /etc/passwd: file_open.file.path.pathname":                                    1,
		"socket_bind af_inet.address=16777343 af_inet.port=20480: socket_bind.addr.af_inet.port": 1,
		"task_kill : no event of this type in the model":                                         1,
	}
	gotKeys := map[string]int{}
	for _, c := range got {
		gotKeys[c.Key()] = c.Count
	}
	if !reflect.DeepEqual(gotKeys, want) {
		t.Errorf("Causes =\n%s\nwant keys %v", Summary(got), want)
	}
	if _, err := Causes([]byte("{"), nil); err == nil {
		t.Error("Causes(bad trajectory) = nil error")
	}
}
