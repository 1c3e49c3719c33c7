// Package rootfs assembles a container image's filesystem in memory and
// writes it as a reproducible tar layer: entries sorted by path, one fixed
// modification time, numeric owners only, no build-machine paths.
package rootfs

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"time"
)

// Epoch is the modification time of every entry. Fixed, so that the same
// inputs give the same layer digest on any machine at any time.
var Epoch = time.Unix(0, 0).UTC()

// Entry is one file, directory or symbolic link in the image.
type Entry struct {
	// Path is absolute inside the image, e.g. /usr/local/bin/corsproxy.
	Path string
	// Mode holds the type (fs.ModeDir, fs.ModeSymlink or none for a regular
	// file) and the permission bits.
	Mode     fs.FileMode
	UID, GID int
	// Data is a regular file's content.
	Data []byte
	// Target is a symbolic link's target.
	Target string
}

// FS is an image filesystem under construction. The zero value is not
// usable; call New.
type FS struct {
	entries map[string]Entry
}

// New returns an empty filesystem.
func New() *FS {
	return &FS{entries: map[string]Entry{}}
}

func clean(p string) (string, error) {
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("path %q is not absolute", p)
	}
	c := path.Clean(p)
	if c == "/" {
		return "", fmt.Errorf("path %q names the root", p)
	}
	return c, nil
}

// add records e, refusing to replace an entry of another kind or content:
// two inputs disagreeing about one path is a build mistake, not something
// to settle by order.
func (f *FS) add(e Entry) error {
	p, err := clean(e.Path)
	if err != nil {
		return err
	}
	e.Path = p
	if old, ok := f.entries[p]; ok {
		if old.Mode != e.Mode || old.Target != e.Target || !bytes.Equal(old.Data, e.Data) || old.UID != e.UID || old.GID != e.GID {
			return fmt.Errorf("%s: added twice with different content", p)
		}
		return nil
	}
	f.entries[p] = e
	return nil
}

// Dir adds a directory.
func (f *FS) Dir(p string, perm fs.FileMode, uid, gid int) error {
	return f.add(Entry{Path: p, Mode: fs.ModeDir | perm.Perm() | (perm & fs.ModeSticky), UID: uid, GID: gid})
}

// File adds a regular file owned by root.
func (f *FS) File(p string, data []byte, perm fs.FileMode) error {
	return f.add(Entry{Path: p, Mode: perm.Perm(), Data: data})
}

// CopyFile adds the content of the host file src at p.
func (f *FS) CopyFile(src, p string, perm fs.FileMode) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("adding %s: %w", p, err)
	}
	return f.File(p, data, perm)
}

// Symlink adds a symbolic link at p pointing to target.
func (f *FS) Symlink(p, target string) error {
	return f.add(Entry{Path: p, Mode: fs.ModeSymlink | 0o777, Target: target})
}

// Lookup returns the entry at p.
func (f *FS) Lookup(p string) (Entry, bool) {
	c, err := clean(p)
	if err != nil {
		return Entry{}, false
	}
	e, ok := f.entries[c]
	return e, ok
}

// Paths returns every path, sorted.
func (f *FS) Paths() []string {
	ps := make([]string, 0, len(f.entries))
	for p := range f.entries {
		ps = append(ps, p)
	}
	sort.Strings(ps)
	return ps
}

// Size is the total of the regular files' sizes.
func (f *FS) Size() int64 {
	var n int64
	for _, e := range f.entries {
		n += int64(len(e.Data))
	}
	return n
}

// Tar writes the layer: every missing parent directory is added (root, 0755),
// entries come in path order, and headers carry only what the image needs.
func (f *FS) Tar() ([]byte, error) {
	for _, p := range f.Paths() {
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			if e, ok := f.entries[d]; ok {
				if !e.Mode.IsDir() {
					return nil, fmt.Errorf("%s: parent %s is not a directory", p, d)
				}
				continue
			}
			f.entries[d] = Entry{Path: d, Mode: fs.ModeDir | 0o755}
		}
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range f.Paths() {
		e := f.entries[p]
		hdr := &tar.Header{
			Name:    strings.TrimPrefix(p, "/"),
			Mode:    int64(e.Mode.Perm()),
			Uid:     e.UID,
			Gid:     e.GID,
			ModTime: Epoch,
			Format:  tar.FormatPAX,
		}
		if e.Mode&fs.ModeSticky != 0 {
			hdr.Mode |= 0o1000
		}
		switch {
		case e.Mode.IsDir():
			hdr.Typeflag = tar.TypeDir
			hdr.Name += "/"
		case e.Mode&fs.ModeSymlink != 0:
			hdr.Typeflag = tar.TypeSymlink
			hdr.Linkname = e.Target
		default:
			hdr.Typeflag = tar.TypeReg
			hdr.Size = int64(len(e.Data))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("tar header %s: %w", p, err)
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := tw.Write(e.Data); err != nil {
				return nil, fmt.Errorf("tar %s: %w", p, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Digest is a hash of every entry, for build caches keyed by content.
func (f *FS) Digest() string {
	h := sha256.New()
	for _, p := range f.Paths() {
		e := f.entries[p]
		fmt.Fprintf(h, "%s\x00%o\x00%d\x00%d\x00%s\x00%d\x00", p, uint32(e.Mode), e.UID, e.GID, e.Target, len(e.Data))
		_, _ = io.Copy(h, bytes.NewReader(e.Data))
	}
	return hex.EncodeToString(h.Sum(nil))
}
