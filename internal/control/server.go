package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigil-tsem/vigil/internal/httplimit"
)

// Peer is the process at the other end of a control connection, as the
// kernel reports it (SO_PEERCRED) at accept time.
type Peer struct {
	PID int32
	UID uint32
	GID uint32
}

// RootOnly is the default Authorize: only uid 0 may use the control API.
func RootOnly(p Peer) error {
	if p.UID != 0 {
		return fmt.Errorf("uid %d is not root; the vigil control socket serves root only (run the command with sudo): %w", p.UID, ErrPermission)
	}
	return nil
}

// maxModelSize bounds a model file sent to PUT .../model.
const maxModelSize = 64 << 20

// maxRequestSize bounds the JSON body of the other requests.
const maxRequestSize = 1 << 20

// Allowances of the routes that outlast the write timeout.
const (
	// syncSlack is added to a sync's wait for reading the reply.
	syncSlack = 10 * time.Second
	// slowOp is the allowance of the requests that change a namespace:
	// sealing and loading a model push its allow set into the kernel,
	// which takes a while for a large model.
	slowOp = 5 * time.Minute
	// DefaultStreamStall is how long a streamed response (trajectory,
	// forensics, model) waits for its reader to take the next chunk: a
	// client that keeps reading is never cut, whatever the size, and one
	// paging through the output may pause this long.
	DefaultStreamStall = 5 * time.Minute
)

// Server serves the control API for a Backend.
type Server struct {
	Backend Backend
	// Authorize decides whether a peer may use the API; nil means RootOnly.
	Authorize func(Peer) error
	// Log receives one line per refused peer and per failed request; nil
	// means slog.Default().
	Log *slog.Logger
	// Limits bound the clients: header, read, write and idle timeouts,
	// header size, connections at once (httplimit defaults when zero).
	// The sync route and the streamed routes extend their connection's
	// deadlines beyond them (see the package documentation).
	Limits httplimit.Limits
	// StreamStall overrides DefaultStreamStall.
	StreamStall time.Duration

	modelLimit int64 // tests: overrides maxModelSize
}

type peerKey struct{}

// Listen creates the control socket at path: its directory is created with
// mode 0700 if missing, a stale socket left by a dead agent is removed (a
// live one is an error), and the socket is made mode 0600.
func Listen(path string) (net.Listener, error) {
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("create socket directory: %w", err)
		}
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("listen on %s: exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("listen on %s: another agent is serving it", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale socket: %w", err)
		}
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("restrict control socket: %w", err)
	}
	return l, nil
}

// Serve answers requests on l until ctx is done, then shuts down gracefully
// (waiting up to 5 seconds for requests in flight) and returns nil. At
// most Limits.MaxConns connections are served at once; l is closed when
// Serve returns.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	hs := s.Limits.Server(s.Handler())
	hs.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if p, err := peerOf(c); err == nil {
			return context.WithValue(ctx, peerKey{}, p)
		}
		return ctx // no peer: the handler refuses the request
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(s.Limits.Listener(l)) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve control API: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("shut down control API: %w", err)
	}
	return nil
}

func peerOf(c net.Conn) (Peer, error) {
	for {
		w, ok := c.(interface{ NetConn() net.Conn }) // the connection limit's wrapper
		if !ok {
			break
		}
		c = w.NetConn()
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return Peer{}, fmt.Errorf("peer credentials: %T is not a unix socket", c)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return Peer{}, fmt.Errorf("peer credentials: %w", err)
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return Peer{}, fmt.Errorf("peer credentials: %w", err)
	}
	if cerr != nil {
		return Peer{}, fmt.Errorf("peer credentials: %w", cerr)
	}
	return Peer{PID: cred.Pid, UID: cred.Uid, GID: cred.Gid}, nil
}

// Handler returns the API's handler. Requests must carry a Peer in their
// context, which Serve puts there; without one they are refused.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/namespaces", func(w http.ResponseWriter, r *http.Request) {
		list := s.Backend.Namespaces()
		if list == nil {
			list = []NamespaceInfo{}
		}
		writeJSON(w, http.StatusOK, namespacesBody{Namespaces: list})
	})
	mux.HandleFunc("GET /v1/namespaces/{ns}", s.info)
	mux.HandleFunc("POST /v1/namespaces/{ns}/seal", s.transition(Backend.Seal))
	mux.HandleFunc("POST /v1/namespaces/{ns}/enforce", s.transition(Backend.Enforce))
	mux.HandleFunc("GET /v1/namespaces/{ns}/trajectory", s.events(Backend.Trajectory))
	mux.HandleFunc("GET /v1/namespaces/{ns}/trajectory/points", s.points(Backend.Trajectory))
	mux.HandleFunc("GET /v1/namespaces/{ns}/forensics", s.events(Backend.Forensics))
	mux.HandleFunc("GET /v1/namespaces/{ns}/forensics/points", s.points(Backend.Forensics))
	mux.HandleFunc("GET /v1/namespaces/{ns}/model", func(w http.ResponseWriter, r *http.Request) {
		ns, err := s.name(r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		m, err := s.Backend.Model(ns)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		st := s.stream(w)
		for len(m) > 0 {
			n := min(len(m), 64<<10)
			if !st.write(m[:n]) {
				return
			}
			m = m[n:]
		}
	})
	mux.HandleFunc("PUT /v1/namespaces/{ns}/model", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body) // bounded by the root handler
		if err != nil {
			s.fail(w, r, bodyError("read model", err))
			return
		}
		extend(w, slowOp)
		ns, err := s.name(r)
		if err == nil {
			err = s.Backend.Load(ns, body)
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /v1/namespaces/{ns}/pseudonyms", s.pseudonyms)
	s.runRoutes(mux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := r.Context().Value(peerKey{}).(Peer)
		var err error
		if !ok {
			err = fmt.Errorf("peer credentials unavailable: %w", ErrPermission)
		} else if auth := s.Authorize; auth != nil {
			err = auth(p)
		} else {
			err = RootOnly(p)
		}
		if err != nil {
			s.log().Warn("control API: refused peer", "pid", p.PID, "uid", p.UID, "err", err)
			writeJSON(w, http.StatusForbidden, errorBody{Error: err.Error()})
			return
		}
		limit := int64(maxRequestSize)
		if r.Method == http.MethodPut { // the model upload
			limit = maxModelSize
			if s.modelLimit > 0 {
				limit = s.modelLimit
			}
		}
		if r.ContentLength > limit {
			s.fail(w, r, fmt.Errorf("request body: %d bytes declared, more than the %d allowed: %w", r.ContentLength, limit, ErrTooLarge))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		mux.ServeHTTP(w, r)
	})
}

// bodyError turns an error reading a request body into this package's
// errors: too large (413) or invalid (400).
func bodyError(what string, err error) error {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return fmt.Errorf("%s: request body larger than the %d bytes allowed: %w", what, tooLarge.Limit, ErrTooLarge)
	}
	return fmt.Errorf("%s: %v: %w", what, err, ErrInvalid)
}

// extend gives the request's connection d more to read and write from now:
// for the routes that wait or stream longer than the server's timeouts.
// (The read deadline matters too: when it passes while the handler runs,
// net/http cancels the request's context.)
func extend(w http.ResponseWriter, d time.Duration) {
	rc := http.NewResponseController(w)
	at := time.Now().Add(d)
	rc.SetReadDeadline(at)
	rc.SetWriteDeadline(at)
}

// streamer writes a long response in chunks, each with a fresh allowance,
// so that a client that keeps reading is never cut.
type streamer struct {
	w     http.ResponseWriter
	stall time.Duration
}

func (s *Server) stream(w http.ResponseWriter) streamer {
	stall := s.StreamStall
	if stall <= 0 {
		stall = DefaultStreamStall
	}
	return streamer{w: w, stall: stall}
}

// write writes one chunk; false when the client is gone.
func (st streamer) write(p []byte) bool {
	extend(st.w, st.stall)
	_, err := st.w.Write(p)
	return err == nil
}

// name resolves the namespace named in the request path. Container
// namespaces have long names (runtime and 64-digit id), so a prefix that
// names exactly one namespace stands for it, as container CLIs accept
// short ids; an ambiguous prefix is an error listing the candidates, and
// an unknown name is left for the Backend to refuse.
func (s *Server) name(r *http.Request) (string, error) {
	name := r.PathValue("ns")
	var match []string
	for _, n := range s.Backend.Namespaces() {
		if n.Name == name {
			return name, nil
		}
		if strings.HasPrefix(n.Name, name) {
			match = append(match, n.Name)
		}
	}
	switch len(match) {
	case 0:
		return name, nil
	case 1:
		return match[0], nil
	}
	sort.Strings(match)
	return "", fmt.Errorf("namespace %q is ambiguous: it begins %s: %w", name, strings.Join(match, ", "), ErrInvalid)
}

func (s *Server) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

func (s *Server) info(w http.ResponseWriter, r *http.Request) {
	var info NamespaceInfo
	ns, err := s.name(r)
	if err == nil {
		info, err = s.Backend.Namespace(ns)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, info)
}

func (s *Server) transition(op func(Backend, string) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		extend(w, slowOp)
		ns, err := s.name(r)
		if err == nil {
			err = op(s.Backend, ns)
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		s.info(w, r)
	}
}

// pseudonyms adds pseudonyms to a namespace and answers with it.
func (s *Server) pseudonyms(w http.ResponseWriter, r *http.Request) {
	pb, ok := s.Backend.(PseudonymBackend)
	if !ok {
		s.fail(w, r, fmt.Errorf("this agent does not add pseudonyms: %w", ErrUnsupported))
		return
	}
	var req PseudonymRequest
	err := decodeBody(r, &req)
	if err == nil && len(req.Pathnames) == 0 {
		err = fmt.Errorf("request body: field pathnames: no pathname: %w", ErrInvalid)
	}
	if err == nil {
		err = CheckPseudonyms(req.Pathnames)
	}
	var ns string
	if err == nil {
		ns, err = s.name(r)
	}
	if err == nil {
		err = pb.AddPseudonyms(ns, req.Pathnames)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.info(w, r)
}

func (s *Server) events(get func(Backend, string) ([]Point, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ns, err := s.name(r)
		var pts []Point
		if err == nil {
			pts, err = get(s.Backend, ns)
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		st := s.stream(w)
		var buf bytes.Buffer
		for _, p := range pts {
			buf.Write(p.Event)
			buf.WriteByte('\n')
			if buf.Len() > 64<<10 {
				if !st.write(buf.Bytes()) {
					return
				}
				buf.Reset()
			}
		}
		st.write(buf.Bytes())
	}
}

func (s *Server) points(get func(Backend, string) ([]Point, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ns, err := s.name(r)
		var pts []Point
		if err == nil {
			pts, err = get(s.Backend, ns)
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		body := pointsBody{Points: make([]wirePoint, len(pts))}
		for i, p := range pts {
			body.Points[i] = wirePoint{Coefficient: p.Coefficient.String(), Count: p.Count}
		}
		writeJSON(w, http.StatusOK, body)
	}
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, ErrInvalid):
		code = http.StatusBadRequest
	case errors.Is(err, ErrConflict):
		code = http.StatusConflict
	case errors.Is(err, ErrPermission):
		code = http.StatusForbidden
	case errors.Is(err, ErrUnsupported):
		code = http.StatusNotImplemented
	case errors.Is(err, ErrTooLarge):
		code = http.StatusRequestEntityTooLarge
	}
	if code == http.StatusInternalServerError {
		s.log().Error("control API request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeJSON(w, code, errorBody{Error: err.Error()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// runRoutes adds the routes `vigil run` uses: create a namespace, enrol a
// task, wait for its exit to be processed, end the namespace.
func (s *Server) runRoutes(mux *http.ServeMux) {
	run := func(h func(RunBackend, http.ResponseWriter, *http.Request)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			rb, ok := s.Backend.(RunBackend)
			if !ok {
				s.fail(w, r, fmt.Errorf("this agent does not create namespaces for vigil run: %w", ErrUnsupported))
				return
			}
			h(rb, w, r)
		}
	}
	mux.HandleFunc("GET /v1/agent", run(func(rb RunBackend, w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, rb.Agent())
	}))
	mux.HandleFunc("POST /v1/namespaces", run(func(rb RunBackend, w http.ResponseWriter, r *http.Request) {
		req := CreateRequest{Settings: rb.Agent().Defaults}
		if err := decodeBody(r, &req); err != nil {
			s.fail(w, r, err)
			return
		}
		if err := checkCreate(&req); err != nil {
			s.fail(w, r, err)
			return
		}
		req.Owner, _ = r.Context().Value(peerKey{}).(Peer)
		info, err := rb.Create(req)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		w.Header().Set("Location", nsPath(info.Name, ""))
		writeJSON(w, http.StatusCreated, info)
	}))
	mux.HandleFunc("POST /v1/namespaces/{ns}/tasks", run(func(rb RunBackend, w http.ResponseWriter, r *http.Request) {
		var req TaskRequest
		err := decodeBody(r, &req)
		if err == nil {
			err = checkPID(req.PID)
		}
		var ns string
		if err == nil {
			ns, err = s.name(r)
		}
		if err == nil {
			req.Caller, _ = r.Context().Value(peerKey{}).(Peer)
			err = rb.AddTask(ns, req)
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.HandleFunc("POST /v1/namespaces/{ns}/sync", run(func(rb RunBackend, w http.ResponseWriter, r *http.Request) {
		var req SyncRequest
		err := decodeBody(r, &req)
		if err == nil {
			err = checkPID(req.PID)
		}
		timeout := DefaultSyncTimeout
		if err == nil && req.TimeoutMS != 0 {
			timeout = time.Duration(req.TimeoutMS) * time.Millisecond
			if req.TimeoutMS < 0 || timeout > MaxSyncTimeout {
				err = fmt.Errorf("request body: field timeout_ms: %d is outside 1..%d: %w", req.TimeoutMS, MaxSyncTimeout.Milliseconds(), ErrInvalid)
			}
		}
		var ns string
		if err == nil {
			ns, err = s.name(r)
		}
		var reply SyncReply
		if err == nil {
			// The wait outlasts the read and write timeouts.
			extend(w, timeout+syncSlack)
			ctx, cancel := context.WithTimeout(r.Context(), timeout)
			reply.Exited, err = rb.Sync(ctx, ns, req.PID)
			cancel()
		}
		if err == nil {
			reply.Namespace, err = rb.Namespace(ns)
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, reply)
	}))
	mux.HandleFunc("DELETE /v1/namespaces/{ns}", run(func(rb RunBackend, w http.ResponseWriter, r *http.Request) {
		var info NamespaceInfo
		ns, err := s.name(r)
		if err == nil {
			info, err = rb.End(ns)
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, info)
	}))
}

// checkCreate validates a CreateRequest's fields.
func checkCreate(req *CreateRequest) error {
	if req.Origin == "" {
		req.Origin = OriginRun
	}
	if req.Origin != OriginRun {
		return fmt.Errorf("request body: field origin: %q: only %q namespaces are created through the API (containers get theirs when the agent discovers them): %w", req.Origin, OriginRun, ErrInvalid)
	}
	if req.Name != "" {
		if err := CheckName(req.Name); err != nil {
			return fmt.Errorf("request body: field name: %w", err)
		}
	}
	return nil
}

// CheckName checks a namespace name a client chose: 1 to 128 characters
// from letters, digits, '.', '_' and '-', starting with a letter or digit
// (names appear in the measured log, in metric labels and in file names).
// It returns an error wrapping ErrInvalid.
func CheckName(name string) error {
	if name == "" || len(name) > 128 {
		return fmt.Errorf("namespace name %q: want 1 to 128 characters: %w", name, ErrInvalid)
	}
	for i, c := range []byte(name) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || (i > 0 && (c == '.' || c == '_' || c == '-'))
		if !ok {
			return fmt.Errorf("namespace name %q: character %d (%q): want letters, digits, '.', '_' or '-', and a letter or digit first: %w", name, i+1, c, ErrInvalid)
		}
	}
	return nil
}

func checkPID(pid int) error {
	if pid <= 0 {
		return fmt.Errorf("request body: field pid: %d is not a process id: %w", pid, ErrInvalid)
	}
	return nil
}

// decodeBody decodes a request's JSON object into v strictly (unknown
// fields and trailing data are refused); errors wrap ErrInvalid and name
// the field or the byte offset at fault.
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body) // bounded by the root handler
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, err2 := dec.Token(); err2 != io.EOF {
			err = errors.New("trailing data after the JSON object")
		}
	}
	if err == nil {
		return nil
	}
	var (
		syn      *json.SyntaxError
		typ      *json.UnmarshalTypeError
		tooLarge *http.MaxBytesError
	)
	switch {
	case errors.As(err, &tooLarge):
		return bodyError("request body", err)
	case errors.Is(err, io.EOF):
		return fmt.Errorf("request body: empty; want a JSON object: %w", ErrInvalid)
	case errors.As(err, &syn):
		return fmt.Errorf("request body: byte %d: %v: %w", syn.Offset, syn, ErrInvalid)
	case errors.As(err, &typ) && typ.Field != "":
		return fmt.Errorf("request body: field %s: got a JSON %s, want %s: %w", typ.Field, typ.Value, jsonKind(typ.Type.Kind().String()), ErrInvalid)
	case errors.As(err, &typ):
		return fmt.Errorf("request body: got a JSON %s, want an object: %w", typ.Value, ErrInvalid)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return fmt.Errorf("request body: unknown field %s: %w", strings.TrimPrefix(err.Error(), "json: unknown field "), ErrInvalid)
	}
	return fmt.Errorf("request body: %v: %w", err, ErrInvalid)
}

// jsonKind names a Go kind the way a JSON document's author would.
func jsonKind(k string) string {
	switch {
	case k == "bool":
		return "a boolean"
	case k == "string":
		return "a string"
	case strings.HasPrefix(k, "int"), strings.HasPrefix(k, "uint"), strings.HasPrefix(k, "float"):
		return "a number"
	case k == "struct", k == "map":
		return "an object"
	case k == "slice", k == "array":
		return "an array"
	}
	return k
}
