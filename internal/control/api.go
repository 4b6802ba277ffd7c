package control

import (
	"errors"
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
	// HashAlgorithm is the namespace hash coefficients are computed with.
	HashAlgorithm string `json:"hash_algorithm"`
	// Capable says whether capable events are modeled.
	Capable bool `json:"capable"`
	// Model is the model file the namespace seals to, if any.
	Model string `json:"model,omitempty"`
	// Enforce says whether the namespace enforces once sealed.
	Enforce bool `json:"enforce"`
	// FailClosed says whether a lost event makes an enforcing namespace
	// deny everything after it.
	FailClosed bool `json:"fail_closed"`
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
	Settings  Settings   `json:"settings"`
	Created   time.Time  `json:"created"`

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

	// Aggregate, State and Measurement are lowercase hex digests.
	Aggregate   string `json:"aggregate"`
	State       string `json:"state"`
	Measurement string `json:"measurement"`
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
