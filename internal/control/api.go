package control

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vigil-tsem/vigil/model"
)

// DefaultSocket is where the agent listens unless told otherwise.
const DefaultSocket = "/run/vigil/vigil.sock"

// Sentinel errors a Backend returns (wrapped) and a Client gives back.
var (
	// ErrNotFound: no modeling namespace of that name.
	ErrNotFound = errors.New("no such modeling namespace")
	// ErrInvalid: the request is malformed (a bad model file, a bad name).
	ErrInvalid = errors.New("invalid request")
	// ErrConflict: the operation is not possible in the namespace's mode
	// (for example loading a model into a sealed namespace).
	ErrConflict = errors.New("not possible in this mode")
	// ErrPermission: the peer is not allowed to use the control socket.
	ErrPermission = errors.New("permission denied")
	// ErrUnsupported: the agent does not implement the request (an agent
	// that cannot create namespaces for `vigil run`).
	ErrUnsupported = errors.New("not supported by this agent")
	// ErrTooLarge: the request body is larger than the API allows (1 MiB,
	// 64 MiB for a model file).
	ErrTooLarge = errors.New("request too large")
	// ErrNoAgent: nothing listens on the control socket.
	ErrNoAgent = errors.New("no vigil agent on the control socket")
)

// Mode is where a namespace's model is in its life: learning, then sealed,
// then enforcing.
type Mode string

// The modes of a namespace.
const (
	ModeLearning  Mode = "learning"
	ModeSealed    Mode = "sealed"
	ModeEnforcing Mode = "enforcing"
)

// Container says which container a namespace models.
type Container struct {
	Runtime string `json:"runtime"`
	ID      string `json:"id"`
	PodUID  string `json:"pod_uid,omitempty"`
	Cgroup  string `json:"cgroup,omitempty"`
	Image   string `json:"image,omitempty"`
}

// Settings are a namespace's per-namespace options.
type Settings struct {
	// HashAlgorithm is the namespace hash (sha256, sha384 or sha512)
	// coefficients, task ids, file digests, state and measurement are
	// computed with; empty in a create request means the agent's default
	// (its config's hash).
	HashAlgorithm string `json:"hash_algorithm"`
	// Dialect is how the namespace's events map to coefficients:
	// "invariant" (per-mount values hashed as zeros, so a model holds
	// across instances of a container) or "tsem" (exactly as the TSEM
	// kernel); empty in a create request means the agent's default. A
	// namespace sealed to a model file has the file's.
	Dialect string `json:"dialect"`
	// Pseudonyms are the pathnames the agent gave the namespace
	// pseudonyms for (a file with one is hashed with the empty file's
	// digest): a container's are the agent's container_pseudonyms, a
	// run's those its request names. Pseudonyms of a model file loaded
	// into the namespace are counted in NamespaceInfo.Pseudonyms.
	Pseudonyms []string `json:"pseudonyms,omitempty"`
	// Capable says whether capable events are modeled.
	Capable bool `json:"capable"`
	// Model is the model file the namespace seals to, if any.
	Model string `json:"model,omitempty"`
	// Enforce says whether the namespace enforces once sealed.
	Enforce bool `json:"enforce"`
	// FailClosed says whether a lost event makes an enforcing namespace
	// deny everything after it.
	FailClosed bool `json:"fail_closed"`
	// RepeatCache says whether the kernel counts an event repeated within
	// a repeat window (same task, credentials and object) instead of
	// reporting each one; model counts are exact either way.
	RepeatCache bool `json:"repeat_cache"`
}

// NamespaceInfo describes one security modeling namespace.
type NamespaceInfo struct {
	// Name is the namespace's name: "<runtime>-<container id>" for a
	// container, "run-<n>" for `vigil run`, "host" for namespace 0.
	Name string `json:"name"`
	// Context is the namespace id TSEM event descriptions carry as
	// event.context.
	Context uint64 `json:"context"`
	// Origin is what created it: "container", "run" or "host".
	Origin    string     `json:"origin"`
	Container *Container `json:"container,omitempty"`
	Mode      Mode       `json:"mode"`
	// Ended says a run namespace was ended (its command exited) and is
	// kept only for a while.
	Ended    bool      `json:"ended,omitempty"`
	Settings Settings  `json:"settings"`
	Created  time.Time `json:"created"`

	// Points is the size of the trajectory (unique coefficients), Events
	// the number of security events counted into it.
	Points int    `json:"points"`
	Events uint64 `json:"events"`
	// ForensicsPoints and ForensicsEvents are the same for the forensics.
	ForensicsPoints int    `json:"forensics_points"`
	ForensicsEvents uint64 `json:"forensics_events"`
	// Denials counts events refused while enforcing.
	Denials uint64 `json:"denials"`
	// Lost counts events of this namespace the kernel could not deliver.
	Lost uint64 `json:"lost"`
	// Tasks and UntrustedTasks count live tasks, and those marked
	// untrusted by a forensics event.
	Tasks          int `json:"tasks"`
	UntrustedTasks int `json:"untrusted_tasks"`

	// Pseudonyms counts the pseudonyms of the namespace's model: those of
	// Settings.Pseudonyms and those of a model file loaded into it.
	Pseudonyms int `json:"pseudonyms"`

	// Aggregate, State and Measurement are lowercase hex digests.
	Aggregate   string `json:"aggregate"`
	State       string `json:"state"`
	Measurement string `json:"measurement"`

	// Log is the namespace's part of the measured log; nil when the
	// agent keeps none.
	Log *LogState `json:"log,omitempty"`
}

// The states of a namespace's part of the measured log (LogState.Status),
// from good to bad.
const (
	// LogOK: every record of the namespace is in the log.
	LogOK = "ok"
	// LogWaiting: records wait in memory because the log cannot be
	// written now (a full disk); none is lost yet.
	LogWaiting = "waiting"
	// LogIncomplete: the log misses model points of the namespace, or
	// events modeling skipped (its gap records count them).
	LogIncomplete = "incomplete"
	// LogStopped: modeling is stopped until the log catches up (the
	// agent's log_full is stop).
	LogStopped = "stopped"
)

// LogState is a namespace's part of the measured log.
type LogState struct {
	// Status sums it up: LogOK, LogWaiting, LogIncomplete or LogStopped.
	Status string `json:"status"`
	// Unrecorded counts model points the log could not record (a gap
	// record of the namespace counts them, once the log can be written).
	Unrecorded uint64 `json:"unrecorded"`
	// Waiting counts the namespace's records waiting in memory.
	Waiting int `json:"waiting"`
	// Skipped counts events not modeled while modeling was stopped
	// (log_full: stop; gap records count them).
	Skipped uint64 `json:"skipped"`
	// Error says why the log cannot be written, empty when it can.
	Error string `json:"error,omitempty"`
}

// Point is one unique security event of a trajectory or of the forensics:
// its security state coefficient, how many times it occurred, and the TSEM
// event description of its first occurrence (one JSON line, no newline).
type Point struct {
	Coefficient model.Coefficient
	Count       uint64
	Event       []byte
}

// Backend is the agent's registry of modeling namespaces as the control
// API sees it. Errors wrap ErrNotFound, ErrInvalid or ErrConflict when one
// of those applies. Trajectory and Forensics return points in arrival
// order; Model returns a TSEM model file; Load reads one.
type Backend interface {
	Namespaces() []NamespaceInfo
	Namespace(name string) (NamespaceInfo, error)
	Seal(name string) error
	Enforce(name string) error
	Trajectory(name string) ([]Point, error)
	Forensics(name string) ([]Point, error)
	Model(name string) ([]byte, error)
	Load(name string, model []byte) error
}

// PseudonymBackend is a Backend that adds pseudonyms to a namespace (POST
// /v1/namespaces/{ns}/pseudonyms). AddPseudonyms adds one for each
// pathname: the namespace's later events of those files hash the empty
// file's digest instead of theirs. Only a learning namespace takes them
// (ErrConflict otherwise: a sealed model's points were computed without
// them); points learned before keep their coefficients. A Server whose
// Backend does not implement it answers the route with 501.
type PseudonymBackend interface {
	Backend
	AddPseudonyms(name string, pathnames []string) error
}

// PseudonymRequest asks for pseudonyms (POST
// /v1/namespaces/{ns}/pseudonyms).
type PseudonymRequest struct {
	Pathnames []string `json:"pathnames"`
}

// CheckPseudonym checks a pathname for a pseudonym: an absolute path of
// at most 4096 bytes without NUL, as the kernel prints it.
func CheckPseudonym(pathname string) error {
	if !strings.HasPrefix(pathname, "/") || len(pathname) > 4096 || strings.ContainsRune(pathname, 0) {
		return fmt.Errorf("pseudonym %q: want an absolute path (as the kernel prints it) of at most 4096 bytes without NUL", pathname)
	}
	return nil
}

// CheckPseudonyms is CheckPseudonym for each pathname; the error wraps
// ErrInvalid.
func CheckPseudonyms(pathnames []string) error {
	for _, p := range pathnames {
		if err := CheckPseudonym(p); err != nil {
			return fmt.Errorf("%w: %w", err, ErrInvalid)
		}
	}
	return nil
}

// OriginRun is the origin of a namespace created through the API for
// `vigil run`; the only origin a client may create.
const OriginRun = "run"

// AgentInfo describes the agent behind the socket (GET /v1/agent): what a
// client needs to know before it asks for a namespace.
type AgentInfo struct {
	// PID is the agent's process id.
	PID int `json:"pid"`
	// Backend is the capture backend in use ("lsm" or "tracepoint").
	Backend string `json:"backend"`
	// CanEnforce says whether the backend can deny events.
	CanEnforce bool `json:"can_enforce"`
	// Defaults are the settings a new namespace gets unless the request
	// says otherwise.
	Defaults Settings `json:"defaults"`
	// Register names the measurement register, "" without a measured log.
	Register string `json:"register,omitempty"`
}

// CreateRequest asks the agent for a new modeling namespace (POST
// /v1/namespaces). Settings fields absent from the JSON body keep the
// agent's defaults.
type CreateRequest struct {
	// Name names the namespace; empty lets the agent choose run-<id>.
	Name string `json:"name,omitempty"`
	// Origin must be OriginRun (the default when empty).
	Origin   string   `json:"origin,omitempty"`
	Settings Settings `json:"settings"`
	// Owner is the process that asked, from the socket's peer
	// credentials (never from the body): when it exits without ending
	// the namespace, the agent ends it.
	Owner Peer `json:"-"`
}

// TaskRequest asks the agent to enrol a process into a namespace (POST
// /v1/namespaces/{ns}/tasks). The process must be a child of the caller,
// waiting to exec its workload: its children inherit the membership.
type TaskRequest struct {
	PID int `json:"pid"`
	// Caller is the process that asked, from the peer credentials.
	Caller Peer `json:"-"`
}

// SyncRequest asks the agent to wait until it has processed the exit of an
// enrolled process (POST /v1/namespaces/{ns}/sync): every record the
// process and the children it waited for made before it exited is then in
// the namespace's model.
type SyncRequest struct {
	PID int `json:"pid"`
	// TimeoutMS bounds the wait (default DefaultSyncTimeout, at most
	// MaxSyncTimeout).
	TimeoutMS int `json:"timeout_ms,omitempty"`
}

// Bounds of a sync's wait.
const (
	DefaultSyncTimeout = 5 * time.Second
	MaxSyncTimeout     = time.Minute
)

// SyncReply answers a SyncRequest: Exited is false when the wait timed out
// (the exit record was lost or the process still runs).
type SyncReply struct {
	Exited    bool          `json:"exited"`
	Namespace NamespaceInfo `json:"namespace"`
}

// RunBackend is a Backend that also creates, enrols into and ends
// namespaces for `vigil run`. A Server whose Backend does not implement it
// answers those routes with 501.
type RunBackend interface {
	Backend
	// Agent describes the agent.
	Agent() AgentInfo
	// Create makes a namespace of origin run; a name in use is
	// ErrConflict.
	Create(req CreateRequest) (NamespaceInfo, error)
	// AddTask enrols req.PID into the namespace.
	AddTask(name string, req TaskRequest) error
	// Sync waits until the exit of the enrolled process pid has been
	// processed, or ctx ends (then it returns false and no error).
	Sync(ctx context.Context, name string, pid int) (bool, error)
	// End ends a run namespace: no more tasks join; it is kept for a
	// while (its last records drain, it stays readable) and then
	// removed. Its points stay in the measured log.
	End(name string) (NamespaceInfo, error)
}

// wire types

type namespacesBody struct {
	Namespaces []NamespaceInfo `json:"namespaces"`
}

type wirePoint struct {
	Coefficient string `json:"coefficient"`
	Count       uint64 `json:"count"`
}

type pointsBody struct {
	Points []wirePoint `json:"points"`
}

type errorBody struct {
	Error string `json:"error"`
}
