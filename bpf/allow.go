package bpf

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

type allowKey struct {
	NS  uint64
	Key uint64
}

// Allow adds kernel allow keys (Key of the model's records) to the allow
// set of namespace ns. Fill it before SetMode(ns, ModeEnforce).
func (c *Capture) Allow(ns uint64, keys ...uint64) error {
	if len(keys) == 0 {
		return nil
	}
	ks := make([]allowKey, len(keys))
	vs := make([]uint8, len(keys))
	for i, k := range keys {
		ks[i] = allowKey{NS: ns, Key: k}
		vs[i] = 1
	}
	if _, err := c.objs.Allow.BatchUpdate(ks, vs, nil); err == nil {
		return nil
	} else if !errors.Is(err, ebpf.ErrNotSupported) {
		return fmt.Errorf("allow %d keys in namespace %d: %w", len(keys), ns, err)
	}
	for i := range ks {
		if err := c.objs.Allow.Update(ks[i], vs[i], ebpf.UpdateAny); err != nil {
			return fmt.Errorf("allow key %#x in namespace %d: %w", ks[i].Key, ns, err)
		}
	}
	return nil
}

// ClearAllow empties the allow set of namespace ns.
func (c *Capture) ClearAllow(ns uint64) error {
	dead, err := keysWhere(c.objs.Allow, func(k *allowKey, _ *uint8) bool { return k.NS == ns })
	if err != nil {
		return fmt.Errorf("clear allow set of namespace %d: %w", ns, err)
	}
	// Forget cached decisions first: from here on an event of ns is
	// checked against the allow set as it is being emptied.
	if err := c.bumpGen(ns); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("clear allow set of namespace %d: %w", ns, err)
	}
	if err := deleteKeys(c.objs.Allow, dead); err != nil {
		return fmt.Errorf("clear allow set of namespace %d: %w", ns, err)
	}
	return nil
}
