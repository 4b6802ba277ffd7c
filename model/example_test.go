package model_test

import (
	"fmt"
	"os"
	"strings"

	"github.com/vigil-tsem/vigil/model"
)

func ExampleLoad() {
	f, err := os.Open("../testdata/tsem/process.model")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer f.Close()
	m, err := model.Load(f, "process.model")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("points:     ", m.Len(), "sealed:", m.Sealed())
	fmt.Println("measurement:", m.Measurement())
	fmt.Println("state:      ", m.State())
	// Output:
	// points:      196 sealed: true
	// measurement: 47490c4c05dc752e7374abc857ca5bc7329c5af1601da752b36c4ae4342187c5
	// state:       17340ae343b0461d82158997d14dca359c6b9d296bd0faeb7742f1a5eb145562
}

func ExampleLoad_error() {
	_, err := model.Load(strings.NewReader("aggregate 00\n"), "bad.model")
	fmt.Println(err)
	// Output:
	// bad.model:1: aggregate: parse coefficient "00": want 64, 96 or 128 hex digits (sha256, sha384, sha512), got 2
}

func ExampleModel_Add() {
	open := c32(0x01)
	read := c32(0x02)
	exec := c32(0x03)

	m := model.New(model.Options{})
	m.Add(open, []byte(`{"event":{"type":"file_open"}}`))
	m.Add(read, nil)
	m.Add(open, nil) // a repeat only counts
	m.Seal()

	res, _ := m.Add(exec, []byte(`{"event":{"type":"bprm_check_security"}}`))
	fmt.Printf("new=%v forensic=%v\n", res.New, res.Forensic)
	for _, p := range m.Points() {
		fmt.Printf("point %.8s... count %d\n", p.Coefficient, p.Count)
	}
	for _, p := range m.Forensics() {
		fmt.Printf("forensics %.8s... %s\n", p.Coefficient, p.Description)
	}
	// Output:
	// new=true forensic=true
	// point 01000000... count 2
	// point 02000000... count 1
	// forensics 03000000... {"event":{"type":"bprm_check_security"}}
}
