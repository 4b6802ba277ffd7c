package main

import (
	"fmt"
	"io"
	"path"
	"strings"
)

// File type bits of the newc mode field.
const (
	modeDir     = 0o040000
	modeRegular = 0o100000
	modeSymlink = 0o120000
	modeCharDev = 0o020000
)

// initramfs writes a newc ("070701") cpio archive as the kernel's initramfs unpacker
// reads it. Names are relative ("bin/cat"); parent directories are emitted before their
// children, since the unpacker does not create them. Not safe for concurrent use.
type initramfs struct {
	w    io.Writer
	ino  uint32
	dirs map[string]bool
	err  error
}

func newInitramfs(w io.Writer) *initramfs {
	return &initramfs{w: w, ino: 1, dirs: map[string]bool{".": true, "": true}}
}

// Dir adds a directory and its missing parents.
func (a *initramfs) Dir(name string, perm uint32) error {
	name = clean(name)
	if a.dirs[name] {
		return a.err
	}
	if err := a.Dir(path.Dir(name), 0o755); err != nil {
		return err
	}
	a.dirs[name] = true
	return a.entry(name, modeDir|perm, 2, 0, 0, nil, 0)
}

// File adds a regular file of size bytes read from r.
func (a *initramfs) File(name string, perm uint32, size int64, r io.Reader) error {
	name = clean(name)
	if err := a.Dir(path.Dir(name), 0o755); err != nil {
		return err
	}
	return a.entry(name, modeRegular|perm, 1, 0, 0, r, size)
}

// Symlink adds name pointing at target.
func (a *initramfs) Symlink(name, target string) error {
	name = clean(name)
	if err := a.Dir(path.Dir(name), 0o755); err != nil {
		return err
	}
	return a.entry(name, modeSymlink|0o777, 1, 0, 0, strings.NewReader(target), int64(len(target)))
}

// CharDev adds a character device node.
func (a *initramfs) CharDev(name string, perm, major, minor uint32) error {
	name = clean(name)
	if err := a.Dir(path.Dir(name), 0o755); err != nil {
		return err
	}
	return a.entry(name, modeCharDev|perm, 1, major, minor, nil, 0)
}

// Close writes the trailer; it does not close the underlying writer.
func (a *initramfs) Close() error {
	return a.entry("TRAILER!!!", 0, 1, 0, 0, nil, 0)
}

func clean(name string) string {
	return strings.TrimPrefix(path.Clean("/"+name), "/")
}

func (a *initramfs) entry(name string, mode, nlink, rmajor, rminor uint32, r io.Reader, size int64) error {
	if a.err != nil {
		return a.err
	}
	if size < 0 || size > 0xffffffff {
		a.err = fmt.Errorf("write initramfs entry %s: size %d does not fit newc", name, size)
		return a.err
	}
	ino := a.ino
	a.ino++
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		ino, mode, 0, 0, nlink, 0, size, 0, 0, rmajor, rminor, len(name)+1, 0)
	// The header (110 bytes) plus the NUL-terminated name is padded to 4 bytes, and
	// so is the data.
	buf := append([]byte(hdr), name...)
	buf = append(buf, 0)
	buf = append(buf, make([]byte, pad4(len(buf)))...)
	if _, err := a.w.Write(buf); err != nil {
		a.err = fmt.Errorf("write initramfs entry %s: %w", name, err)
		return a.err
	}
	if size > 0 {
		n, err := io.CopyN(a.w, r, size)
		if err != nil {
			a.err = fmt.Errorf("write initramfs entry %s: %d of %d bytes: %w", name, n, size, err)
			return a.err
		}
		if _, err := a.w.Write(make([]byte, pad4(int(size%4)))); err != nil {
			a.err = fmt.Errorf("write initramfs entry %s: %w", name, err)
			return a.err
		}
	}
	return nil
}

func pad4(n int) int { return (4 - n%4) % 4 }
