package events

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// ecsFields reads the ECS field names of testdata/ecs-<ECSVersion>-fields.txt:
// the list is per version, so declaring another version needs its own list.
func ecsFields(t *testing.T) map[string]bool {
	t.Helper()
	name := filepath.Join("testdata", "ecs-"+ECSVersion+"-fields.txt")
	f, err := os.Open(name)
	if err != nil {
		t.Fatalf("%v (ECSVersion %s needs a list of that version's fields)", err, ECSVersion)
	}
	defer f.Close()
	fields := make(map[string]bool)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			fields[l] = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return fields
}

// ecsLeaves returns the dotted path of every leaf of an ECS document: a
// value that is not an object (an array is one leaf, as ECS fields are
// keyword arrays), or an empty object.
func ecsLeaves(t *testing.T, doc []byte) []string {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("ECS output is not JSON: %v\n%s", err, doc)
	}
	var out []string
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		obj, ok := v.(map[string]any)
		if !ok || len(obj) == 0 {
			out = append(out, prefix)
			return
		}
		for k, child := range obj {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			walk(p, child)
		}
	}
	walk("", m)
	sort.Strings(out)
	return out
}

// TestECSFieldsExist encodes a broad set of event descriptions (the TSEM
// reference lines, one of each typed layout the reference lacks, generic
// events, IPv4, IPv6 and unix sockets, SHA-384 and SHA-512 file digests)
// as ECS and checks that every leaf outside vigil.* is a field of the ECS
// version the output declares. group.effective.id, once written for the
// effective gid, is not.
func TestECSFieldsExist(t *testing.T) {
	fields := ecsFields(t)
	type input struct {
		name string
		line []byte
	}
	var inputs []input
	for _, l := range referenceLines(t) {
		inputs = append(inputs, input{l.name, l.line})
	}
	sock := `{"family": "2", "type": "1", "protocol": "6", "owner": "` + testTask + `"}`
	sock6 := `{"family": "10", "type": "2", "protocol": "17", "owner": "` + testTask + `"}`
	unix := `{"family": "1", "type": "1", "protocol": "0", "owner": "` + testTask + `"}`
	wide := func(n int) string {
		return strings.Replace(fileObject, `"digest": "`+testTask+`"`, `"digest": "`+strings.Repeat("ab", n)+`"`, 1)
	}
	cases := append(typedLayoutCases(), genericCases()...)
	cases = append(cases,
		payloadCase{"socket_connect", `"sock": ` + sock + `, "addr": {"af_inet": {"port": "20480", "address": "16777343"}}`},
		payloadCase{"socket_connect", `"sock": ` + sock6 + `, "addr": {"af_inet6": {"port": "13568", "flow": "0", "scope": "0", "address": "20010db8000000000000000000000001"}}`},
		payloadCase{"socket_connect", `"sock": ` + unix + `, "addr": {"af_unix": {"address": "/run/x.sock"}}`},
		payloadCase{"socket_sendmsg", `"sock": ` + sock6 + `, "addr": {"af_inet6": {"port": "13568", "flow": "0", "scope": "0", "address": "20010db8000000000000000000000001"}}`},
		payloadCase{"socket_recvmsg", `"sock": ` + sock + `, "addr": {"af_inet": {"port": "13568", "address": "134744072"}}`},
		payloadCase{"socket_create", `"family": "10", "type": "1", "protocol": "0", "kern": "0"`},
		payloadCase{"file_open", wide(48)},
		payloadCase{"file_open", wide(64)},
	)
	for _, c := range cases {
		inputs = append(inputs, input{c.typ, []byte(line(c.typ, c.payload))})
	}

	seen := make(map[string]bool)
	boot := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	for i, in := range inputs {
		e, err := Parse(in.line)
		if err != nil {
			t.Fatalf("%s: %v", in.name, err)
		}
		var cb [32]byte
		cb[0], cb[31] = byte(i), 0xff
		for _, leaf := range ecsLeaves(t, ECS{Boot: boot}.Encode(nil, e, Digest32(cb))) {
			seen[leaf] = true
			if !fields[leaf] && !strings.HasPrefix(leaf, "vigil.") {
				t.Errorf("%s: ECS output has %s, which is not a field of ECS %s (custom fields go under vigil.*)", in.name, leaf, ECSVersion)
			}
		}
	}
	// The inputs must reach every part of the mapping, or the check above
	// proves little.
	for _, want := range []string{"user.id", "user.effective.id", "group.id", "user.effective.group.id",
		"process.thread.capabilities.effective", "file.hash.sha256", "file.hash.sha384", "file.hash.sha512",
		"file.mode", "file.type", "file.device", "source.ip", "source.port", "destination.ip", "destination.port",
		"network.transport", "network.type", "event.hash"} {
		if !seen[want] {
			t.Errorf("no input produced %s", want)
		}
	}
}
