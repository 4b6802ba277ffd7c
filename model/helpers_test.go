package model_test

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
