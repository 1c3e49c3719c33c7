package rootfs

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"strings"
	"testing"
)

func entries(t *testing.T, layer []byte) []*tar.Header {
	t.Helper()
	var out []*tar.Header
	tr := tar.NewReader(bytes.NewReader(layer))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, hdr)
	}
}

func TestTarIsSortedWithParentsAndFixedHeaders(t *testing.T) {
	fs := New()
	must(t, fs.File("/usr/local/bin/b", []byte("b"), 0o755))
	must(t, fs.Symlink("/usr/sbin/a", "../local/bin/b"))
	must(t, fs.Dir("/tmp", 0o777|os.ModeSticky, 0, 0))
	must(t, fs.Dir("/home/u", 0o700, 100, 101))
	layer, err := fs.Tar()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, h := range entries(t, layer) {
		names = append(names, h.Name)
		if !h.ModTime.Equal(Epoch) || h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: mtime %v owner %q/%q, want the epoch and numeric owners only", h.Name, h.ModTime, h.Uname, h.Gname)
		}
		switch h.Name {
		case "tmp/":
			if h.Mode != 0o1777 {
				t.Errorf("tmp/ mode %o, want 1777", h.Mode)
			}
		case "home/u/":
			if h.Uid != 100 || h.Gid != 101 || h.Mode != 0o700 {
				t.Errorf("home/u/ %d:%d %o, want 100:101 700", h.Uid, h.Gid, h.Mode)
			}
		case "usr/sbin/a":
			if h.Typeflag != tar.TypeSymlink || h.Linkname != "../local/bin/b" {
				t.Errorf("usr/sbin/a: type %c -> %q, want a symlink to ../local/bin/b", h.Typeflag, h.Linkname)
			}
		}
	}
	want := "home/ home/u/ tmp/ usr/ usr/local/ usr/local/bin/ usr/local/bin/b usr/sbin/ usr/sbin/a"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("entries\n%s\nwant\n%s", got, want)
	}
	again, _ := fs.Tar()
	if !bytes.Equal(layer, again) {
		t.Error("two Tar calls differ")
	}
}

func TestAddRefusesConflicts(t *testing.T) {
	tests := []struct {
		name string
		add  func(*FS) error
	}{
		{"same path, other content", func(fs *FS) error { return fs.File("/etc/passwd", []byte("other"), 0o644) }},
		{"same path, other kind", func(fs *FS) error { return fs.Symlink("/etc/passwd", "/dev/null") }},
		{"relative path", func(fs *FS) error { return fs.File("etc/x", nil, 0o644) }},
		{"the root", func(fs *FS) error { return fs.Dir("/", 0o755, 0, 0) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := New()
			must(t, fs.File("/etc/passwd", []byte("root"), 0o644))
			if err := tt.add(fs); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	fs := New()
	must(t, fs.File("/etc/passwd", []byte("root"), 0o644))
	if err := fs.File("/etc/passwd", []byte("root"), 0o644); err != nil {
		t.Errorf("the same file twice: %v", err)
	}
	must(t, fs.File("/bin", []byte("x"), 0o755))
	must(t, fs.File("/bin/sh", []byte("x"), 0o755))
	if _, err := fs.Tar(); err == nil {
		t.Error("a file under a regular file was accepted")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
