package guide

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Tools are what the guide's blocks call and the environment they expect.
type Tools struct {
	// Kubectl and Corsmeshctl are the binaries; the shell finds them as kubectl and osm.
	Kubectl, Corsmeshctl string
	// Kubeconfig is exported as KUBECONFIG.
	Kubeconfig string
	// OSMNamespace is exported as osm_namespace, which the guide's meshconfig patch uses
	// (corsmesh's namespace, where its MeshConfig lives).
	OSMNamespace string
	// Dir is the blocks' working directory (default: the current one).
	Dir string
}

// Shell runs the guide's blocks with bash -euo pipefail, the way a careful user pastes
// them: the first failing command stops the block.
type Shell struct {
	dir string
	env []string
	bin string // kubectl and osm, as links
}

// NewShell makes a directory holding links named kubectl and osm (corsmeshctl answers to
// that name as osm-edge users type it) and an environment with it first on PATH. Close
// removes it.
func NewShell(t Tools) (*Shell, error) {
	for name, path := range map[string]string{"kubectl": t.Kubectl, "corsmeshctl": t.Corsmeshctl, "kubeconfig": t.Kubeconfig} {
		if path == "" {
			return nil, fmt.Errorf("guide shell: no %s given", name)
		}
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("guide shell: %s: %w", name, err)
		}
	}
	if t.OSMNamespace == "" {
		return nil, errors.New("guide shell: no osm_namespace given")
	}
	bin, err := os.MkdirTemp("", "corsmesh-guide-")
	if err != nil {
		return nil, err
	}
	for name, target := range map[string]string{"kubectl": t.Kubectl, "osm": t.Corsmeshctl} {
		abs, err := filepath.Abs(target)
		if err == nil {
			err = os.Symlink(abs, filepath.Join(bin, name))
		}
		if err != nil {
			_ = os.RemoveAll(bin)
			return nil, fmt.Errorf("guide shell: linking %s: %w", name, err)
		}
	}
	path := bin + string(os.PathListSeparator) + os.Getenv("PATH")
	var env []string
	for _, kv := range os.Environ() {
		switch name, _, _ := strings.Cut(kv, "="); name {
		case "PATH", "KUBECONFIG", "osm_namespace", "BASH_ENV", "ENV":
			// Ours below; BASH_ENV would run a file of the caller's before every block.
		default:
			env = append(env, kv)
		}
	}
	env = append(env, "PATH="+path, "KUBECONFIG="+t.Kubeconfig, "osm_namespace="+t.OSMNamespace)
	return &Shell{dir: t.Dir, env: env, bin: bin}, nil
}

// Env returns the environment the blocks run with.
func (sh *Shell) Env() []string { return append([]string(nil), sh.env...) }

// BinDir is the directory of the kubectl and osm links, first on the blocks' PATH.
func (sh *Shell) BinDir() string { return sh.bin }

// Close removes the links.
func (sh *Shell) Close() error { return os.RemoveAll(sh.bin) }

// Run runs script with bash -euo pipefail and returns its output, stdout and stderr
// interleaved as a terminal shows them; out, when not nil, receives it as it comes. A
// failing block's error carries its exit code (ExitCode).
func (sh *Shell) Run(ctx context.Context, script string, out io.Writer) (string, error) {
	var buf bytes.Buffer
	w := io.Writer(&buf)
	if out != nil {
		w = io.MultiWriter(&buf, out)
	}
	cmd := exec.CommandContext(ctx, "bash", "--noprofile", "--norc", "-euo", "pipefail", "-c", script)
	cmd.Dir, cmd.Env = sh.dir, sh.env
	cmd.Stdout, cmd.Stderr = w, w
	// bash's children (kubectl exec ...) must not keep Wait waiting once bash is gone.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return buf.String(), fmt.Errorf("bash: %w", err)
	}
	return buf.String(), nil
}

// ExitCode is the exit code of a block that ran and failed, or -1.
func ExitCode(err error) int {
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	return -1
}
