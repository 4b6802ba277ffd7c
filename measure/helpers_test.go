package measure

import (
	"github.com/vigil-tsem/vigil/events"
	"github.com/vigil-tsem/vigil/model"
)

// c32 returns a SHA-256-sized coefficient starting with b.
func c32(b ...byte) model.Coefficient {
	var a [32]byte
	copy(a[:], b)
	return events.Digest32(a)
}

// digest32 returns the SHA-256-sized coefficient a.
func digest32(a [32]byte) model.Coefficient { return events.Digest32(a) }
