package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-tsem/vigil/internal/control"
	"github.com/vigil-tsem/vigil/model"
	"github.com/vigil-tsem/vigil/namespace"
)

// imageFixture is a table keyed by image with an image learner, and
// containers of one image.
type imageFixture struct {
	*fixture
	models, state string
}

const learnImage = "registry.example/team/app:1.2"

func newImageFixture(t *testing.T, instances int, period time.Duration) *imageFixture {
	t.Helper()
	f := &imageFixture{models: t.TempDir(), state: t.TempDir()}
	f.fixture = newFixture(t, false, control.Settings{HashAlgorithm: "sha256"}, f.models)
	f.tab.images = &namespace.ImageResolver{Root: f.state}
	f.tab.keyByImage = true
	f.tab.runs.countWait = time.Millisecond
	f.tab.learner = newImageLearner(instances, period, f.tab, f.tab.log)
	t.Cleanup(f.tab.learner.close)
	return f
}

// start starts container i of the image, with points learned (coefficient
// i*100+k for each k in points).
func (f *imageFixture) start(t *testing.T, i int, points ...int) *nsState {
	t.Helper()
	c := testContainer(byte(i))
	c.Runtime = namespace.RuntimeContainerd
	runtimeState(t, f.state, c, `{"annotations":{"io.kubernetes.cri.image-name":"`+learnImage+`"}}`)
	st, err := f.tab.startContainer(c, "/nonexistent")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range points {
		desc := openOf(fmt.Sprintf("/srv/point-%d", k), byte(k)).AppendTSEM(nil)
		if _, err := st.ns.Model().Add(learnCoefficient(t, k), desc); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

func learnCoefficient(t *testing.T, k int) model.Coefficient {
	t.Helper()
	c, err := model.ParseCoefficient(fmt.Sprintf("%064x", k+1))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (f *imageFixture) file() string {
	return filepath.Join(f.models, namespace.ImageFileName(learnImage)+".model")
}

// waitModel waits for the image's model file and loads it.
func (f *imageFixture) waitModel(t *testing.T) *model.Model {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m, err := model.LoadFile(f.file()); err == nil {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("no model file %s within 10s", f.file())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func pointsOf(m *model.Model) map[model.Coefficient]bool {
	out := map[model.Coefficient]bool{}
	for _, p := range m.Points() {
		out[p.Coefficient] = true
	}
	return out
}

func TestLearnImageFromInstances(t *testing.T) {
	f := newImageFixture(t, 2, 0)
	a := f.start(t, 0, 1, 2, 3)
	b := f.start(t, 1, 3, 4)
	other := f.start(t, 2, 9) // a third instance while learning: not a learner
	f.tab.learner.ended(a)
	f.tab.learner.ended(other)
	time.Sleep(50 * time.Millisecond)
	if _, err := os.Stat(f.file()); err == nil {
		t.Fatalf("model written after one learner ended; want it after two")
	}
	f.tab.learner.ended(b)
	m := f.waitModel(t)
	got := pointsOf(m)
	for _, k := range []int{1, 2, 3, 4} {
		if !got[learnCoefficient(t, k)] {
			t.Errorf("image model lacks point %d of a learner", k)
		}
	}
	if got[learnCoefficient(t, 9)] || len(got) != 4 {
		t.Errorf("image model has %d points (point of the third instance: %v); want the learners' 4", len(got), got[learnCoefficient(t, 9)])
	}
	later := f.start(t, 3)
	info, _ := f.tab.Namespace(later.ns.Name())
	if info.Mode != control.ModeSealed || info.Settings.Model != f.file() {
		t.Errorf("later instance: %s, sealed to %q; want sealed to %s", info.Mode, info.Settings.Model, f.file())
	}
	if a.ns.Mode() != namespace.Learning {
		t.Errorf("a learner is %s after the merge; want it still learning", a.ns.Mode())
	}
}

func TestLearnImageForPeriod(t *testing.T) {
	f := newImageFixture(t, 5, 100*time.Millisecond)
	f.start(t, 0, 1)
	f.start(t, 1, 2)
	m := f.waitModel(t) // two running instances, fewer than 5 ended
	if got := pointsOf(m); len(got) != 2 {
		t.Errorf("image model after the period: %d points; want the 2 learned so far", len(got))
	}
}

func TestLearnImageKeepsOperatorModel(t *testing.T) {
	f := newImageFixture(t, 1, 0)
	a := f.start(t, 0, 1)
	writeModel(t, f.models, namespace.ImageFileName(learnImage)+".model")
	before, err := os.ReadFile(f.file())
	if err != nil {
		t.Fatal(err)
	}
	f.tab.learner.ended(a)
	f.tab.learner.close() // waits for the merge
	after, err := os.ReadFile(f.file())
	if err != nil || string(after) != string(before) {
		t.Errorf("an existing model file was replaced (%v)", err)
	}
}
