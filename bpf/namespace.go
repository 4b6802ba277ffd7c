package bpf

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// Namespaces: their kernel configuration (ns_config) and its epoch.

// Mode is the state of a modeling namespace as the kernel sees it.
type Mode uint32

// Modes. The kernel only acts on ModeEnforce; ModeSeal is kept for
// userspace and for Lost/records bookkeeping.
const (
	ModeLearn   Mode = 0
	ModeSeal    Mode = 1
	ModeEnforce Mode = 2
)

func (m Mode) String() string {
	switch m {
	case ModeLearn:
		return "learn"
	case ModeSeal:
		return "seal"
	case ModeEnforce:
		return "enforce"
	}
	return fmt.Sprintf("mode(%d)", uint32(m))
}

// NamespaceConfig is the kernel side configuration of a namespace.
type NamespaceConfig struct {
	Mode Mode
	// Model enables modeling of namespace 0 (the host); ignored for others,
	// which are modeled as soon as a task is enrolled in them.
	Model bool
	// NoCapable skips capable events (the hottest hook).
	NoCapable bool
	// FailClosed denies events of an enforcing namespace whose record
	// cannot be delivered (ring buffer full), instead of letting them pass
	// (they are counted as lost either way).
	FailClosed bool
	// NoRepeatCache turns off the kernel's repeat cache for the namespace:
	// every event then makes its own record. With the cache on (the
	// default; file_open only for now), an event identical to one already
	// recorded in the current repeat window (Options.RepeatWindow; same
	// task identity, COE, open flags, file object, owner, mode and
	// content stamps) only counts in the kernel, and Run delivers the
	// counts as *RepeatCount records naming the record they repeat
	// (Header.RepeatID) when the window ends. Model counts stay exact; a
	// stream of every record sees one record per key and window plus its
	// count. A path that changes without its file changing (a parent
	// directory renamed) is seen in the next window. In an enforcing
	// namespace only events the kernel allowed are cached; a denial
	// always makes a record.
	NoRepeatCache bool
}

// Flags of struct vg_ns_cfg (enum vg_ns_flags).
const (
	nsModel      = 1 << 0
	nsNoCapable  = 1 << 1
	nsFailClosed = 1 << 2
	nsNoRepeat   = 1 << 3
)

type nsValue struct {
	Mode  uint32
	Flags uint32
	Gen   uint32
	_     uint32
}

// SetNamespace sets the kernel configuration of namespace ns. Enforce on
// the tracepoint backend returns ErrObserveOnly.
func (c *Capture) SetNamespace(ns uint64, cfg NamespaceConfig) error {
	if cfg.Mode == ModeEnforce && !c.CanEnforce() {
		return fmt.Errorf("set namespace %d: %w", ns, ErrObserveOnly)
	}
	if cfg.Mode > ModeEnforce {
		return fmt.Errorf("set namespace %d: unknown mode %d", ns, cfg.Mode)
	}
	c.nsMu.Lock()
	defer c.nsMu.Unlock()
	return c.setNamespaceLocked(ns, cfg)
}

func (c *Capture) setNamespaceLocked(ns uint64, cfg NamespaceConfig) error {
	c.nsGen++
	v := nsValue{Mode: uint32(cfg.Mode), Gen: c.nsGen}
	if cfg.Model {
		v.Flags |= nsModel
	}
	if cfg.NoCapable {
		v.Flags |= nsNoCapable
	}
	if cfg.FailClosed {
		v.Flags |= nsFailClosed
	}
	if cfg.NoRepeatCache {
		v.Flags |= nsNoRepeat
	}
	if err := c.objs.NSConfig.Update(ns, v, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("set namespace %d: %w", ns, err)
	}
	if err := c.bumpEpoch(); err != nil {
		return fmt.Errorf("set namespace %d: %w", ns, err)
	}
	return nil
}

// bumpEpoch makes every task refresh its copy of its namespace's
// configuration at its next event; call it after changing ns_config,
// with nsMu held.
func (c *Capture) bumpEpoch() error {
	c.cfgEpoch++
	if c.cfgEpoch == 0 {
		c.cfgEpoch = 1
	}
	if err := c.objs.CfgEpochNow.Update(uint32(0), c.cfgEpoch, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("bump configuration epoch: %w", err)
	}
	return nil
}

// SetMode changes only the mode of namespace ns.
func (c *Capture) SetMode(ns uint64, m Mode) error {
	if m == ModeEnforce && !c.CanEnforce() {
		return fmt.Errorf("set namespace %d: %w", ns, ErrObserveOnly)
	}
	c.nsMu.Lock()
	defer c.nsMu.Unlock()
	cfg, err := c.namespaceLocked(ns)
	if err != nil {
		return fmt.Errorf("set mode of namespace %d: %w", ns, err)
	}
	cfg.Mode = m
	return c.setNamespaceLocked(ns, cfg)
}

// namespaceLocked reads the configuration of ns (zero when unset).
func (c *Capture) namespaceLocked(ns uint64) (NamespaceConfig, error) {
	var v nsValue
	if err := c.objs.NSConfig.Lookup(ns, &v); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return NamespaceConfig{}, err
	}
	return NamespaceConfig{
		Mode:          Mode(v.Mode),
		Model:         v.Flags&nsModel != 0,
		NoCapable:     v.Flags&nsNoCapable != 0,
		FailClosed:    v.Flags&nsFailClosed != 0,
		NoRepeatCache: v.Flags&nsNoRepeat != 0,
	}, nil
}

// bumpGen makes the kernel forget the enforcement decisions it cached for
// ns (the allow set shrank).
func (c *Capture) bumpGen(ns uint64) error {
	c.nsMu.Lock()
	defer c.nsMu.Unlock()
	var v nsValue
	if err := c.objs.NSConfig.Lookup(ns, &v); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil
		}
		return err
	}
	c.nsGen++
	v.Gen = c.nsGen
	if err := c.objs.NSConfig.Update(ns, v, ebpf.UpdateExist); err != nil {
		return err
	}
	return c.bumpEpoch()
}

// DropNamespace removes the configuration, the allow set and the
// created-file tags of ns.
func (c *Capture) DropNamespace(ns uint64) error {
	c.nsMu.Lock()
	err := c.objs.NSConfig.Delete(ns)
	if err == nil {
		err = c.bumpEpoch()
	}
	c.nsMu.Unlock()
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("drop namespace %d: %w", ns, err)
	}
	if err := c.ClearAllow(ns); err != nil {
		return err
	}
	return c.dropCreated(ns)
}
