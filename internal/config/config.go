package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/spf13/pflag"
	yaml "sigs.k8s.io/yaml/goyaml.v3"

	"github.com/vigil-tsem/vigil/bpf"
)

// DefaultPath is where packaged deployments keep the agent's config file.
const DefaultPath = "/etc/vigil/config.yaml"

// Bounds of the export rotation keys. A file smaller than one write batch
// (64 KiB) would rotate at every write; more files than MaxExportMaxFiles
// make the directory listing at start slow for no use.
const (
	MinExportMaxSize  = 64 << 10
	MaxExportMaxSize  = 1 << 40
	MaxExportMaxFiles = 10000
)

// Config is the agent's configuration. The yaml tag is the key in the file
// and, with '_' turned into '-', the flag; the usage tag is the flag's help.
type Config struct {
	Socket      string `yaml:"socket" usage:"control socket for 'vigil ns' (root only)"`
	MetricsAddr string `yaml:"metrics_addr" usage:"serve Prometheus /metrics on this host:port (empty: off)"`

	Log      string `yaml:"log" usage:"measured event log: every new model point of every namespace, extended into the register"`
	Register string `yaml:"register" usage:"measurement register: auto, tdx, tpm or software"`
	TDXRoot  string `yaml:"tdx_root" usage:"directory of the TDX rtmr<N>:sha384 files (empty: /sys/class/misc/tdx_guest/measurements)"`
	TPM      string `yaml:"tpm" usage:"TPM device for register tpm (empty: /dev/tpmrm0, then /dev/tpm0)"`
	PCR      int    `yaml:"pcr" usage:"TPM PCR extended for register tpm"`
	LogFull  string `yaml:"log_full" usage:"when the measured log cannot be written (a full disk): gap (namespaces keep modeling; new points wait in memory, those beyond 1024 waiting records are counted in a gap record) or stop (a namespace whose new point cannot be written stops modeling until the log has caught up; the events it missed are counted in a gap record)"`

	Backend        string `yaml:"backend" usage:"capture backend: auto (LSM if it loads, else tracepoints), lsm or tracepoint"`
	RingBufferSize int    `yaml:"ring_buffer_size" usage:"kernel event ring buffer size in bytes (a power of two, 4096 to 1073741824); the agent's RSS holds it twice (the kernel maps it twice), and a smaller one loses records sooner in a burst"`

	Export              string        `yaml:"export" usage:"export event descriptions to this file ('-' for standard output, empty: off)"`
	ExportFormat        string        `yaml:"export_format" usage:"export format: tsem or ecs"`
	ExportForensicsOnly bool          `yaml:"export_forensics_only" usage:"export only forensics events (outside a sealed model)"`
	ExportMaxSize       int64         `yaml:"export_max_size" usage:"rotate the export file when it reaches this many bytes (0: never; else 65536 (64 KiB) to 1 TiB)"`
	ExportMaxFiles      int           `yaml:"export_max_files" usage:"rotated export files to keep, named <export>.<UTC time>.<sequence> (0: none, the file is emptied when full; at most 10000)"`
	ExportFlushInterval time.Duration `yaml:"export_flush_interval" usage:"longest an exported event waits in memory before it is written (forensics are written at once); 10ms to 1m"`

	HostNamespace   bool          `yaml:"host_namespace" usage:"also model the host itself: namespace 0, named host, every task outside the other namespaces (the agent's own excepted)"`
	HostEnforce     bool          `yaml:"host_enforce" usage:"let the host namespace enforce ('vigil ns enforce host', and enforce: true once sealed); off, enforcing it is refused: it would deny every out-of-model action on the node"`
	CgroupRoot      string        `yaml:"cgroup_root" usage:"sysfs cgroup directory; the cgroup v2 mount is it or its unified/ subdirectory"`
	ContainerResync time.Duration `yaml:"container_resync" usage:"how often container discovery rescans the whole cgroup tree"`
	ModelDir        string        `yaml:"model_dir" usage:"directory of sealed models named <namespace>.model (e.g. docker-<id>.model, host.model); a namespace that has one starts sealed to it"`
	ModelKey        string        `yaml:"model_key" usage:"how a container's model is found in model_dir: name (<namespace>.model) or image (<image>.model, every character of the image outside A-Za-z0-9._- turned into _, then <namespace>.model)"`
	RuntimeRoot     string        `yaml:"runtime_root" usage:"directory the container runtimes' state (/run/containerd, /run/containers, /run/docker, /var/lib/containers, /var/lib/docker) is read under to find each container's image and file system: / on the host"`
	LearnInstances  int           `yaml:"learn_instances" usage:"with model_key image: learn an image's model from its first N instances (0: off); once N have ended, their models are merged into <model_dir>/<image>.model and later instances start sealed to it"`
	LearnPeriod     time.Duration `yaml:"learn_period" usage:"with model_key image: learn an image's model from the instances started within this time of its first (0: off); then their models so far are merged into <model_dir>/<image>.model (with learn_instances, whichever comes first)"`

	Hash        string `yaml:"hash" usage:"namespace hash for new namespaces: sha256, sha384 or sha512"`
	Dialect     string `yaml:"dialect" usage:"coefficient dialect of new namespaces: invariant (s_uuids drawn at mount time and anonymous device numbers hashed as zero, so a model holds across instances of a container) or tsem (every value as the TSEM kernel hashes it)"`
	Capable     bool   `yaml:"capable" usage:"model capable events in new namespaces"`
	Enforce     bool   `yaml:"enforce" usage:"new namespaces enforce their model once sealed"`
	FailClosed  bool   `yaml:"fail_closed" usage:"an enforcing namespace that loses an event denies everything after it"`
	RepeatCache bool   `yaml:"repeat_cache" usage:"the kernel counts an event repeated within a second (same task, credentials, file and flags) instead of recording each one: model counts stay exact, exports see one record per repeat window"`

	ContainerPseudonyms []string `yaml:"container_pseudonyms" usage:"pathnames a new learning container namespace gets pseudonyms for (their content digests are hashed as the empty file's): the files the container runtime writes for each instance; an empty list gives none"`
}

// DefaultContainerPseudonyms returns the files container runtimes write
// for every container instance (its name, its view of the network, its
// runtime marker): their contents differ from one instance to the next.
func DefaultContainerPseudonyms() []string {
	return []string{"/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/run/.containerenv", "/.dockerenv"}
}

// Default returns the configuration the agent runs with when given nothing.
func Default() Config {
	return Config{
		Socket:              "/run/vigil/vigil.sock",
		MetricsAddr:         "127.0.0.1:9476",
		Log:                 "/var/lib/vigil/measurements.log",
		Register:            "auto",
		PCR:                 23,
		LogFull:             "gap",
		Backend:             "auto",
		RingBufferSize:      16 << 20,
		ExportFormat:        "tsem",
		ExportMaxSize:       100 << 20,
		ExportMaxFiles:      5,
		ExportFlushInterval: time.Second,
		CgroupRoot:          "/sys/fs/cgroup",
		ContainerResync:     10 * time.Second,
		ModelDir:            "/var/lib/vigil/models",
		ModelKey:            "name",
		RuntimeRoot:         "/",
		Hash:                "sha256",
		Dialect:             "invariant",
		Capable:             true,
		RepeatCache:         true,

		ContainerPseudonyms: DefaultContainerPseudonyms(),
	}
}

// field is one key of Config.
type field struct {
	key, flag, usage string
	index            int
}

func fields() []field {
	t := reflect.TypeFor[Config]()
	out := make([]field, 0, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		key := f.Tag.Get("yaml")
		out = append(out, field{key: key, flag: strings.ReplaceAll(key, "_", "-"), usage: f.Tag.Get("usage"), index: i})
	}
	return out
}

// Keys returns every configuration key, in declaration order.
func Keys() []string {
	var keys []string
	for _, f := range fields() {
		keys = append(keys, f.key)
	}
	return keys
}

// Changed returns the keys whose values differ between a and b, in
// declaration order.
func Changed(a, b Config) []string {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	var keys []string
	for _, f := range fields() {
		if !reflect.DeepEqual(va.Field(f.index).Interface(), vb.Field(f.index).Interface()) {
			keys = append(keys, f.key)
		}
	}
	return keys
}

// Flags holds the flag values bound by BindFlags until Resolve merges them.
type Flags struct {
	fs   *pflag.FlagSet
	vals Config
}

// BindFlags defines one flag per key on fs (not a global set), with the
// defaults as flag defaults so --help shows them.
func BindFlags(fs *pflag.FlagSet) *Flags {
	fl := &Flags{fs: fs, vals: Default()}
	v := reflect.ValueOf(&fl.vals).Elem()
	for _, f := range fields() {
		switch p := v.Field(f.index).Addr().Interface().(type) {
		case *string:
			fs.StringVar(p, f.flag, *p, f.usage)
		case *bool:
			fs.BoolVar(p, f.flag, *p, f.usage)
		case *int:
			fs.IntVar(p, f.flag, *p, f.usage)
		case *int64:
			fs.Int64Var(p, f.flag, *p, f.usage)
		case *time.Duration:
			fs.DurationVar(p, f.flag, *p, f.usage)
		case *[]string:
			fs.StringSliceVar(p, f.flag, *p, f.usage+" (comma-separated, or the flag repeated)")
		default:
			panic(fmt.Sprintf("config: key %s has unsupported type %T", f.key, p))
		}
	}
	return fl
}

// Resolve builds the configuration: defaults, then the file at path (if
// path is not empty), then every flag the user set. It validates the result.
func (fl *Flags) Resolve(path string) (Config, error) {
	c := Default()
	origin := make(map[string]string)
	if path != "" {
		var err error
		if c, origin, err = load(path); err != nil {
			return Config{}, err
		}
	}
	dst, src := reflect.ValueOf(&c).Elem(), reflect.ValueOf(&fl.vals).Elem()
	for _, f := range fields() {
		if fl.fs.Changed(f.flag) {
			dst.Field(f.index).Set(src.Field(f.index))
			origin[f.key] = "--" + f.flag
		}
	}
	if err := c.validate(origin); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Load reads a config file over the defaults and validates it.
func Load(path string) (Config, error) {
	c, origin, err := load(path)
	if err != nil {
		return Config{}, err
	}
	if err := c.validate(origin); err != nil {
		return Config{}, err
	}
	return c, nil
}

// load decodes the file strictly: unknown keys, repeated keys, values of
// the wrong type and anything but one mapping are errors naming file:line.
// origin maps each key set by the file to its place.
func load(path string) (Config, map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Default(), nil, fmt.Errorf("read config: %w", err)
	}
	return decode(path, data)
}

// decode is load for the contents of the file named path.
func decode(path string, data []byte) (Config, map[string]string, error) {
	c := Default()
	origin := make(map[string]string)
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return c, nil, fmt.Errorf("%s: %s", path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if len(doc.Content) == 0 {
		return c, origin, nil // empty file: defaults
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return c, nil, fmt.Errorf("%s:%d: want a mapping of keys to values", path, root.Line)
	}
	byKey := make(map[string]field)
	for _, f := range fields() {
		byKey[f.key] = f
	}
	v := reflect.ValueOf(&c).Elem()
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, val := root.Content[i], root.Content[i+1]
		place := fmt.Sprintf("%s:%d", path, k.Line)
		f, ok := byKey[k.Value]
		if !ok {
			return c, nil, fmt.Errorf("%s: unknown key %q%s", place, k.Value, suggest(k.Value))
		}
		if prev, dup := origin[k.Value]; dup {
			return c, nil, fmt.Errorf("%s: key %q repeated (first at %s)", place, k.Value, prev)
		}
		if err := val.Decode(v.Field(f.index).Addr().Interface()); err != nil {
			return c, nil, fmt.Errorf("%s: %s: %s", place, k.Value, typeError(err))
		}
		origin[k.Value] = place
	}
	return c, origin, nil
}

// typeError shortens the YAML decoder's message ("yaml: unmarshal errors:
// line 3: cannot unmarshal !!str `x` into int") to what is wrong.
func typeError(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg := te.Errors[0]
		if i := strings.Index(msg, ": "); strings.HasPrefix(msg, "line ") && i > 0 {
			msg = msg[i+2:]
		}
		return msg
	}
	return err.Error()
}

func suggest(key string) string {
	norm := strings.ReplaceAll(strings.ToLower(key), "-", "_")
	for _, f := range fields() {
		if f.key == norm {
			return fmt.Sprintf(" (did you mean %q?)", f.key)
		}
	}
	return ""
}

func (c *Config) validate(origin map[string]string) error {
	at := func(key string) string {
		if o, ok := origin[key]; ok {
			return o + ": " + key
		}
		return "default " + key
	}
	oneOf := func(key, v string, allowed ...string) error {
		for _, a := range allowed {
			if v == a {
				return nil
			}
		}
		return fmt.Errorf("%s: %q is not one of %s", at(key), v, strings.Join(allowed, ", "))
	}
	var errs []error
	errs = append(errs,
		oneOf("register", c.Register, "auto", "tdx", "tpm", "software"),
		oneOf("log_full", c.LogFull, "gap", "stop"),
		oneOf("backend", c.Backend, "auto", "lsm", "tracepoint"),
		oneOf("export_format", c.ExportFormat, "tsem", "ecs"),
		oneOf("hash", c.Hash, "sha256", "sha384", "sha512"),
		oneOf("dialect", c.Dialect, "invariant", "tsem"),
		oneOf("model_key", c.ModelKey, "name", "image"),
	)
	if c.RuntimeRoot == "" || !filepath.IsAbs(c.RuntimeRoot) {
		errs = append(errs, fmt.Errorf("%s: %q is not an absolute path", at("runtime_root"), c.RuntimeRoot))
	}
	if c.Socket == "" || !filepath.IsAbs(c.Socket) {
		errs = append(errs, fmt.Errorf("%s: %q is not an absolute path", at("socket"), c.Socket))
	}
	if c.MetricsAddr != "" {
		if host, _, err := net.SplitHostPort(c.MetricsAddr); err != nil || host == "" {
			errs = append(errs, fmt.Errorf("%s: %q is not host:port (127.0.0.1:9476 for this node only, 0.0.0.0:9476 for every interface)", at("metrics_addr"), c.MetricsAddr))
		}
	}
	// PCR 0 holds the firmware's measurements, and to the register code
	// 0 means the default (23): refuse it rather than extend another PCR.
	if c.PCR < 1 || c.PCR > 23 {
		errs = append(errs, fmt.Errorf("%s: %d is not an application's PCR index (1 to 23; PCR 0 is the firmware's)", at("pcr"), c.PCR))
	}
	if err := bpf.CheckRingBufferBytes(int64(c.RingBufferSize)); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", at("ring_buffer_size"), err))
	}
	if n := c.ExportMaxSize; n != 0 && (n < MinExportMaxSize || n > MaxExportMaxSize) {
		errs = append(errs, fmt.Errorf("%s: %d is not 0 (never rotate) or %d to %d bytes", at("export_max_size"), n, MinExportMaxSize, MaxExportMaxSize))
	}
	if n := c.ExportMaxFiles; n < 0 || n > MaxExportMaxFiles {
		errs = append(errs, fmt.Errorf("%s: %d is not 0 to %d", at("export_max_files"), n, MaxExportMaxFiles))
	}
	if d := c.ExportFlushInterval; d < 10*time.Millisecond || d > time.Minute {
		errs = append(errs, fmt.Errorf("%s: %v is not 10ms to 1m", at("export_flush_interval"), d))
	}
	if c.ContainerResync < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("%s: %v is shorter than 100ms", at("container_resync"), c.ContainerResync))
	}
	for _, p := range c.ContainerPseudonyms {
		if !filepath.IsAbs(p) || strings.ContainsRune(p, 0) {
			errs = append(errs, fmt.Errorf("%s: %q is not an absolute path", at("container_pseudonyms"), p))
		}
	}
	if c.LearnInstances < 0 || c.LearnPeriod < 0 {
		errs = append(errs, fmt.Errorf("%s, %s: must not be negative", at("learn_instances"), at("learn_period")))
	}
	if (c.LearnInstances > 0 || c.LearnPeriod > 0) && (c.ModelKey != "image" || c.ModelDir == "") {
		errs = append(errs, fmt.Errorf("%s, %s: learning models per image needs %s: image and a model_dir", at("learn_instances"), at("learn_period"), at("model_key")))
	}
	if c.CgroupRoot == "" {
		errs = append(errs, fmt.Errorf("%s: empty", at("cgroup_root")))
	}
	return errors.Join(errs...)
}

// YAML returns the configuration as a config file, every key present.
func (c Config) YAML() []byte {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	enc.Encode(c)
	enc.Close()
	return buf.Bytes()
}
