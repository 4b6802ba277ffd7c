package model

import (
	"errors"
	"fmt"

	"github.com/vigil-tsem/vigil/events"
)

// ErrUnknownDialect is returned by ParseDialect for a name it does not
// know.
var ErrUnknownDialect = errors.New("unknown coefficient dialect")

// Dialect says how a coefficient hashes the values of a description that
// the kernel chooses afresh at every mount.
type Dialect uint8

const (
	// DialectTSEM hashes every value as the TSEM kernel does: the
	// coefficients of the kernel's reference data.
	DialectTSEM Dialect = iota
	// DialectInvariant hashes per-mount values as the kernel hashes
	// tmpfs's s_uuid: as zeros. Every s_uuid a filesystem draws at random
	// when it is mounted (tmpfs, overlayfs, and sysfs and cgroup, which
	// are kernfs) is 16 zero bytes, and an anonymous device number (major
	// 0, a minor allocated at mount time: overlayfs, tmpfs, proc, mqueue,
	// devpts, btrfs subvolumes, NFS...) is hashed as no device, as the
	// kernel hashes a dev of 0:0. A model learned from one instance of a
	// container then holds in the next one, whose filesystems are new
	// mounts. Descriptions are unchanged: they keep what the kernel
	// printed.
	DialectInvariant
)

// Dialects lists the dialects by name, for flags and errors.
const Dialects = "tsem or invariant"

func (d Dialect) String() string {
	switch d {
	case DialectTSEM:
		return "tsem"
	case DialectInvariant:
		return "invariant"
	}
	return fmt.Sprintf("dialect(%d)", uint8(d))
}

// ParseDialect parses a dialect name: "tsem" or "invariant".
func ParseDialect(s string) (Dialect, error) {
	switch s {
	case "tsem":
		return DialectTSEM, nil
	case "invariant":
		return DialectInvariant, nil
	}
	return 0, fmt.Errorf("%w %q (want %s)", ErrUnknownDialect, s, Dialects)
}

// The s_magic of filesystems that draw a random s_uuid at every mount:
// tmpfs (and devtmpfs) always; overlayfs and kernfs (sysfs, cgroup,
// cgroup2) from Linux 6.6 on. On earlier kernels the latter have a zero
// s_uuid, which zeroing leaves as it is.
const (
	tmpfsMagic   = 0x01021994
	overlayMagic = 0x794c7630
	sysfsMagic   = 0x62656572
	cgroupMagic  = 0x0027e0eb
	cgroup2Magic = 0x63677270
)

// perMountUUID reports whether the invariant dialect hashes s_uuid of a
// filesystem of s_magic magic as zeros.
func perMountUUID(magic uint32) bool {
	switch magic {
	case tmpfsMagic, overlayMagic, sysfsMagic, cgroupMagic, cgroup2Magic:
		return true
	}
	return false
}

// Mapping maps the events of one namespace to coefficients and task ids:
// its hash, its dialect and its pseudonyms. The zero Mapping is the TSEM
// kernel's, SHA-256, without pseudonyms.
type Mapping struct {
	Hash    Hash
	Dialect Dialect
	// IsPseudonym (may be nil) reports whether a file's pathname is a
	// pseudonym of the model; such a file's digest is replaced by H("").
	IsPseudonym func(pathname string) bool
}

// Coefficient returns the coefficient of e; see EventCoefficientHash,
// which is Coefficient of the TSEM dialect.
func (mp Mapping) Coefficient(e *events.Event) (Coefficient, error) {
	m := mapper{h: mp.Hash, dialect: mp.Dialect}
	var stack [1024]byte
	cell, ok := m.appendCell(stack[:0], e, mp.IsPseudonym)
	if !ok {
		return Coefficient{}, fmt.Errorf("compute coefficient of %s: %w", e.Header.Type, ErrNoCellLayout)
	}
	c := m.coefficient(e.Header.Type, &e.Header.PTaskID, &e.Header.TaskID, &e.COE, cell)
	if m.bad {
		return Coefficient{}, fmt.Errorf("compute %s coefficient of %s: %w", mp.Hash, e.Header.Type, ErrHashMismatch)
	}
	return c, nil
}

// TaskID returns the task id a task gets when it executes file; see
// TaskIDHash, which is TaskID of the TSEM dialect. The dialect applies to
// the file cell: in the invariant one, a program run from an overlayfs
// root gets the same task id in every instance of its container.
func (mp Mapping) TaskID(parent Coefficient, file *events.File) Coefficient {
	m := mapper{h: mp.Hash, dialect: mp.Dialect}
	var stack [512]byte
	cell := m.appendFile(stack[:0], file, nil)
	zero := mp.Hash.Zero()
	return m.coefficient(execEvent, &parent, &zero, &events.COE{}, cell)
}
