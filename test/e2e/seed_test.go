package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
	"github.com/corsmesh/corsmesh/test/loopback"
	"github.com/corsmesh/corsmesh/test/seedcheck"
	"github.com/corsmesh/corsmesh/test/walkthrough"
)

// The guide end to end: its YAML applied in its order, the injected pipy-ok-v1 pod run as
// a kubelet would, and its two curl checks printing what the guide shows. Then, on that
// pod: the app down gives a 502 that still carries CORS; a PluginConfig edit reaches the
// running proxy while a bounded load runs, with no failed request; the proxy killed and
// restarted, traffic resumes.
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

	t.Run("app down: 502 with CORS headers", func(t *testing.T) {
		p.StopApp("pipy")
		got := curl(t, ctx, p, "pipy-ok.pipy:8080", "-H", "Origin: http://www.bbb.com")
		if !strings.HasPrefix(got, "HTTP/1.1 502") || !strings.Contains(strings.ToLower(got), "access-control-allow-origin: http://www.bbb.com") {
			t.Errorf("want a 502 carrying the CORS headers, got:\n%s", got)
		}
		if err := p.StartApp(ctx, "pipy"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("PluginConfig edit reaches the running proxy under load", func(t *testing.T) {
		loadCtx, stop := context.WithCancel(ctx)
		synced := syncAnnotation(loadCtx, t, s, pod, p)
		defer func() { stop(); synced.Wait() }()
		wait := runLoad(ctx, p, "pipy-ok.pipy:8080", 8*time.Second, "http://www.aaa.com", "http://www.edited.example")
		time.Sleep(2 * time.Second)
		pc := &v1alpha1.PluginConfig{}
		if err := s.Client.Get(ctx, client.ObjectKey{Namespace: "pipy", Name: "cors-policy-config"}, pc); err != nil {
			t.Fatal(err)
		}
		patch := client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"config":{"allowOrigins":[{"exact":"http://www.edited.example"}]}}}`))
		if err := s.Client.Patch(ctx, pc, patch); err != nil {
			t.Fatal(err)
		}
		res, err := wait()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("load: %d requests, %d failed, allowed %v", res.Requests, res.Failures, res.Allowed)
		if res.Failures != 0 || res.Requests == 0 {
			t.Errorf("%d of %d requests failed during the reload: %v", res.Failures, res.Requests, res.Errors)
		}
		if res.Allowed["http://www.aaa.com"] == 0 || res.Allowed["http://www.edited.example"] == 0 {
			t.Errorf("want the old policy, then the new one, in effect during the run: %v", res.Allowed)
		}
		after := curl(t, ctx, p, "pipy-ok.pipy:8080", "-H", "Origin: http://www.aaa.com")
		if strings.Contains(strings.ToLower(after), "access-control-allow-origin") {
			t.Errorf("the old origin is still allowed after the edit:\n%s", after)
		}
	})

	t.Run("proxy killed and restarted: traffic resumes", func(t *testing.T) {
		p.KillProxy()
		out, err := p.ClientCommand(ctx, "curl", "-s", "-o", "/dev/null", "-m", "2", "http://"+p.IP.String()+":8080/").CombinedOutput()
		if err == nil {
			t.Errorf("a request reached the app with the proxy down (%s): the redirect is not in place", out)
		}
		if err := p.RestartProxy(ctx); err != nil {
			t.Fatal(err)
		}
		got := curl(t, ctx, p, "pipy-ok.pipy:8080", "-H", "Origin: http://www.edited.example")
		if !strings.HasPrefix(got, "HTTP/1.1 200") || !strings.Contains(strings.ToLower(got), "access-control-allow-origin: http://www.edited.example") {
			t.Errorf("after the restart:\n%s", got)
		}
	})
}
