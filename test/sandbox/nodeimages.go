package sandbox

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/corsmesh/corsmesh/hack/images/ociarchive"
	"github.com/corsmesh/corsmesh/test/gobuild"
)

// TestImage is a minimal image the sandbox builds and serves: one static binary
// (test/sandbox/testimage) answering HTTP on :8080 and printing a line per request.
const TestImage = "ghcr.io/corsmesh/sandbox-testimage:v1"

// pushSandboxImages pushes into the node's registry the images `make images` and `make
// sandbox-images` built (listed in <ImagesDir>/index.txt, if there), and TestImage, plus
// a pause image of its own when the index has none.
func (s *Sandbox) pushSandboxImages(ctx context.Context) error {
	indexed, err := s.pushIndexedImages(ctx)
	if err != nil {
		return err
	}
	s.node.images = indexed
	bins, err := gobuild.Builder{Root: s.RepoRoot, Static: true}.Build(ctx, s.node.dir, "test/sandbox/testimage")
	if err != nil {
		return err
	}
	data, err := os.ReadFile(bins["test/sandbox/testimage"])
	if err != nil {
		return err
	}
	own := map[string]string{TestImage: "serve"}
	if !indexed[PauseImage] {
		own[PauseImage] = "pause"
	}
	for ref, cmd := range own {
		img, err := singleBinaryImage("testimage", data, []string{"/testimage", cmd})
		if err != nil {
			return fmt.Errorf("building %s: %w", ref, err)
		}
		if err := s.node.registry.Push(ctx, ref, img); err != nil {
			return err
		}
	}
	return nil
}

// singleBinaryImage is an image of one layer holding one executable at /<name>, run as
// UID 65532.
func singleBinaryImage(name string, data []byte, entrypoint []string) (v1.Image, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(data); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	layerData := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerData)), nil
	})
	if err != nil {
		return nil, err
	}
	img, err := mutate.Append(empty.Image, mutate.Addendum{Layer: layer})
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", runtime.GOARCH
	cfg.Config.Entrypoint = entrypoint
	cfg.Config.User = "65532:65532"
	return mutate.ConfigFile(img, cfg)
}

// pushIndexedImages pushes the archives <ImagesDir>/index.txt lists ("name reference
// archive digest" lines, archive relative to the directory) and returns the references.
func (s *Sandbox) pushIndexedImages(ctx context.Context) (map[string]bool, error) {
	dir := s.opts.ImagesDir
	if dir == "" {
		dir = filepath.Join(s.RepoRoot, "bin", "images")
	}
	pushed := map[string]bool{}
	data, err := os.ReadFile(filepath.Join(dir, "index.txt"))
	if errors.Is(err, os.ErrNotExist) {
		s.logf("no %s: only the sandbox's own test images (make images sandbox-images builds the others)", filepath.Join(dir, "index.txt"))
		return pushed, nil
	}
	if err != nil {
		return nil, err
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || strings.HasPrefix(f[0], "#") {
			continue
		}
		ref, archive := f[1], filepath.Join(dir, f[2])
		img, err := ArchivedImage(archive, ref)
		if err != nil {
			return nil, err
		}
		// The node must run the image the index names, not a re-encoding of it: reading the
		// archive as `docker save` would push a Docker manifest with another digest.
		if got, err := img.Digest(); err != nil || (len(f) > 3 && got.String() != f[3]) {
			return nil, fmt.Errorf("image %s from %s has digest %v (%v), index.txt says %s", ref, archive, got, err, f[3])
		}
		if err := s.node.registry.Push(ctx, ref, img); err != nil {
			return nil, err
		}
		pushed[ref] = true
	}
	s.logf("serving %d images from %s", len(pushed), dir)
	return pushed, nil
}

// ArchivedImage reads the image ref from an archive `make images` or `make
// sandbox-images` wrote, as its OCI index lists it: manifest byte for byte, so the registry
// serves the digest the build recorded.
func ArchivedImage(archive, ref string) (v1.Image, error) {
	imgs, err := ociarchive.Read(archive)
	if err != nil {
		return nil, fmt.Errorf("reading image %s: %w", ref, err)
	}
	want, err := name.NewTag(ref)
	if err != nil {
		return nil, fmt.Errorf("image name %q: %w", ref, err)
	}
	for _, img := range imgs {
		if img.Ref.Name() == want.Name() {
			return img.Image, nil
		}
	}
	return nil, fmt.Errorf("%s holds no image %s", archive, ref)
}
