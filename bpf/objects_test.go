package bpf

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// tagged returns the ebpf tags of the fields of struct v whose type is typ.
func tagged(v any, typ reflect.Type) []string {
	var out []string
	t := reflect.TypeOf(v)
	for i := range t.NumField() {
		if f := t.Field(i); f.Type == typ {
			out = append(out, f.Tag.Get("ebpf"))
		}
	}
	return out
}

// TestSpecBindings: every name the loader binds is in the objects (a
// kernel-free version of the check loadObjects makes), and every other
// program is one attachAll can attach.
func TestSpecBindings(t *testing.T) {
	progType := reflect.TypeFor[*ebpf.Program]()
	for _, b := range []Backend{BackendLSM, BackendTracepoint} {
		t.Run(string(b), func(t *testing.T) {
			spec, err := collectionSpec(b)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := specsOf(spec); err != nil {
				t.Errorf("specsOf = %v", err)
			}
			run := tagged(sharedObjects{}, progType)
			want := []any{sharedObjects{}}
			if b == BackendTracepoint {
				run = append(run, tagged(tracepointObjects{}, progType)...)
				want = append(want, tracepointObjects{})
			}
			for _, v := range want {
				typ := reflect.TypeOf(v)
				for i := range typ.NumField() {
					f := typ.Field(i)
					name := f.Tag.Get("ebpf")
					var ok bool
					switch f.Type {
					case reflect.TypeFor[*ebpf.Map]():
						ok = spec.Maps[name] != nil
					case progType:
						ok = spec.Programs[name] != nil
					case reflect.TypeFor[*ebpf.Variable]():
						ok = spec.Variables[name] != nil
					}
					if !ok {
						t.Errorf("%s.%s: %q not in the %s object", typ.Name(), f.Name, name, b)
					}
				}
			}
			for name, ps := range spec.Programs {
				if slices.Contains(run, name) {
					continue
				}
				switch ps.Type {
				case ebpf.LSM, ebpf.RawTracepoint, ebpf.TracePoint:
				default:
					t.Errorf("program %s (%s): type %s is neither attached nor bound to be run", name, ps.SectionName, ps.Type)
				}
			}
		})
	}
}

// TestSpecsOfMissing: a spec without a map or variable Open sets fails
// with its name.
func TestSpecsOfMissing(t *testing.T) {
	for _, name := range []string{"events", "allow", "repeats", "wakeup_bytes", "host_mnt_inum"} {
		t.Run(name, func(t *testing.T) {
			spec, err := collectionSpec(BackendTracepoint)
			if err != nil {
				t.Fatal(err)
			}
			delete(spec.Maps, name)
			delete(spec.Variables, name)
			if _, err := specsOf(spec); err == nil || !strings.Contains(err.Error(), name) {
				t.Errorf("specsOf(spec without %s) = %v; want an error naming it", name, err)
			}
		})
	}
}

// TestLoadObjectsMissing: an object without a program the loader runs
// fails to load with its name, instead of a Capture without it.
func TestLoadObjectsMissing(t *testing.T) {
	openCapture(t, BackendTracepoint) // skips where the kernel refuses
	for _, name := range []string{"vg_collect", "vg_find_fput"} {
		t.Run(name, func(t *testing.T) {
			spec, err := collectionSpec(BackendTracepoint)
			if err != nil {
				t.Fatal(err)
			}
			delete(spec.Programs, name)
			o, err := loadObjects(BackendTracepoint, spec, btf.NewCache())
			if err == nil {
				o.close()
				t.Fatalf("loadObjects(object without %s) = nil error", name)
			}
			if !strings.Contains(err.Error(), name) {
				t.Errorf("loadObjects(object without %s) = %v; want an error naming it", name, err)
			}
		})
	}
}
