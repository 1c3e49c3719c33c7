package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/corsmesh/corsmesh/test/loopback"
	"github.com/corsmesh/corsmesh/test/seedcheck"
	"github.com/corsmesh/corsmesh/test/walkthrough"
)

// The guide end to end: its YAML applied in its order, the injected pipy-ok-v1 pod run as
// a kubelet would, and its two curl checks printing what the guide shows; then the same
// pod on loopback (make demo without root) and over IPv6. The real node (test/e2e/node)
// covers what needs a kubelet: an app port without a listener (502 with CORS), a
// PluginConfig edit under load, the proxy killed and restarted.
func TestSeedGuideEndToEnd(t *testing.T) {
	s := env.Require(t)
	ctx := testContext(t, 5*time.Minute)
	// As installed (osm-edge's default): the guide's own `kubectl patch meshconfig` turns
	// plugin policy on. The walkthrough leaves it on, as the other tests expect.
	if err := s.SetPluginPolicy(ctx, false); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.SetPluginPolicy(context.Background(), true) })
	w := &walkthrough.Walkthrough{Sandbox: s, Corsmeshctl: binDir + "/corsmeshctl", Say: t.Logf}
	pod, err := w.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p := runPod(t, ctx, pod)

	checks, err := seedcheck.Load(s.RepoRoot)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range checks {
		got := curl(t, ctx, p, "pipy-ok.pipy:8080", c.CurlArgs...)
		if diffs := seedcheck.Compare(c.Expected, got); len(diffs) > 0 {
			t.Errorf("%s:\n%s\ngot:\n%s", c.Command, strings.Join(diffs, "\n"), got)
		}
	}

	t.Run("without root: make demo's loopback fallback prints the same", func(t *testing.T) {
		lp, err := loopback.Run(ctx, pod, binDir, &testLogWriter{t})
		if err != nil {
			t.Fatal(err)
		}
		defer lp.Close()
		for _, c := range checks {
			got, err := lp.Curl(ctx, "pipy-ok.pipy:8080", "http://pipy-ok.pipy:8080", c.CurlArgs...)
			if err != nil {
				t.Fatal(err)
			}
			if diffs := seedcheck.Compare(c.Expected, got); len(diffs) > 0 {
				t.Errorf("%s on loopback:\n%s\ngot:\n%s", c.Command, strings.Join(diffs, "\n"), got)
			}
		}
	})

	t.Run("IPv6: the redirect and the original destination work the same", func(t *testing.T) {
		out, err := p.ClientCommand(ctx, "curl", "-ksi", "-m", "5", "-g", "-H", "Host: pipy-ok.pipy:8080", "-H", "Origin: http://www.bbb.com",
			"http://["+p.IP6.String()+"]:8080/").CombinedOutput()
		got := strings.ToLower(strings.ReplaceAll(string(out), "\r\n", "\n"))
		if err != nil || !strings.HasPrefix(got, "http/1.1 200") || !strings.Contains(got, "access-control-allow-origin: http://www.bbb.com") || !strings.Contains(got, "hi, i am pipy-ok v1!") {
			t.Errorf("over IPv6 (err %v):\n%s\nproxy log:\n%s", err, out, p.Log("corsproxy"))
		}
	})
}
