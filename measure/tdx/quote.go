package tdx

import (
	"crypto/x509"
	_ "embed"
	"encoding/pem"
	"fmt"
	"strings"
	"time"

	"github.com/google/go-configfs-tsm/configfs/configfsi"
	"github.com/google/go-configfs-tsm/configfs/linuxtsm"
	"github.com/google/go-configfs-tsm/report"
	"github.com/google/go-tdx-guest/abi"
	pb "github.com/google/go-tdx-guest/proto/tdx"
	"github.com/google/go-tdx-guest/verify"
)

// Quote is what Vigil reads from a TDX quote.
type Quote struct {
	ReportData [64]byte
	MRTD       [48]byte
	RTMR       [4][48]byte
}

// ParseQuote decodes a raw quote (as configfs-tsm's outblob returns it)
// without checking its signature.
func ParseQuote(raw []byte) (*Quote, error) {
	q, err := abi.QuoteToProto(raw)
	if err != nil {
		return nil, fmt.Errorf("parse quote: %w", err)
	}
	v4, ok := q.(*pb.QuoteV4)
	if !ok {
		return nil, fmt.Errorf("parse quote: unsupported quote type %T", q)
	}
	if err := abi.CheckQuoteV4(v4); err != nil {
		return nil, fmt.Errorf("parse quote: %w", err)
	}
	body := v4.GetTdQuoteBody()
	var out Quote
	copy(out.ReportData[:], body.GetReportData())
	copy(out.MRTD[:], body.GetMrTd())
	rtmrs := body.GetRtmrs()
	if len(rtmrs) != len(out.RTMR) {
		return nil, fmt.Errorf("parse quote: %d RTMRs, want %d", len(rtmrs), len(out.RTMR))
	}
	for i := range out.RTMR {
		copy(out.RTMR[i][:], rtmrs[i])
	}
	return &out, nil
}

// intelRootCA is Intel's public "Intel SGX Root CA" certificate, the root of
// every TDX quote's certificate chain (SHA-256 fingerprint
// 44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3).
//
//go:embed intel_sgx_root_ca.pem
var intelRootCA []byte

// IntelRoots returns a pool holding Intel's SGX root CA.
func IntelRoots() *x509.CertPool {
	pool := x509.NewCertPool()
	block, _ := pem.Decode(intelRootCA)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		panic("tdx: embedded Intel root CA: " + err.Error())
	}
	pool.AddCert(cert)
	return pool
}

// VerifyOptions tune VerifyQuote.
type VerifyOptions struct {
	// Now is when certificates must be valid; time.Now when zero.
	Now time.Time
	// Roots are the trusted root CAs; IntelRoots() when nil.
	Roots *x509.CertPool
}

// VerifyQuote checks a raw quote's signature and its certificate chain up to
// Intel's SGX root CA, offline: no collateral is fetched and no revocation
// list consulted (TCB status is therefore not judged). It returns the parsed
// quote.
func VerifyQuote(raw []byte, o VerifyOptions) (*Quote, error) {
	q, err := ParseQuote(raw)
	if err != nil {
		return nil, err
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.Roots == nil {
		o.Roots = IntelRoots()
	}
	opts := &verify.Options{CheckRevocations: false, GetCollateral: false, Now: o.Now, TrustedRoots: o.Roots}
	if err := verify.RawTdxQuote(raw, opts); err != nil {
		return nil, fmt.Errorf("verify quote: %w", err)
	}
	return q, nil
}

// GetQuote asks the TDX module, through configfs-tsm, for a quote whose report
// data is reportData. client is nil for the kernel's configfs.
func GetQuote(client configfsi.Client, reportData [64]byte) ([]byte, error) {
	if client == nil {
		c, err := linuxtsm.MakeClient()
		if err != nil {
			return nil, fmt.Errorf("get quote: %w: %v", ErrNoDevice, err)
		}
		client = c
	}
	resp, err := report.Get(client, &report.Request{InBlob: reportData[:]})
	if err != nil {
		return nil, fmt.Errorf("get quote: %w", err)
	}
	if p := strings.TrimSpace(resp.Provider); p != "" && p != "tdx_guest" {
		return nil, fmt.Errorf("get quote: provider is %q, not tdx_guest", p)
	}
	return resp.OutBlob, nil
}
