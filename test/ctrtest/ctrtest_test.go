package ctrtest

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestImagesRun builds both images in each runtime and runs a command in
// each, checking its output.
func TestImagesRun(t *testing.T) {
	for _, rt := range []struct {
		name string
		get  func(testing.TB) *Runtime
	}{{"podman", Podman}, {"docker", Docker}} {
		t.Run(rt.name, func(t *testing.T) {
			r := rt.get(t)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			for _, tc := range []struct {
				image func(testing.TB, *Runtime) string
				cmd   []string
				want  string
			}{
				{Busybox, []string{"cat", "/app/data.txt"}, "data the workload reads\n"},
				{Python, []string{"python3", "-c", "import json, socket, os; print(json.dumps(os.listdir('/app')))"}, "[\"data.txt\"]\n"},
			} {
				img := tc.image(t, r)
				res := r.Run(ctx, RunSpec{Image: img, Cmd: tc.cmd})
				if res.Err != nil || string(res.Stdout) != tc.want || !isID(res.ID) {
					t.Errorf("%s run %s %q: id %q, out %q, err %v\n%s; want %q", r.Name, img, tc.cmd, res.ID, res.Stdout, res.Err, res.Stderr, tc.want)
				}
				if strings.Contains(string(res.Stderr), "Traceback") {
					t.Errorf("python: %s", res.Stderr)
				}
			}
		})
	}
}
