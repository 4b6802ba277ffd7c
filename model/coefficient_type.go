package model

import (
	"errors"
	"fmt"

	"github.com/vigil-tsem/vigil/events"
)

// Coefficient is a security state coefficient: the digest a security event
// maps to, and the unit a model is made of (a model point). It has the
// length of its namespace's hash (32, 48 or 64 bytes) and is a comparable
// value: see events.Digest.
type Coefficient = events.Digest

// Hash is a namespace's digest algorithm; the zero value is SHA-256.
type Hash = events.Hash

// The namespace hash algorithms.
const (
	SHA256 = events.SHA256
	SHA384 = events.SHA384
	SHA512 = events.SHA512
)

// ParseHash returns the algorithm named by s ("sha256", "sha384",
// "sha512"); "" is SHA-256.
func ParseHash(s string) (Hash, error) { return events.ParseHash(s) }

// ErrUnknownHash is returned for a hash algorithm name other than sha256,
// sha384 and sha512.
var ErrUnknownHash = events.ErrUnknownHash

// ErrHashMismatch is returned for a coefficient, task id or file digest
// whose length is not that of the namespace's hash.
var ErrHashMismatch = errors.New("digest length does not match the namespace hash")

// ParseCoefficient decodes a coefficient of 64, 96 or 128 hex digits.
func ParseCoefficient(s string) (Coefficient, error) {
	if _, ok := events.HashOfSize(len(s) / 2); !ok || len(s)%2 != 0 {
		return Coefficient{}, fmt.Errorf("parse coefficient %q: want 64, 96 or 128 hex digits (sha256, sha384, sha512), got %d", s, len(s))
	}
	c, err := events.ParseDigest(s)
	if err != nil {
		return c, fmt.Errorf("parse coefficient %q: %w", s, errors.Unwrap(err))
	}
	return c, nil
}

// ParseCoefficientHash decodes a coefficient that must be a digest of h.
func ParseCoefficientHash(h Hash, s string) (Coefficient, error) {
	if len(s) != 2*h.Size() {
		return Coefficient{}, fmt.Errorf("parse coefficient %q: want %d hex digits (%s), got %d: %w", s, 2*h.Size(), h, len(s), ErrHashMismatch)
	}
	return ParseCoefficient(s)
}
