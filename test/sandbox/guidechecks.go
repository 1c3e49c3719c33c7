package sandbox

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/corsmesh/corsmesh/test/seedcheck"
)

// CheckGuideAnswers runs the guide's two curl commands from the first pod of the curl
// Deployment (namespace curl), as the guide does, and compares each answer with the one the
// guide shows (test/seedcheck). pipy-ok selects both versions' pods and the guide shows v1's
// answer; v2's differs only in its body, so either passes. It needs the node, the guide's
// workloads Ready and its policy applied; a mismatch comes back with the pipy pods'
// annotations and the logs of their injected containers.
func (s *Sandbox) CheckGuideAnswers(ctx context.Context) error {
	client, err := s.Kubectl(ctx, "get", "pods", "-n", "curl", "-l", "app=curl", "-o", "jsonpath={.items[0].metadata.name}")
	if err != nil {
		return fmt.Errorf("finding the curl pod: %w", err)
	}
	client = strings.TrimSpace(client)
	checks, err := seedcheck.Load(s.RepoRoot)
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range checks {
		out, err := s.CurlFromPod(ctx, "curl", client, append([]string{"-ksi", "--max-time", "20", "http://pipy-ok.pipy:8080"}, c.CurlArgs...)...)
		if err != nil {
			eps, _ := s.Kubectl(ctx, "get", "endpointslices", "-n", "pipy")
			errs = append(errs, fmt.Errorf("%s: %w\n%s\nendpoint slices:\n%s%s", c.Command, err, out, eps, s.logTail("kube-proxy")))
			continue
		}
		diffs := seedcheck.Compare(c.Expected, out)
		if len(diffs) > 0 {
			diffs = seedcheck.Compare(strings.Replace(c.Expected, "PIPY-OK v1!", "PIPY-OK v2!", 1), out)
		}
		if len(diffs) > 0 {
			errs = append(errs, fmt.Errorf("%s: the answer differs from the guide's:\n%s\n%s", c.Command, strings.Join(diffs, "\n"), out))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w%s", errors.Join(errs...), s.pipyPods())
	}
	return nil
}

// pipyPods describes the guide's pipy pods for a failure: annotations (the injected
// policy) and the logs of the injected containers. It has a context of its own: the
// caller's may be what ran out.
func (s *Sandbox) pipyPods() string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	names, err := s.Kubectl(ctx, "get", "pods", "-n", "pipy", "-l", "app=pipy-ok", "-o", "jsonpath={.items[*].metadata.name}")
	if err != nil {
		return fmt.Sprintf("\n(listing the pipy pods: %v)", err)
	}
	var b strings.Builder
	for _, pod := range strings.Fields(names) {
		annotations, _ := s.Kubectl(ctx, "get", "pod", "-n", "pipy", pod, "-o", "jsonpath={.metadata.annotations}")
		fmt.Fprintf(&b, "\n--- pod pipy/%s annotations: %s", pod, annotations)
		for _, ctr := range []string{"corsproxy-init", "corsproxy"} {
			logs, err := s.Kubectl(ctx, "logs", "-n", "pipy", pod, "-c", ctr, "--tail=20")
			if err != nil {
				logs = fmt.Sprintf("(%v)", err)
			}
			fmt.Fprintf(&b, "\n--- %s:\n%s", ctr, logs)
		}
	}
	return b.String()
}
