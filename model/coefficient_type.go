package model

import (
	"encoding/hex"
	"fmt"
)

// Coefficient is a security state coefficient: the digest a security event
// maps to, and the unit a model is made of (a model point).
type Coefficient [32]byte

// String returns the coefficient as lowercase hex.
func (c Coefficient) String() string { return hex.EncodeToString(c[:]) }

// ParseCoefficient decodes a 64-digit hex coefficient.
func ParseCoefficient(s string) (Coefficient, error) {
	var c Coefficient
	if len(s) != 2*len(c) {
		return c, fmt.Errorf("parse coefficient %q: want %d hex digits, got %d", s, 2*len(c), len(s))
	}
	if _, err := hex.Decode(c[:], []byte(s)); err != nil {
		return c, fmt.Errorf("parse coefficient %q: %w", s, err)
	}
	return c, nil
}
