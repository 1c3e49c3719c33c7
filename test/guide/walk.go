package guide

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/corsmesh/corsmesh/injector"
	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
	"github.com/corsmesh/corsmesh/test/sandbox"
	"github.com/corsmesh/corsmesh/test/seedcheck"
)

// Walk runs the whole guide verbatim against a sandbox whose cluster runs corsmesh (a
// node, and corsmesh installed in it: sandbox.InstallInCluster).
//
// The guide's pods exist before its PluginChain, and corsmesh injects at admission, so
// before the first check Walk runs one step of corsmesh's own, printed as such: it waits
// until the chain's status names the pods running without the sidecar (the webhook has
// seen the chain), runs the restart command that status gives, and waits until the
// Services route only to pods with the sidecar.
type Walk struct {
	Sandbox *sandbox.Sandbox
	// Corsmeshctl is the binary the guide's `osm` runs.
	Corsmeshctl string
	// Out receives every block before it runs, its output as it comes, and each check's
	// answer beside the guide's with PASS or FAIL.
	Out io.Writer
}

// Check is one of the guide's checks: its step, what it printed, and how that differs
// from what the guide shows (nil: PASS).
type Check struct {
	Step  Step
	Got   string
	Diffs []string
}

// Timeouts of the waits of corsmesh's own step and of a check's retries.
const (
	chainStatusTimeout = 2 * time.Minute
	rolloutTimeout     = 4 * time.Minute
	routingTimeout     = 2 * time.Minute
	// A Service refuses connections (curl's exit code 7) until kube-proxy has its
	// endpoints, in any cluster, a moment after its pods are ready.
	refusedRetryFor = time.Minute
	curlRefused     = 7
	pollEvery       = 500 * time.Millisecond
)

// Run walks the guide. It fails when a block fails; the checks' verdicts are in the
// result, all of them printed.
func (w *Walk) Run(ctx context.Context) ([]Check, error) {
	s := w.Sandbox
	steps, err := Load(s.RepoRoot)
	if err != nil {
		return nil, err
	}
	sh, err := NewShell(Tools{Kubectl: filepath.Join(s.AssetsDir, "kubectl"), Corsmeshctl: w.Corsmeshctl,
		Kubeconfig: s.KubeconfigPath, OSMNamespace: sandbox.OSMNamespace, Dir: s.RepoRoot})
	if err != nil {
		return nil, err
	}
	defer sh.Close()
	w.say("\n==> the guide's shell: bash -euo pipefail; PATH starts with %s (kubectl -> %s, osm -> %s); KUBECONFIG=%s; osm_namespace=%s",
		sh.BinDir(), filepath.Join(s.AssetsDir, "kubectl"), w.Corsmeshctl, s.KubeconfigPath, sandbox.OSMNamespace)

	var checks []Check
	restarted := false
	for i, st := range steps {
		if st.IsCheck() && !restarted {
			if err := w.restartPodsWithoutSidecar(ctx); err != nil {
				return checks, err
			}
			restarted = true
		}
		w.say("\n==> the guide, step %d of %d: %q (%s:%d), verbatim:", i+1, len(steps), st.Heading, seedcheck.GuidePath, st.Line)
		w.block(st.Script)
		// A check's output is shown once, beside the guide's (verdict).
		var out io.Writer
		var pw *prefixWriter
		if !st.IsCheck() {
			w.say("--> its output:")
			pw = &prefixWriter{w: w.Out, prefix: "    "}
			out = pw
		}
		got, err := w.runStep(ctx, sh, st, out)
		if pw != nil {
			pw.Flush()
		}
		if err != nil && st.IsCheck() {
			w.block(got)
		}
		if err != nil {
			return checks, fmt.Errorf("the guide's step %d (%q, line %d): %w", i+1, st.Heading, st.Line, err)
		}
		if st.IsCheck() {
			c := Check{Step: st, Got: got, Diffs: seedcheck.CompareGuideAnswer(st.Expected, got)}
			w.verdict(c)
			checks = append(checks, c)
		}
	}
	return checks, nil
}

// runStep runs a block; a check is run again while its curl is refused.
func (w *Walk) runStep(ctx context.Context, sh *Shell, st Step, out io.Writer) (string, error) {
	deadline := time.Now().Add(refusedRetryFor)
	for {
		got, err := sh.Run(ctx, st.Script, out)
		if err == nil || !st.IsCheck() || ExitCode(err) != curlRefused || time.Now().After(deadline) {
			return got, err
		}
		w.say("    (curl's exit code 7: the Service refused the connection, kube-proxy does not route to the new pods yet; the same block again in 2s)")
		select {
		case <-ctx.Done():
			return got, err
		case <-time.After(2 * time.Second):
		}
	}
}

func (w *Walk) verdict(c Check) {
	w.block(SideBySide("the guide shows", c.Step.Expected, "corsmesh answered", c.Got))
	if len(c.Diffs) > 0 {
		w.say("FAIL:\n    %s", strings.Join(c.Diffs, "\n    "))
		return
	}
	note := ""
	if strings.Contains(c.Step.Expected, "PIPY-OK v1!") && strings.Contains(c.Got, "PIPY-OK v2!") {
		note = " (pipy-ok-v2 answered: the Service pipy-ok selects both versions' pods, the guide shows v1's answer)"
	}
	w.say("PASS: the status line, every header the guide shows, and the body%s", note)
}

// SideBySide lays two texts out in two columns under their titles.
func SideBySide(leftTitle, left, rightTitle, right string) string {
	lines := func(s string) []string {
		return strings.Split(strings.TrimRight(strings.ReplaceAll(s, "\r\n", "\n"), "\n"), "\n")
	}
	l := append([]string{leftTitle, strings.Repeat("-", len(leftTitle))}, lines(left)...)
	r := append([]string{rightTitle, strings.Repeat("-", len(rightTitle))}, lines(right)...)
	width := 0
	for _, s := range l {
		width = max(width, len(s))
	}
	var b strings.Builder
	for i := range max(len(l), len(r)) {
		var a, c string
		if i < len(l) {
			a = l[i]
		}
		if i < len(r) {
			c = r[i]
		}
		b.WriteString(strings.TrimRight(fmt.Sprintf("%-*s | %s", width, a, c), " "))
		b.WriteByte('\n')
	}
	return b.String()
}

// restartPodsWithoutSidecar is corsmesh's own step between the guide's PluginConfig and
// its checks.
func (w *Walk) restartPodsWithoutSidecar(ctx context.Context) error {
	s := w.Sandbox
	w.say("\n==> corsmesh's own step, not the guide's: the guide's pods were created before its PluginChain, and corsmesh\n" +
		"    injects when a pod is created; the chain's status names the pods without the sidecar and how to restart them.")
	hint, err := w.waitForRestartHint(ctx)
	if err != nil {
		return err
	}
	w.kubectl(ctx, "get", "pluginchains,pluginconfigs", "-A", "-o", "wide")
	if hint == "" {
		w.say("    every pod the chains select already has the sidecar: nothing to restart")
		return nil
	}
	w.say("    status.restartHint: %s", hint)
	cmds, err := restartCommands(hint)
	if err != nil {
		return err
	}
	namespaces := map[string]bool{}
	for _, args := range cmds {
		if out, err := w.kubectl(ctx, args...); err != nil {
			return fmt.Errorf("kubectl %s: %w\n%s", strings.Join(args, " "), err, out)
		}
		namespaces[args[namespaceArg]] = true
	}
	for _, args := range cmds {
		if args[0] != "rollout" {
			continue
		}
		for _, workload := range args[namespaceArg+1:] {
			status := []string{"rollout", "status", "-n", args[namespaceArg], workload, fmt.Sprintf("--timeout=%s", rolloutTimeout)}
			if out, err := w.kubectl(ctx, status...); err != nil {
				return fmt.Errorf("kubectl %s: %w\n%s%s", strings.Join(status, " "), err, out, s.Diagnose())
			}
		}
	}
	for ns := range namespaces {
		w.say("    waiting until every ready endpoint of the Services of namespace %s is a pod with the sidecar", ns)
		if err := w.waitForInjectedEndpoints(ctx, ns); err != nil {
			return err
		}
	}
	return nil
}

// waitForRestartHint waits until the PluginChains' and PluginConfigs' status is computed
// (the webhook has seen them) and returns the restart hint of the chains that have one (""
// when every pod they select has the sidecar).
func (w *Walk) waitForRestartHint(ctx context.Context) (string, error) {
	var last string
	err := wait.PollUntilContextTimeout(ctx, pollEvery, chainStatusTimeout, true, func(ctx context.Context) (bool, error) {
		var chains v1alpha1.PluginChainList
		if err := w.Sandbox.Client.List(ctx, &chains); err != nil {
			return false, err
		}
		if len(chains.Items) == 0 {
			last = "no PluginChain"
			return false, nil
		}
		// The configs too: a pod admitted before the webhook saw its PluginConfig would
		// start without the policy.
		var configs v1alpha1.PluginConfigList
		if err := w.Sandbox.Client.List(ctx, &configs); err != nil {
			return false, err
		}
		for _, c := range configs.Items {
			if c.Status.ObservedGeneration != c.Generation {
				last = fmt.Sprintf("PluginConfig %s/%s: status not computed for generation %d yet", c.Namespace, c.Name, c.Generation)
				return false, nil
			}
		}
		var hints []string
		for _, c := range chains.Items {
			if c.Status.RestartHint != "" && c.Status.PodsWithoutSidecar > 0 {
				hints = append(hints, c.Status.RestartHint)
				continue
			}
			accepted := meta.IsStatusConditionTrue(c.Status.Conditions, v1alpha1.ConditionAccepted)
			if c.Status.ObservedGeneration != c.Generation || !accepted || c.Status.SelectedPods == 0 {
				last = fmt.Sprintf("PluginChain %s/%s: %+v", c.Namespace, c.Name, c.Status)
				return false, nil
			}
		}
		last = strings.Join(hints, " && ")
		return true, nil
	})
	if err != nil {
		return "", fmt.Errorf("waiting for the PluginChains' status to name the pods without the sidecar (last: %s): %w%s", last, err, w.Sandbox.Diagnose())
	}
	return last, nil
}

// namespaceArg is where restartCommands puts the namespace: args[3] after `-n`.
const namespaceArg = 3

// restartCommands turns a PluginChain's restart hint into kubectl argument lists. The hint
// is text from the cluster, so it is not given to a shell: only the two shapes the webhook
// writes are accepted (`kubectl rollout restart -n NS KIND/NAME...` and `kubectl delete
// pod -n NS NAME...`, joined by &&), with valid names.
func restartCommands(hint string) ([][]string, error) {
	hint, _, _ = strings.Cut(hint, " # ") // "# and N more workloads": the next status names them
	var cmds [][]string
	for _, part := range strings.Split(hint, "&&") {
		f := strings.Fields(part)
		if len(f) < 6 || f[0] != "kubectl" || f[3] != "-n" {
			return nil, fmt.Errorf("restart hint %q: %q is not `kubectl rollout restart|delete pod -n NS ...`", hint, strings.TrimSpace(part))
		}
		args := f[1:]
		if errs := validation.IsDNS1123Label(args[namespaceArg]); len(errs) > 0 {
			return nil, fmt.Errorf("restart hint %q: namespace %q: %s", hint, args[namespaceArg], strings.Join(errs, "; "))
		}
		for _, target := range args[namespaceArg+1:] {
			name := target
			switch verb := args[0] + " " + args[1]; verb {
			case "rollout restart":
				kind, n, ok := strings.Cut(target, "/")
				if !ok || (kind != "deployment" && kind != "statefulset" && kind != "daemonset") {
					return nil, fmt.Errorf("restart hint %q: %q is not deployment|statefulset|daemonset/NAME", hint, target)
				}
				name = n
			case "delete pod":
			default:
				return nil, fmt.Errorf("restart hint %q: %q is neither rollout restart nor delete pod", hint, verb)
			}
			if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
				return nil, fmt.Errorf("restart hint %q: name %q: %s", hint, name, strings.Join(errs, "; "))
			}
		}
		cmds = append(cmds, args)
	}
	return cmds, nil
}

// waitForInjectedEndpoints waits until each Service of ns with a selector has a ready
// endpoint and every ready endpoint is a pod with the sidecar: from then on the guide's
// checks reach the proxy, not a pod from before the restart.
func (w *Walk) waitForInjectedEndpoints(ctx context.Context, ns string) error {
	c := w.Sandbox.Client
	var last string
	err := wait.PollUntilContextTimeout(ctx, pollEvery, routingTimeout, true, func(ctx context.Context) (bool, error) {
		var services corev1.ServiceList
		if err := c.List(ctx, &services, client.InNamespace(ns)); err != nil {
			return false, err
		}
		for _, svc := range services.Items {
			if len(svc.Spec.Selector) == 0 {
				continue
			}
			var slices discoveryv1.EndpointSliceList
			if err := c.List(ctx, &slices, client.InNamespace(ns), client.MatchingLabels{discoveryv1.LabelServiceName: svc.Name}); err != nil {
				return false, err
			}
			ready := 0
			for _, sl := range slices.Items {
				for _, ep := range sl.Endpoints {
					if ep.Conditions.Ready == nil || !*ep.Conditions.Ready {
						continue
					}
					if ep.TargetRef == nil || ep.TargetRef.Kind != "Pod" {
						last = fmt.Sprintf("Service %s: a ready endpoint %v that is not a pod", svc.Name, ep.Addresses)
						return false, nil
					}
					var pod corev1.Pod
					if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: ep.TargetRef.Name}, &pod); err != nil {
						return false, client.IgnoreNotFound(err)
					}
					if pod.Annotations[injector.AnnotationStatus] == "" {
						last = fmt.Sprintf("Service %s routes to pod %s, which has no sidecar", svc.Name, pod.Name)
						return false, nil
					}
					ready++
				}
			}
			if ready == 0 {
				last = fmt.Sprintf("Service %s has no ready endpoint", svc.Name)
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for namespace %s's Services to route to pods with the sidecar (last: %s): %w%s", ns, last, err, w.Sandbox.Diagnose())
	}
	return nil
}

// kubectl runs the sandbox's kubectl as corsmesh's step does, printing the command and
// its output.
func (w *Walk) kubectl(ctx context.Context, args ...string) (string, error) {
	w.say("    $ kubectl %s", strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, filepath.Join(w.Sandbox.AssetsDir, "kubectl"), args...)
	cmd.Env = append(cmd.Environ(), "KUBECONFIG="+w.Sandbox.KubeconfigPath)
	out, err := cmd.CombinedOutput()
	w.block(string(out))
	return string(out), err
}

func (w *Walk) say(format string, args ...any) {
	fmt.Fprintf(w.Out, format+"\n", args...)
}

// block prints text indented, as the console shows it.
func (w *Walk) block(text string) {
	if text = strings.TrimRight(text, "\n"); text != "" {
		w.say("    %s", strings.ReplaceAll(text, "\n", "\n    "))
	}
}

// prefixWriter indents what a block prints, line by line, as it comes.
type prefixWriter struct {
	w       io.Writer
	prefix  string
	midLine bool
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	var out []byte
	for _, c := range b {
		if !p.midLine {
			out = append(out, p.prefix...)
		}
		out = append(out, c)
		p.midLine = c != '\n'
	}
	if _, err := p.w.Write(out); err != nil {
		return 0, err
	}
	return len(b), nil
}

// Flush ends an unfinished last line.
func (p *prefixWriter) Flush() {
	if p.midLine {
		_, _ = p.w.Write([]byte{'\n'})
		p.midLine = false
	}
}
