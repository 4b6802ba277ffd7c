package events

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// ecsAllowed are the ECS 8.x allowed values of the categorisation fields,
// and for each category the event.type values ECS lists as expected with
// it (https://www.elastic.co/guide/en/ecs/current/ecs-allowed-values-event-category.html).
var ecsAllowed = map[string][]string{
	"configuration": {"access", "change", "creation", "deletion", "info"},
	"driver":        {"change", "end", "info", "start"},
	"file":          {"access", "change", "creation", "deletion", "info"},
	"host":          {"access", "change", "end", "info", "start"},
	"iam":           {"admin", "change", "creation", "deletion", "group", "info", "user"},
	"network":       {"access", "allowed", "connection", "denied", "end", "info", "protocol", "start"},
	"process":       {"access", "change", "end", "info", "start"},
}

func TestECSCategories(t *testing.T) {
	for _, name := range Names() {
		c := ecsCategory(name)
		if len(c.category) == 0 || len(c.types) == 0 {
			t.Errorf("ecsCategory(%s) is empty", name)
		}
		for _, cat := range c.category {
			types, ok := ecsAllowed[cat]
			if !ok {
				t.Errorf("ecsCategory(%s): category %q not allowed", name, cat)
			}
			for _, ty := range c.types {
				if !slices.Contains(types, ty) {
					t.Errorf("ecsCategory(%s): type %q not expected with category %q", name, ty, cat)
				}
			}
		}
	}
}

// TestECSGolden encodes every reference event as ECS and compares with
// testdata/ecs.golden (go test -update rewrites it). Each document must be
// valid JSON with the fields issue 2 lists.
func TestECSGolden(t *testing.T) {
	var out bytes.Buffer
	boot := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	for i, tc := range referenceLines(t) {
		e, err := Parse(tc.line)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var cb [32]byte
		cb[0], cb[31] = byte(i), 0xff // a marker coefficient: encoding only
		doc := ECS{Boot: boot}.Encode(nil, e, Digest32(cb))
		var m map[string]any
		if err := json.Unmarshal(doc, &m); err != nil {
			t.Fatalf("%s: ECS output is not JSON: %v\n%s", tc.name, err, doc)
		}
		for _, f := range []string{"@timestamp", "event.kind", "event.category", "event.type", "event.action",
			"event.outcome", "event.hash", "event.sequence", "process.name", "process.entity_id",
			"process.parent.entity_id", "process.thread.capabilities.effective", "user.id",
			"user.effective.id", "group.id", "user.effective.group.id", "vigil." + e.Header.Type} {
			if lookup(m, f) == nil {
				t.Errorf("%s: ECS output lacks %s", tc.name, f)
			}
		}
		if _, file := e.Payload.(*FileEvent); file && lookup(m, "file.hash.sha256") == nil {
			t.Errorf("%s: ECS output lacks file.hash.sha256", tc.name)
		}
		out.Write(doc)
		out.WriteByte('\n')
	}
	golden := filepath.Join("testdata", "ecs.golden")
	if *update {
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Errorf("ECS output differs from %s (go test -update rewrites it after review)", golden)
	}
}

func lookup(m map[string]any, dotted string) any {
	var v any = m
	for len(dotted) > 0 {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		// Keys may contain dots themselves (@timestamp has none, but be exact).
		k, rest, _ := cut(dotted)
		v, dotted = mm[k], rest
	}
	return v
}

func cut(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func TestECSNetwork(t *testing.T) {
	sock := `{"family": "2", "type": "1", "protocol": "6", "owner": "` + testTask + `"}`
	tests := []struct {
		typ, payload string
		side, ip     string
		port         float64
	}{
		{"socket_connect", `"sock": ` + sock + `, "addr": {"af_inet": {"port": "20480", "address": "16777343"}}`, "destination", "127.0.0.1", 80},
		{"socket_bind", `"sock": ` + sock + `, "addr": {"af_inet": {"port": "47873", "address": "0"}}`, "source", "0.0.0.0", 443},
		{"socket_connect", `"sock": {"family": "10", "type": "2", "protocol": "17", "owner": "` + testTask + `"}, "addr": {"af_inet6": {"port": "13568", "flow": "0", "scope": "0", "address": "20010db8000000000000000000000001"}}`, "destination", "2001:db8::1", 53},
	}
	for _, tc := range tests {
		e, err := Parse([]byte(line(tc.typ, tc.payload)))
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(AppendECS(nil, e, Digest{}, time.Time{}), &m); err != nil {
			t.Fatal(err)
		}
		if got := lookup(m, tc.side+".ip"); got != tc.ip {
			t.Errorf("%s %s.ip = %v; want %s", tc.typ, tc.side, got, tc.ip)
		}
		if got := lookup(m, tc.side+".port"); got != tc.port {
			t.Errorf("%s %s.port = %v; want %v", tc.typ, tc.side, got, tc.port)
		}
		if lookup(m, "network.transport") == nil || lookup(m, "network.type") == nil {
			t.Errorf("%s: no network.transport/type", tc.typ)
		}
		if lookup(m, "event.hash") != nil {
			t.Errorf("%s: event.hash written for a zero coefficient", tc.typ)
		}
	}
	if got := NetIPv4(16777343); got != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("NetIPv4(16777343) = %v; want 127.0.0.1", got)
	}
	if got := NetPort(20480); got != 80 {
		t.Errorf("NetPort(20480) = %d; want 80", got)
	}
}

func TestCapabilityNames(t *testing.T) {
	e, err := Parse([]byte(line("capable", `"cap": "21", "opts": "0"`)))
	if err != nil {
		t.Fatal(err)
	}
	e.COE.CapEff = 1<<21 | 1<<0 | 1<<40 | 1<<45
	var m map[string]any
	if err := json.Unmarshal(AppendECS(nil, e, Digest{}, time.Time{}), &m); err != nil {
		t.Fatal(err)
	}
	got := lookup(m, "process.thread.capabilities.effective")
	want := []any{"CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_CHECKPOINT_RESTORE", "CAP_45"}
	if !slices.Equal(got.([]any), want) {
		t.Errorf("capabilities = %v; want %v", got, want)
	}
}
