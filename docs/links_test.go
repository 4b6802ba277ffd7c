package docs

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

// TestLinks checks the relative links of README.md and of every page here.
func TestLinks(t *testing.T) {
	pages, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	pages = append([]string{filepath.Join("..", "README.md")}, pages...)
	for _, page := range pages {
		problems, err := checkLinks(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Error(p)
		}
	}
}

// A link is the target of a Markdown inline link and the line it is on.
type link struct {
	line   int
	target string
}

var (
	inlineLink = regexp.MustCompile(`!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	codeSpan   = regexp.MustCompile("`[^`]*`")
	heading    = regexp.MustCompile(`^#{1,6}\s+(.*?)\s*#*\s*$`)
)

// scan calls fn with every line of md outside fenced code blocks, with code
// spans removed.
func scan(md []byte, fn func(n int, line string)) {
	s := bufio.NewScanner(bytes.NewReader(md))
	s.Buffer(nil, 1<<20)
	fenced := false
	for n := 1; s.Scan(); n++ {
		line := s.Text()
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		if !fenced {
			fn(n, line)
		}
	}
}

// links returns the inline links of md, outside code.
func links(md []byte) []link {
	var ls []link
	scan(md, func(n int, line string) {
		line = codeSpan.ReplaceAllString(line, "")
		for _, m := range inlineLink.FindAllStringSubmatch(line, -1) {
			ls = append(ls, link{line: n, target: m[1]})
		}
	})
	return ls
}

// anchors returns the fragments the headings of md get on GitHub.
func anchors(md []byte) map[string]bool {
	seen := make(map[string]int)
	as := make(map[string]bool)
	scan(md, func(_ int, line string) {
		m := heading.FindStringSubmatch(line)
		if m == nil {
			return
		}
		a := slug(m[1])
		if k := seen[a]; k > 0 {
			as[fmt.Sprintf("%s-%d", a, k)] = true
		} else {
			as[a] = true
		}
		seen[a]++
	})
	return as
}

// slug is GitHub's anchor of a heading: its text lowercased, without
// punctuation but hyphens and underscores, spaces turned into hyphens.
func slug(h string) string {
	h = inlineLink.ReplaceAllStringFunc(h, func(l string) string {
		return l[strings.Index(l, "[")+1 : strings.Index(l, "]")]
	})
	var b strings.Builder
	for _, r := range strings.ToLower(h) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.Is(unicode.Mn, r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// checkLinks returns a message for each relative link of page that does not
// lead to an existing file, or to a heading of it.
func checkLinks(page string) ([]string, error) {
	md, err := os.ReadFile(page)
	if err != nil {
		return nil, err
	}
	var problems []string
	for _, l := range links(md) {
		if strings.Contains(l.target, "://") || strings.HasPrefix(l.target, "mailto:") {
			continue
		}
		path, frag, _ := strings.Cut(l.target, "#")
		target := page
		if path != "" {
			target = filepath.Join(filepath.Dir(page), filepath.FromSlash(path))
		}
		where := fmt.Sprintf("%s:%d: link %s", page, l.line, l.target)
		if _, err := os.Stat(target); err != nil {
			problems = append(problems, fmt.Sprintf("%s: no file %s", where, target))
			continue
		}
		if frag == "" {
			continue
		}
		if !strings.HasSuffix(target, ".md") {
			problems = append(problems, fmt.Sprintf("%s: a fragment of %s, which is no Markdown page", where, target))
			continue
		}
		tmd, err := os.ReadFile(target)
		if err != nil {
			return nil, err
		}
		if !anchors(tmd)[frag] {
			problems = append(problems, fmt.Sprintf("%s: no heading #%s in %s", where, frag, target))
		}
	}
	return problems, nil
}

func TestSlug(t *testing.T) {
	for _, tc := range []struct{ heading, want string }{
		{"Quick start (fresh Debian machine)", "quick-start-fresh-debian-machine"},
		{"Modeling a command: `vigil run`", "modeling-a-command-vigil-run"},
		{"Where Vigil's coefficient differs from the TSEM kernel's", "where-vigils-coefficient-differs-from-the-tsem-kernels"},
		{"Limits of the control socket and /metrics", "limits-of-the-control-socket-and-metrics"},
		{"Start-up of a `vigil_run`", "start-up-of-a-vigil_run"},
		{"See [the agent](agent.md)", "see-the-agent"},
	} {
		if got := slug(tc.heading); got != tc.want {
			t.Errorf("slug(%q) = %q; want %q", tc.heading, got, tc.want)
		}
	}
}

// TestCheckLinksFindsBrokenOnes runs the check on a small tree of pages
// with a link of each kind, good and bad.
func TestCheckLinksFindsBrokenOnes(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("sub/other.md", "# Other\n\n## A part\n\n## A part\n")
	write("data.txt", "x\n")
	write("page.md", strings.Join([]string{
		"# Page", // 1
		"[ok](sub/other.md) [ok](sub/other.md#a-part) [ok](sub/other.md#a-part-1)", // 2
		"[ok](#page) [ok](data.txt) [web](https://example.com/x#y) [ok](sub/)",     // 3
		"[missing](nothere.md)",                 // 4
		"[bad anchor](sub/other.md#no-part)",    // 5
		"[self](#nope) ![img](missing.png)",     // 6
		"[fragment of a text file](data.txt#x)", // 7
		"`[in code](nothere.md)`",               // 8
		"```",                                   // 9
		"[in a block](nothere.md)",              // 10
		"```",                                   // 11
	}, "\n"))
	got, err := checkLinks(filepath.Join(dir, "page.md"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{":4: link nothere.md: no file", ":5: link sub/other.md#no-part: no heading",
		":6: link #nope: no heading", ":6: link missing.png: no file", ":7: link data.txt#x: a fragment"}
	if len(got) != len(want) {
		t.Fatalf("checkLinks = %d problems:\n%s\nwant %d", len(got), strings.Join(got, "\n"), len(want))
	}
	for i, w := range want {
		if !strings.Contains(got[i], w) {
			t.Errorf("problem %d = %q; want it to contain %q", i, got[i], w)
		}
	}
}
