package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/vigil-tsem/vigil/model"
	"github.com/vigil-tsem/vigil/namespace"
)

// Learning a model per image (model_key image, with learn_instances and/or
// learn_period): while <model_dir>/<image>.model does not exist, the
// instances of an image learn, each in its own namespace as always. The
// first learn_instances of them (all those started within learn_period of
// the first, when only a period is set) are the image's learners. The
// image's model is written when learn_instances learners have ended, or
// learn_period after the first started, whichever comes first: the
// learners' models (what each learned so far) are merged (model.Merge)
// into <model_dir>/<image>.model, and every later instance of the image
// starts sealed to it. Before merging, the reader is made to deliver every
// record in the ring buffer (bpf.Capture.FlushRepeats), so an ended
// learner's last events are in its model. The learners themselves go on
// as they were (still learning); an instance started while the image was
// learning but not among its learners learns on its own, and is not
// merged. A model file that appears meanwhile (an operator's) is never
// overwritten. `vigil ns model NS` still gives each instance's own model.

// imageLearner keeps the images being learned. It is safe for concurrent
// use.
type imageLearner struct {
	instances int           // learners per image; 0: as many as start within period
	period    time.Duration // 0: until instances learners ended
	tab       *table
	log       *slog.Logger

	mu     sync.Mutex
	images map[string]*imageLearning // by image
	closed bool
	wg     sync.WaitGroup // merges running
}

// imageLearning is one image being learned.
type imageLearning struct {
	learners []*nsState
	ended    map[uint64]bool // learners' namespace ids
	timer    *time.Timer
	done     bool
}

func newImageLearner(instances int, period time.Duration, tab *table, log *slog.Logger) *imageLearner {
	return &imageLearner{instances: instances, period: period, tab: tab, log: log, images: map[string]*imageLearning{}}
}

// join makes st, an instance of image that starts learning because the
// image has no model yet, one of the image's learners while it needs more.
func (l *imageLearner) join(image string, st *nsState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	il := l.images[image]
	if il == nil {
		il = &imageLearning{ended: map[uint64]bool{}}
		l.images[image] = il
		if l.period > 0 {
			il.timer = time.AfterFunc(l.period, func() { l.finish(image, "learn_period") })
		}
	}
	if il.done || l.instances > 0 && len(il.learners) >= l.instances {
		return
	}
	il.learners = append(il.learners, st)
	l.log.Info("learning the image's model", "image", image, "namespace", st.ns.Name(), "learner", len(il.learners))
}

// ended notes that the container of st stopped; the image's model is
// written once learn_instances learners have.
func (l *imageLearner) ended(st *nsState) {
	if st.container == nil || st.container.Image == "" {
		return
	}
	image := st.container.Image
	l.mu.Lock()
	il := l.images[image]
	if il == nil || il.done || l.closed {
		l.mu.Unlock()
		return
	}
	for _, m := range il.learners {
		if m == st {
			il.ended[st.ns.ID()] = true
		}
	}
	enough := l.instances > 0 && len(il.ended) >= l.instances
	l.mu.Unlock()
	if enough {
		go l.finish(image, "learn_instances")
	}
}

// finish merges the learners' models of image into its model file, once.
func (l *imageLearner) finish(image, why string) {
	l.mu.Lock()
	il := l.images[image]
	if il == nil || il.done || l.closed {
		l.mu.Unlock()
		return
	}
	il.done = true
	if il.timer != nil {
		il.timer.Stop()
	}
	learners := append([]*nsState(nil), il.learners...)
	l.wg.Add(1)
	l.mu.Unlock()
	defer l.wg.Done()
	if len(learners) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l.tab.catchUp(ctx)
	path, points, err := l.tab.writeImageModel(image, learners)
	switch {
	case errors.Is(err, fs.ErrExist):
		l.log.Info("the image has a model already: not replaced", "image", image, "model", path)
	case err != nil:
		l.log.Error("write the image's model", "image", image, "model", path, "err", err)
	default:
		l.log.Info("image model learned: later instances start sealed to it", "image", image, "model", path,
			"learners", len(learners), "points", points, "after", why)
	}
}

// close stops the timers and waits for merges under way.
func (l *imageLearner) close() {
	l.mu.Lock()
	l.closed = true
	for _, il := range l.images {
		if il.timer != nil {
			il.timer.Stop()
		}
	}
	l.mu.Unlock()
	l.wg.Wait()
}

// catchUp returns once the reader has delivered every record in the ring
// buffer now (and the kernel's repeat counts), or a repeat window later
// where the capture cannot say.
func (t *table) catchUp(ctx context.Context) {
	if f, ok := t.kern.(repeatFlusher); ok {
		if err := f.FlushRepeats(ctx); err == nil {
			return
		}
	}
	select {
	case <-time.After(t.countWait()):
	case <-ctx.Done():
	}
}

// writeImageModel merges the models of learners into the model file of
// image and returns its path and number of points. It fails with an error
// wrapping fs.ErrExist when the file exists.
func (t *table) writeImageModel(image string, learners []*nsState) (string, int, error) {
	path := filepath.Join(t.modelDir, namespace.ImageFileName(image)+".model")
	if _, err := os.Stat(path); err == nil {
		return path, 0, fmt.Errorf("model of image %s: %w", image, fs.ErrExist)
	}
	models := make([]model.Named, len(learners))
	for i, st := range learners {
		models[i] = model.Named{Name: "namespace " + st.ns.Name(), Model: st.ns.Model()}
	}
	u, err := model.Merge(models...)
	if err != nil {
		return path, 0, fmt.Errorf("model of image %s: %w", image, err)
	}
	if err := os.MkdirAll(t.modelDir, 0o755); err != nil {
		return path, 0, fmt.Errorf("model of image %s: %w", image, err)
	}
	if err := u.SaveFile(path); err != nil {
		return path, 0, fmt.Errorf("model of image %s: %w", image, err)
	}
	return path, u.Len(), nil
}
