package measure

import (
	"errors"
	"fmt"

	"github.com/vigil-tsem/vigil/measure/tdx"
	"github.com/vigil-tsem/vigil/measure/tpm"
)

var (
	_ Register = (*tdx.RTMR)(nil)
	_ Register = (*tpm.PCR)(nil)
)

// RegisterOptions say where the register devices are. Zero values mean the
// defaults.
type RegisterOptions struct {
	TDXRoot   string // directory of rtmr<N>:sha384 files; tdx.DefaultRoot
	TDXFS     tdx.FS // overrides TDXRoot (tests use measuretest.TDX)
	TDXIndex  int    // 2 or 3; tdx.DefaultIndex (3)
	TPMDevice string // TPM device node; tpm.DefaultDevices
	PCR       int    // PCR index; tpm.DefaultPCR (23). PCR 0 is no application's.
	// SoftwareIndex labels the software register in the log.
	SoftwareIndex int
}

// DefaultSoftwareIndex labels the software register: like PCR 23, it is the
// application's register.
const DefaultSoftwareIndex = 23

// OpenRegister opens the register of kind "tdx", "tpm" or "software", or
// detects one for "auto" (see Detect). A missing device is ErrNoDevice. The
// second result says what was chosen and, for auto, why.
func OpenRegister(kind string, o RegisterOptions) (Register, string, error) {
	switch kind {
	case KindTDX:
		r, err := openTDX(o)
		if err != nil {
			return nil, "", wrapNoDevice(err, tdx.ErrNoDevice)
		}
		return r, describe(r), nil
	case KindTPM:
		r, err := openTPM(o)
		if err != nil {
			return nil, "", wrapNoDevice(err, tpm.ErrNoDevice)
		}
		return r, describe(r), nil
	case KindSoftware:
		r := openSoftware(o)
		return r, describe(r), nil
	case "auto", "":
		return Detect(o)
	}
	return nil, "", fmt.Errorf("open register %q: want auto, tdx, tpm or software", kind)
}

// Detect picks the first register that exists: a TDX RTMR, then a TPM PCR,
// then the software register. The string says which and why.
func Detect(o RegisterOptions) (Register, string, error) {
	r, err := openTDX(o)
	if err == nil {
		return r, describe(r) + " (detected)", nil
	}
	if !errors.Is(err, tdx.ErrNoDevice) {
		return nil, "", fmt.Errorf("detect register: %w", err)
	}
	p, err := openTPM(o)
	if err == nil {
		return p, describe(p) + " (detected; no TDX RTMR)", nil
	}
	if !errors.Is(err, tpm.ErrNoDevice) {
		return nil, "", fmt.Errorf("detect register: %w", err)
	}
	s := openSoftware(o)
	return s, describe(s) + " (detected: no TDX RTMR, no TPM)", nil
}

func describe(r Register) string {
	return fmt.Sprintf("%s register %d (%s)", r.Name(), r.Index(), AlgName(r.Alg()))
}

func wrapNoDevice(err, sentinel error) error {
	if errors.Is(err, sentinel) {
		return fmt.Errorf("%w: %w", ErrNoDevice, err)
	}
	return err
}

func openTDX(o RegisterOptions) (*tdx.RTMR, error) {
	idx := o.TDXIndex
	if idx == 0 {
		idx = tdx.DefaultIndex
	}
	if o.TDXFS != nil {
		return tdx.OpenFS(o.TDXFS, idx)
	}
	return tdx.Open(o.TDXRoot, idx)
}

func openTPM(o RegisterOptions) (*tpm.PCR, error) {
	pcr := o.PCR
	if pcr == 0 {
		pcr = tpm.DefaultPCR
	}
	return tpm.Open(o.TPMDevice, pcr)
}

func openSoftware(o RegisterOptions) *Software {
	idx := o.SoftwareIndex
	if idx == 0 {
		idx = DefaultSoftwareIndex
	}
	return NewSoftware(idx)
}
