package debs

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/corsmesh/corsmesh/hack/images/rootfs"
)

// libDirs is where the dynamic loader looks for a DT_NEEDED library on
// Debian amd64 (no RUNPATH in Debian's binaries).
var libDirs = []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib", "/usr/lib"}

// Tree is the union of several packages' files, from which an image takes
// only what it runs: named files plus their shared-library closure.
type Tree struct {
	files map[string]File
	owner map[string]string
}

// NewTree returns an empty tree.
func NewTree() *Tree {
	return &Tree{files: map[string]File{}, owner: map[string]string{}}
}

// Add merges one package's files. Directories may repeat; a file shipped by
// two packages is an error.
func (t *Tree) Add(pkg string, files map[string]File) error {
	for p, f := range files {
		if old, ok := t.files[p]; ok && !(old.Mode.IsDir() && f.Mode.IsDir()) {
			return fmt.Errorf("%s is in both %s and %s", p, t.owner[p], pkg)
		}
		t.files[p] = f
		t.owner[p] = pkg
	}
	return nil
}

// Glob returns the tree's paths matching pattern (path.Match), sorted.
func (t *Tree) Glob(pattern string) []string {
	var out []string
	for p := range t.files {
		if ok, _ := path.Match(pattern, p); ok {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// Install copies p into dst as the package has it (a symbolic link stays
// one, and its target comes too), then every shared library an ELF file
// needs, transitively, and the dynamic loader.
func (t *Tree) Install(dst *rootfs.FS, p string) error {
	seen := map[string]bool{}
	return t.install(dst, p, seen)
}

func (t *Tree) install(dst *rootfs.FS, p string, seen map[string]bool) error {
	if seen[p] {
		return nil
	}
	seen[p] = true
	f, ok := t.files[p]
	if !ok {
		return fmt.Errorf("%s: in none of the packages", p)
	}
	switch {
	case f.Mode.IsDir():
		return dst.Dir(p, f.Mode.Perm(), 0, 0)
	case f.Mode&fs.ModeSymlink != 0:
		if err := dst.Symlink(p, f.Target); err != nil {
			return err
		}
		target := f.Target
		if !strings.HasPrefix(target, "/") {
			target = path.Join(path.Dir(p), target)
		}
		return t.install(dst, path.Clean(target), seen)
	}
	if err := dst.File(p, f.Data, f.Mode.Perm()); err != nil {
		return err
	}
	if !bytes.HasPrefix(f.Data, []byte(elf.ELFMAG)) {
		return nil
	}
	ef, err := elf.NewFile(bytes.NewReader(f.Data))
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	defer ef.Close()
	for _, prog := range ef.Progs {
		if prog.Type == elf.PT_INTERP {
			buf := make([]byte, prog.Filesz)
			if _, err := prog.ReadAt(buf, 0); err != nil {
				return fmt.Errorf("%s: interpreter: %w", p, err)
			}
			if err := t.install(dst, string(bytes.TrimRight(buf, "\x00")), seen); err != nil {
				return fmt.Errorf("%s: interpreter: %w", p, err)
			}
		}
	}
	needed, err := ef.ImportedLibraries()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return fmt.Errorf("%s: %w", p, err)
	}
	for _, lib := range needed {
		found := ""
		for _, d := range libDirs {
			if _, ok := t.files[path.Join(d, lib)]; ok {
				found = path.Join(d, lib)
				break
			}
		}
		if found == "" {
			return fmt.Errorf("%s needs %s, which none of the locked packages has: add its package to the lock", p, lib)
		}
		if err := t.install(dst, found, seen); err != nil {
			return err
		}
	}
	return nil
}

// Read returns a regular file's content.
func (t *Tree) Read(p string) ([]byte, error) {
	f, ok := t.files[p]
	if !ok || !f.Mode.IsRegular() {
		return nil, fmt.Errorf("%s: no such regular file in the packages", p)
	}
	return f.Data, nil
}
