package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/vigil-tsem/vigil/model"
)

// Client talks to an agent's control socket.
type Client struct {
	socket string
	hc     *http.Client
}

// NewClient returns a client for the control socket at path.
func NewClient(path string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		DisableCompression: true,
	}
	return &Client{socket: path, hc: &http.Client{Transport: tr}}
}

// Namespaces lists the agent's modeling namespaces.
func (c *Client) Namespaces(ctx context.Context) ([]NamespaceInfo, error) {
	var body namespacesBody
	if err := c.getJSON(ctx, "/v1/namespaces", &body); err != nil {
		return nil, err
	}
	return body.Namespaces, nil
}

// Namespace describes one namespace.
func (c *Client) Namespace(ctx context.Context, name string) (NamespaceInfo, error) {
	var info NamespaceInfo
	err := c.getJSON(ctx, nsPath(name, ""), &info)
	return info, err
}

// Seal seals a namespace's model and returns the namespace after it.
func (c *Client) Seal(ctx context.Context, name string) (NamespaceInfo, error) {
	return c.transition(ctx, name, "seal")
}

// Enforce makes a namespace enforce its model and returns it after.
func (c *Client) Enforce(ctx context.Context, name string) (NamespaceInfo, error) {
	return c.transition(ctx, name, "enforce")
}

func (c *Client) transition(ctx context.Context, name, verb string) (NamespaceInfo, error) {
	var info NamespaceInfo
	resp, err := c.do(ctx, http.MethodPost, nsPath(name, "/"+verb), nil)
	if err != nil {
		return info, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		return info, fmt.Errorf("decode %s reply: %w", verb, err)
	}
	return info, nil
}

// Trajectory copies the namespace's trajectory, TSEM event descriptions
// one a line, to w.
func (c *Client) Trajectory(ctx context.Context, name string, w io.Writer) error {
	return c.copy(ctx, nsPath(name, "/trajectory"), w)
}

// Forensics copies the namespace's forensics, TSEM event descriptions
// one a line, to w.
func (c *Client) Forensics(ctx context.Context, name string, w io.Writer) error {
	return c.copy(ctx, nsPath(name, "/forensics"), w)
}

// TrajectoryPoints returns the coefficient and count of every trajectory
// point, in arrival order (Point.Event is nil).
func (c *Client) TrajectoryPoints(ctx context.Context, name string) ([]Point, error) {
	return c.points(ctx, nsPath(name, "/trajectory/points"))
}

// ForensicsPoints is TrajectoryPoints for the forensics.
func (c *Client) ForensicsPoints(ctx context.Context, name string) ([]Point, error) {
	return c.points(ctx, nsPath(name, "/forensics/points"))
}

// AddPseudonyms gives the namespace pseudonyms for pathnames and returns
// the namespace after it.
func (c *Client) AddPseudonyms(ctx context.Context, name string, pathnames []string) (NamespaceInfo, error) {
	var info NamespaceInfo
	err := c.sendJSON(ctx, http.MethodPost, nsPath(name, "/pseudonyms"), PseudonymRequest{Pathnames: pathnames}, &info)
	return info, err
}

// Model copies the namespace's model file to w.
func (c *Client) Model(ctx context.Context, name string, w io.Writer) error {
	return c.copy(ctx, nsPath(name, "/model"), w)
}

// Load loads a model file into the namespace.
func (c *Client) Load(ctx context.Context, name string, modelFile io.Reader) error {
	resp, err := c.do(ctx, http.MethodPut, nsPath(name, "/model"), modelFile)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// Agent describes the agent behind the socket. An agent that does not
// create namespaces for `vigil run` gives an error wrapping
// ErrUnsupported.
func (c *Client) Agent(ctx context.Context) (AgentInfo, error) {
	var info AgentInfo
	err := c.getJSON(ctx, "/v1/agent", &info)
	if errors.Is(err, ErrNotFound) {
		// An agent from before the route: the mux's plain 404.
		return info, fmt.Errorf("agent at %s: %w", c.socket, ErrUnsupported)
	}
	return info, err
}

// Create asks for a new run namespace and returns it. The agent ends it
// by itself when this process exits without calling End.
func (c *Client) Create(ctx context.Context, req CreateRequest) (NamespaceInfo, error) {
	var info NamespaceInfo
	err := c.sendJSON(ctx, http.MethodPost, "/v1/namespaces", req, &info)
	return info, err
}

// AddTask enrols process pid, a child of this process that has not
// executed its workload yet, into the namespace.
func (c *Client) AddTask(ctx context.Context, name string, pid int) error {
	return c.sendJSON(ctx, http.MethodPost, nsPath(name, "/tasks"), TaskRequest{PID: pid}, nil)
}

// Sync waits until the agent has processed the exit of the enrolled
// process pid (false after timeout) and returns the namespace then.
func (c *Client) Sync(ctx context.Context, name string, pid int, timeout time.Duration) (SyncReply, error) {
	var reply SyncReply
	req := SyncRequest{PID: pid, TimeoutMS: int(timeout.Milliseconds())}
	err := c.sendJSON(ctx, http.MethodPost, nsPath(name, "/sync"), req, &reply)
	return reply, err
}

// End ends a run namespace and returns its last state.
func (c *Client) End(ctx context.Context, name string) (NamespaceInfo, error) {
	var info NamespaceInfo
	err := c.sendJSON(ctx, http.MethodDelete, nsPath(name, ""), nil, &info)
	return info, err
}

// sendJSON sends body (nil: none) as JSON and decodes the reply into out
// (nil: ignored).
func (c *Client) sendJSON(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode %s request: %w", path, err)
		}
		rd = bytes.NewReader(b)
	}
	resp, err := c.do(ctx, method, path, rd)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode %s reply: %w", path, err)
	}
	return nil
}

func (c *Client) points(ctx context.Context, path string) ([]Point, error) {
	var body pointsBody
	if err := c.getJSON(ctx, path, &body); err != nil {
		return nil, err
	}
	out := make([]Point, len(body.Points))
	for i, p := range body.Points {
		coef, err := model.ParseCoefficient(p.Coefficient)
		if err != nil {
			return nil, fmt.Errorf("decode point %d: %w", i+1, err)
		}
		out[i] = Point{Coefficient: coef, Count: p.Count}
	}
	return out, nil
}

func (c *Client) getJSON(ctx context.Context, path string, v any) error {
	resp, err := c.do(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("decode %s: %w", path, err)
	}
	return nil
}

func (c *Client) copy(ctx context.Context, path string, w io.Writer) error {
	resp, err := c.do(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return nil
}

// do sends a request and turns a refused connection or an error status
// into this package's sentinels.
func (c *Client) do(ctx context.Context, method, path string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://vigil"+path, body)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	if _, ok := body.(*bytes.Reader); ok {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%w at %s (is 'vigil agent' running?)", ErrNoAgent, c.socket)
		}
		if errors.Is(err, syscall.EACCES) {
			return nil, fmt.Errorf("connect to %s: %w (the control socket serves root only)", c.socket, ErrPermission)
		}
		return nil, fmt.Errorf("connect to %s: %w", c.socket, err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	var eb errorBody
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	msg := strings.TrimSpace(string(raw))
	if json.Unmarshal(raw, &eb) == nil && eb.Error != "" {
		msg = eb.Error
	}
	var sentinel error
	switch resp.StatusCode {
	case http.StatusNotFound:
		sentinel = ErrNotFound
	case http.StatusBadRequest:
		sentinel = ErrInvalid
	case http.StatusConflict:
		sentinel = ErrConflict
	case http.StatusForbidden:
		sentinel = ErrPermission
	case http.StatusNotImplemented:
		sentinel = ErrUnsupported
	case http.StatusRequestEntityTooLarge:
		sentinel = ErrTooLarge
	default:
		return nil, fmt.Errorf("agent: %s %s: %s: %s", method, path, resp.Status, msg)
	}
	return nil, &remoteError{msg: msg, sentinel: sentinel}
}

// remoteError keeps the agent's message and matches the sentinel its
// status stands for.
type remoteError struct {
	msg      string
	sentinel error
}

func (e *remoteError) Error() string { return "agent: " + e.msg }
func (e *remoteError) Unwrap() error { return e.sentinel }

func nsPath(name, suffix string) string {
	return "/v1/namespaces/" + url.PathEscape(name) + suffix
}
