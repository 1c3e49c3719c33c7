package sandbox

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestImage is a minimal image the sandbox builds and serves: one static binary
// (test/sandbox/testimage) answering HTTP on :8080 and printing a line per request.
const TestImage = "ghcr.io/corsmesh/sandbox-testimage:v1"

// pushSandboxImages builds the pause image and TestImage from test/sandbox/testimage and
// pushes them into the node's registry.
func (s *Sandbox) pushSandboxImages(ctx context.Context) error {
	bin := filepath.Join(s.node.dir, "testimage")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./test/sandbox/testimage")
	cmd.Dir = s.RepoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building test/sandbox/testimage: %w: %s", err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	for ref, cmd := range map[string]string{PauseImage: "pause", TestImage: "serve"} {
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
