package bpf

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// Loading and attaching the programs (see Open).

// probeLSM says why the BPF LSM programs surely cannot be used here, or
// nil when they may: bpf is missing from the active LSM list (when
// securityfs shows it), or the kernel refuses to load a minimal LSM
// program (as this project's CI hosts do).
func probeLSM(securityDir string, cache *btf.Cache) error {
	if securityDir == "" {
		securityDir = "/sys/kernel/security"
	}
	list := filepath.Join(securityDir, "lsm")
	if b, err := os.ReadFile(list); err == nil && !slices.Contains(strings.Split(strings.TrimSpace(string(b)), ","), "bpf") {
		return fmt.Errorf("%w: %s is %q", ErrNoBPFLSM, list, strings.TrimSpace(string(b)))
	}
	// A collection, not a lone program, so that the kernel's BTF is
	// decoded into the cache the real load uses.
	coll, err := ebpf.NewCollectionWithOptions(&ebpf.CollectionSpec{Programs: map[string]*ebpf.ProgramSpec{
		"vg_probe": {
			Type: ebpf.LSM, AttachType: ebpf.AttachLSMMac, AttachTo: "file_open", License: "GPL",
			Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
		},
	}}, ebpf.CollectionOptions{Cache: cache})
	if err != nil {
		return fmt.Errorf("%w: load a minimal lsm program: %w", ErrNoBPFLSM, err)
	}
	coll.Close()
	return nil
}

// attachAll attaches hooks (by name; spec gives their sections) all at
// once: attaching and, above all, detaching a tracepoint wait for the
// kernel (the detach for an RCU grace period), so one at a time adds up
// to most of a short `vigil run`. On error it detaches what it attached.
func attachAll(spec *ebpf.CollectionSpec, hooks map[string]*ebpf.Program) ([]link.Link, error) {
	names := slices.Sorted(maps.Keys(hooks))
	links := make([]link.Link, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() {
			ps := spec.Programs[name]
			if ps == nil {
				errs[i] = fmt.Errorf("program %s: not in the object's spec", name)
				return
			}
			links[i], errs[i] = attach(ps, hooks[name])
			if errs[i] != nil {
				errs[i] = fmt.Errorf("program %s (%s): %w", name, ps.SectionName, errs[i])
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		closeLinks(links)
		return nil, err
	}
	return links, nil
}

// closeLinks detaches links all at once (see attachAll).
func closeLinks(links []link.Link) error {
	errs := make([]error, len(links))
	var wg sync.WaitGroup
	for i, l := range links {
		if l == nil {
			continue
		}
		wg.Go(func() { errs[i] = l.Close() })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func attach(ps *ebpf.ProgramSpec, p *ebpf.Program) (link.Link, error) {
	switch ps.Type {
	case ebpf.LSM:
		return link.AttachLSM(link.LSMOptions{Program: p})
	case ebpf.RawTracepoint:
		// "raw_tracepoint/<name>"
		name, ok := strings.CutPrefix(ps.SectionName, "raw_tracepoint/")
		if !ok || name == "" {
			return nil, fmt.Errorf("section %q: want raw_tracepoint/NAME", ps.SectionName)
		}
		return link.AttachRawTracepoint(link.RawTracepointOptions{Name: name, Program: p})
	case ebpf.TracePoint:
		// "tracepoint/<group>/<name>"
		parts := strings.Split(ps.SectionName, "/")
		if len(parts) != 3 {
			return nil, fmt.Errorf("section %q: want tracepoint/GROUP/NAME", ps.SectionName)
		}
		return link.Tracepoint(parts[1], parts[2], p, nil)
	}
	return nil, fmt.Errorf("program type %s not attachable here", ps.Type)
}

// ensureTracefs mounts tracefs when neither usual place has it.
func ensureTracefs(dir string) error {
	for _, p := range []string{"/sys/kernel/tracing/events", "/sys/kernel/debug/tracing/events"} {
		if _, err := os.Stat(p); err == nil {
			return nil
		}
	}
	if dir == "" {
		dir = "/sys/kernel/tracing"
	}
	if err := unix.Mount("tracefs", dir, "tracefs", 0, ""); err != nil {
		return fmt.Errorf("mount tracefs at %s: %w", dir, err)
	}
	return nil
}
