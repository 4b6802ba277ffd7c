package measure

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/sha512"
	stdjson "encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/vigil-tsem/vigil/model"
)

func sha384(b []byte) []byte { s := sha512.Sum384(b); return s[:] }

func TestLineRoundTrip(t *testing.T) {
	content := []byte(`{"record":"sealed","time":"2026-01-02T03:04:05Z","namespace":{"id":7,"name":"a \"b\""}}`)
	s256 := sha256.Sum256(content)
	tests := []struct {
		name string
		rec  Record
	}{
		{"software", Record{Recnum: 0, Kind: KindSoftware, Index: 23, Alg: crypto.SHA384, Digest: sha384(content), Content: content}},
		{"tdx", Record{Recnum: 41, Kind: KindTDX, Index: 3, Alg: crypto.SHA384, Digest: sha384(content), Content: content}},
		{"tpm", Record{Recnum: 1 << 40, Kind: KindTPM, Index: 23, Alg: crypto.SHA256, Digest: s256[:], Content: content}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			line := AppendLine(nil, tc.rec)
			if !bytes.HasSuffix(line, []byte("\n")) || bytes.Count(line, []byte("\n")) != 1 {
				t.Fatalf("AppendLine = %q; want one newline-terminated line", line)
			}
			got, err := ParseLine(line[:len(line)-1])
			if err != nil {
				t.Fatalf("ParseLine(%s) = %v", line, err)
			}
			if got.Recnum != tc.rec.Recnum || got.Kind != tc.rec.Kind || got.Index != tc.rec.Index || got.Alg != tc.rec.Alg ||
				!bytes.Equal(got.Digest, tc.rec.Digest) || !bytes.Equal(got.Content, tc.rec.Content) {
				t.Errorf("ParseLine(AppendLine(%+v)) = %+v", tc.rec, got)
			}
			if err := got.Check(); err != nil {
				t.Errorf("Check() = %v", err)
			}
			got.Content = append([]byte(nil), got.Content...)
			got.Content[2] ^= 1
			if err := got.Check(); err == nil {
				t.Errorf("Check() of changed content = nil; want an error")
			}
		})
	}
}

func TestParseLineRejects(t *testing.T) {
	content := `{"record":"sealed","namespace":{"id":1,"name":"x"}}`
	good := string(AppendLine(nil, Record{Recnum: 3, Kind: KindSoftware, Index: 23, Alg: crypto.SHA384,
		Digest: sha384([]byte(content)), Content: []byte(content)}))
	good = strings.TrimSuffix(good, "\n")
	if _, err := ParseLine([]byte(good)); err != nil {
		t.Fatalf("ParseLine(good) = %v", err)
	}
	tests := []struct {
		name, from, to string
	}{
		{"empty", good, ""},
		{"space", `{"recnum":3,`, `{"recnum": 3,`},
		{"leading zero", `"recnum":3`, `"recnum":03`},
		{"negative", `"recnum":3`, `"recnum":-3`},
		{"overflow", `"recnum":3`, `"recnum":99999999999999999999`},
		{"unknown register", `"swreg":`, `"nv_index":`},
		{"index range", `"swreg":23`, `"swreg":256`},
		{"unknown alg", `"sha384"`, `"md5"`},
		{"upper hex", `"digest":"`, `"digest":"A`},
		{"short digest", `"digest":"`, `"digest":"0`},
		{"content type", `"vigil"`, `"systemd"`},
		{"content not object", `"content":{`, `"content":[`},
		{"content not closed", `}}`, `} `},
		{"trailing", good, good + " "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bad := strings.Replace(good, tc.from, tc.to, 1)
			if bad == good {
				t.Fatalf("test case does not change the line")
			}
			if _, err := ParseLine([]byte(bad)); !errors.Is(err, ErrMalformed) {
				t.Errorf("ParseLine(%s) = %v; want ErrMalformed", bad, err)
			}
		})
	}
}

// FuzzParseLine: a line either fails to parse or parses into a record whose
// line is the input again (the layout is canonical).
func FuzzParseLine(f *testing.F) {
	content := []byte(`{"record":"point","namespace":{"id":1,"name":"x"},"coefficient":"00"}`)
	f.Add(bytes.TrimSuffix(AppendLine(nil, Record{Kind: KindSoftware, Index: 23, Alg: crypto.SHA384, Digest: sha384(content), Content: content}), []byte("\n")))
	f.Add([]byte(`{"recnum":0,"pcr":23,"digests":[{"hashAlg":"sha256","digest":"00"}],"content_type":"vigil","content":{}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		rec, err := ParseLine(line)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseLine(%q) = %v; want ErrMalformed", line, err)
			}
			return
		}
		if again := AppendLine(nil, rec); !bytes.Equal(again, append(append([]byte(nil), line...), '\n')) {
			t.Fatalf("AppendLine(ParseLine(%q)) = %q", line, again)
		}
		ParseContent(rec.Content) // must not panic
	})
}

func TestParseContentRejects(t *testing.T) {
	coef := strings.Repeat("ab", 32)
	tests := []struct {
		name, content string
	}{
		{"unbalanced", `{"record":"sealed","namespace":{"id":1,"name":"x"}`},
		{"trailing data", `{"record":"sealed","namespace":{"id":1,"name":"x"}}{}`},
		{"unknown kind", `{"record":"deleted","namespace":{"id":1,"name":"x"}}`},
		{"unknown field", `{"record":"sealed","namespace":{"id":1,"name":"x"},"by":"me"}`},
		{"point without coefficient", `{"record":"point","namespace":{"id":1,"name":"x"}}`},
		{"short coefficient", `{"record":"point","namespace":{"id":1,"name":"x"},"coefficient":"abab"}`},
		{"created without base", `{"record":"created","namespace":{"id":1,"name":"x"},"aggregate":"` + coef + `"}`},
		{"points on a point", `{"record":"point","namespace":{"id":1,"name":"x"},"coefficient":"` + coef + `","points":2}`},
		{"start with a namespace", `{"record":"start","namespace":{"id":1,"name":"x"},"run":1}`},
		{"start without run", `{"record":"start"}`},
		{"run on a sealed record", `{"record":"sealed","namespace":{"id":1,"name":"x"},"run":2}`},
		{"start with short value", `{"record":"start","run":2,"previous":{"records":3,"value":"abab","clean":true}}`},
		{"start with records", `{"record":"start","run":1,"records":3}`},
		{"stop without records", `{"record":"stop","run":1,"value":"` + strings.Repeat("ab", 48) + `"}`},
		{"stop with upper-case value", `{"record":"stop","run":1,"records":4,"value":"` + strings.Repeat("AB", 48) + `"}`},
		{"stop with previous", `{"record":"stop","run":1,"records":4,"value":"` + strings.Repeat("ab", 48) + `","previous":{"records":3,"value":"` + strings.Repeat("ab", 48) + `","clean":true}}`},
		{"unknown field in previous", `{"record":"start","run":2,"previous":{"records":3,"value":"` + strings.Repeat("ab", 48) + `","clean":true,"x":1}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseContent([]byte(tc.content)); !errors.Is(err, ErrMalformed) {
				t.Errorf("ParseContent(%s) = %v; want ErrMalformed", tc.content, err)
			}
		})
	}
	ok := `{"record":"point","time":"2026-11-27T01:00:00Z","namespace":{"id":1,"name":"x"},"coefficient":"` + coef + `","event_base64":"AAE="}`
	c, err := ParseContent([]byte(ok))
	if err != nil {
		t.Fatalf("ParseContent(%s) = %v", ok, err)
	}
	if d, err := c.Description(); err != nil || !bytes.Equal(d, []byte{0, 1}) {
		t.Errorf("Description() = %x, %v; want 0001", d, err)
	}
}

// FuzzParseContent: ParseContent never panics, and accepted content has a
// known kind.
func FuzzParseContent(f *testing.F) {
	coef := strings.Repeat("0", 64)
	f.Add([]byte(`{"record":"created","time":"2026-11-27T01:00:00Z","namespace":{"id":1,"name":"x"},"aggregate":"` + coef + `","base":"` + coef + `"}`))
	f.Add([]byte(`{"record":"point","namespace":{"id":1,"name":"x"},"coefficient":"` + coef + `","forensic":true,"event":{"event":{"type":"file_open"}}}`))
	f.Add([]byte(`{"record":"gap","namespace":{"id":1,"name":"x"},"lost":3,"reason":"ring buffer full"}`))
	coef384 := strings.Repeat("0", 96)
	f.Add([]byte(`{"record":"created","time":"2026-11-27T01:00:00Z","namespace":{"id":2,"name":"y"},"hash":"sha384","aggregate":"` + coef384 + `","base":"` + coef384 + `"}`))
	f.Add([]byte(`{"record":"point","namespace":{"id":2,"name":"y"},"coefficient":"` + coef384 + `"}`))
	f.Add([]byte(`{"record":"gap","time":"2026-11-27T01:00:00Z","namespace":{"id":1,"name":"x"},"points":12,"reason":"log write failed: no space left on device"}`))
	f.Add([]byte(`{"record":"start","time":"2026-11-27T01:00:00Z","run":1}`))
	f.Add([]byte(`{"record":"start","time":"2026-11-27T01:00:00Z","run":2,"previous":{"records":13,"value":"` + coef384 + `","clean":false}}`))
	f.Add([]byte(`{"record":"stop","time":"2026-11-27T01:00:00Z","run":1,"records":12,"value":"` + coef + `"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseContent(b)
		if err != nil {
			return
		}
		switch c.Record {
		case RecordCreated, RecordPoint, RecordSealed, RecordEnforcing, RecordGap, RecordStart, RecordStop:
		default:
			t.Fatalf("ParseContent(%q) accepted kind %q", b, c.Record)
		}
		c.Description()
	})
}

// FuzzContentEvent: whatever description a point carries, the content the
// writer makes is strict JSON (checked by the standard library, not by the
// validator the writer uses) and gives the description back.
func FuzzContentEvent(f *testing.F) {
	f.Add([]byte(`{"event":{"type":"file_open","ttd":"1"},"COE":{"uid":"0"}}`))
	f.Add([]byte(`{"a":"x\"y","b":[1,-2.5e3,null,true]}`))
	f.Add([]byte(`{"a":1}trailing`))
	f.Add([]byte("{\"a\":\"\xff\"}"))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, desc []byte) {
		var w contentWriter
		w.begin(RecordPoint, fixedNow(), 1, "fuzz")
		w.hexCoef("coefficient", model.Coefficient{})
		w.event(desc)
		b := w.end()
		if !stdjson.Valid(b) {
			t.Fatalf("content for %q is not JSON: %s", desc, b)
		}
		c, err := ParseContent(b)
		if err != nil {
			t.Fatalf("ParseContent(%s) = %v", b, err)
		}
		got, err := c.Description()
		if err != nil {
			t.Fatalf("Description of %s = %v", b, err)
		}
		if trimmed := bytes.TrimSpace(desc); len(trimmed) > 0 && !bytes.Equal(got, trimmed) && !bytes.Equal(got, desc) {
			t.Fatalf("description %q came back as %q", desc, got)
		}
	})
}
