// Package walkthrough performs the seed guide's steps against a sandbox, in the guide's
// order, as a user would type them (kubectl and corsmeshctl), and returns the injected
// pipy-ok-v1 pod: the demo and the end-to-end tests start from it.
package walkthrough

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/corsmesh/corsmesh/injector"
	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
	"github.com/corsmesh/corsmesh/test/sandbox"
)

// Walkthrough runs the guide's steps.
type Walkthrough struct {
	Sandbox *sandbox.Sandbox
	// Corsmeshctl is the corsmeshctl binary (`osm namespace add` is `corsmeshctl namespace add`).
	Corsmeshctl string
	// Say prints a step as the user would see it: the command, then its output.
	Say func(format string, args ...any)
}

// Run applies the guide and returns the pipy-ok-v1 pod created after the policy exists.
func (w *Walkthrough) Run(ctx context.Context) (*corev1.Pod, error) {
	for _, ns := range []string{"curl", "pipy"} {
		if err := w.kubectl(ctx, "create", "namespace", ns); err != nil {
			return nil, err
		}
		if err := w.run(ctx, w.Corsmeshctl, "namespace", "add", ns, "--kubeconfig", w.Sandbox.KubeconfigPath); err != nil {
			return nil, err
		}
	}
	for _, step := range [][]string{
		{"apply", "-n", "curl", "-f", "manifests/samples/curl.yaml"},
		{"apply", "-n", "pipy", "-f", "manifests/samples/pipy.yaml"},
	} {
		if err := w.kubectl(ctx, step...); err != nil {
			return nil, err
		}
	}
	w.Say("# no kubelet here: the guide's `kubectl wait --for=condition=ready` cannot succeed; waiting for kube-controller-manager to create the pods instead")
	before, err := w.waitPod(ctx, "pipy", "app=pipy-ok,version=v1", nil)
	if err != nil {
		return nil, err
	}
	if err := w.enablePluginPolicy(ctx); err != nil {
		return nil, err
	}
	for _, step := range []string{"plugin.yaml", "pluginchain.yaml", "pluginconfig.yaml"} {
		if err := w.kubectl(ctx, "apply", "-f", filepath.Join("manifests", "samples", step)); err != nil {
			return nil, err
		}
	}

	// The pods predate the chain; its status says so and how to fix it.
	var chain v1alpha1.PluginChain
	if err := poll(ctx, time.Minute, func() (bool, error) {
		err := w.Sandbox.Client.Get(ctx, client.ObjectKey{Namespace: "pipy", Name: "cors-policy-chain"}, &chain)
		return err == nil && chain.Status.RestartHint != "", client.IgnoreNotFound(err)
	}); err != nil {
		return nil, fmt.Errorf("waiting for the PluginChain's restart hint: %w", err)
	}
	if err := w.kubectl(ctx, "get", "pluginchain", "-n", "pipy", "-o", "wide"); err != nil {
		return nil, err
	}
	w.Say("# the PluginChain reports %d pods running without the sidecar; its restart hint:\n#   %s", chain.Status.PodsWithoutSidecar, chain.Status.RestartHint)
	hint := strings.Fields(chain.Status.RestartHint)
	if len(hint) < 2 || hint[0] != "kubectl" {
		return nil, fmt.Errorf("unexpected restart hint %q", chain.Status.RestartHint)
	}
	if err := w.kubectl(ctx, hint[1:]...); err != nil {
		return nil, err
	}
	return w.waitPod(ctx, "pipy", "app=pipy-ok,version=v1", func(p *corev1.Pod) bool {
		return p.UID != before.UID && p.Annotations[injector.AnnotationStatus] != ""
	})
}

// guideEnablePluginPolicy is the heading of the guide's section that turns osm-edge's
// plugin-policy switch on.
const guideEnablePluginPolicy = "### Enable plugin policy mode"

// enablePluginPolicy runs the guide's `kubectl patch meshconfig` block as it is written,
// with bash, its $osm_namespace set to corsmesh's namespace (where the manifests install
// osm-mesh-config) and the sandbox's kubectl first on PATH.
func (w *Walkthrough) enablePluginPolicy(ctx context.Context) error {
	guide, err := os.ReadFile(filepath.Join(w.Sandbox.RepoRoot, "manifests", "testdata", "cors-plugin.md"))
	if err != nil {
		return err
	}
	script, err := bashBlockAfter(string(guide), guideEnablePluginPolicy)
	if err != nil {
		return err
	}
	w.Say("$ osm_namespace=%s", sandbox.OSMNamespace)
	w.Say("$ %s", script)
	cmd := exec.CommandContext(ctx, "bash", "-euc", script)
	cmd.Dir = w.Sandbox.RepoRoot
	cmd.Env = append(os.Environ(),
		"osm_namespace="+sandbox.OSMNamespace,
		"KUBECONFIG="+w.Sandbox.KubeconfigPath,
		"PATH="+w.Sandbox.AssetsDir+string(os.PathListSeparator)+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	w.print(string(out))
	if err != nil {
		return fmt.Errorf("the guide's %q step: %w", guideEnablePluginPolicy, err)
	}
	return nil
}

// bashBlockAfter returns the first ```bash block after the heading.
func bashBlockAfter(doc, heading string) (string, error) {
	_, rest, ok := strings.Cut(doc, "\n"+heading+"\n")
	if !ok {
		return "", fmt.Errorf("the guide has no section %q", heading)
	}
	_, rest, ok = strings.Cut(rest, "```bash\n")
	if !ok {
		return "", fmt.Errorf("the guide's section %q has no bash block", heading)
	}
	block, _, ok := strings.Cut(rest, "```")
	if !ok {
		return "", fmt.Errorf("the guide's section %q: unterminated bash block", heading)
	}
	return strings.TrimSpace(block), nil
}

// waitPod waits for a pod matching selector (and keep, when given).
func (w *Walkthrough) waitPod(ctx context.Context, ns, selector string, keep func(*corev1.Pod) bool) (*corev1.Pod, error) {
	sel, err := labels.Parse(selector)
	if err != nil {
		return nil, err
	}
	var found *corev1.Pod
	err = poll(ctx, 2*time.Minute, func() (bool, error) {
		var pods corev1.PodList
		if err := w.Sandbox.Client.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabelsSelector{Selector: sel}); err != nil {
			return false, err
		}
		for i := range pods.Items {
			if pods.Items[i].DeletionTimestamp == nil && (keep == nil || keep(&pods.Items[i])) {
				found = &pods.Items[i]
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return nil, fmt.Errorf("waiting for a pod %s in %s: %w", selector, ns, err)
	}
	return found, nil
}

func (w *Walkthrough) kubectl(ctx context.Context, args ...string) error {
	w.Say("$ kubectl %s", strings.Join(args, " "))
	out, stderr, err := w.Sandbox.KubectlIO(ctx, nil, args...)
	w.print(out + stderr)
	if err != nil {
		return fmt.Errorf("kubectl %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

func (w *Walkthrough) run(ctx context.Context, name string, args ...string) error {
	shown := strings.Join(args, " ")
	shown = strings.ReplaceAll(shown, " --kubeconfig "+w.Sandbox.KubeconfigPath, "")
	w.Say("$ %s %s", filepath.Base(name), shown)
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = w.Sandbox.RepoRoot
	out, err := cmd.CombinedOutput()
	w.print(string(out))
	if err != nil {
		return fmt.Errorf("%s %s: %w", filepath.Base(name), shown, err)
	}
	return nil
}

func (w *Walkthrough) print(out string) {
	if out = strings.TrimRight(out, "\n"); out != "" {
		w.Say("%s", out)
	}
}

func poll(ctx context.Context, timeout time.Duration, done func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		ok, err := done()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
