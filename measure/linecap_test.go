package measure

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-tsem/vigil/internal/lineio"
)

// TestLogLineCap checks that every reader of the log refuses a line longer
// than MaxLogLine with the file, line and offset, instead of reading it
// whole into memory.
func TestLogLineCap(t *testing.T) {
	first := []byte(`{"recnum":0}` + "\n")
	big := bytes.Repeat([]byte("x"), MaxLogLine+1)
	data := append(append(append([]byte(nil), first...), big...), '\n')
	want := "events.log:2: line too long: more than 33554432 bytes"
	check := func(what string, err error) {
		t.Helper()
		var le *LineError
		if !errors.Is(err, lineio.ErrLineTooLong) || !errors.As(err, &le) || le.Line != 2 || le.Offset != int64(len(first)) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s of a log with a line of MaxLogLine+1 bytes: %v; want %q at offset %d", what, err, want, len(first))
		}
	}
	// fn accepts every line, so that the cap is what stops the walk.
	_, _, err := eachLine(bytes.NewReader(data), "events.log", func([]byte, int, int64) error { return nil })
	check("eachLine", err)
	_, err = Verify(bytes.NewReader(data[len(first):]), "events.log", VerifyOptions{})
	if !errors.Is(err, lineio.ErrLineTooLong) || !strings.Contains(err.Error(), "events.log:1: line too long") {
		t.Errorf("Verify of a log whose first line is too long: %v; want it refused naming events.log:1", err)
	}
	path := filepath.Join(t.TempDir(), "events.log")
	if err := os.WriteFile(path, big, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenLog(path, NewSoftware(DefaultSoftwareIndex), LogOptions{}); !errors.Is(err, lineio.ErrLineTooLong) || !strings.Contains(err.Error(), path+":1:") {
		t.Errorf("OpenLog of a log whose only line is too long: %v; want it refused naming the file", err)
	}
}
