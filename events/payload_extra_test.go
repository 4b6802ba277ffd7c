package events

import (
	"reflect"
	"strings"
	"testing"
)

func TestKernelReadFileRoundTrip(t *testing.T) {
	const header = `{"event": {"context": "1", "number": "7", "process": "modprobe", "type": "kernel_read_file", "ttd": "3", "p_ttd": "2", "task_id": "` +
		`0000000000000000000000000000000000000000000000000000000000000001", "p_task_id": "0000000000000000000000000000000000000000000000000000000000000002", "ts": "10"}, ` +
		`"COE": {"uid": "0", "euid": "0", "suid": "0", "gid": "0", "egid": "0", "sgid": "0", "fsuid": "0", "fsgid": "0", "capeff": "0x1ffffffffff"}, `
	withFile := header + `"kernel_read_file": {"file": {"flags": "32768", "inode": {"uid": "0", "gid": "0", "mode": "0100644", "s_magic": "0xef53", "s_id": "vda", "s_uuid": "00000000000000000000000000000000"}, ` +
		`"path": {"dev": {"major": "254", "minor": "0"}, "type": "root", "pathname": "/lib/modules/x.ko"}, "digest": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}, "id": "2", "contents": "1"}}`
	noFile := header + `"kernel_read_file": {"id": "2", "contents": "1"}}`

	e, err := Parse([]byte(withFile))
	if err != nil {
		t.Fatalf("Parse(with file) = %v", err)
	}
	p, ok := e.Payload.(*KernelReadFile)
	if !ok {
		t.Fatalf("Parse(with file).Payload = %T; want *KernelReadFile", e.Payload)
	}
	if p.ID != 2 || p.Contents != 1 || p.File.Path.Pathname != "/lib/modules/x.ko" {
		t.Errorf("payload = %+v; want id 2, contents 1, /lib/modules/x.ko", p)
	}
	out := e.AppendTSEM(nil)
	e2, err := Parse(out)
	if err != nil {
		t.Fatalf("Parse(AppendTSEM) = %v\n%s", err, out)
	}
	if !reflect.DeepEqual(e, e2) {
		t.Errorf("round trip differs:\n%s", out)
	}
	if !strings.Contains(string(out), `"id": "2", "contents": "1"`) {
		t.Errorf("AppendTSEM = %s; want id and contents after the file", out)
	}

	g, err := Parse([]byte(noFile))
	if err != nil {
		t.Fatalf("Parse(no file) = %v", err)
	}
	if _, ok := g.Payload.(*Generic); !ok {
		t.Errorf("Parse(no file).Payload = %T; want *Generic", g.Payload)
	}
}
