package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func write(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultsValid(t *testing.T) {
	fl := BindFlags(pflag.NewFlagSet("agent", pflag.ContinueOnError))
	c, err := fl.Resolve("")
	if err != nil {
		t.Fatalf("Resolve(no file, no flags) = %v; the defaults must run", err)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Errorf("Resolve(no file, no flags) = %+v; want Default() %+v", c, Default())
	}
}

func TestLoadFull(t *testing.T) {
	c, err := Load(filepath.Join("testdata", "full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Socket: "/run/vigil/other.sock", MetricsAddr: "0.0.0.0:9999", Log: "/var/log/vigil.log",
		Register: "tpm", TDXRoot: "/tmp/rtmr", TPM: "/dev/tpm0", PCR: 16, LogFull: "stop", Backend: "tracepoint",
		RingBufferSize: 1 << 22, Export: "-", ExportFormat: "ecs", ExportForensicsOnly: true,
		ExportMaxSize: 1048576, ExportMaxFiles: 2, ExportFlushInterval: 250 * time.Millisecond, HostNamespace: true, HostEnforce: true, CgroupRoot: "/host/sys/fs/cgroup",
		ContainerResync: 30 * time.Second, ModelDir: "/models", ModelKey: "image", RuntimeRoot: "/host",
		LearnInstances: 2, LearnPeriod: 10 * time.Minute, Hash: "sha384", Capable: false,
		Enforce: true, FailClosed: true, Dialect: "tsem", ContainerPseudonyms: []string{"/etc/hostname", "/srv/app/instance.id"},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Load(full.yaml) =\n%+v\nwant\n%+v", c, want)
	}
	// The fixture must set every key, so this test covers them all.
	data, _ := os.ReadFile(filepath.Join("testdata", "full.yaml"))
	for _, k := range Keys() {
		if !strings.Contains(string(data), "\n"+k+":") && !strings.HasPrefix(string(data), k+":") {
			t.Errorf("testdata/full.yaml does not set %s", k)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    []string // all must appear in the error
	}{
		{"unknown key", "socket: /run/x.sock\nmetrics_adr: 127.0.0.1:1\n", []string{"config.yaml:2:", `unknown key "metrics_adr"`}},
		{"flag spelling", "metrics-addr: 127.0.0.1:1\n", []string{"config.yaml:1:", `did you mean "metrics_addr"?`}},
		{"repeated key", "pcr: 1\nhash: sha256\npcr: 2\n", []string{"config.yaml:3:", `"pcr" repeated`, "config.yaml:1"}},
		{"wrong type", "backend: lsm\npcr: twenty\n", []string{"config.yaml:2:", "pcr:", "cannot unmarshal"}},
		{"bool", "enforce: maybe\n", []string{"config.yaml:1:", "enforce:"}},
		{"duration", "container_resync: 10 seconds\n", []string{"config.yaml:1:", "container_resync:"}},
		{"bad enum", "\n\nregister: rtmr\n", []string{"config.yaml:3: register", `"rtmr" is not one of auto, tdx, tpm, software`}},
		{"bad export format", "export_format: json\n", []string{"config.yaml:1: export_format"}},
		{"bad model key", "model_key: digest\n", []string{"config.yaml:1: model_key", `"digest" is not one of name, image`}},
		{"relative runtime root", "runtime_root: host\n", []string{"config.yaml:1: runtime_root", "absolute"}},
		{"learning per image by name", "learn_instances: 2\n", []string{"config.yaml:1: learn_instances", "default model_key: image"}},
		{"negative learn period", "model_key: image\nlearn_period: -1s\n", []string{"config.yaml:2: learn_period", "negative"}},
		{"metrics on every interface by accident", "metrics_addr: \":9476\"\n", []string{"config.yaml:1: metrics_addr", "host:port"}},
		{"relative socket", "socket: vigil.sock\n", []string{"config.yaml:1: socket", "absolute"}},
		{"bad dialect", "dialect: vigil\n", []string{"config.yaml:1: dialect", `"vigil" is not one of invariant, tsem`}},
		{"relative pseudonym", "container_pseudonyms: [/etc/hosts, etc/hostname]\n", []string{"config.yaml:1: container_pseudonyms", `"etc/hostname" is not an absolute path`}},
		{"pseudonyms not a list", "container_pseudonyms: /etc/hosts\n", []string{"config.yaml:1:", "container_pseudonyms:"}},
		{"ring buffer", "ring_buffer_size: 1000\n", []string{"config.yaml:1: ring_buffer_size", "power of two"}},
		{"ring buffer of 4 GiB", "ring_buffer_size: 4294967296\n", []string{"config.yaml:1: ring_buffer_size", "4294967296 is more than 1073741824"}},
		{"ring buffer of 2 GiB", "ring_buffer_size: 2147483648\n", []string{"config.yaml:1: ring_buffer_size", "more than"}},
		{"ring buffer negative", "ring_buffer_size: -4096\n", []string{"config.yaml:1: ring_buffer_size", "power of two"}},
		{"ring buffer above 64 bits", "ring_buffer_size: 18446744073709551616\n", []string{"config.yaml:1: ring_buffer_size"}},
		{"pcr range", "pcr: 24\n", []string{"config.yaml:1: pcr"}},
		{"export max size too small", "export_max_size: 20\n", []string{"config.yaml:1: export_max_size", "65536"}},
		{"export max size negative", "export_max_size: -1\n", []string{"config.yaml:1: export_max_size"}},
		{"export max files", "\nexport_max_files: 100000\n", []string{"config.yaml:2: export_max_files", "0 to 10000"}},
		{"export max files negative", "export_max_files: -1\n", []string{"config.yaml:1: export_max_files"}},
		{"export flush interval zero", "export_flush_interval: 0s\n", []string{"config.yaml:1: export_flush_interval", "10ms to 1m"}},
		{"export flush interval long", "export_flush_interval: 2h\n", []string{"config.yaml:1: export_flush_interval"}},
		{"pcr 0", "pcr: 0\n", []string{"config.yaml:1: pcr", "PCR 0 is the firmware's"}},
		{"pcr beyond 32 bits", "pcr: 4294967319\n", []string{"config.yaml:1: pcr"}},
		{"export max files beyond int", "export_max_files: 9223372036854775808\n", []string{"config.yaml:1: export_max_files"}},
		{"syntax", "socket: [unclosed\n", []string{"config.yaml", "line"}},
		{"not a mapping", "- socket\n", []string{"config.yaml:1:", "mapping"}},
		{"nested value", "socket:\n  path: /x\n", []string{"config.yaml:1:", "socket:"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(write(t, tc.content))
			if err == nil {
				t.Fatalf("Load(%q) = nil; want an error", tc.content)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Load(%q) = %v; want it to contain %q", tc.content, err, w)
				}
			}
		})
	}
	if _, err := Load(filepath.Join(t.TempDir(), "absent.yaml")); err == nil || !strings.Contains(err.Error(), "absent.yaml") {
		t.Errorf("Load(absent) = %v; want an error naming the file", err)
	}
}

func TestEmptyFileIsDefaults(t *testing.T) {
	for _, content := range []string{"", "# nothing here\n"} {
		c, err := Load(write(t, content))
		if err != nil || !reflect.DeepEqual(c, Default()) {
			t.Errorf("Load(%q) = %+v, %v; want the defaults", content, c, err)
		}
	}
}

func TestEveryKeyIsAFlag(t *testing.T) {
	fs := pflag.NewFlagSet("agent", pflag.ContinueOnError)
	BindFlags(fs)
	n := 0
	fs.VisitAll(func(*pflag.Flag) { n++ })
	for _, k := range Keys() {
		f := fs.Lookup(strings.ReplaceAll(k, "_", "-"))
		if f == nil {
			t.Errorf("key %s has no flag --%s", k, strings.ReplaceAll(k, "_", "-"))
			continue
		}
		if f.Usage == "" {
			t.Errorf("flag --%s has no usage text", f.Name)
		}
	}
	if n != len(Keys()) {
		t.Errorf("%d flags for %d keys", n, len(Keys()))
	}
	if reflect.TypeFor[Config]().NumField() != len(Keys()) {
		t.Errorf("Keys() misses fields")
	}
}

func TestFlagsOverrideFile(t *testing.T) {
	path := write(t, "backend: lsm\nhash: sha512\nenforce: true\n")
	tests := []struct {
		name string
		args []string
		want func(c *Config)
	}{
		{"file only", nil, func(c *Config) { c.Backend, c.Hash, c.Enforce = "lsm", "sha512", true }},
		{"flag beats file", []string{"--backend=tracepoint", "--enforce=false"},
			func(c *Config) { c.Backend, c.Hash, c.Enforce = "tracepoint", "sha512", false }},
		{"list flag repeated", []string{"--container-pseudonyms", "/etc/a", "--container-pseudonyms=/etc/b,/etc/c"},
			func(c *Config) {
				c.Backend, c.Hash, c.Enforce = "lsm", "sha512", true
				c.ContainerPseudonyms = []string{"/etc/a", "/etc/b", "/etc/c"}
			}},
		{"empty list flag", []string{"--container-pseudonyms="},
			func(c *Config) {
				c.Backend, c.Hash, c.Enforce = "lsm", "sha512", true
				c.ContainerPseudonyms = []string{}
			}},
		{"flag for a key the file omits", []string{"--metrics-addr", "127.0.0.1:1", "--container-resync", "2s"},
			func(c *Config) {
				c.Backend, c.Hash, c.Enforce = "lsm", "sha512", true
				c.MetricsAddr, c.ContainerResync = "127.0.0.1:1", 2*time.Second
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := pflag.NewFlagSet("agent", pflag.ContinueOnError)
			fl := BindFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			got, err := fl.Resolve(path)
			if err != nil {
				t.Fatal(err)
			}
			want := Default()
			tc.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Resolve(%v) =\n%+v\nwant\n%+v", tc.args, got, want)
			}
		})
	}
	fs := pflag.NewFlagSet("agent", pflag.ContinueOnError)
	fl := BindFlags(fs)
	fs.Parse([]string{"--export-format", "xml"})
	if _, err := fl.Resolve(path); err == nil || !strings.Contains(err.Error(), "--export-format: export_format") {
		t.Errorf("Resolve(--export-format xml) = %v; want an error naming the flag", err)
	}
}

// TestNumericFlagsValidated checks that out-of-range numbers given as
// flags are refused with the flag's name, not cast (a 4 GiB ring buffer
// once became 0, the default, through uint32).
func TestNumericFlagsValidated(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--ring-buffer-size", "4294967296"}, "--ring-buffer-size: ring_buffer_size: 4294967296 is more than"},
		{[]string{"--ring-buffer-size", "4294971392"}, "--ring-buffer-size: ring_buffer_size"},
		{[]string{"--ring-buffer-size", "12288"}, "is not a power of two"},
		{[]string{"--pcr", "0"}, "--pcr: pcr: 0 is not"},
		{[]string{"--export-max-files", "-1"}, "--export-max-files: export_max_files: -1 is not 0 to"},
	} {
		fs := pflag.NewFlagSet("agent", pflag.ContinueOnError)
		fl := BindFlags(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatalf("parse %v: %v", tc.args, err)
		}
		if _, err := fl.Resolve(""); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Resolve(%v) = %v; want an error containing %q", tc.args, err, tc.want)
		}
	}
	fs := pflag.NewFlagSet("agent", pflag.ContinueOnError)
	fl := BindFlags(fs)
	fs.Parse([]string{"--ring-buffer-size", "1073741824"})
	if c, err := fl.Resolve(""); err != nil || c.RingBufferSize != 1<<30 {
		t.Errorf("Resolve(--ring-buffer-size 1073741824) = %d, %v; want 1 GiB accepted", c.RingBufferSize, err)
	}
}

func TestChanged(t *testing.T) {
	a, b := Default(), Default()
	if got := Changed(a, b); len(got) != 0 {
		t.Errorf("Changed(default, default) = %v; want none", got)
	}
	b.Backend, b.ContainerResync, b.Enforce = "lsm", time.Minute, true
	b.ContainerPseudonyms = append([]string(nil), b.ContainerPseudonyms[1:]...)
	if got, want := Changed(a, b), []string{"backend", "container_resync", "enforce", "container_pseudonyms"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Changed = %v; want %v", got, want)
	}
}

func TestYAMLRoundTrip(t *testing.T) {
	c := Default()
	c.Export, c.ContainerResync, c.Enforce = "/var/log/vigil-events.json", 3*time.Second, true
	got, err := Load(write(t, string(c.YAML())))
	if err != nil {
		t.Fatalf("Load(YAML()) = %v\n%s", err, c.YAML())
	}
	if !reflect.DeepEqual(got, c) {
		t.Errorf("Load(YAML()) = %+v; want %+v", got, c)
	}
}

func FuzzDecode(f *testing.F) {
	for _, name := range []string{"full.yaml"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("pcr: 1\npcr: 2\n"))
	f.Add([]byte("- a\n"))
	f.Add([]byte("socket: &a /x\nlog: *a\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, origin, err := decode("fuzz.yaml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.yaml") {
				t.Fatalf("decode error %q does not name the file", err)
			}
			return
		}
		for k, o := range origin {
			if !strings.HasPrefix(o, "fuzz.yaml:") {
				t.Fatalf("origin of %s = %q; want fuzz.yaml:LINE", k, o)
			}
		}
		_ = c.validate(origin)
	})
}

// TestContainerPseudonyms checks the default list and that a file may
// empty it.
func TestContainerPseudonyms(t *testing.T) {
	want := []string{"/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/run/.containerenv", "/.dockerenv"}
	if got := Default().ContainerPseudonyms; !reflect.DeepEqual(got, want) {
		t.Errorf("default container_pseudonyms = %q; want %q", got, want)
	}
	c, err := Load(write(t, "container_pseudonyms: []\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.ContainerPseudonyms) != 0 {
		t.Errorf("container_pseudonyms: [] gives %q; want none", c.ContainerPseudonyms)
	}
	// Default returns a copy: changing one does not change the next.
	d := Default()
	d.ContainerPseudonyms[0] = "/x"
	if Default().ContainerPseudonyms[0] != want[0] {
		t.Error("Default shares its pseudonym list")
	}
}
