package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/vigil-tsem/vigil/measure"
	"github.com/vigil-tsem/vigil/model"
)

// registerFlags are the flags of every command that writes a measured event
// log: --log, --register, --tdx-root and --tpm.
type registerFlags struct {
	log      string
	register string
	tdxRoot  string
	tpm      string
}

func (f *registerFlags) addFlags(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.log, "log", "", "append every new model point to this measured event log (see 'vigil verify')")
	fl.StringVar(&f.register, "register", "auto", "measurement register for --log: auto, tdx, tpm or software")
	fl.StringVar(&f.tdxRoot, "tdx-root", "", "directory of the TDX rtmr<N>:sha384 files (default /sys/class/misc/tdx_guest/measurements)")
	fl.StringVar(&f.tpm, "tpm", "", "TPM device for --register tpm (default /dev/tpmrm0, then /dev/tpm0)")
}

// measured is an open register with its event log.
type measured struct {
	log    *measure.Log
	reg    measure.Register
	stderr io.Writer
}

// openRegister opens the register the flags name, and says how it was
// chosen. It returns a nil register when --log was not given.
func (f *registerFlags) openRegister(cmd *cobra.Command) (measure.Register, string, error) {
	if f.log == "" {
		for _, name := range []string{"register", "tdx-root", "tpm"} {
			if cmd.Flags().Changed(name) {
				return nil, "", badInput(fmt.Errorf("--%s needs --log", name))
			}
		}
		return nil, "", nil
	}
	reg, why, err := measure.OpenRegister(f.register, measure.RegisterOptions{TDXRoot: f.tdxRoot, TPMDevice: f.tpm})
	if err != nil {
		if errors.Is(err, measure.ErrNoDevice) {
			return nil, "", badInput(fmt.Errorf("--register %s: %w", f.register, err))
		}
		return nil, "", fmt.Errorf("--register %s: %w", f.register, err)
	}
	return reg, why, nil
}

// open opens the register and the log the flags name. It returns nil when
// --log was not given.
func (f *registerFlags) open(cmd *cobra.Command) (*measured, error) {
	reg, why, err := f.openRegister(cmd)
	if err != nil || reg == nil {
		return nil, err
	}
	slog.Info("measuring", "log", f.log, "register", why)
	l, err := measure.OpenLog(f.log, reg, measure.LogOptions{})
	if err != nil {
		return nil, failed(errors.Join(fmt.Errorf("--log: %w", err), closeRegister(reg)))
	}
	for _, r := range l.Repairs() {
		slog.Warn("repaired the event log after a crash", "log", f.log, "line", r.Line, "repair", r.Action)
	}
	rs, err := l.BeginRun()
	if err != nil {
		return nil, failed(errors.Join(fmt.Errorf("--log: %w", err), l.Close(), closeRegister(reg)))
	}
	if p := rs.Previous; p != nil && p.Runs > 0 && !p.Clean {
		slog.Warn("the previous run of the log did not end with a stop record: it crashed or was killed, or records at its end were removed; 'vigil verify' reports it", "log", f.log, "run", rs.Run)
	}
	return &measured{log: l, reg: reg, stderr: cmd.ErrOrStderr()}, nil
}

// closeRegister releases a register, its error wrapped for the user.
func closeRegister(reg measure.Register) error {
	if err := measure.CloseRegister(reg); err != nil {
		return fmt.Errorf("close the register: %w", err)
	}
	return nil
}

// namespace starts a new modeling namespace in the log.
func (m *measured) namespace(name string, aggregate, base model.Coefficient) (*measure.Namespace, error) {
	ns, err := m.log.Namespace(m.log.NextNamespaceID(), name, aggregate, base)
	if err != nil {
		return nil, fmt.Errorf("--log: %w", err)
	}
	return ns, nil
}

// close closes the log, prints the register's final value on stderr as
// "register NAME INDEX ALG HEX" and releases the register.
func (m *measured) close() error {
	err := m.log.Close()
	v, rerr := m.reg.Read()
	if rerr == nil {
		fmt.Fprintf(m.stderr, "register %s %d %s %s\n", m.reg.Name(), m.reg.Index(), measure.AlgName(m.reg.Alg()), hex.EncodeToString(v))
	} else if err == nil {
		err = rerr
	}
	if cerr := measure.CloseRegister(m.reg); err == nil {
		err = cerr
	}
	return err
}

// newModel returns a learning model of opts named name, measured into the
// flags' log when --log was given, and the function to call when done with
// it.
func (f *registerFlags) newModel(cmd *cobra.Command, name string, opts model.Options) (*model.Model, func() error, error) {
	m, err := f.open(cmd)
	if err != nil {
		return nil, nil, err
	}
	if m == nil {
		return model.New(opts), func() error { return nil }, nil
	}
	ns, err := m.namespace(name, opts.Hash.Zero(), opts.Hash.Zero())
	if err != nil {
		return nil, nil, errors.Join(err, m.close())
	}
	opts.Observer = ns
	return model.New(opts), m.close, nil
}
