package model

import (
	"encoding/binary"
	"slices"

	"github.com/vigil-tsem/vigil/events"
)

// Extend returns H(measurement ‖ H(base ‖ c)): one step of TSEM's linear
// extension, the same for the measurement and the state. H is the hash
// whose length c has (SHA-256 for the zero Coefficient); a zero-length
// measurement or base stands for zero bytes of that length.
func Extend(measurement, base, c Coefficient) Coefficient {
	h, _ := c.Hash()
	return extend(h, &measurement, &base, &c)
}

func extend(h Hash, measurement, base, c *Coefficient) Coefficient {
	n := h.Size()
	var buf [2 * events.MaxDigestSize]byte
	copy(buf[:n], sized(h, base))
	copy(buf[n:2*n], sized(h, c))
	inner := h.Sum(buf[:2*n])
	copy(buf[:n], sized(h, measurement))
	copy(buf[n:2*n], inner.Bytes())
	return h.Sum(buf[:2*n])
}

// sized returns the bytes of d as a digest of h: zero bytes for the zero
// Coefficient.
func sized(h Hash, d *Coefficient) []byte {
	if d.Len() == 0 {
		return zeroDigest[:h.Size()]
	}
	return d.Bytes()
}

var zeroDigest [events.MaxDigestSize]byte

// initialValue is where both the measurement and the state start: the
// aggregate extended into a zero register.
func initialValue(h Hash, aggregate, base Coefficient) Coefficient {
	zero := h.Zero()
	return extend(h, &zero, &base, &aggregate)
}

// MeasurementOf returns the measurement of a namespace whose unique
// coefficients arrived in the given order: the aggregate, then each
// coefficient, extended into a zero register. A verifier uses it to
// recompute a namespace's measurement from a replayed log. The hash is the
// one of the aggregate's length (SHA-256 for a zero-length aggregate); see
// MeasurementOfHash.
func MeasurementOf(aggregate, base Coefficient, coefficients []Coefficient) Coefficient {
	h, _ := aggregate.Hash()
	return MeasurementOfHash(h, aggregate, base, coefficients)
}

// MeasurementOfHash is MeasurementOf in a namespace whose hash is h.
func MeasurementOfHash(h Hash, aggregate, base Coefficient, coefficients []Coefficient) Coefficient {
	m := initialValue(h, aggregate, base)
	for i := range coefficients {
		m = extend(h, &m, &base, &coefficients[i])
	}
	return m
}

// StateOf returns the state of a namespace holding the given unique
// coefficients: like MeasurementOf over the coefficients sorted bytewise,
// so it does not depend on the order in which they arrived.
func StateOf(aggregate, base Coefficient, coefficients []Coefficient) Coefficient {
	h, _ := aggregate.Hash()
	return StateOfHash(h, aggregate, base, coefficients)
}

// StateOfHash is StateOf in a namespace whose hash is h.
func StateOfHash(h Hash, aggregate, base Coefficient, coefficients []Coefficient) Coefficient {
	sorted := slices.Clone(coefficients)
	slices.SortFunc(sorted, func(a, b Coefficient) int { return a.Compare(&b) })
	return MeasurementOfHash(h, aggregate, base, sorted)
}

// PseudonymOf returns the SHA-256 pseudonym of a pathname; see
// PseudonymOfHash.
func PseudonymOf(pathname string) Coefficient { return PseudonymOfHash(SHA256, pathname) }

// PseudonymOfHash returns the pseudonym of a pathname in a namespace whose
// hash is h, H(u32 length ‖ pathname) with a little-endian length. A file
// whose pathname has a pseudonym in the model is hashed with the digest of
// empty content instead of its own, so files whose content legitimately
// changes (logs, caches) keep one coefficient.
func PseudonymOfHash(h Hash, pathname string) Coefficient {
	w := h.New()
	var n [4]byte
	binary.LittleEndian.PutUint32(n[:], uint32(len(pathname)))
	w.Write(n[:])
	w.Write([]byte(pathname))
	var b [events.MaxDigestSize]byte
	c, _ := events.MakeDigest(w.Sum(b[:0]))
	return c
}
