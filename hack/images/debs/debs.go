// Package debs fetches pinned Debian packages with apt-get and reads their
// files, so images can carry Debian's real iptables and curl without a
// container registry or a base image.
//
// The versions and SHA-256 sums the images were built from are pinned in a
// lock file. Debian's mirror keeps only the newest version of each package
// of a release, so a pinned version can disappear (a security update): the
// build then takes the candidate version, says so, and the digests differ
// from the recorded ones until the lock is refreshed.
package debs

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Pin is one package at one version with the SHA-256 of its .deb.
type Pin struct {
	Package, Version, SHA256 string
}

// ReadLock parses a lock file: one "package version sha256" per line,
// # comments and blank lines ignored.
func ReadLock(file string) ([]Pin, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var pins []Pin
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 || len(f[2]) != 64 {
			return nil, fmt.Errorf("%s:%d: want \"package version sha256\", got %q", file, n, line)
		}
		if seen[f[0]] {
			return nil, fmt.Errorf("%s:%d: package %s pinned twice", file, n, f[0])
		}
		seen[f[0]] = true
		pins = append(pins, Pin{Package: f[0], Version: f[1], SHA256: f[2]})
	}
	return pins, sc.Err()
}

// WriteLock writes pins in the format ReadLock reads.
func WriteLock(file, header string, pins []Pin) error {
	var b strings.Builder
	b.WriteString(header)
	for _, p := range pins {
		fmt.Fprintf(&b, "%s %s %s\n", p.Package, p.Version, p.SHA256)
	}
	return os.WriteFile(file, []byte(b.String()), 0o644)
}

// Fetcher downloads .deb files into a cache directory.
type Fetcher struct {
	CacheDir string
	// Log receives progress and warnings.
	Log     io.Writer
	updated bool
}

// Fetch returns the path of the pinned package's .deb, downloading it if the
// cache lacks it. If the mirror no longer has the pinned version it takes the
// candidate one and warns; a pinned version whose content differs from the
// lock is an error.
func (f *Fetcher) Fetch(ctx context.Context, pin Pin) (string, Pin, error) {
	if cached, ok := f.cached(pin); ok {
		return cached, pin, nil
	}
	files, err := f.download(ctx, pin.Package+"="+pin.Version)
	if err != nil {
		fmt.Fprintf(f.Log, "WARNING: %s %s is not on the mirror (%v); taking the candidate version: image digests will differ from the lock until `make images-lock`\n", pin.Package, pin.Version, err)
		return f.Candidate(ctx, pin.Package)
	}
	return f.keep(files[0], pin)
}

// keep checks a downloaded pinned package against the lock and moves it to
// its cache name.
func (f *Fetcher) keep(file string, pin Pin) (string, Pin, error) {
	cached := f.cachePath(pin)
	sum, err := fileSHA256(file)
	if err != nil {
		return "", Pin{}, err
	}
	if sum != pin.SHA256 {
		return "", Pin{}, fmt.Errorf("%s %s: sha256 %s, the lock says %s", pin.Package, pin.Version, sum, pin.SHA256)
	}
	if err := os.Rename(file, cached); err != nil {
		return "", Pin{}, err
	}
	return cached, pin, nil
}

func (f *Fetcher) cachePath(pin Pin) string {
	return filepath.Join(f.CacheDir, pin.Package+"_"+strings.ReplaceAll(pin.Version, ":", "%3a")+".deb")
}

func (f *Fetcher) cached(pin Pin) (string, bool) {
	file := f.cachePath(pin)
	sum, err := fileSHA256(file)
	return file, err == nil && sum == pin.SHA256
}

// FetchAll is Fetch for many pins, with one apt-get run for all the missing
// ones (each apt-get start reads the whole package index). It returns the
// files and the pins they really are, in the order of pins.
func (f *Fetcher) FetchAll(ctx context.Context, pins []Pin) ([]string, []Pin, error) {
	files := make([]string, len(pins))
	got := make([]Pin, len(pins))
	var missing []string
	for i, p := range pins {
		if file, ok := f.cached(p); ok {
			files[i], got[i] = file, p
			continue
		}
		missing = append(missing, p.Package+"="+p.Version)
	}
	if len(missing) > 0 {
		fmt.Fprintf(f.Log, "==> apt-get download %d packages\n", len(missing))
		// One failure (a version gone from the mirror) fails the batch;
		// Fetch below then goes one by one.
		if downloaded, err := f.download(ctx, missing...); err == nil {
			byName := map[string]Pin{}
			for _, p := range pins {
				byName[p.Package] = p
			}
			for _, d := range downloaded {
				p, err := Describe(ctx, d)
				if err != nil {
					return nil, nil, err
				}
				want, ok := byName[p.Package]
				if !ok || want.Version != p.Version {
					return nil, nil, fmt.Errorf("apt-get download gave %s %s, which is not pinned", p.Package, p.Version)
				}
				// Checks the hash against the lock.
				if _, _, err := f.keep(d, want); err != nil {
					return nil, nil, err
				}
			}
		}
	}
	for i, p := range pins {
		if files[i] != "" {
			continue
		}
		file, pin, err := f.Fetch(ctx, p)
		if err != nil {
			return nil, nil, err
		}
		files[i], got[i] = file, pin
	}
	return files, got, nil
}

// Candidate downloads the version apt would install now and describes it.
func (f *Fetcher) Candidate(ctx context.Context, pkg string) (string, Pin, error) {
	files, err := f.download(ctx, pkg)
	if err != nil {
		return "", Pin{}, err
	}
	p, err := Describe(ctx, files[0])
	return files[0], p, err
}

// Candidates describes the versions apt would install now, downloading them
// in one apt-get run.
func (f *Fetcher) Candidates(ctx context.Context, pkgs []string) ([]Pin, error) {
	files, err := f.download(ctx, pkgs...)
	if err != nil {
		return nil, err
	}
	var pins []Pin
	for _, file := range files {
		p, err := Describe(ctx, file)
		if err != nil {
			return nil, err
		}
		if _, _, err := f.keep(file, p); err != nil {
			return nil, err
		}
		pins = append(pins, p)
	}
	sort.Slice(pins, func(i, j int) bool { return pins[i].Package < pins[j].Package })
	return pins, nil
}

// download runs one `apt-get download` of specs in a fresh directory under
// the cache and returns the files it wrote. When apt has no package lists yet
// (a fresh machine) and we are root, it runs `apt-get update` once and
// retries.
func (f *Fetcher) download(ctx context.Context, specs ...string) ([]string, error) {
	if err := os.MkdirAll(f.CacheDir, 0o755); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(f.CacheDir, "download-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	run := func() ([]byte, error) {
		cmd := exec.CommandContext(ctx, "apt-get", append([]string{"download", "-q"}, specs...)...)
		cmd.Dir = dir
		return cmd.CombinedOutput()
	}
	out, err := run()
	if err != nil && !f.updated && os.Geteuid() == 0 {
		f.updated = true
		fmt.Fprintf(f.Log, "==> apt-get update (apt-get download failed: %s)\n", lastLine(out))
		if uout, uerr := exec.CommandContext(ctx, "apt-get", "update", "-q").CombinedOutput(); uerr != nil {
			return nil, fmt.Errorf("apt-get update: %w: %s", uerr, uout)
		}
		out, err = run()
	}
	if err != nil {
		return nil, fmt.Errorf("apt-get download %s: %w: %s", strings.Join(specs, " "), err, strings.TrimSpace(string(out)))
	}
	matches, _ := filepath.Glob(filepath.Join(dir, "*.deb"))
	if len(matches) != len(specs) {
		return nil, fmt.Errorf("apt-get download of %d packages wrote %d .deb files", len(specs), len(matches))
	}
	var files []string
	for _, m := range matches {
		final := filepath.Join(f.CacheDir, filepath.Base(m)+".part")
		if err := os.Rename(m, final); err != nil {
			return nil, err
		}
		files = append(files, final)
	}
	return files, nil
}

func lastLine(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

// Describe reads a .deb's package name and version and hashes it.
func Describe(ctx context.Context, file string) (Pin, error) {
	out, err := exec.CommandContext(ctx, "dpkg-deb", "--show", "--showformat=${Package} ${Version}", file).Output()
	if err != nil {
		return Pin{}, fmt.Errorf("dpkg-deb --show %s: %w", file, err)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 {
		return Pin{}, fmt.Errorf("dpkg-deb --show %s: %q", file, out)
	}
	sum, err := fileSHA256(file)
	if err != nil {
		return Pin{}, err
	}
	return Pin{Package: f[0], Version: f[1], SHA256: sum}, nil
}

func fileSHA256(file string) (string, error) {
	fh, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer fh.Close()
	h := sha256.New()
	if _, err := io.Copy(h, fh); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// File is one entry of a package's data archive.
type File struct {
	Mode fs.FileMode
	Data []byte
	// Target is a symbolic link's target; a hard link is stored as a copy.
	Target string
}

// Extract returns every file, directory and link of the .deb's data
// archive by absolute path (read with `dpkg-deb --fsys-tarfile`).
func Extract(ctx context.Context, file string) (map[string]File, error) {
	cmd := exec.CommandContext(ctx, "dpkg-deb", "--fsys-tarfile", file)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("dpkg-deb --fsys-tarfile %s: %w", file, err)
	}
	files := map[string]File{}
	links := map[string]string{}
	tr := tar.NewReader(stdout)
	var readErr error
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			readErr = err
			break
		}
		p := path.Clean("/" + hdr.Name)
		switch hdr.Typeflag {
		case tar.TypeDir:
			files[p] = File{Mode: fs.ModeDir | fs.FileMode(hdr.Mode).Perm()}
		case tar.TypeSymlink:
			files[p] = File{Mode: fs.ModeSymlink | 0o777, Target: hdr.Linkname}
		case tar.TypeLink:
			links[p] = path.Clean("/" + hdr.Linkname)
		case tar.TypeReg:
			data, err := io.ReadAll(tr)
			if err != nil {
				readErr = err
				break
			}
			files[p] = File{Mode: fs.FileMode(hdr.Mode).Perm(), Data: data}
		}
	}
	_, _ = io.Copy(io.Discard, stdout)
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("dpkg-deb --fsys-tarfile %s: %w: %s", file, err, stderr.String())
	}
	if readErr != nil {
		return nil, fmt.Errorf("%s: %w", file, readErr)
	}
	for p, target := range links {
		t, ok := files[target]
		if !ok {
			return nil, fmt.Errorf("%s: hard link %s to missing %s", file, p, target)
		}
		files[p] = t
	}
	return files, nil
}
