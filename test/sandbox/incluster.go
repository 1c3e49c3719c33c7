package sandbox

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// DefaultOverlay is what users apply (kubectl apply -k): the webhook's image behind its
// Service, cert-manager issuing its certificate, cainjector filling caBundle.
const DefaultOverlay = "manifests/overlays/default"

// WebhookSelector finds the in-cluster webhook's pods in WebhookNamespace.
const WebhookSelector = "app.kubernetes.io/name=corsmesh-webhook"

// InstallInCluster applies the kustomization dir (relative to the repository; default
// DefaultOverlay) as users do and waits until the webhook serves (WaitForWebhookInCluster).
// It needs Options.Node: the webhook runs as pods of its image.
func (s *Sandbox) InstallInCluster(ctx context.Context, dir string) error {
	if s.node == nil {
		return errors.New("installing corsmesh in the cluster needs a node (Options.Node)")
	}
	if dir == "" {
		dir = DefaultOverlay
	}
	if out, err := s.Kubectl(ctx, "apply", "-k", dir); err != nil {
		return fmt.Errorf("kubectl apply -k %s: %w\n%s", dir, err, out)
	}
	return s.WaitForWebhookInCluster(ctx)
}

// WaitForWebhookInCluster waits until the in-cluster webhook's Deployment has rolled out,
// the replicas it replaced have exited, and cainjector has filled the caBundle of every
// corsmesh webhook configuration: from then on the API server calls the current replicas
// only. A replaced replica serves on through its preStop sleep after the rollout is over,
// and the API server keeps sending it admissions over the connections it holds open, so a
// pod created then can get what the previous version injects (after an upgrade, the old
// proxy image).
func (s *Sandbox) WaitForWebhookInCluster(ctx context.Context) error {
	if out, err := s.Kubectl(ctx, "rollout", "status", "-n", WebhookNamespace, "deployment/corsmesh-webhook", "--timeout=5m"); err != nil {
		return fmt.Errorf("the webhook's Deployment did not roll out: %w\n%s", err, out)
	}
	selector, err := labels.Parse(WebhookSelector)
	if err != nil {
		return err
	}
	started, waited := time.Now(), false
	for {
		var pods corev1.PodList
		if err := s.Client.List(ctx, &pods, client.InNamespace(WebhookNamespace), client.MatchingLabelsSelector{Selector: selector}); err != nil {
			return fmt.Errorf("listing the webhook's pods: %w", err)
		}
		var exiting []string
		for _, p := range pods.Items {
			if p.DeletionTimestamp != nil {
				exiting = append(exiting, p.Name)
			}
		}
		if len(exiting) == 0 {
			if waited {
				s.logf("the webhook's replaced pods exited %.1fs after its rollout", time.Since(started).Seconds())
			}
			break
		}
		waited = true
		select {
		case <-ctx.Done():
			return fmt.Errorf("the webhook's replaced pods %s did not exit: %w", strings.Join(exiting, ", "), ctx.Err())
		case <-time.After(time.Second):
		}
	}
	for {
		var missing []string
		for _, kind := range []string{"mutatingwebhookconfigurations", "validatingwebhookconfigurations"} {
			out, err := s.Kubectl(ctx, "get", kind, "-l", "app.kubernetes.io/part-of=corsmesh",
				"-o", `jsonpath={range .items[*].webhooks[*]}{.name}={.clientConfig.caBundle}{"\n"}{end}`)
			if err != nil {
				return fmt.Errorf("reading the %s: %w", kind, err)
			}
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				name, ca, _ := strings.Cut(line, "=")
				if ca == "" {
					missing = append(missing, kind+"/"+name)
				}
			}
		}
		if len(missing) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cainjector did not fill caBundle of %s: %w", strings.Join(missing, ", "), ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

// Diagnose gathers what explains a failure on the node: every pod, recent events, the
// in-cluster webhook's logs and the kubelet's last lines. It never fails; what it cannot
// read it says so.
func (s *Sandbox) Diagnose() string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var b strings.Builder
	section := func(title string, args ...string) {
		out, err := s.Kubectl(ctx, args...)
		if err != nil {
			out += fmt.Sprintf("(%v)", err)
		}
		fmt.Fprintf(&b, "\n--- %s:\n%s", title, out)
	}
	section("pods", "get", "pods", "-A", "-o", "wide")
	section("events", "get", "events", "-A", "--sort-by=.lastTimestamp")
	section("webhook logs", "logs", "-n", WebhookNamespace, "-l", WebhookSelector, "--tail=40", "--prefix")
	if s.node != nil {
		b.WriteString(s.logTail("kubelet"))
	}
	return b.String()
}

// ServesImage reports whether the node's registry serves ref (make images sandbox-images
// build them).
func (s *Sandbox) ServesImage(ref string) bool {
	if s.node == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.node.images[ref]
}

// PushImage serves img under ref from the node's registry, e.g. a rebuilt image under a
// new tag for an upgrade.
func (s *Sandbox) PushImage(ctx context.Context, ref string, img v1.Image) error {
	if s.node == nil {
		return errors.New("no registry: the sandbox has no node (Options.Node)")
	}
	if err := s.node.registry.Push(ctx, ref, img); err != nil {
		return err
	}
	s.mu.Lock()
	s.node.images[ref] = true
	s.mu.Unlock()
	return nil
}

// CurlFromPod runs curl with args in the curl container of pod (namespace ns). A Service's
// endpoints reach kube-proxy's rules a moment after its pods are ready, and until then the
// Service refuses connections (curl's exit code 7), in any cluster: that alone is retried,
// for up to a minute.
func (s *Sandbox) CurlFromPod(ctx context.Context, ns, pod string, args ...string) (string, error) {
	exec := append([]string{"exec", pod, "-n", ns, "-c", "curl", "--", "curl"}, args...)
	deadline := time.Now().Add(time.Minute)
	for {
		out, err := s.Kubectl(ctx, exec...)
		if err == nil || !strings.Contains(err.Error(), "exit code 7") || time.Now().After(deadline) {
			return out, err
		}
		select {
		case <-ctx.Done():
			return out, err
		case <-time.After(time.Second):
		}
	}
}
