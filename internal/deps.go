//go:build deps

// Package internal holds helpers no one outside Vigil should import. This file
// only pins modules that packages are about to use, so go mod tidy keeps them.
package internal

import (
	_ "github.com/cilium/ebpf"
	_ "github.com/goccy/go-json"
	_ "github.com/google/go-configfs-tsm/configfs/linuxtsm"
	_ "github.com/google/go-eventlog/cel"
	_ "github.com/google/go-tdx-guest/verify"
	_ "github.com/google/go-tpm-tools/simulator"
	_ "github.com/google/go-tpm/tpm2"
	_ "github.com/prometheus/client_golang/prometheus"
)
