package control

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// fakePseudonyms is a fakeBackend that takes pseudonyms while learning.
type fakePseudonyms struct {
	*fakeBackend
	added []string
}

func (f *fakePseudonyms) AddPseudonyms(name string, pathnames []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.get(name)
	if err != nil {
		return err
	}
	if n.info.Mode != ModeLearning {
		return ErrConflict
	}
	f.added = append(f.added, pathnames...)
	n.info.Settings.Pseudonyms = append(n.info.Settings.Pseudonyms, pathnames...)
	n.info.Pseudonyms += len(pathnames)
	return nil
}

func TestAddPseudonyms(t *testing.T) {
	fake := &fakePseudonyms{fakeBackend: newFake(t)}
	c := NewClient(serve(t, &Server{Backend: fake, Authorize: allowAll, Log: quiet}))
	ctx := context.Background()
	info, err := c.AddPseudonyms(ctx, "containerd", []string{"/etc/hostname", "/etc/hosts"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/etc/hostname", "/etc/hosts"}; !slices.Equal(fake.added, want) || info.Pseudonyms != 2 || !slices.Equal(info.Settings.Pseudonyms, want) {
		t.Errorf("added %q, reply %+v; want %q by the prefix's namespace", fake.added, info, want)
	}
	for _, tc := range []struct {
		name, body string
		code       int
		want       string
	}{
		{"relative", `{"pathnames": ["etc/hosts"]}`, http.StatusBadRequest, `pseudonym "etc/hosts": want an absolute path`},
		{"none", `{"pathnames": []}`, http.StatusBadRequest, "field pathnames: no pathname"},
		{"unknown field", `{"paths": ["/x"]}`, http.StatusBadRequest, `unknown field "paths"`},
		{"not a list", `{"pathnames": "/x"}`, http.StatusBadRequest, "field pathnames"},
	} {
		code, body := rawRequest(t, c, http.MethodPost, "/v1/namespaces/containerd-abc/pseudonyms", tc.body)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s: POST pseudonyms = %d %s; want %d containing %q", tc.name, code, body, tc.code, tc.want)
		}
	}
	if _, err := c.AddPseudonyms(ctx, "nope", []string{"/x"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("AddPseudonyms(unknown) = %v; want ErrNotFound", err)
	}
	if _, err := c.Seal(ctx, "containerd-abc"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AddPseudonyms(ctx, "containerd-abc", []string{"/x"}); !errors.Is(err, ErrConflict) {
		t.Errorf("AddPseudonyms(sealed) = %v; want ErrConflict", err)
	}

	// A backend that does not take pseudonyms answers 501.
	plain := NewClient(serve(t, &Server{Backend: newFake(t), Authorize: allowAll, Log: quiet}))
	if _, err := plain.AddPseudonyms(ctx, "containerd-abc", []string{"/x"}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("AddPseudonyms(plain backend) = %v; want ErrUnsupported", err)
	}
}
