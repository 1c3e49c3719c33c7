package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/corsmesh/corsmesh/hack/images/catalog"
	"github.com/corsmesh/corsmesh/hack/images/ociarchive"
)

// built holds the archives of one full build, made once for the tests that
// inspect images.
var built struct {
	once sync.Once
	dir  string
	log  string
	err  error
}

// buildAll builds every image into a fresh directory, as `make images
// sandbox-images` does on a clean checkout (Go's build cache and the .deb
// cache are shared: they are keyed by content).
func buildAll(t *testing.T, dir string) string {
	t.Helper()
	var log bytes.Buffer
	args := []string{"--repo", "../..", "--out", dir, "--set", "all",
		"--deb-cache", filepath.Join("..", "..", "bin", "images", "debs")}
	if err := run(context.Background(), args, &log); err != nil {
		t.Fatalf("build: %v\n%s", err, log.String())
	}
	return log.String()
}

func sharedBuild(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "corsmesh-images-")
		if built.err == nil {
			built.log = buildAll(t, built.dir)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.dir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// TestBuildIsReproducible builds every image twice from scratch (fresh
// binaries, fresh layers) and wants the same digests and the same archive
// bytes.
func TestBuildIsReproducible(t *testing.T) {
	first := sharedBuild(t)
	second := t.TempDir()
	buildAll(t, second)
	a, err := os.ReadFile(filepath.Join(first, "index.txt"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(second, "index.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatalf("two builds, different digests:\n%s\n%s", a, b)
	}
	if n := len(catalog.Images(catalog.DefaultVersion)); strings.Count(string(a), "\n") != n+1 {
		t.Errorf("index.txt lists %d lines, want a header and %d images:\n%s", strings.Count(string(a), "\n"), n, a)
	}
	for _, img := range catalog.Images(catalog.DefaultVersion) {
		if sumFile(t, img.Archive(first)) != sumFile(t, img.Archive(second)) {
			t.Errorf("%s: archives differ", img.Name)
		}
	}
}

// TestRebuildIsCached runs the build again over its own output: nothing
// changed, so no archive is rewritten.
func TestRebuildIsCached(t *testing.T) {
	dir := sharedBuild(t)
	before := map[string]os.FileInfo{}
	for _, img := range catalog.Images(catalog.DefaultVersion) {
		st, err := os.Stat(img.Archive(dir))
		if err != nil {
			t.Fatal(err)
		}
		before[img.Name] = st
	}
	log := buildAll(t, dir)
	for _, img := range catalog.Images(catalog.DefaultVersion) {
		st, _ := os.Stat(img.Archive(dir))
		if !st.ModTime().Equal(before[img.Name].ModTime()) {
			t.Errorf("%s: archive rewritten though nothing changed", img.Name)
		}
		if !strings.Contains(log, img.Ref()+" ") || !strings.Contains(log, "up to date") {
			t.Errorf("%s: not reported up to date:\n%s", img.Name, log)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "build", "coredns.key")); err != nil {
		t.Errorf("CoreDNS build not recorded: %v", err)
	}
}

func sumFile(t *testing.T, file string) string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

// imageFiles unpacks an image's single layer into a path -> header/content map.
type imageFile struct {
	hdr  *tar.Header
	data []byte
}

func readImage(t *testing.T, archive string) (ociarchive.Image, map[string]imageFile) {
	t.Helper()
	imgs, err := ociarchive.Read(archive)
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 1 {
		t.Fatalf("%s: %d images, want 1", archive, len(imgs))
	}
	layers, err := imgs[0].Layers()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]imageFile{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			hdr, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			data, _ := io.ReadAll(tr)
			files["/"+strings.TrimSuffix(hdr.Name, "/")] = imageFile{hdr, data}
		}
		rc.Close()
	}
	return imgs[0], files
}

// resolve follows symbolic links inside the image to a regular file.
func resolve(files map[string]imageFile, p string) (imageFile, string, bool) {
	for range 16 {
		f, ok := files[p]
		if !ok {
			return imageFile{}, p, false
		}
		if f.hdr.Typeflag != tar.TypeSymlink {
			return f, p, true
		}
		target := f.hdr.Linkname
		if !strings.HasPrefix(target, "/") {
			target = path.Join(path.Dir(p), target)
		}
		p = path.Clean(target)
	}
	return imageFile{}, p, false
}

// TestImageContents checks each image's user, entrypoint, accounts and that
// it carries what it runs and no more than the role needs.
func TestImageContents(t *testing.T) {
	dir := sharedBuild(t)
	tests := []struct {
		name      string
		user      string
		account   string // the /etc/passwd line prefix for the user
		runs      []string
		caCerts   bool
		maxMiB    float64
		dynamicOK bool
	}{
		{name: "corsproxy", user: "1500:1500", account: "corsproxy:x:1500:1500:", runs: []string{"/usr/local/bin/corsproxy"}, maxMiB: 20},
		{name: "corsmesh-webhook", user: "65532:65532", account: "nonroot:x:65532:65532:", runs: []string{"/usr/local/bin/corsmesh-webhook"}, maxMiB: 40},
		{name: "corsproxy-init", user: "0:0", account: "root:x:0:0:", runs: append([]string{"/usr/local/bin/corsproxy-init"}, prefixed("/usr/sbin/", iptablesTools())...), maxMiB: 10, dynamicOK: true},
		{name: "pause", user: "65535:65535", account: "pause:x:65535:65535:", runs: []string{"/pause"}, maxMiB: 5},
		{name: "pipy", user: "65532:65532", account: "nonroot:x:65532:65532:", runs: []string{"/usr/local/bin/pipy"}, maxMiB: 10},
		{name: "coredns", user: "65532:65532", account: "nonroot:x:65532:65532:", runs: []string{"/coredns"}, maxMiB: 80},
		{name: "curl", user: "100:101", account: "curl_user:x:100:101:", runs: []string{"/usr/bin/curl", "/bin/sleep"}, caCerts: true, maxMiB: 20, dynamicOK: true},
	}
	archives := map[string]string{}
	for _, img := range catalog.Images(catalog.DefaultVersion) {
		archives[img.Name] = img.Archive(dir)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img, files := readImage(t, archives[tt.name])
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if cf.Config.User != tt.user {
				t.Errorf("user %q, want %q", cf.Config.User, tt.user)
			}
			if cf.OS != "linux" || cf.Architecture != "amd64" {
				t.Errorf("platform %s/%s, want linux/amd64", cf.OS, cf.Architecture)
			}
			if len(cf.Config.Entrypoint) == 0 || cf.Config.Entrypoint[0] != tt.runs[0] {
				t.Errorf("entrypoint %q, want %s", cf.Config.Entrypoint, tt.runs[0])
			}
			if passwd := string(files["/etc/passwd"].data); !strings.Contains(passwd, "\n"+tt.account) && !strings.HasPrefix(passwd, tt.account) {
				t.Errorf("/etc/passwd lacks %q:\n%s", tt.account, passwd)
			}
			for _, p := range tt.runs {
				f, real, ok := resolve(files, p)
				if !ok {
					t.Errorf("%s: missing (resolves to %s)", p, real)
					continue
				}
				if f.hdr.Mode&0o111 == 0 {
					t.Errorf("%s: not executable (mode %o)", real, f.hdr.Mode)
				}
				checkELF(t, files, real, f.data, tt.dynamicOK, map[string]bool{})
			}
			_, hasCA := files["/etc/ssl/certs/ca-certificates.crt"]
			if hasCA != tt.caCerts {
				t.Errorf("CA bundle present = %v, want %v", hasCA, tt.caCerts)
			}
			for p, f := range files {
				if f.hdr.ModTime.Unix() != 0 || f.hdr.Uname != "" || f.hdr.Gname != "" {
					t.Errorf("%s: header carries build-machine state (mtime %v, owner %q/%q)", p, f.hdr.ModTime, f.hdr.Uname, f.hdr.Gname)
					break
				}
			}
			st, _ := os.Stat(archives[tt.name])
			mib := float64(st.Size()) / (1 << 20)
			t.Logf("%s: %.1f MiB archive", tt.name, mib)
			if mib > tt.maxMiB {
				t.Errorf("archive is %.1f MiB, more than the expected %.0f MiB: something unneeded came in", mib, tt.maxMiB)
			}
		})
	}
}

// checkELF wants a static binary, or, where the image carries Debian's
// binaries, every library it needs and its loader present in the image.
func checkELF(t *testing.T, files map[string]imageFile, p string, data []byte, dynamicOK bool, seen map[string]bool) {
	t.Helper()
	if seen[p] {
		return
	}
	seen[p] = true
	ef, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		t.Errorf("%s: not an ELF binary: %v", p, err)
		return
	}
	defer ef.Close()
	libs, _ := ef.ImportedLibraries()
	var interp string
	for _, prog := range ef.Progs {
		if prog.Type == elf.PT_INTERP {
			buf := make([]byte, prog.Filesz)
			prog.ReadAt(buf, 0)
			interp = string(bytes.TrimRight(buf, "\x00"))
		}
	}
	if !dynamicOK {
		if len(libs) > 0 || interp != "" {
			t.Errorf("%s: dynamically linked (%s %v), want static", p, interp, libs)
		}
		return
	}
	if interp != "" {
		if _, _, ok := resolve(files, interp); !ok {
			t.Errorf("%s: loader %s missing", p, interp)
		}
	}
	for _, lib := range libs {
		found := false
		for _, d := range []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu"} {
			if f, _, ok := resolve(files, path.Join(d, lib)); ok {
				found = true
				checkELF(t, files, path.Join(d, lib), f.data, true, seen)
				break
			}
		}
		if !found {
			t.Errorf("%s needs %s, not in the image", p, lib)
		}
	}
}

func prefixed(prefix string, names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = prefix + n
	}
	return out
}
