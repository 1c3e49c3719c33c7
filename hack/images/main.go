// Command images builds corsmesh's container images (make images) and the
// sandbox cluster's stand-in images (make sandbox-images) as archives under
// bin/images, without Docker and without pulling anything: Go binaries are
// built here, Debian files come from pinned .deb packages, and
// go-containerregistry assembles the OCI images. See README.md.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/corsmesh/corsmesh/hack/images/catalog"
	"github.com/corsmesh/corsmesh/hack/images/debs"
	"github.com/corsmesh/corsmesh/hack/images/ociarchive"
)

// builderVersion is part of every cache key: bump it when a change here
// changes images without changing their inputs.
const builderVersion = "1"

var platform = v1.Platform{OS: "linux", Architecture: "amd64"}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
}

type options struct {
	repo, out, lock, version, set, debCache string
	updateLock                              bool
}

func run(ctx context.Context, args []string, log io.Writer) error {
	var o options
	fs := flag.NewFlagSet("images", flag.ContinueOnError)
	fs.StringVar(&o.repo, "repo", "../..", "the corsmesh repository root")
	fs.StringVar(&o.out, "out", "", "output directory (default <repo>/bin/images)")
	fs.StringVar(&o.lock, "lock", "debs.lock", "the Debian package lock file")
	fs.StringVar(&o.debCache, "deb-cache", "", "where downloaded .deb files are kept (default <out>/debs)")
	fs.StringVar(&o.version, "version", catalog.DefaultVersion, "tag of the release images")
	fs.StringVar(&o.set, "set", "release", "which images: release, sandbox or all")
	fs.BoolVar(&o.updateLock, "update-lock", false, "pin the Debian packages' current candidate versions in the lock file, and build nothing")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var err error
	if o.repo, err = filepath.Abs(o.repo); err != nil {
		return err
	}
	if o.out == "" {
		o.out = filepath.Join(o.repo, "bin", "images")
	}
	if o.out, err = filepath.Abs(o.out); err != nil {
		return err
	}
	if o.debCache == "" {
		o.debCache = filepath.Join(o.out, "debs")
	}
	if o.lock, err = filepath.Abs(o.lock); err != nil {
		return err
	}
	if _, err := name.NewTag("example.com/x:"+o.version, name.StrictValidation); err != nil {
		return fmt.Errorf("--version %q is not a valid tag: %w", o.version, err)
	}
	b := &builder{
		opts:    o,
		log:     log,
		binDir:  filepath.Join(o.out, "build"),
		fetcher: &debs.Fetcher{CacheDir: o.debCache, Log: log},
	}
	if o.updateLock {
		return b.updateLock(ctx)
	}
	var imgs []catalog.Image
	switch o.set {
	case "release", "sandbox":
		imgs = catalog.Of(catalog.Set(o.set), o.version)
	case "all":
		imgs = catalog.Images(o.version)
	default:
		return fmt.Errorf("--set %q is not one of release, sandbox, all", o.set)
	}
	return b.build(ctx, imgs)
}

type builder struct {
	opts    options
	log     io.Writer
	binDir  string
	fetcher *debs.Fetcher
	ctx     context.Context
	tree    *debs.Tree
}

// goBuilds says where each Go binary comes from: module directory (relative
// to the repository) and package.
var goBuilds = map[string][2]string{
	"corsproxy":        {".", "./cmd/corsproxy"},
	"corsproxy-init":   {".", "./cmd/corsproxy-init"},
	"corsmesh-webhook": {".", "./cmd/corsmesh-webhook"},
	"pipyok":           {"test", "./pipyok"}, // the harness's own module
	"pause":            {"hack/images", "./pause"},
	"coredns":          {"hack/images/coredns", "github.com/coredns/coredns"},
}

// binariesOf names the Go binaries an image is built from.
func binariesOf(img catalog.Image) []string {
	switch img.Name {
	case "pipy":
		return []string{"pipyok"}
	case "curl":
		return nil
	}
	return []string{img.Name}
}

func (b *builder) build(ctx context.Context, imgs []catalog.Image) error {
	b.ctx = ctx
	start := time.Now()
	var bins []string
	for _, img := range imgs {
		bins = append(bins, binariesOf(img)...)
	}
	if err := b.goBuild(ctx, bins); err != nil {
		return err
	}
	for _, img := range imgs {
		if err := b.image(img); err != nil {
			return err
		}
	}
	if err := b.writeIndex(); err != nil {
		return err
	}
	fmt.Fprintf(b.log, "==> %d images in %s (%s)\n", len(imgs), b.opts.out, time.Since(start).Round(100*time.Millisecond))
	return nil
}

// goBuild builds static linux/amd64 binaries into binDir, one `go build` per
// module. -trimpath and no VCS stamp keep build paths and checkout state out
// of the binaries, so equal sources give equal bytes. CoreDNS, pinned by its
// go.sum, is built once and kept.
func (b *builder) goBuild(ctx context.Context, bins []string) error {
	if err := os.MkdirAll(b.binDir, 0o755); err != nil {
		return err
	}
	byModule := map[string][]string{}
	for _, bin := range bins {
		src := goBuilds[bin]
		if bin == "coredns" {
			fresh, err := b.corednsFresh()
			if err != nil {
				return err
			}
			if fresh {
				continue
			}
		}
		byModule[src[0]] = append(byModule[src[0]], src[1])
	}
	mods := make([]string, 0, len(byModule))
	for m := range byModule {
		mods = append(mods, m)
	}
	sort.Strings(mods)
	for _, mod := range mods {
		pkgs := byModule[mod]
		start := time.Now()
		args := append([]string{"build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w", "-o", b.binDir + "/"}, pkgs...)
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = filepath.Join(b.opts.repo, mod)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+platform.OS, "GOARCH="+platform.Architecture, "GOWORK=off")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s (in %s): %w\n%s", strings.Join(pkgs, " "), mod, err, out)
		}
		fmt.Fprintf(b.log, "==> go build %s (%s)\n", strings.Join(pkgs, " "), time.Since(start).Round(100*time.Millisecond))
		if mod == goBuilds["coredns"][0] {
			key, err := b.corednsKey()
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(b.binDir, "coredns.key"), []byte(key), 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

// corednsKey hashes what the CoreDNS binary depends on: its module's
// go.mod and go.sum, and the Go toolchain.
func (b *builder) corednsKey() (string, error) {
	h := sha256.New()
	fmt.Fprintln(h, runtime.Version())
	for _, f := range []string{"go.mod", "go.sum"} {
		data, err := os.ReadFile(filepath.Join(b.opts.repo, goBuilds["coredns"][0], f))
		if err != nil {
			return "", err
		}
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func (b *builder) corednsFresh() (bool, error) {
	key, err := b.corednsKey()
	if err != nil {
		return false, err
	}
	old, err := os.ReadFile(filepath.Join(b.binDir, "coredns.key"))
	if err != nil {
		return false, nil
	}
	_, statErr := os.Stat(filepath.Join(b.binDir, "coredns"))
	return string(old) == key && statErr == nil, nil
}

// debTree fetches and unpacks the locked Debian packages, once.
func (b *builder) debTree() (*debs.Tree, error) {
	if b.tree != nil {
		return b.tree, nil
	}
	pins, err := debs.ReadLock(b.opts.lock)
	if err != nil {
		return nil, fmt.Errorf("reading the package lock (make images-lock writes it): %w", err)
	}
	locked := map[string]bool{}
	for _, p := range pins {
		locked[p.Package] = true
	}
	for _, p := range debPackages {
		if !locked[p] {
			return nil, fmt.Errorf("package %s is not in %s: run make images-lock", p, b.opts.lock)
		}
	}
	debFiles, got, err := b.fetcher.FetchAll(b.ctx, pins)
	if err != nil {
		return nil, err
	}
	tree := debs.NewTree()
	for i, file := range debFiles {
		files, err := debs.Extract(b.ctx, file)
		if err != nil {
			return nil, err
		}
		if err := tree.Add(got[i].Package+"="+got[i].Version, files); err != nil {
			return nil, err
		}
	}
	b.tree = tree
	return tree, nil
}

func (b *builder) updateLock(ctx context.Context) error {
	pkgs := append([]string(nil), debPackages...)
	sort.Strings(pkgs)
	pins, err := b.fetcher.Candidates(ctx, pkgs)
	if err != nil {
		return err
	}
	for _, pin := range pins {
		fmt.Fprintf(b.log, "%s %s\n", pin.Package, pin.Version)
	}
	header := "# The Debian packages hack/images takes files from (corsproxy-init's iptables, the\n" +
		"# sandbox's curl): package, version, SHA-256 of the .deb. Written by `make images-lock`.\n"
	return debs.WriteLock(b.opts.lock, header, pins)
}

// stamp records what an archive was built from and what it holds.
type stamp struct {
	Key      string `json:"key"`
	Ref      string `json:"ref"`
	Digest   string `json:"digest"`
	Size     int64  `json:"size"`
	Unpacked int64  `json:"unpacked"`
}

func (b *builder) stampPath(img catalog.Image) string {
	return filepath.Join(b.opts.out, ".stamps", img.Name+".json")
}

// image builds one archive, unless the one on disk was built from the same
// inputs (the cache key hashes every file, the config and the reference).
func (b *builder) image(img catalog.Image) error {
	start := time.Now()
	sp, err := b.spec(img)
	if err != nil {
		return err
	}
	cfgJSON, err := json.Marshal(sp.config)
	if err != nil {
		return err
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00", builderVersion, img.Ref(), cfgJSON, sp.fs.Digest())
	key := hex.EncodeToString(h.Sum(nil))
	archive := img.Archive(b.opts.out)

	if old, err := readStamp(b.stampPath(img)); err == nil && old.Key == key {
		if _, err := os.Stat(archive); err == nil {
			fmt.Fprintf(b.log, "==> %-16s %s %s (up to date)\n", img.Name, img.Ref(), old.Digest)
			return nil
		}
	}

	ref, err := name.NewTag(img.Ref(), name.StrictValidation)
	if err != nil {
		return fmt.Errorf("%s: %w", img.Name, err)
	}
	layer, err := sp.fs.Tar()
	if err != nil {
		return fmt.Errorf("%s: %w", img.Name, err)
	}
	image, err := ociarchive.Build(layer, sp.config, platform)
	if err != nil {
		return fmt.Errorf("%s: %w", img.Name, err)
	}
	digest, err := image.Digest()
	if err != nil {
		return fmt.Errorf("%s: %w", img.Name, err)
	}
	if err := os.MkdirAll(filepath.Dir(archive), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(archive), "."+img.Name+".tar.")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := ociarchive.Write(tmp, ref, image); err != nil {
		tmp.Close()
		return fmt.Errorf("%s: %w", img.Name, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), archive); err != nil {
		return err
	}
	st, err := os.Stat(archive)
	if err != nil {
		return err
	}
	s := stamp{Key: key, Ref: img.Ref(), Digest: digest.String(), Size: st.Size(), Unpacked: int64(len(layer))}
	if err := writeStamp(b.stampPath(img), s); err != nil {
		return err
	}
	fmt.Fprintf(b.log, "==> %-16s %s %s %.1f MiB (%.1f MiB unpacked) in %s\n", img.Name, img.Ref(), s.Digest,
		float64(s.Size)/(1<<20), float64(s.Unpacked)/(1<<20), time.Since(start).Round(100*time.Millisecond))
	return nil
}

func readStamp(file string) (stamp, error) {
	var s stamp
	data, err := os.ReadFile(file)
	if err != nil {
		return s, err
	}
	return s, json.Unmarshal(data, &s)
}

func writeStamp(file string, s stamp) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	data, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return os.WriteFile(file, append(data, '\n'), 0o644)
}

// writeIndex lists every built image in <out>/index.txt, one per line:
// name, reference, archive path relative to <out>, manifest digest.
func (b *builder) writeIndex() error {
	var buf bytes.Buffer
	buf.WriteString("# name reference archive digest (written by hack/images)\n")
	for _, img := range catalog.Images(b.opts.version) {
		s, err := readStamp(b.stampPath(img))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if s.Ref != img.Ref() {
			continue // built for another version
		}
		rel, err := filepath.Rel(b.opts.out, img.Archive(b.opts.out))
		if err != nil {
			return err
		}
		if _, err := os.Stat(img.Archive(b.opts.out)); err != nil {
			continue
		}
		fmt.Fprintf(&buf, "%s %s %s %s\n", img.Name, img.Ref(), rel, s.Digest)
	}
	return os.WriteFile(filepath.Join(b.opts.out, "index.txt"), buf.Bytes(), 0o644)
}
