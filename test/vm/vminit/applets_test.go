package main

import (
	"slices"
	"testing"

	"github.com/vigil-tsem/vigil/test/vm/vmproto"
)

// The harness makes a symlink for each name in vmproto.Applets; each must exist here.
func TestAppletsMatchProtocol(t *testing.T) {
	var got []string
	for name := range applets {
		got = append(got, name)
	}
	slices.Sort(got)
	want := slices.Sorted(slices.Values(vmproto.Applets))
	if !slices.Equal(got, want) {
		t.Errorf("applets = %v; vmproto.Applets = %v", got, want)
	}
}

func TestInitRefusesOutsideVM(t *testing.T) {
	if got := initMain(); got != 2 {
		t.Errorf("initMain() outside the VM = %d; want 2", got)
	}
}
