package bpf

// SpecSections returns the ELF section names of the programs in backend
// b's embedded object (no kernel needed), for the tests of package
// bpf_test.
func SpecSections(b Backend) ([]string, error) {
	spec, err := collectionSpec(b)
	if err != nil {
		return nil, err
	}
	var s []string
	for _, p := range spec.Programs {
		s = append(s, p.SectionName)
	}
	return s, nil
}
