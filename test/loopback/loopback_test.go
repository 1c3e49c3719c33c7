package loopback_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/corsmesh/corsmesh/test/gobuild"
	"github.com/corsmesh/corsmesh/test/loopback"
	"github.com/corsmesh/corsmesh/test/sandbox"
	"github.com/corsmesh/corsmesh/test/seedcheck"
	"github.com/corsmesh/corsmesh/test/walkthrough"
)

var (
	env    sandbox.Main
	binDir string
)

// TestMain starts the control plane with the webhook in this process, as `make demo` does
// without root; it needs no root itself.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "corsmesh-loopback-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := func() int {
		// What the walkthrough and the loopback pod run.
		if _, err := gobuild.Build(context.Background(), dir, "cmd/corsproxy", "cmd/corsmeshctl", "test/pipyok"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		port, err := sandbox.FreePort()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return env.RunMain(m, sandbox.Options{Webhook: true, WebhookPort: port})
	}()
	os.RemoveAll(dir)
	os.Exit(code)
}

// TestDemoWithoutRootMatchesGuide is `make demo` without root: the guide walked with
// kubectl and corsmeshctl (plugin policy off as installed, until the guide's own patch),
// the injected pod's proxy run on loopback, and both of the guide's curl checks answered as
// the guide shows.
func TestDemoWithoutRootMatchesGuide(t *testing.T) {
	s := env.Require(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	w := &walkthrough.Walkthrough{Sandbox: s, Corsmeshctl: filepath.Join(binDir, "corsmeshctl"), Say: t.Logf}
	pod, err := w.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checks, err := seedcheck.Load(s.RepoRoot)
	if err != nil {
		t.Fatal(err)
	}
	p, err := loopback.Run(ctx, pod, binDir, t.Output())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, c := range checks {
		got, err := p.Curl(ctx, "pipy-ok.pipy:8080", "http://pipy-ok.pipy:8080", c.CurlArgs...)
		if err != nil {
			t.Fatal(err)
		}
		if diffs := seedcheck.Compare(c.Expected, got); len(diffs) > 0 {
			t.Errorf("%s on loopback:\n%s\ngot:\n%s", c.Command, strings.Join(diffs, "\n"), got)
		}
	}
}
