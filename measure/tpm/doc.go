// Package tpm extends and reads a TPM 2.0 PCR through github.com/google/go-tpm
// (the tpm2 command API). Vigil uses PCR 23, the PCR the PC Client platform
// leaves to applications (resettable, not touched by firmware), in the
// SHA-256 bank.
//
// A PCR holds its transport; commands on one transport are serialised by a
// mutex, so a PCR is safe for concurrent use.
package tpm
