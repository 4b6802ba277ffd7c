package httplimit

import (
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"
)

func TestWithDefaults(t *testing.T) {
	got := Limits{ReadTimeout: time.Second, MaxConns: 3}.WithDefaults()
	want := Limits{ReadHeaderTimeout: DefaultReadHeaderTimeout, ReadTimeout: time.Second, WriteTimeout: DefaultWriteTimeout,
		IdleTimeout: DefaultIdleTimeout, MaxHeaderBytes: DefaultMaxHeaderBytes, MaxConns: 3}
	if got != want {
		t.Errorf("WithDefaults() = %+v; want %+v", got, want)
	}
}

// TestListenerCap: past MaxConns open connections, Accept waits until one
// closes; closing the listener ends a waiting Accept.
func TestListenerCap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sock")
	inner, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	l := Limits{MaxConns: 2}.Listener(inner)
	accepted := make(chan net.Conn, 10)
	acceptErr := make(chan error, 1)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				acceptErr <- err
				return
			}
			accepted <- c
		}
	}()
	for range 3 {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	var open []net.Conn
	for range 2 {
		select {
		case c := <-accepted:
			open = append(open, c)
		case <-time.After(10 * time.Second):
			t.Fatal("the first two connections were not accepted")
		}
	}
	select {
	case <-accepted:
		t.Fatal("a third connection was accepted while two were open (MaxConns 2)")
	case <-time.After(200 * time.Millisecond):
	}
	open[0].Close()
	open[0].Close() // a second Close must not give back a second slot
	select {
	case c := <-accepted:
		defer c.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("the third connection was not accepted after one closed")
	}
	if c, err := net.Dial("unix", path); err == nil {
		defer c.Close()
	}
	select {
	case <-accepted:
		t.Fatal("a fourth connection was accepted: a double Close gave back two slots")
	case <-time.After(200 * time.Millisecond):
	}
	l.Close()
	select {
	case err := <-acceptErr:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close = %v; want net.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Accept still waits after Close")
	}
	if w, ok := open[1].(interface{ NetConn() net.Conn }); !ok {
		t.Error("accepted connection has no NetConn")
	} else if _, ok := w.NetConn().(*net.UnixConn); !ok {
		t.Errorf("NetConn() = %T; want *net.UnixConn", w.NetConn())
	}
}
