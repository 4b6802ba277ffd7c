package model

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/vigil-tsem/vigil/events"
	"github.com/vigil-tsem/vigil/internal/lineio"
)

// ErrInvalidModel is matched (errors.Is) by every error that says a model
// file is malformed, as opposed to unreadable. Such errors are
// *lineio.PlaceError values naming the file and line.
var ErrInvalidModel = errors.New("invalid model file")

// MaxModelLine is the longest model file line Load accepts, in bytes: room
// for a trajectory line holding a description of lineio.MaxLine bytes, in
// base64 too.
const MaxModelLine = 2 * lineio.MaxLine

// Trajectory lines are comments to Quixote, whose loader accepts any line
// starting with '#'. See doc.go.
const (
	trajectoryPrefix       = "#trajectory "
	trajectoryBase64Prefix = "#trajectory-base64 "
	// hashPrefix names the model's hash algorithm; written only for a
	// model whose hash is not SHA-256, so SHA-256 model files stay as
	// TSEM and Quixote write them.
	hashPrefix = "#hash "
	// dialectPrefix names the model's coefficient dialect; written only
	// for a dialect other than TSEM's, so a model file without one is the
	// kernel's, as TSEM and Quixote write them.
	dialectPrefix = "#dialect "
)

// modelFileError is an invalid model; err, when set, is the cause (a
// description's *events.ParseError, lineio.ErrLineTooLong).
type modelFileError struct {
	msg string
	err error
}

func (e *modelFileError) Error() string        { return e.msg }
func (e *modelFileError) Is(target error) bool { return target == ErrInvalidModel }
func (e *modelFileError) Unwrap() error        { return e.err }

func invalid(format string, args ...any) error {
	return &modelFileError{msg: fmt.Sprintf(format, args...)}
}

// invalidErr is an invalid model because of err, whose message it takes.
func invalidErr(err error) error { return &modelFileError{msg: err.Error(), err: err} }

// LoadFile reads the model file at path; see Load.
func LoadFile(path string) (*Model, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open model: %w", err)
	}
	defer f.Close()
	return Load(f, path)
}

// LoadFileHash reads the model file at path for a namespace whose hash is
// h; see LoadHash.
func LoadFileHash(path string, h Hash) (*Model, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open model: %w", err)
	}
	defer f.Close()
	return LoadHash(f, path, h)
}

// LoadHash is Load for a namespace whose hash is h: a model file of
// another hash (its "#hash" line or its first coefficient says which) is
// an error naming the file and line that wraps ErrHashMismatch as well as
// ErrInvalidModel.
func LoadHash(r io.Reader, name string, h Hash) (*Model, error) {
	return load(r, name, h, true)
}

// modelFile is what a model file says, before it becomes a Model.
type modelFile struct {
	// hash is the model's algorithm: from a "#hash" line, else the
	// length of the first coefficient; want is the one the caller needs.
	hash                   Hash
	hashAt                 int // line that decided hash, 0 while undecided
	hashNamed              bool
	want                   Hash
	checkWant              bool
	aggregate, base        Coefficient
	aggregateAt, baseAt    int // line numbers, 0 when absent
	states                 []Coefficient
	stateAt                map[Coefficient]int
	descriptions           map[Coefficient][]byte
	descriptionAt          map[Coefficient]int
	pseudonyms             []Coefficient
	dialect                Dialect
	dialectAt              int
	sealed                 bool
	endAt                  int
	lastLine, firstStateAt int
}

// Load reads a model file in the TSEM/Quixote format (aggregate, state,
// pseudonym, base, seal, end; see doc.go) plus Vigil's trajectory lines.
// name is used in errors. A loaded point has count zero; a model file that
// says seal gives a sealed model. The model's hash is the one its "#hash"
// line names, else the one of its first coefficient's length; every
// coefficient must have that length. Its dialect is the one its
// "#dialect" line names, else DialectTSEM.
func Load(r io.Reader, name string) (*Model, error) {
	return load(r, name, SHA256, false)
}

func load(r io.Reader, name string, want Hash, checkWant bool) (*Model, error) {
	f := modelFile{
		want: want, checkWant: checkWant,
		stateAt:       make(map[Coefficient]int),
		descriptions:  make(map[Coefficient][]byte),
		descriptionAt: make(map[Coefficient]int),
	}
	br := bufio.NewReaderSize(r, 64<<10)
	var long []byte
	for n := 1; ; n++ {
		line, rerr := lineio.NextLine(br, &long, MaxModelLine)
		if rerr != nil && !errors.Is(rerr, io.EOF) {
			if errors.Is(rerr, lineio.ErrLineTooLong) {
				return nil, &lineio.PlaceError{Name: name, Number: n, Err: invalidErr(rerr)}
			}
			return nil, fmt.Errorf("read model %s: %w", name, rerr)
		}
		if len(line) == 0 && rerr != nil { // EOF with nothing left
			break
		}
		f.lastLine = n
		if err := f.parseLine(trimLineEnd(line), n); err != nil {
			return nil, &lineio.PlaceError{Name: name, Number: n, Err: err}
		}
		if rerr != nil {
			break
		}
	}
	if f.lastLine == 0 {
		return nil, fmt.Errorf("%s: %w", name, invalid("empty model file"))
	}
	if f.endAt == 0 {
		return nil, &lineio.PlaceError{Name: name, Number: f.lastLine,
			Err: invalid("missing end after the last line (truncated file?)")}
	}
	if f.checkWant && f.hashAt == 0 && f.want != f.hash {
		// Nothing in the file named a hash: an empty SHA-256 model.
		f.hash = f.want
	}
	return f.model(), nil
}

// trimLineEnd drops "\n" or "\r\n". Vigil never writes a raw '\r' inside a
// line (such descriptions are stored in base64), so this is lossless.
func trimLineEnd(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

func (f *modelFile) parseLine(line []byte, n int) error {
	if f.endAt != 0 {
		if len(bytes.TrimSpace(line)) == 0 {
			return nil
		}
		return invalid("%s after end (line %d)", quoteStart(line), f.endAt)
	}
	switch {
	case len(line) == 0:
		return nil
	case bytes.HasPrefix(line, []byte(trajectoryPrefix)):
		return f.parseTrajectory(line[len(trajectoryPrefix):], n, false)
	case bytes.HasPrefix(line, []byte(trajectoryBase64Prefix)):
		return f.parseTrajectory(line[len(trajectoryBase64Prefix):], n, true)
	case bytes.HasPrefix(line, []byte(hashPrefix)):
		if f.hashAt != 0 {
			return invalid("hash line after the first coefficient or hash line (line %d); it must come first", f.hashAt)
		}
		h, err := events.ParseHash(string(line[len(hashPrefix):]))
		if err != nil {
			return invalid("%v", err)
		}
		f.hashNamed = true
		return f.decideHash(h, n)
	case bytes.HasPrefix(line, []byte(dialectPrefix)):
		if f.dialectAt != 0 {
			return invalid("duplicate dialect line (first at line %d)", f.dialectAt)
		}
		d, err := ParseDialect(string(line[len(dialectPrefix):]))
		if err != nil {
			return invalid("%v", err)
		}
		f.dialect, f.dialectAt = d, n
		return nil
	case line[0] == '#':
		return nil // a comment, as for Quixote
	}
	keyword, arg, hasArg := bytes.Cut(line, []byte(" "))
	switch string(keyword) {
	case "aggregate", "base":
		at, v := &f.aggregateAt, &f.aggregate
		if string(keyword) == "base" {
			at, v = &f.baseAt, &f.base
		}
		if *at != 0 {
			return invalid("duplicate %s (first at line %d)", keyword, *at)
		}
		if f.firstStateAt != 0 {
			// Each state line is extended with the aggregate and base in
			// force at that point; Vigil keeps one of each per model.
			return invalid("%s after the first state line (line %d); it must come before", keyword, f.firstStateAt)
		}
		c, err := f.parseArg(keyword, arg, hasArg, n)
		if err != nil {
			return err
		}
		*at, *v = n, c
	case "state":
		c, err := f.parseArg(keyword, arg, hasArg, n)
		if err != nil {
			return err
		}
		if f.firstStateAt == 0 {
			f.firstStateAt = n
		}
		if _, ok := f.stateAt[c]; ok {
			return nil // a repeated point is one point, as in TSEM
		}
		f.stateAt[c] = n
		f.states = append(f.states, c)
	case "pseudonym":
		c, err := f.parseArg(keyword, arg, hasArg, n)
		if err != nil {
			return err
		}
		f.pseudonyms = append(f.pseudonyms, c)
	case "seal", "end":
		if hasArg {
			return invalid("%s takes no argument, got %s", keyword, quoteStart(arg))
		}
		if string(keyword) == "seal" {
			f.sealed = true
		} else {
			f.endAt = n
		}
	case "key", "signature":
		return invalid("signed model files (%s) are not supported", keyword)
	default:
		return invalid("unknown keyword %s (want aggregate, base, state, pseudonym, seal or end)", quoteStart(keyword))
	}
	return nil
}

// parseArg parses the coefficient of line n; the first one decides the
// model's hash unless a "#hash" line did, and the others must have its
// length.
func (f *modelFile) parseArg(keyword, arg []byte, hasArg bool, n int) (Coefficient, error) {
	if !hasArg || len(arg) == 0 {
		return Coefficient{}, invalid("%s: missing coefficient", keyword)
	}
	c, err := ParseCoefficient(string(arg))
	if err != nil {
		return c, invalid("%s: %v", keyword, err)
	}
	h, _ := c.Hash()
	if f.hashAt == 0 {
		if err := f.decideHash(h, n); err != nil {
			return c, err
		}
	}
	if h != f.hash {
		how := "the first coefficient"
		if f.hashNamed {
			how = "the hash line"
		}
		return c, hashMismatch("%s: a %s coefficient (%d hex digits) in a %s model (%s, line %d)", keyword, h, 2*c.Len(), f.hash, how, f.hashAt)
	}
	return c, nil
}

func (f *modelFile) decideHash(h Hash, n int) error {
	f.hash, f.hashAt = h, n
	if f.checkWant && h != f.want {
		return hashMismatch("the model is %s, the namespace's hash is %s", h, f.want)
	}
	return nil
}

// hashMismatchError is an invalid model whose hash is not the one
// expected.
type hashMismatchError struct{ modelFileError }

func (e *hashMismatchError) Is(target error) bool {
	return target == ErrInvalidModel || target == ErrHashMismatch
}

func hashMismatch(format string, args ...any) error {
	return &hashMismatchError{modelFileError{msg: fmt.Sprintf(format, args...) + ": " + ErrHashMismatch.Error()}}
}

func (f *modelFile) parseTrajectory(rest []byte, n int, encoded bool) error {
	const what = "trajectory"
	hexc, desc, ok := bytes.Cut(rest, []byte(" "))
	c, err := f.parseArg([]byte(what), hexc, len(hexc) > 0, n)
	if err != nil {
		return err
	}
	if !ok || len(desc) == 0 {
		return invalid("%s %s: missing description", what, c)
	}
	if _, ok := f.stateAt[c]; !ok {
		return invalid("%s %s: no state line for it before this line", what, c)
	}
	if at, ok := f.descriptionAt[c]; ok {
		return invalid("%s %s: duplicate (first at line %d)", what, c, at)
	}
	// Where the description is, for an error: its parser's offsets count
	// from its first byte.
	where := fmt.Sprintf("description (from byte %d of the line)", len(trajectoryPrefix)+len(hexc)+1)
	if encoded {
		raw := make([]byte, base64.StdEncoding.DecodedLen(len(desc)))
		k, err := base64.StdEncoding.Decode(raw, desc)
		if err != nil {
			return invalid("%s %s: bad base64: %v", what, c, err)
		}
		if k == 0 {
			return invalid("%s %s: missing description", what, c)
		}
		desc = raw[:k]
		where = "description (decoded from base64)"
	} else {
		desc = bytes.Clone(desc)
	}
	// The agent serves these descriptions and builds kernel allow sets
	// from them: one that does not parse is refused here, not later. Its
	// coefficient is not recomputed: a description does not always
	// determine it (a file created in an earlier context hashes by name,
	// and pseudonyms may have joined the model after the point).
	if _, err := events.Parse(desc); err != nil {
		return &modelFileError{msg: fmt.Sprintf("%s %s: %s: %v", what, c, where, err), err: err}
	}
	f.descriptions[c] = desc
	f.descriptionAt[c] = n
	return nil
}

// quoteStart quotes b for an error, shortened when long.
func quoteStart(b []byte) string {
	const max = 40
	if len(b) > max {
		return fmt.Sprintf("%q...", b[:max])
	}
	return fmt.Sprintf("%q", b)
}

func (f *modelFile) model() *Model {
	m := New(Options{Hash: f.hash, Dialect: f.dialect, Aggregate: f.aggregate, Base: f.base})
	for _, c := range f.states {
		m.record(c, f.descriptions[c], false)
	}
	for _, p := range f.pseudonyms {
		m.AddPseudonym(p)
	}
	m.sealed = f.sealed
	m.notified = len(m.all) // loaded points are not news to an observer
	return m
}

// WriteTo writes the model in the model file format: aggregate, base (when
// not zero), pseudonyms, each model point's state line followed by its
// trajectory line when the description is known, seal when sealed, end.
// Forensics and counts are not part of a model file.
func (m *Model) WriteTo(w io.Writer) (int64, error) {
	m.mu.RLock()
	sealed := m.sealed
	pseudonyms := append([]Coefficient(nil), m.pseudoOrder...)
	pts := append([]*entry(nil), m.points...) // entries' head, desc and ref never change
	cs := m.coefficientsOf(pts)
	m.mu.RUnlock()

	cw := &countingWriter{w: w}
	bw := bufio.NewWriterSize(cw, 64<<10)
	var hexbuf [2 * events.MaxDigestSize]byte
	if m.hash != SHA256 {
		bw.WriteString(hashPrefix)
		bw.WriteString(m.hash.String())
		bw.WriteByte('\n')
	}
	if m.dialect != DialectTSEM {
		bw.WriteString(dialectPrefix)
		bw.WriteString(m.dialect.String())
		bw.WriteByte('\n')
	}
	line := func(keyword string, c Coefficient) {
		bw.WriteString(keyword)
		bw.WriteByte(' ')
		bw.Write(hexCoefficient(&hexbuf, c))
		bw.WriteByte('\n')
	}
	line("aggregate", m.aggregate)
	if !m.base.IsZero() {
		line("base", m.base)
	}
	for _, p := range pseudonyms {
		line("pseudonym", p)
	}
	for i, e := range pts {
		c := cs[i]
		line("state", c)
		desc := e.desc
		if e.stored {
			// A model file without a point's trajectory line would seal
			// to a model the kernel cannot enforce: fail instead.
			var err error
			if desc, err = m.description(e, c); err != nil {
				return cw.n, fmt.Errorf("write model: %w", err)
			}
		}
		if len(desc) == 0 {
			continue
		}
		if bytes.ContainsAny(desc, "\r\n") {
			bw.WriteString(trajectoryBase64Prefix)
			bw.Write(hexCoefficient(&hexbuf, c))
			bw.WriteByte(' ')
			enc := base64.NewEncoder(base64.StdEncoding, bw)
			enc.Write(desc)
			enc.Close()
		} else {
			bw.WriteString(trajectoryPrefix)
			bw.Write(hexCoefficient(&hexbuf, c))
			bw.WriteByte(' ')
			bw.Write(desc)
		}
		bw.WriteByte('\n')
	}
	if sealed {
		bw.WriteString("seal\n")
	}
	bw.WriteString("end\n")
	if err := bw.Flush(); err != nil {
		return cw.n, fmt.Errorf("write model: %w", err)
	}
	return cw.n, nil
}

func hexCoefficient(buf *[2 * events.MaxDigestSize]byte, c Coefficient) []byte {
	const digits = "0123456789abcdef"
	b := c.Bytes()
	for i, v := range b {
		buf[2*i] = digits[v>>4]
		buf[2*i+1] = digits[v&0x0f]
	}
	return buf[:2*len(b)]
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// SaveFile writes the model to path atomically: to a temporary file in the
// same directory, synced, then renamed over path. On error path is left as
// it was.
func (m *Model) SaveFile(path string) error {
	return lineio.WriteFileAtomic(path, 0o644, func(w *bufio.Writer) error {
		_, err := m.WriteTo(w)
		return err
	})
}
