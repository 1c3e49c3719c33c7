// Package e2e runs injected pods' data planes against the real control plane: the webhook
// injects a pod in the sandbox's API server, and test/podrunner runs the injected
// containers' own commands in network namespaces with real iptables, as a kubelet would.
// It needs root (and CI=true makes it fail rather than skip without it).
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/corsmesh/corsmesh/injector"
	"github.com/corsmesh/corsmesh/test/podrunner"
	"github.com/corsmesh/corsmesh/test/sandbox"
)

var (
	env    sandbox.Main
	binDir string
)

func TestMain(m *testing.M) {
	if err := podrunner.Preflight(); err != nil {
		if sandbox.OnCI() {
			fmt.Fprintln(os.Stderr, "e2e: CI=true but the data plane cannot run here:", err)
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "e2e: skipping:", err)
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "corsmesh-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Chmod(dir, 0o755) // the proxy runs as UID 1500
	binDir = dir
	code := func() int {
		if err := buildBinaries(dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		port, err := sandbox.FreePort()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return env.RunMain(m, sandbox.Options{Webhook: true, WebhookPort: port, PluginPolicy: true})
	}()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildBinaries builds what the injected containers and the walkthrough run.
func buildBinaries(dir string) error {
	root, err := sandbox.FindRepoRoot()
	if err != nil {
		return err
	}
	for _, pkg := range []string{"cmd/corsproxy", "cmd/corsproxy-init", "cmd/corsmeshctl", "test/pipyok"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, filepath.Base(pkg)), "./"+pkg)
		cmd.Dir = root
		if rest, ok := strings.CutPrefix(pkg, "test/"); ok {
			// The harness's own packages build in its module (test/go.mod).
			cmd.Args[len(cmd.Args)-1], cmd.Dir = "./"+rest, filepath.Join(root, "test")
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	return nil
}

func testContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// runPod runs an injected pod's data plane for the test.
func runPod(t *testing.T, ctx context.Context, pod *corev1.Pod) *podrunner.Pod {
	t.Helper()
	p, err := podrunner.Run(ctx, pod, podrunner.Options{BinDir: binDir, Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("cleaning up the pod: %v", err)
		}
	})
	return p
}

// curl runs curl in the client namespace with host:port resolved to the pod.
func curl(t *testing.T, ctx context.Context, p *podrunner.Pod, hostPort string, args ...string) string {
	t.Helper()
	all := append([]string{"-ksi", "-m", "5", "--resolve", hostPort + ":" + p.IP.String(), "http://" + hostPort + "/"}, args...)
	out, err := p.ClientCommand(ctx, "curl", all...).CombinedOutput()
	if err != nil {
		t.Fatalf("curl %s: %v\n%s\nproxy log:\n%s", strings.Join(all, " "), err, out, p.Log(injector.ProxyContainerName))
	}
	return strings.ReplaceAll(string(out), "\r\n", "\n")
}

// testLogWriter sends a process's stderr to the test log.
type testLogWriter struct{ t *testing.T }

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
