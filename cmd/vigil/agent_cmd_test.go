package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-tsem/vigil/internal/config"
)

// syncBuffer is a bytes.Buffer safe for a logger on another goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestOnHangup(t *testing.T) {
	running := config.Default()
	edited := running
	edited.Hash, edited.MetricsAddr = "sha512", "127.0.0.1:1"
	for _, tc := range []struct {
		name   string
		reload func() (config.Config, error)
		want   string
	}{
		{"unchanged", func() (config.Config, error) { return running, nil }, `level=INFO msg="SIGHUP: configuration read again: no change; the agent keeps running"`},
		{"changed", func() (config.Config, error) { return edited, nil }, `level=INFO msg="SIGHUP: configuration read again: these keys differ from the running configuration and take effect at the next restart; the agent keeps running" changed=metrics_addr,hash`},
		{"invalid", func() (config.Config, error) {
			return config.Config{}, errors.New("config.yaml:1: hash: \"md5\" is not one of sha256")
		}, `level=WARN msg="SIGHUP: the configuration does not load; the agent keeps running with the one it started with" err=`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out syncBuffer
			log := slog.New(slog.NewTextHandler(&out, nil))
			hup := make(chan os.Signal, 1)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				onHangup(ctx, hup, running, tc.reload, log)
				close(done)
			}()
			hup <- syscall.SIGHUP
			deadline := time.Now().Add(10 * time.Second)
			for !strings.Contains(out.String(), tc.want) && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			cancel()
			<-done
			if !strings.Contains(out.String(), tc.want) {
				t.Errorf("log after SIGHUP = %q; want %q", out.String(), tc.want)
			}
		})
	}
}
