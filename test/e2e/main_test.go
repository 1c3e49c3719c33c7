// Package e2e runs injected pods' data planes against the real control plane: the webhook
// injects a pod in the sandbox's API server, and test/podrunner runs the injected
// containers' own commands in network namespaces with real iptables, as a kubelet would.
// It needs root (and CI=true makes it fail rather than skip without it).
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/corsmesh/corsmesh/injector"
	"github.com/corsmesh/corsmesh/test/podrunner"
	"github.com/corsmesh/corsmesh/test/sandbox"
)

var (
	env    sandbox.Main
	binDir string
)

func TestMain(m *testing.M) {
	// The load helper runs inside the client namespace (see runLoad).
	if os.Getenv(loadHelperEnv) != "" {
		os.Exit(loadHelper())
	}
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

// syncAnnotation plays the kubelet's part of config delivery: it copies the pod's config
// annotation, as the API server has it, into the pod's downward-API volume whenever it
// changes, until ctx ends.
func syncAnnotation(ctx context.Context, t *testing.T, s *sandbox.Sandbox, pod *corev1.Pod, p *podrunner.Pod) *sync.WaitGroup {
	var wg sync.WaitGroup
	last := pod.Annotations[injector.AnnotationConfig]
	wg.Go(func() {
		for ctx.Err() == nil {
			var current corev1.Pod
			if err := s.Client.Get(ctx, client.ObjectKeyFromObject(pod), &current); err == nil {
				if v := current.Annotations[injector.AnnotationConfig]; v != last {
					if err := p.UpdateConfig(v); err != nil {
						t.Errorf("updating the volume: %v", err)
					}
					last = v
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	})
	return &wg
}

// The load helper: requests from inside the client namespace for a bounded time, each
// with an Origin; it reports failures and which allow-origin values came back.
const (
	loadHelperEnv = "CORSMESH_E2E_LOAD"
	loadURLEnv    = "CORSMESH_E2E_LOAD_URL"
	loadHostEnv   = "CORSMESH_E2E_LOAD_HOST"
	loadOrigins   = "CORSMESH_E2E_LOAD_ORIGINS"
	loadDuration  = "CORSMESH_E2E_LOAD_DURATION"
)

type loadResult struct {
	Requests int            `json:"requests"`
	Failures int            `json:"failures"`
	Errors   []string       `json:"errors,omitempty"`
	Allowed  map[string]int `json:"allowed"` // origin → responses that allowed it
}

func loadHelper() int {
	d, err := time.ParseDuration(os.Getenv(loadDuration))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	origins := strings.Split(os.Getenv(loadOrigins), ",")
	client := &http.Client{Timeout: 5 * time.Second}
	res := loadResult{Allowed: map[string]int{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	for w := range 4 {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				origin := origins[(i+w)%len(origins)]
				req, _ := http.NewRequest(http.MethodGet, os.Getenv(loadURLEnv), nil)
				req.Host = os.Getenv(loadHostEnv)
				req.Header.Set("Origin", origin)
				resp, err := client.Do(req)
				mu.Lock()
				res.Requests++
				switch {
				case err != nil:
					res.Failures++
					res.Errors = append(res.Errors, err.Error())
				case resp.StatusCode != http.StatusOK:
					res.Failures++
					res.Errors = append(res.Errors, resp.Status)
				default:
					if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
						res.Allowed[got]++
					}
				}
				mu.Unlock()
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		})
	}
	wg.Wait()
	if len(res.Errors) > 10 {
		res.Errors = res.Errors[:10]
	}
	json.NewEncoder(os.Stdout).Encode(res)
	return 0
}

// runLoad starts the load helper in the client namespace; wait for its result.
func runLoad(ctx context.Context, p *podrunner.Pod, host string, d time.Duration, origins ...string) func() (*loadResult, error) {
	self, err := os.Executable()
	if err != nil {
		return func() (*loadResult, error) { return nil, err }
	}
	cmd := p.ClientCommand(ctx, self)
	cmd.Env = append(os.Environ(), loadHelperEnv+"=1", loadURLEnv+"=http://"+p.IP.String()+":8080/", loadHostEnv+"="+host,
		loadOrigins+"="+strings.Join(origins, ","), loadDuration+"="+d.String())
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return func() (*loadResult, error) { return nil, err }
	}
	return func() (*loadResult, error) {
		if err := cmd.Wait(); err != nil {
			return nil, fmt.Errorf("load helper: %w: %s", err, out.String())
		}
		var res loadResult
		if err := json.Unmarshal([]byte(out.String()), &res); err != nil {
			return nil, fmt.Errorf("load helper output %q: %w", out.String(), err)
		}
		return &res, nil
	}
}

// testLogWriter sends a process's stderr to the test log.
type testLogWriter struct{ t *testing.T }

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
