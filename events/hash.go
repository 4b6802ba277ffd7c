package events

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
)

// Hash is the digest algorithm of a security modeling namespace. TSEM
// lets each namespace choose one when it is created; its coefficients,
// task ids, file content digests, the zero digest of pseudonym files, the
// state and the measurement are all computed with it and have its length.
// The zero value is SHA-256, TSEM's default.
type Hash uint8

// The namespace hash algorithms Vigil supports.
const (
	SHA256 Hash = iota
	SHA384
	SHA512
)

// MaxDigestSize is the length of the longest digest a Digest holds.
const MaxDigestSize = sha512.Size

// ErrUnknownHash is returned for a hash algorithm name other than sha256,
// sha384 and sha512.
var ErrUnknownHash = errors.New("unknown hash algorithm")

// ParseHash returns the algorithm named by s ("sha256", "sha384",
// "sha512"); "" is SHA-256.
func ParseHash(s string) (Hash, error) {
	switch s {
	case "", "sha256":
		return SHA256, nil
	case "sha384":
		return SHA384, nil
	case "sha512":
		return SHA512, nil
	}
	return SHA256, fmt.Errorf("parse hash %q: %w (want sha256, sha384 or sha512)", s, ErrUnknownHash)
}

// HashOfSize returns the algorithm whose digests have n bytes.
func HashOfSize(n int) (Hash, bool) {
	switch n {
	case sha256.Size:
		return SHA256, true
	case sha512.Size384:
		return SHA384, true
	case sha512.Size:
		return SHA512, true
	}
	return SHA256, false
}

// String returns the algorithm's name as TSEM and the TCG write it.
func (h Hash) String() string {
	switch h {
	case SHA256:
		return "sha256"
	case SHA384:
		return "sha384"
	case SHA512:
		return "sha512"
	}
	return fmt.Sprintf("hash(%d)", uint8(h))
}

// Valid reports whether h is one of the supported algorithms.
func (h Hash) Valid() bool { return h <= SHA512 }

// Size returns the digest length in bytes.
func (h Hash) Size() int {
	switch h {
	case SHA384:
		return sha512.Size384
	case SHA512:
		return sha512.Size
	}
	return sha256.Size
}

// New returns a hash.Hash computing h.
func (h Hash) New() hash.Hash {
	switch h {
	case SHA384:
		return sha512.New384()
	case SHA512:
		return sha512.New()
	}
	return sha256.New()
}

// Sum returns the digest of b. It does not allocate.
func (h Hash) Sum(b []byte) Digest {
	var d Digest
	switch h {
	case SHA384:
		s := sha512.Sum384(b)
		copy(d.b[:], s[:])
		d.n = sha512.Size384
	case SHA512:
		s := sha512.Sum512(b)
		copy(d.b[:], s[:])
		d.n = sha512.Size
	default:
		s := sha256.Sum256(b)
		copy(d.b[:], s[:])
		d.n = sha256.Size
	}
	return d
}

// Zero returns the all-zero digest of h's length: the task id of a
// namespace's root task, the zero aggregate and base.
func (h Hash) Zero() Digest { return Digest{n: uint8(h.Size())} }

// Empty returns H(""), what TSEM calls the namespace's zero digest: the
// content digest of an empty file, of anything that is not a regular
// file, of a file on a pseudo filesystem and of a pseudonym.
func (h Hash) Empty() Digest { return emptyDigests[h] }

var emptyDigests = [...]Digest{SHA256: SHA256.Sum(nil), SHA384: SHA384.Sum(nil), SHA512: SHA512.Sum(nil)}

// Unhashable returns the digest Vigil gives a file whose content it could
// not hash (see the package documentation, "Unhashable files"): every byte
// 0xff, of h's length. It stands for no content; an event that carries it
// is never part of a model.
func (h Hash) Unhashable() Digest {
	d := Digest{n: uint8(h.Size())}
	for i := range d.n {
		d.b[i] = 0xff
	}
	return d
}

// IsUnhashable reports whether d is the unhashable digest of its length.
func (d Digest) IsUnhashable() bool {
	if d.n == 0 {
		return false
	}
	for _, b := range d.b[:d.n] {
		if b != 0xff {
			return false
		}
	}
	return true
}

// Digest is a SHA-256, SHA-384 or SHA-512 digest: a task id, a file
// content digest, a coefficient. It is a comparable value (usable as a
// map key) of 65 bytes that never points to the heap: a fixed array big
// enough for the longest digest and the length in use. The zero Digest
// has length 0 and stands for all zero bytes of whatever length the
// namespace's hash has (an unknown task id); Bytes gives 32 zero bytes
// for it, the SHA-256 form descriptions always had.
type Digest struct {
	b [MaxDigestSize]byte
	n uint8
}

var zero32 [sha256.Size]byte

// MakeDigest returns the digest whose bytes are b; b must have the length
// of a supported algorithm.
func MakeDigest(b []byte) (Digest, error) {
	var d Digest
	if _, ok := HashOfSize(len(b)); !ok {
		return d, fmt.Errorf("make digest: %d bytes is not a sha256, sha384 or sha512 length", len(b))
	}
	d.n = uint8(copy(d.b[:], b))
	return d, nil
}

// Digest32 returns the SHA-256-sized digest b.
func Digest32(b [32]byte) Digest {
	var d Digest
	d.n = uint8(copy(d.b[:], b[:]))
	return d
}

// ParseDigest decodes a digest of 64, 96 or 128 hex digits.
func ParseDigest(s string) (Digest, error) {
	var d Digest
	if _, ok := HashOfSize(len(s) / 2); !ok || len(s)%2 != 0 {
		return d, fmt.Errorf("parse digest %q: want 64, 96 or 128 hex digits, got %d", s, len(s))
	}
	if _, err := hex.Decode(d.b[:], []byte(s)); err != nil {
		return Digest{}, fmt.Errorf("parse digest %q: %w", s, err)
	}
	d.n = uint8(len(s) / 2)
	return d, nil
}

// Len returns the digest's length in bytes (0 for the zero Digest).
func (d Digest) Len() int { return int(d.n) }

// Hash returns the algorithm the digest's length belongs to; false for
// the zero Digest.
func (d Digest) Hash() (Hash, bool) {
	if d.n == 0 {
		return SHA256, false
	}
	return HashOfSize(int(d.n))
}

// Bytes returns the digest's bytes, sharing d's storage; 32 zero bytes for
// the zero Digest.
func (d *Digest) Bytes() []byte {
	if d.n == 0 {
		return zero32[:]
	}
	return d.b[:d.n]
}

// IsZero reports whether every byte of the digest is zero (the zero
// Digest included).
func (d Digest) IsZero() bool { return d.b == [MaxDigestSize]byte{} }

// Sized returns d as a digest of h's length: the zero Digest becomes
// h.Zero(); false when d has another algorithm's length.
func (d Digest) Sized(h Hash) (Digest, bool) {
	if d.n == 0 {
		return h.Zero(), true
	}
	return d, int(d.n) == h.Size()
}

// String returns the digest as lowercase hex.
func (d Digest) String() string { return hex.EncodeToString(d.Bytes()) }

// Compare orders digests bytewise, as TSEM sorts the points of a state.
func (d *Digest) Compare(o *Digest) int {
	a, b := d.Bytes(), o.Bytes()
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			if a[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	return len(a) - len(b)
}
