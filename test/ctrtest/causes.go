package ctrtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// Cause is one group of forensics events: events of one type on one
// object (a pathname, a socket address) that differ from the closest
// event of the model in the same fields.
type Cause struct {
	Type    string
	Process string
	Object  string // pathname, or the payload's address; "" when neither
	// Differs lists the fields (dotted paths, e.g.
	// "file_open.file.inode.s_uuid") in which the event differs from the
	// closest model event of its type; nil when the model has no event
	// of the type.
	Differs []string
	Count   int
}

// Key is the cause's grouping key: type, object and differing fields.
func (c Cause) Key() string {
	d := "no event of this type in the model"
	if c.Differs != nil {
		d = strings.Join(c.Differs, ",")
	}
	return c.Type + " " + c.Object + ": " + d
}

// headerOnly are description fields that are not hashed into a
// coefficient and differ from run to run by nature.
var headerOnly = map[string]bool{
	"event.pid": true, "event.context": true, "event.number": true, "event.ts": true,
	"event.ttd": true, "event.p_ttd": true,
}

type flatEvent struct {
	typ, process, object string
	fields               map[string]string
}

func flatten(prefix string, v any, out map[string]string) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			flatten(p, e, out)
		}
	default:
		if !headerOnly[prefix] {
			out[prefix] = fmt.Sprint(x)
		}
	}
}

func parseFlat(line []byte) (flatEvent, error) {
	var doc map[string]any
	if err := json.Unmarshal(line, &doc); err != nil {
		return flatEvent{}, fmt.Errorf("parse event description: %w", err)
	}
	f := flatEvent{fields: map[string]string{}}
	flatten("", doc, f.fields)
	f.typ = f.fields["event.type"]
	f.process = f.fields["event.process"]
	for k, v := range f.fields {
		switch {
		case strings.HasSuffix(k, ".path.pathname"):
			f.object = v
		case f.object == "" && strings.Contains(k, ".addr."):
			f.object = addrObject(f.fields, f.typ)
		}
	}
	return f, nil
}

// addrObject names a socket address by its members.
func addrObject(fields map[string]string, typ string) string {
	var parts []string
	for k, v := range fields {
		if strings.HasPrefix(k, typ+".addr.") {
			parts = append(parts, strings.TrimPrefix(k, typ+".addr.")+"="+v)
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// differs lists the fields in which a and b differ, sorted.
func differs(a, b flatEvent) []string {
	var out []string
	for k, v := range a.fields {
		if w, ok := b.fields[k]; !ok || w != v {
			out = append(out, k)
		}
	}
	for k := range b.fields {
		if _, ok := a.fields[k]; !ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// lines splits JSON lines, skipping empty ones.
func lines(b []byte) [][]byte {
	var out [][]byte
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if l := bytes.TrimSpace(sc.Bytes()); len(l) > 0 {
			out = append(out, append([]byte(nil), l...))
		}
	}
	return out
}

// Causes groups forensics (TSEM description lines, one per forensics
// point) by what differs from the model's trajectory (the model's
// description lines): each forensics event is compared with the model
// events of its type, preferring those on the same object, and grouped
// with the others of the same type, object and differing fields. Causes
// are ordered by count, then key.
func Causes(trajectory, forensics []byte) ([]Cause, error) {
	var model []flatEvent
	for _, l := range lines(trajectory) {
		f, err := parseFlat(l)
		if err != nil {
			return nil, fmt.Errorf("trajectory: %w", err)
		}
		model = append(model, f)
	}
	groups := map[string]*Cause{}
	for _, l := range lines(forensics) {
		f, err := parseFlat(l)
		if err != nil {
			return nil, fmt.Errorf("forensics: %w", err)
		}
		var best []string
		found, sameObject := false, false
		for _, m := range model {
			if m.typ != f.typ {
				continue
			}
			d := differs(f, m)
			same := m.object == f.object
			if !found || same && !sameObject || same == sameObject && len(d) < len(best) {
				best, found, sameObject = d, true, same
			}
		}
		c := Cause{Type: f.typ, Process: f.process, Object: f.object, Differs: best, Count: 1}
		if found && best == nil {
			c.Differs = []string{}
		}
		if g, ok := groups[c.Key()]; ok {
			g.Count++
			continue
		}
		groups[c.Key()] = &c
	}
	out := make([]Cause, 0, len(groups))
	for _, g := range groups {
		out = append(out, *g)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Key() < out[j].Key()
	})
	return out, nil
}

// Summary prints causes one per line: count, then key.
func Summary(causes []Cause) string {
	var b strings.Builder
	for _, c := range causes {
		fmt.Fprintf(&b, "%5d  %s\n", c.Count, c.Key())
	}
	return b.String()
}
