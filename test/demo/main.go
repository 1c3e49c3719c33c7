// Command demo is `make demo`: the seed guide's walkthrough on one machine. It starts the
// embedded control plane (etcd, kube-apiserver, kube-controller-manager), cert-manager's
// controllers and the webhook, applies the guide's YAML in the guide's order, shows the
// injected pod, runs that pod's data plane (network namespaces and iptables when root,
// loopback otherwise) and prints the guide's two curl checks beside what the guide shows,
// with PASS or FAIL.
//
//	go -C test run ./demo [--keep]
package main

import (
	"context"
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
	"github.com/corsmesh/corsmesh/test/loopback"
	"github.com/corsmesh/corsmesh/test/podrunner"
	"github.com/corsmesh/corsmesh/test/sandbox"
	"github.com/corsmesh/corsmesh/test/seedcheck"
	"github.com/corsmesh/corsmesh/test/walkthrough"
)

func main() {
	keep := flag.Bool("keep", false, "leave the sandbox running after the checks, until Ctrl-C")
	bin := flag.String("bin", "bin", "directory with corsproxy, corsproxy-init, corsmeshctl and pipyok (make build)")
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
	section("starting etcd, kube-apiserver, kube-controller-manager, cert-manager and the corsmesh webhook")
	start := time.Now()
	s, err := sandbox.Start(ctx, sandbox.Options{Webhook: true, Log: func(f string, a ...any) { say("    "+f, a...) }})
	if err != nil {
		return err
	}
	defer func() {
		section("cleaning up")
		if err := s.Stop(); err != nil {
			say("    stopping the sandbox: %v", err)
		}
	}()
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
	var results []string
	if err := podrunner.Preflight(); err == nil {
		section("running the pod's data plane in network namespaces (real iptables), as a kubelet would")
		results, err = checkInNamespaces(ctx, pod, bin, checks)
		if err != nil {
			return err
		}
	} else {
		section(fmt.Sprintf("running the pod's proxy on loopback WITHOUT iptables (%v)", err))
		results, err = checkOnLoopback(ctx, pod, bin, checks)
		if err != nil {
			return err
		}
	}

	failed := 0
	for i, c := range checks {
		section(fmt.Sprintf("check %d: %s", i+1, c.Command))
		say("--- the guide shows:\n%s--- corsmesh answers:\n%s", c.Expected, strings.ReplaceAll(results[i], "\r\n", "\n"))
		if diffs := seedcheck.Compare(c.Expected, results[i]); len(diffs) > 0 {
			failed++
			say("FAIL:\n  %s", strings.Join(diffs, "\n  "))
		} else {
			say("PASS: status, every header the guide shows, and the body match")
		}
	}
	if keep {
		section("--keep: the sandbox stays up until Ctrl-C")
		say("    export KUBECONFIG=%s\n    %s get pods -A", s.KubeconfigPath, filepath.Join(s.AssetsDir, "kubectl"))
		<-ctx.Done()
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d checks FAILED", failed, len(checks))
	}
	say("\nPASS: both of the guide's curl checks print what the guide shows")
	return nil
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

// checkInNamespaces runs the pod with real iptables and curls it from a client namespace,
// with the guide's URL resolved to the pod's address.
func checkInNamespaces(ctx context.Context, pod *corev1.Pod, bin string, checks []seedcheck.Check) ([]string, error) {
	p, err := podrunner.Run(ctx, pod, podrunner.Options{BinDir: bin, Log: func(f string, a ...any) { say("    "+f, a...) }})
	if err != nil {
		return nil, err
	}
	defer p.Close()
	var results []string
	for _, c := range checks {
		args := append([]string{"-ksi", "--resolve", "pipy-ok.pipy:8080:" + p.IP.String(), "http://pipy-ok.pipy:8080"}, c.CurlArgs...)
		out, err := p.ClientCommand(ctx, "curl", args...).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("curl: %w\n%s", err, out)
		}
		results = append(results, string(out))
	}
	return results, nil
}

// checkOnLoopback runs the injected proxy's command with --upstream instead of iptables.
func checkOnLoopback(ctx context.Context, pod *corev1.Pod, bin string, checks []seedcheck.Check) ([]string, error) {
	p, err := loopback.Run(ctx, pod, bin, os.Stderr)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	var results []string
	for _, c := range checks {
		out, err := p.Curl(ctx, "pipy-ok.pipy:8080", "http://pipy-ok.pipy:8080", c.CurlArgs...)
		if err != nil {
			return nil, err
		}
		results = append(results, out)
	}
	return results, nil
}

func indent(s string) string {
	return strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}
