// Package failing is a deliberately failing test package for checking the VM harness by
// hand: `go run ./test/vm -- ./test/vm/testdata/failing` must end with vmtest: FAIL
// and exit 1. It lives under testdata so `go test ./...` never runs it.
package failing

import "testing"

func TestPasses(t *testing.T) {}

func TestFails(t *testing.T) {
	t.Fatal("deliberate failure: the harness must report this binary as FAIL")
}
