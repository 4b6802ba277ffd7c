package namespace

import (
	"errors"
	"testing"
)

func TestRegistryHost(t *testing.T) {
	r := NewRegistry(RegistryOptions{FirstID: 7})
	a, err := r.Create(Options{Name: "a", Origin: OriginContainer})
	if err != nil || a.ID() != 7 {
		t.Fatalf("first container: id %v, %v; want 7", a, err)
	}
	host, err := r.Create(Options{Name: "host", Origin: OriginHost})
	if err != nil || host.ID() != 0 {
		t.Fatalf("host: %v, %v; want id 0", host, err)
	}
	if _, err := r.Create(Options{Name: "host2", Origin: OriginHost}); !errors.Is(err, ErrExists) {
		t.Errorf("second host namespace: %v; want ErrExists", err)
	}
	b, err := r.Create(Options{Name: "b", Origin: OriginContainer})
	if err != nil || b.ID() != 8 {
		t.Fatalf("container after the host: id %v, %v; want 8 (the host takes no id from the sequence)", b, err)
	}
	if got, ok := r.Get(0); !ok || got != host {
		t.Errorf("Get(0) = %v, %v; want the host", got, ok)
	}
	if l := r.List(); len(l) != 3 || l[0] != host {
		t.Errorf("List() = %v; want the host first of 3", l)
	}
}
