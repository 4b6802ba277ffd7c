package events

import (
	"bytes"
	"unicode/utf8"
)

// The scanner turns one line into a flat tree of nodes (objects and
// strings, the only values TSEM prints). Unescaped strings are slices of
// the line; only strings with escapes are copied. It is lenient in the way
// TSEM output needs: any byte other than '"' and '\\' may appear raw in a
// string, including control characters and bytes that are not UTF-8.

type nodeKind uint8

const (
	kindString nodeKind = iota
	kindObject
)

// node holds no pointers (strings are spans of the line or, when they had
// escapes, of the scanner's scratch buffer) so building the tree costs no
// write barriers.
type node struct {
	key    span
	val    span
	kind   nodeKind
	parent int32
	child  int32 // first child of an object, -1 when empty
	last   int32 // last child, while building
	next   int32 // next sibling, -1 at the end
	off    int32 // offset of the value in the line
}

// maxDepth bounds object nesting; TSEM nests at most five deep.
const maxDepth = 32

// span is a string's bytes: in[start:end], or scratch[start:end] when
// escaped.
type span struct {
	start, end int32
	escaped    bool
}

type scanner struct {
	in      []byte
	pos     int
	nodes   []node
	scratch []byte
	err     *ParseError
}

func (s *scanner) bytes(sp span) []byte {
	if sp.escaped {
		return s.scratch[sp.start:sp.end]
	}
	return s.in[sp.start:sp.end]
}

func (s *scanner) reset(in []byte) {
	s.in = in
	s.pos = 0
	s.nodes = s.nodes[:0]
	s.scratch = s.scratch[:0]
	s.err = nil
}

func (s *scanner) fail(off int, detail string) {
	if s.err == nil {
		s.err = &ParseError{Offset: off, Err: ErrSyntax, Detail: detail}
	}
}

func (s *scanner) skipSpace() {
	for s.pos < len(s.in) {
		switch s.in[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// scan parses the whole line; the root object is node 0.
func (s *scanner) scan() bool {
	s.skipSpace()
	if s.pos >= len(s.in) {
		s.fail(s.pos, "empty line")
		return false
	}
	if s.in[s.pos] != '{' {
		s.fail(s.pos, "want '{'")
		return false
	}
	s.value(-1, span{}, 0)
	if s.err != nil {
		return false
	}
	s.skipSpace()
	if s.pos != len(s.in) {
		s.fail(s.pos, "data after the object")
		return false
	}
	return true
}

func (s *scanner) add(parent int32, key span, kind nodeKind, off int) int32 {
	idx := int32(len(s.nodes))
	s.nodes = append(s.nodes, node{key: key, kind: kind, parent: parent, child: -1, last: -1, next: -1, off: int32(off)})
	if parent >= 0 {
		p := &s.nodes[parent]
		if p.last < 0 {
			p.child = idx
		} else {
			s.nodes[p.last].next = idx
		}
		p.last = idx
	}
	return idx
}

// value parses the value at s.pos (after whitespace) as a child of parent.
func (s *scanner) value(parent int32, key span, depth int) {
	if s.pos >= len(s.in) {
		s.fail(s.pos, "unexpected end of line")
		return
	}
	switch s.in[s.pos] {
	case '"':
		off := s.pos
		v, ok := s.str()
		if !ok {
			return
		}
		n := s.add(parent, key, kindString, off)
		s.nodes[n].val = v
	case '{':
		if depth >= maxDepth {
			s.fail(s.pos, "objects nested too deep")
			return
		}
		n := s.add(parent, key, kindObject, s.pos)
		s.pos++
		s.skipSpace()
		if s.pos < len(s.in) && s.in[s.pos] == '}' {
			s.pos++
			return
		}
		for {
			s.skipSpace()
			if s.pos >= len(s.in) || s.in[s.pos] != '"' {
				s.fail(s.pos, "want a member name")
				return
			}
			k, ok := s.str()
			if !ok {
				return
			}
			s.skipSpace()
			if s.pos >= len(s.in) || s.in[s.pos] != ':' {
				s.fail(s.pos, "want ':'")
				return
			}
			s.pos++
			s.skipSpace()
			s.value(n, k, depth+1)
			if s.err != nil {
				return
			}
			s.skipSpace()
			if s.pos >= len(s.in) {
				s.fail(s.pos, "unterminated object")
				return
			}
			switch s.in[s.pos] {
			case ',':
				s.pos++
			case '}':
				s.pos++
				return
			default:
				s.fail(s.pos, "want ',' or '}'")
				return
			}
		}
	default:
		s.fail(s.pos, "want a string or an object (TSEM prints no other values)")
	}
}

// str reads the string starting at s.pos (a '"').
func (s *scanner) str() (span, bool) {
	start := s.pos + 1
	rest := s.in[start:]
	q := bytes.IndexByte(rest, '"')
	if q < 0 {
		s.fail(s.pos, "unterminated string")
		return span{}, false
	}
	if bytes.IndexByte(rest[:q], '\\') < 0 {
		s.pos = start + q + 1
		return span{start: int32(start), end: int32(start + q)}, true
	}
	first := len(s.scratch)
	out, ok := s.strEscaped(s.scratch, start)
	s.scratch = out
	return span{start: int32(first), end: int32(len(out)), escaped: true}, ok
}

// strEscaped decodes the string from in[start:] onto out.
func (s *scanner) strEscaped(out []byte, start int) ([]byte, bool) {
	i := start
	for i < len(s.in) {
		c := s.in[i]
		switch c {
		case '"':
			s.pos = i + 1
			return out, true
		case '\\':
			if i+1 >= len(s.in) {
				s.fail(i, "unterminated escape")
				return out, false
			}
			e := s.in[i+1]
			i += 2
			switch e {
			case '"', '\\', '/':
				out = append(out, e)
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r, ok := hex4(s.in, i)
				if !ok {
					s.fail(i-2, `bad \u escape`)
					return out, false
				}
				i += 4
				switch {
				case r >= 0xd800 && r < 0xdc00:
					// A high surrogate pairs with a following low one.
					if lo, ok := hex4(s.in, i+2); ok && i+1 < len(s.in) && s.in[i] == '\\' && s.in[i+1] == 'u' && lo >= 0xdc00 && lo < 0xe000 {
						out = utf8.AppendRune(out, 0x10000+(r-0xd800)<<10+(lo-0xdc00))
						i += 6
					} else {
						out = utf8.AppendRune(out, utf8.RuneError)
					}
				case r >= 0xdc80 && r <= 0xdcff:
					// A lone low surrogate U+DC80..U+DCFF stands for
					// the raw byte 0x80..0xFF that is not UTF-8
					// (the encoder writes such bytes this way).
					out = append(out, byte(r-0xdc00))
				default:
					out = utf8.AppendRune(out, r)
				}
			default:
				s.fail(i-2, "bad escape")
				return out, false
			}
		default:
			out = append(out, c)
			i++
		}
	}
	s.fail(start-1, "unterminated string")
	return out, false
}

func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		v := unhex(c)
		if v < 0 {
			return 0, false
		}
		r = r<<4 | rune(v)
	}
	return r, true
}

// hexValue maps a byte to its hex digit value, or -1.
var hexValue = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = int8(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = int8(c-'a') + 10
		t[c-'a'+'A'] = int8(c-'a') + 10
	}
	return t
}()

func unhex(c byte) int { return int(hexValue[c]) }
