package events

// KernelReadFile is the payload of kernel_read_file: the file the kernel
// reads for the caller, the kind of read (id, enum kernel_read_file_id) and
// whether the whole contents are read.
type KernelReadFile struct {
	File     File
	ID       int32
	Contents int32
}

func (p *KernelReadFile) appendTSEM(b []byte, _ string) []byte {
	w := writer{b: b}
	w.file(&p.File)
	w.i("id", p.ID)
	w.i("contents", p.Contents)
	return w.b
}
