package helm

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/corsmesh/corsmesh/injector"
	"github.com/corsmesh/corsmesh/test/gobuild"
	"github.com/corsmesh/corsmesh/test/sandbox"
	"github.com/corsmesh/corsmesh/test/walkthrough"
)

const (
	webhookImage = "ghcr.io/corsmesh/corsmesh-webhook:v0.1.0"
	proxyImage   = "ghcr.io/corsmesh/corsproxy:v0.1.0"
	// upgradedProxy is the proxy image of the build the test upgrades to.
	upgradedProxy = "ghcr.io/corsmesh/corsproxy:v0.2.0"
)

// TestHelmOnNode installs the chart with the helm CLI on the real node as the README says,
// walks the guide (namespaces, workloads, the meshconfig patch, the policy, the restart the
// PluginChain's status asks for, both curl checks from the curl pod), upgrades to a build
// whose proxy image differs (the injected pods keep answering; corsmeshctl check lists them
// and the restart command; restarted, they run the new proxy) and uninstalls (no webhook
// configuration, nothing of corsmesh's left but the CRDs and the policies, a pod created
// afterwards in a monitored namespace runs untouched).
func TestHelmOnNode(t *testing.T) {
	s := sandbox.ForTest(t, sandbox.Options{Node: true})
	sandbox.RequireServed(t, s, sandbox.CoreDNSImage, "docker.io/curlimages/curl:latest", "docker.io/flomesh/pipy:latest",
		webhookImage, proxyImage, "ghcr.io/corsmesh/corsproxy-init:v0.1.0")
	h := helmCmd{t: t, path: helmCLI(t, s.RepoRoot), repo: s.RepoRoot, kubeconfig: s.KubeconfigPath, home: t.TempDir()}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	c := s.Client
	chart := filepath.Join(s.RepoRoot, "manifests", "charts", "corsmesh")
	bins, err := gobuild.Builder{Root: s.RepoRoot}.Build(ctx, t.TempDir(), "cmd/corsmeshctl")
	if err != nil {
		t.Fatal(err)
	}
	ctl := bins["cmd/corsmeshctl"]
	kubectl := func(args ...string) string {
		t.Helper()
		return s.MustKubectl(t, ctx, args...)
	}
	// rollout waits for the Deployments' new pods, then for their old ones to be gone: a
	// terminating pod leaves the Service's endpoints at once, but kube-proxy's rules a
	// moment later, and the guide's checks must reach the new ones only.
	rollout := func(deployments ...string) {
		t.Helper()
		for _, d := range deployments {
			kubectl("rollout", "status", "-n", "pipy", "deployment/"+d, "--timeout=4m")
		}
		eventually(t, ctx, 2*time.Minute, "the replaced pipy pods gone", func() error {
			var pods corev1.PodList
			if err := c.List(ctx, &pods, client.InNamespace("pipy"), client.MatchingLabels{"app": "pipy-ok"}); err != nil {
				return err
			}
			for _, p := range pods.Items {
				if p.DeletionTimestamp != nil {
					return fmt.Errorf("pod %s is terminating", p.Name)
				}
			}
			return nil
		})
	}
	phases := newStopwatch(t)
	removeSandboxCRDs(t, ctx, c)

	// Install as the README says; the webhook's pods of our image serve, caBundle filled.
	h.must(ctx, "install", release, chart, "--namespace", namespace, "--create-namespace", "--take-ownership")
	installed := manifestObjects(t, h.must(ctx, "get", "manifest", release, "--namespace", namespace))
	if err := s.WaitForWebhookInCluster(ctx); err != nil {
		t.Fatalf("%v%s", err, s.Diagnose())
	}
	checkWebhookPods(t, ctx, c)
	phases.lap("install")

	// The guide, as the walkthrough types it: its pods predate the PluginChain, whose
	// status names the restart that injects them.
	w := walkthrough.Walkthrough{Sandbox: s, Corsmeshctl: ctl, Say: t.Logf}
	if _, err := w.Run(ctx); err != nil {
		t.Fatalf("the guide: %v%s", err, s.Diagnose())
	}
	rollout("pipy-ok-v1", "pipy-ok-v2")
	kubectl("wait", "--for=condition=ready", "pod", "-l", "app=curl", "-n", "curl", "--timeout=4m")
	before := injectedPods(t, ctx, c, proxyImage)
	for name, p := range before {
		t.Logf("pod %s runs %s (%s)", name, proxyImage, p.imageID)
	}
	if err := s.CheckGuideAnswers(ctx); err != nil {
		t.Fatalf("the guide's checks after install: %v", err)
	}
	phases.lap("guide")

	// Upgrade to a build whose proxy image differs (same binary, another label: another
	// digest), served under the new tag, with a values file as the README says.
	pushUpgradedProxy(t, ctx, s)
	values := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(values, []byte("images:\n  proxy:\n    tag: v0.2.0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h.must(ctx, "upgrade", release, chart, "--namespace", namespace, "-f", values)
	if err := s.WaitForWebhookInCluster(ctx); err != nil {
		t.Fatalf("after the upgrade: %v%s", err, s.Diagnose())
	}
	checkWebhookPods(t, ctx, c)
	// The pods injected before run on, untouched, and answer as before.
	if still := injectedPods(t, ctx, c, proxyImage); !samePods(before, still) {
		t.Errorf("the upgrade replaced injected pods: before %v, after %v", before, still)
	}
	if err := s.CheckGuideAnswers(ctx); err != nil {
		t.Errorf("the guide's checks after the upgrade, before the restart: %v", err)
	}
	report := corsmeshctlCheck(t, ctx, ctl, s.KubeconfigPath)
	restarts := staleProxyRestarts(t, report, before)
	phases.lap("upgrade")

	// The restart corsmeshctl check printed: the new pods run the upgraded proxy.
	for _, cmd := range restarts {
		args := strings.Fields(cmd)
		kubectl(args[1:]...)
	}
	rollout("pipy-ok-v1", "pipy-ok-v2")
	after := injectedPods(t, ctx, c, upgradedProxy)
	for name, p := range after {
		t.Logf("pod %s runs %s (%s)", name, upgradedProxy, p.imageID)
		for _, old := range before {
			if p.imageID == old.imageID {
				t.Errorf("pod %s runs %s with the old proxy's image %s", name, upgradedProxy, p.imageID)
			}
		}
	}
	if err := s.CheckGuideAnswers(ctx); err != nil {
		t.Errorf("the guide's checks after the restart on the new proxy: %v", err)
	}
	report = corsmeshctlCheck(t, ctx, ctl, s.KubeconfigPath)
	if want := fmt.Sprintf("OK   %d injected pod(s) run the proxy the webhook injects (%s)", len(after), upgradedProxy); !strings.Contains(report, want) {
		t.Errorf("corsmeshctl check after the restart: want %q in:\n%s", want, report)
	}
	phases.lap("restart")

	// Uninstall: nothing of corsmesh's is left but the CRDs and the users' policies.
	h.must(ctx, "uninstall", release, "--namespace", namespace, "--wait")
	checkUninstalled(t, ctx, c, installed)
	for _, kind := range []string{"plugin/cors-policy", "pluginchain/cors-policy-chain", "pluginconfig/cors-policy-config"} {
		args := []string{"get", kind}
		if kind != "plugin/cors-policy" {
			args = append(args, "-n", "pipy")
		}
		if _, err := s.Kubectl(ctx, args...); err != nil {
			t.Errorf("%s after uninstall: %v", kind, err)
		}
	}
	// A pod created after the uninstall, in a monitored namespace its chain selects,
	// runs untouched and answers without CORS headers.
	kubectl("rollout", "restart", "-n", "pipy", "deployment/pipy-ok-v1")
	rollout("pipy-ok-v1")
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace("pipy"), client.MatchingLabels{"app": "pipy-ok", "version": "v1"}); err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 1 {
		t.Fatalf("%d pipy-ok-v1 pods after its restart, want 1", len(pods.Items))
	}
	for _, p := range pods.Items {
		if _, injected := p.Annotations[injector.AnnotationStatus]; injected || len(p.Spec.InitContainers) != 0 || len(p.Spec.Containers) != 1 {
			t.Errorf("pod %s created after the uninstall was changed: init containers %d, containers %d, annotations %v",
				p.Name, len(p.Spec.InitContainers), len(p.Spec.Containers), p.Annotations)
		}
	}
	curlPod := strings.TrimSpace(kubectl("get", "pods", "-n", "curl", "-l", "app=curl", "-o", "jsonpath={.items[0].metadata.name}"))
	out, err := s.CurlFromPod(ctx, "curl", curlPod, "-si", "--max-time", "20", "http://pipy-ok-v1.pipy:8080", "-H", "Origin: http://www.bbb.com")
	if err != nil {
		t.Fatalf("curl pipy-ok-v1 after the uninstall: %v\n%s", err, out)
	}
	if !strings.HasPrefix(out, "HTTP/1.1 200") || !strings.Contains(out, "Hi, I am PIPY-OK v1!") || strings.Contains(strings.ToLower(out), "access-control-") {
		t.Errorf("curl pipy-ok-v1 after the uninstall: want pipy's own answer, without CORS headers:\n%s", out)
	}
	phases.lap("uninstall")
}

// stopwatch logs how long each phase of a test took.
type stopwatch struct {
	t    *testing.T
	last time.Time
}

func newStopwatch(t *testing.T) *stopwatch { return &stopwatch{t: t, last: time.Now()} }

func (s *stopwatch) lap(phase string) {
	now := time.Now()
	s.t.Logf("phase %s took %.1fs", phase, now.Sub(s.last).Seconds())
	s.last = now
}

// checkWebhookPods checks that the webhook's replicas run our image and are Ready.
func checkWebhookPods(t *testing.T, ctx context.Context, c client.Client) {
	t.Helper()
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace(namespace), client.MatchingLabels{"app.kubernetes.io/name": "corsmesh-webhook"}); err != nil {
		t.Fatal(err)
	}
	ready := 0
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		if image := p.Spec.Containers[0].Image; image != webhookImage {
			t.Errorf("webhook pod %s runs %s, want %s", p.Name, image, webhookImage)
		}
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
				ready++
			}
		}
	}
	if ready != 2 {
		t.Errorf("%d webhook pods Ready, want the chart's 2 replicas", ready)
	}
}

// proxyPod is an injected pod: its UID, its proxy's image and the digest that runs.
type proxyPod struct {
	uid, image, imageID string
}

// injectedPods returns the guide's pipy pods by name, failing the test unless each runs
// the proxy image want (a native sidecar, running).
func injectedPods(t *testing.T, ctx context.Context, c client.Client, want string) map[string]proxyPod {
	t.Helper()
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace("pipy"), client.MatchingLabels{"app": "pipy-ok"}); err != nil {
		t.Fatal(err)
	}
	got := map[string]proxyPod{}
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		var pp proxyPod
		for _, st := range p.Status.InitContainerStatuses {
			if st.Name == injector.ProxyContainerName && st.State.Running != nil {
				pp = proxyPod{uid: string(p.UID), imageID: st.ImageID}
			}
		}
		i := slices.IndexFunc(p.Spec.InitContainers, func(c corev1.Container) bool { return c.Name == injector.ProxyContainerName })
		if i < 0 || pp.imageID == "" || p.Spec.InitContainers[i].Image != want {
			t.Fatalf("pod pipy/%s: want the proxy %s running as a native sidecar; init containers %v, statuses %v",
				p.Name, want, p.Spec.InitContainers, p.Status.InitContainerStatuses)
		}
		pp.image = p.Spec.InitContainers[i].Image
		got[p.Name] = pp
	}
	if len(got) != 2 {
		t.Fatalf("%d pipy-ok pods, want the guide's 2: %v", len(got), got)
	}
	return got
}

func samePods(a, b map[string]proxyPod) bool {
	if len(a) != len(b) {
		return false
	}
	for name, p := range a {
		if b[name] != p {
			return false
		}
	}
	return true
}

// pushUpgradedProxy serves upgradedProxy: the release build's proxy image (make images)
// with another version label, so another image config and digest, as a rebuild of a new
// version would have.
func pushUpgradedProxy(t *testing.T, ctx context.Context, s *sandbox.Sandbox) {
	t.Helper()
	img, err := sandbox.ArchivedImage(filepath.Join(s.RepoRoot, "bin", "images", "corsproxy.tar"), proxyImage)
	if err != nil {
		t.Fatalf("reading the proxy image (make images): %v", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	if cfg.Config.Labels == nil {
		cfg.Config.Labels = map[string]string{}
	}
	cfg.Config.Labels["org.opencontainers.image.version"] = "v0.2.0"
	upgraded, err := mutate.ConfigFile(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []v1.Image{img, upgraded} {
		d, err := i.Digest()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("proxy image digest %s", d)
	}
	if err := s.PushImage(ctx, upgradedProxy, upgraded); err != nil {
		t.Fatal(err)
	}
}

// corsmeshctlCheck runs `corsmeshctl check`, failing the test if a check FAILs.
func corsmeshctlCheck(t *testing.T, ctx context.Context, ctl, kubeconfig string) string {
	t.Helper()
	out, err := exec.CommandContext(ctx, ctl, "check", "--kubeconfig", kubeconfig).CombinedOutput()
	t.Logf("corsmeshctl check:\n%s", out)
	if err != nil {
		t.Fatalf("corsmeshctl check: %v", err)
	}
	return string(out)
}

// staleProxyRestarts checks that check's report lists every pod of stale on the old proxy
// image and returns the restart commands it prints.
func staleProxyRestarts(t *testing.T, report string, stale map[string]proxyPod) []string {
	t.Helper()
	var line string
	for l := range strings.Lines(report) {
		if strings.Contains(l, "run another proxy than the webhook injects") {
			line = strings.TrimSpace(l)
		}
	}
	if !strings.HasPrefix(line, "WARN") {
		t.Fatalf("corsmeshctl check after the upgrade lists no pod on the old proxy:\n%s", report)
	}
	for name, p := range stale {
		if want := fmt.Sprintf("pipy/%s (%s)", name, p.image); !strings.Contains(line, want) {
			t.Errorf("corsmeshctl check: want %q in %q", want, line)
		}
	}
	_, cmds, ok := strings.Cut(line, "restart them: ")
	if !ok {
		t.Fatalf("corsmeshctl check prints no restart command: %q", line)
	}
	var restarts []string
	for cmd := range strings.SplitSeq(cmds, "; ") {
		if !strings.HasPrefix(cmd, "kubectl rollout restart deployment/pipy-ok-v") || !strings.HasSuffix(cmd, " -n pipy") {
			t.Fatalf("corsmeshctl check: restart command %q, want kubectl rollout restart deployment/pipy-ok-v[12] -n pipy", cmd)
		}
		restarts = append(restarts, cmd)
	}
	if len(restarts) != 2 {
		t.Fatalf("corsmeshctl check: restart commands %q, want one per Deployment", restarts)
	}
	return restarts
}
