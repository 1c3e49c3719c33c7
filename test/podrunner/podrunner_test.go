package podrunner_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/corsmesh/corsmesh/injector"
	"github.com/corsmesh/corsmesh/injector/manifest"
	"github.com/corsmesh/corsmesh/test/podrunner"
)

// requireRunner skips without root or tools, except under CI=true, where it must run.
func requireRunner(t *testing.T) {
	t.Helper()
	if err := podrunner.Preflight(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true but the pod runner cannot run: %v", err)
		}
		t.Skipf("skipping: %v", err)
	}
}

// buildBinaries builds what the injected containers run.
func buildBinaries(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, pkg := range []string{"cmd/corsproxy", "cmd/corsproxy-init", "test/pipyok"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, filepath.Base(pkg)), "./"+pkg)
		cmd.Dir = filepath.Join("..", "..")
		if rest, ok := strings.CutPrefix(pkg, "test/"); ok {
			// The harness's own packages build in its module (test/go.mod).
			cmd.Args[len(cmd.Args)-1], cmd.Dir = "./"+rest, ".."
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", pkg, err, out)
		}
	}
	return dir
}

// The seed's pipy-ok-v1 pod, injected offline with the seed's policies, runs with real
// iptables: the seed's curl from another namespace gets the seed's CORS answer.
func TestSeedPodRuns(t *testing.T) {
	requireRunner(t)
	bin := buildBinaries(t)
	objs := &injector.Objects{}
	dir := filepath.Join("..", "..", "injector", "testdata", "inject")
	docs, err := manifest.ReadFiles(filepath.Join(dir, "_cluster.yaml"), filepath.Join(dir, "seed-pipy-ok-v1.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := manifest.AddObjects(objs, docs); err != nil {
		t.Fatal(err)
	}
	w, err := manifest.ParseWorkload(docs[len(docs)-1])
	if err != nil {
		t.Fatal(err)
	}
	_, pod, err := injector.NewResolver(injector.New(injector.DefaultOptions()), objs, injector.ResolverOptions{}).Inject(context.Background(), w.Pod, w.Namespace)
	if err != nil || pod == nil {
		t.Fatalf("inject: %v", err)
	}
	pod.Name = "pipy-ok-v1-test"

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := podrunner.Run(ctx, pod, podrunner.Options{BinDir: bin, Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	})
	out, err := p.ClientCommand(ctx, "curl", "-ksi", "--resolve", "pipy-ok.pipy:8080:"+p.IP.String(), "http://pipy-ok.pipy:8080", "-H", "Origin: http://www.bbb.com").CombinedOutput()
	if err != nil {
		t.Fatalf("curl: %v\n%s\nproxy log:\n%s", err, out, p.Log(injector.ProxyContainerName))
	}
	for _, want := range []string{"access-control-allow-origin: http://www.bbb.com", "Hi, I am PIPY-OK v1!"} {
		if !strings.Contains(strings.ToLower(string(out)), strings.ToLower(want)) {
			t.Errorf("response lacks %q:\n%s", want, out)
		}
	}
}
