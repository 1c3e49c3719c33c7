// Command demo is `make demo`: osm-edge's CORS plugin guide on this machine.
//
// As root, with the node's binaries and images (make demo builds them), it starts the
// sandbox with a real node, installs corsmesh as users do (kubectl apply -k
// manifests/overlays/default), and runs the guide's own bash blocks verbatim, read from
// manifests/testdata/cors-plugin.md now, in its order (test/guide), with `osm` being
// corsmeshctl. Each curl check is printed beside what the guide shows, with PASS or FAIL,
// then the pods on the node.
//
// Without root (or without a node) it walks the guide with the webhook in this process and
// runs the injected pod's proxy on loopback with --upstream, and says so.
//
//	go -C test run ./demo [--bin ../bin] [--keep]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/corsmesh/corsmesh/injector"
	"github.com/corsmesh/corsmesh/test/guide"
	"github.com/corsmesh/corsmesh/test/loopback"
	"github.com/corsmesh/corsmesh/test/sandbox"
	"github.com/corsmesh/corsmesh/test/seedcheck"
	"github.com/corsmesh/corsmesh/test/walkthrough"
)

func main() {
	keep := flag.Bool("keep", false, "leave the sandbox running after the checks, until Ctrl-C")
	bin := flag.String("bin", "bin", "directory with corsmeshctl, corsproxy and pipyok (make build)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *bin, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func say(format string, args ...any) { fmt.Printf(format+"\n", args...) }

func section(title string) { say("\n==> %s", title) }

func run(ctx context.Context, bin string, keep bool) error {
	bin, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	start := time.Now()
	if os.Geteuid() != 0 {
		return onLoopback(ctx, bin, keep, "not root: no node (containerd, the kubelet and iptables need root)")
	}
	section("starting the sandbox with a real node: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, cert-manager, containerd, the kubelet, kube-proxy, CoreDNS, an image registry")
	s, err := sandbox.Start(ctx, sandbox.Options{Node: true, Log: func(f string, a ...any) { say("    "+f, a...) }})
	if errors.Is(err, sandbox.ErrNoNode) {
		return onLoopback(ctx, bin, keep, err.Error())
	}
	if err != nil {
		return err
	}
	defer stopSandbox(s)
	say("    up in %s", time.Since(start).Round(100*time.Millisecond))
	if err := onNode(ctx, s, bin); err != nil {
		return err
	}
	say("\n(the demo took %s from starting the sandbox to the last check)", time.Since(start).Round(time.Second))
	if keep {
		waitForCtrlC(ctx, s)
	}
	return nil
}

// onNode installs corsmesh in the sandbox's cluster and runs the guide verbatim.
func onNode(ctx context.Context, s *sandbox.Sandbox, bin string) error {
	for _, ref := range sandbox.GuideImages {
		if !s.ServesImage(ref) {
			return fmt.Errorf("the node's registry does not serve %s: make images sandbox-images", ref)
		}
	}
	section(fmt.Sprintf("installing corsmesh as users do: kubectl apply -k %s", sandbox.DefaultOverlay))
	say("    (the webhook's image behind its Service; cert-manager issues its certificate, cainjector fills caBundle)")
	installed := time.Now()
	if err := s.InstallInCluster(ctx, sandbox.DefaultOverlay); err != nil {
		return fmt.Errorf("%w%s", err, s.Diagnose())
	}
	say("    the webhook's Deployment rolled out and caBundle filled in %s", time.Since(installed).Round(100*time.Millisecond))
	if out, err := s.Kubectl(ctx, "get", "pods", "-n", sandbox.WebhookNamespace, "-o", "wide"); err == nil {
		say("    $ kubectl get pods -n %s -o wide\n    %s", sandbox.WebhookNamespace, indent(out))
	}

	checks, err := (&guide.Walk{Sandbox: s, Corsmeshctl: filepath.Join(bin, "corsmeshctl"), Out: os.Stdout}).Run(ctx)
	if err != nil {
		return err
	}
	section("kubectl get pods -A -o wide: the guide's pods, injected, Running on the node")
	out, err := s.Kubectl(ctx, "get", "pods", "-A", "-o", "wide")
	if err != nil {
		return err
	}
	say("    %s", indent(out))
	return summary(len(checks), failedChecks(checks))
}

func failedChecks(checks []guide.Check) int {
	n := 0
	for _, c := range checks {
		if len(c.Diffs) > 0 {
			n++
		}
	}
	return n
}

func summary(total, failed int) error {
	switch {
	case total != 2:
		return fmt.Errorf("the guide has %d checks, want 2", total)
	case failed > 0:
		return fmt.Errorf("%d of %d checks FAILED", failed, total)
	}
	say("\nPASS: both of the guide's curl checks print what the guide shows")
	return nil
}

func stopSandbox(s *sandbox.Sandbox) {
	section("cleaning up")
	if err := s.Stop(); err != nil {
		say("    stopping the sandbox: %v", err)
	}
}

func waitForCtrlC(ctx context.Context, s *sandbox.Sandbox) {
	section("--keep: the sandbox stays up until Ctrl-C")
	say("    export KUBECONFIG=%s\n    %s get pods -A", s.KubeconfigPath, filepath.Join(s.AssetsDir, "kubectl"))
	<-ctx.Done()
}

// onLoopback is the root-free path: the webhook in this process, the guide's steps with
// kubectl and corsmeshctl (test/walkthrough), and the injected pod's proxy on loopback.
func onLoopback(ctx context.Context, bin string, keep bool, why string) error {
	section("NO NODE: " + why)
	say("    the guide runs against the control plane with the webhook in this process, and the injected\n" +
		"    pod's proxy runs on loopback with --upstream instead of behind its init container's iptables")
	section("starting etcd, kube-apiserver, kube-controller-manager, cert-manager and the corsmesh webhook")
	start := time.Now()
	s, err := sandbox.Start(ctx, sandbox.Options{Webhook: true, Log: func(f string, a ...any) { say("    "+f, a...) }})
	if err != nil {
		return err
	}
	defer stopSandbox(s)
	say("    up in %s", time.Since(start).Round(100*time.Millisecond))

	section("the guide, step by step (manifests/samples: its YAML unchanged)")
	w := &walkthrough.Walkthrough{Sandbox: s, Corsmeshctl: filepath.Join(bin, "corsmeshctl"), Say: func(f string, a ...any) { say("    " + indent(fmt.Sprintf(f, a...))) }}
	pod, err := w.Run(ctx)
	if err != nil {
		return err
	}
	section(fmt.Sprintf("the injected pod: kubectl get pod -n pipy %s -o yaml (excerpt)", pod.Name))
	if err := showPod(pod); err != nil {
		return err
	}
	checks, err := seedcheck.Load(s.RepoRoot)
	if err != nil {
		return err
	}
	section("running the pod's proxy on loopback WITHOUT iptables (" + why + ")")
	p, err := loopback.Run(ctx, pod, bin, os.Stderr)
	if err != nil {
		return err
	}
	defer p.Close()
	failed := 0
	for i, c := range checks {
		got, err := p.Curl(ctx, "pipy-ok.pipy:8080", "http://pipy-ok.pipy:8080", c.CurlArgs...)
		if err != nil {
			return err
		}
		section(fmt.Sprintf("check %d: %s", i+1, c.Command))
		say("    %s", indent(guide.SideBySide("the guide shows", c.Expected, "corsmesh answered (proxy on loopback)", got)))
		if diffs := seedcheck.Compare(c.Expected, got); len(diffs) > 0 {
			failed++
			say("FAIL:\n  %s", strings.Join(diffs, "\n  "))
		} else {
			say("PASS: status, every header the guide shows, and the body match")
		}
	}
	if keep {
		waitForCtrlC(ctx, s)
	}
	return summary(len(checks), failed)
}

// showPod prints what the webhook added to the pod.
func showPod(pod *corev1.Pod) error {
	excerpt := map[string]any{
		"metadata": map[string]any{"name": pod.Name, "annotations": map[string]string{
			injector.AnnotationConfig: pod.Annotations[injector.AnnotationConfig],
			injector.AnnotationStatus: pod.Annotations[injector.AnnotationStatus],
		}},
		"spec": map[string]any{"initContainers": summarize(pod.Spec.InitContainers), "containers": summarize(pod.Spec.Containers)},
	}
	out, err := yaml.Marshal(excerpt)
	if err != nil {
		return err
	}
	say("    %s", indent(string(out)))
	return nil
}

func summarize(cs []corev1.Container) []map[string]any {
	var out []map[string]any
	for _, c := range cs {
		m := map[string]any{"name": c.Name, "image": c.Image, "command": c.Command}
		if len(c.Args) > 0 {
			m["args"] = c.Args
		}
		if c.RestartPolicy != nil {
			m["restartPolicy"] = *c.RestartPolicy
		}
		if c.SecurityContext != nil && c.SecurityContext.Capabilities != nil {
			m["capabilities"] = c.SecurityContext.Capabilities
		}
		out = append(out, m)
	}
	return out
}

func indent(s string) string {
	return strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}
