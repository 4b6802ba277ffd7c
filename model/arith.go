package model

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"slices"
)

// Extend returns H(measurement ‖ H(base ‖ c)) with H = SHA-256: one step of
// TSEM's linear extension, the same for the measurement and the state.
func Extend(measurement, base, c Coefficient) Coefficient {
	var buf [2 * len(Coefficient{})]byte
	copy(buf[:], base[:])
	copy(buf[len(base):], c[:])
	inner := sha256.Sum256(buf[:])
	copy(buf[:], measurement[:])
	copy(buf[len(measurement):], inner[:])
	return sha256.Sum256(buf[:])
}

// initialValue is where both the measurement and the state start: the
// aggregate extended into a zero register.
func initialValue(aggregate, base Coefficient) Coefficient {
	return Extend(Coefficient{}, base, aggregate)
}

// MeasurementOf returns the measurement of a namespace whose unique
// coefficients arrived in the given order: the aggregate, then each
// coefficient, extended into a zero register. A verifier uses it to
// recompute a namespace's measurement from a replayed log.
func MeasurementOf(aggregate, base Coefficient, coefficients []Coefficient) Coefficient {
	m := initialValue(aggregate, base)
	for _, c := range coefficients {
		m = Extend(m, base, c)
	}
	return m
}

// StateOf returns the state of a namespace holding the given unique
// coefficients: like MeasurementOf over the coefficients sorted bytewise,
// so it does not depend on the order in which they arrived.
func StateOf(aggregate, base Coefficient, coefficients []Coefficient) Coefficient {
	sorted := slices.Clone(coefficients)
	slices.SortFunc(sorted, func(a, b Coefficient) int { return bytes.Compare(a[:], b[:]) })
	return MeasurementOf(aggregate, base, sorted)
}

// PseudonymOf returns the pseudonym of a pathname, H(u32 length ‖ pathname)
// with a little-endian length. A file whose pathname has a pseudonym in the
// model is hashed with the digest of empty content instead of its own, so
// files whose content legitimately changes (logs, caches) keep one
// coefficient.
func PseudonymOf(pathname string) Coefficient {
	h := sha256.New()
	var n [4]byte
	binary.LittleEndian.PutUint32(n[:], uint32(len(pathname)))
	h.Write(n[:])
	h.Write([]byte(pathname))
	var c Coefficient
	h.Sum(c[:0])
	return c
}
