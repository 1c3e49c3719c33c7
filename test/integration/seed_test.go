package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/corsmesh/corsmesh/corsproxy/config"
	"github.com/corsmesh/corsmesh/injector"
	"github.com/corsmesh/corsmesh/test/sandbox"
)

// TestSeedGuide walks the osm-edge CORS guide (manifests/samples, the guide's YAML
// unchanged) in the guide's order with kubectl and corsmeshctl, as a user would, and checks
// what the API server stored: the pipy-ok pods re-created after the policy exists carry
// the CORS proxy and the guide's policy on port 8080; the curl pod carries nothing.
func TestSeedGuide(t *testing.T) {
	s := sb(t)
	ctx := testContext(t, 3*time.Minute)
	kubectl := func(args ...string) string {
		t.Helper()
		out, stderr, err := s.KubectlIO(ctx, nil, args...)
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(stderr) != "" {
			t.Logf("kubectl %s: %s", strings.Join(args, " "), strings.TrimSpace(stderr))
		}
		return out
	}
	t.Cleanup(func() {
		// Everything the guide created, so that other tests see a clean cluster.
		_, _ = s.Kubectl(context.Background(), "delete", "namespace", "curl", "pipy", "--ignore-not-found", "--wait=false")
		_, _ = s.Kubectl(context.Background(), "delete", "plugin", "cors-policy", "--ignore-not-found", "--wait=false")
	})

	// Deploy demo services: `osm namespace add` is `corsmeshctl namespace add`.
	kubectl("create", "namespace", "curl")
	corsmeshctl(t, ctx, s, "namespace", "add", "curl")
	kubectl("create", "namespace", "pipy")
	corsmeshctl(t, ctx, s, "namespace", "add", "pipy")
	for _, name := range []string{"curl", "pipy"} {
		var ns corev1.Namespace
		if err := s.Client.Get(ctx, types.NamespacedName{Name: name}, &ns); err != nil {
			t.Fatal(err)
		}
		if ns.Labels[injector.LabelMonitoredBy] != "osm" || ns.Annotations[injector.AnnotationSidecarInjection] != "enabled" {
			t.Fatalf("namespace %s after corsmeshctl namespace add: labels %v, annotations %v", name, ns.Labels, ns.Annotations)
		}
	}
	kubectl("apply", "-n", "curl", "-f", "manifests/samples/curl.yaml")
	kubectl("apply", "-n", "pipy", "-f", "manifests/samples/pipy.yaml")

	// The guide waits for the pods to be ready; without a kubelet, kube-controller-manager
	// creating them is as far as they get.
	curlPod := waitForPods(t, ctx, s, "curl", "app=curl", nil)[0]
	v1Before := waitForPods(t, ctx, s, "pipy", "app=pipy-ok,version=v1", nil)
	v2Before := waitForPods(t, ctx, s, "pipy", "app=pipy-ok,version=v2", nil)
	requireNotInjected(t, &curlPod)
	requireNotInjected(t, &v1Before[0]) // no PluginChain yet
	requireNotInjected(t, &v2Before[0])

	// Declaring a plugin, setting up the plugin-chain and the plugin configuration.
	for _, step := range []string{"plugin.yaml", "pluginchain.yaml", "pluginconfig.yaml"} {
		kubectl("apply", "-f", filepath.Join("manifests", "samples", step))
	}

	// The pods predate the chain: re-create them (see manifests/samples/README.md).
	kubectl("rollout", "restart", "-n", "pipy", "deployment/pipy-ok-v1", "deployment/pipy-ok-v2")
	v1 := waitForPods(t, ctx, s, "pipy", "app=pipy-ok,version=v1", uids(v1Before))[0]
	v2 := waitForPods(t, ctx, s, "pipy", "app=pipy-ok,version=v2", uids(v2Before))[0]

	want := seedPolicy(t, s)
	for _, pod := range []corev1.Pod{v1, v2} {
		cfg := requireInjected(t, &pod, 8080)
		port := cfg.Lookup(8080)
		if port == nil {
			t.Fatalf("pod %s: config has no port 8080: %s", pod.Name, pod.Annotations[injector.AnnotationConfig])
		}
		if len(cfg.Ports) != 1 {
			t.Errorf("pod %s: config has %d ports, want only 8080", pod.Name, len(cfg.Ports))
		}
		// The pods are selected by Services pipy-ok (the PluginConfig's) and
		// pipy-ok-v1/-v2 (no policy) on the same port: the guide's policy is the port's,
		// and requests addressed to pipy-ok by name get it too.
		if same, got, wantJSON := sameJSON(port.CORS, want); !same {
			t.Errorf("pod %s: policy on 8080\n got %s\nwant %s", pod.Name, got, wantJSON)
		}
		for _, h := range port.Hosts {
			if slices.Contains(h.Names, "pipy-ok.pipy") {
				if same, got, wantJSON := sameJSON(h.CORS, want); !same {
					t.Errorf("pod %s: policy for host pipy-ok.pipy\n got %s\nwant %s", pod.Name, got, wantJSON)
				}
			}
		}
		if _, ok := pod.Annotations[injector.AnnotationStatus]; !ok {
			t.Errorf("pod %s: no %s annotation", pod.Name, injector.AnnotationStatus)
		}
	}

	// The curl pod: monitored namespace, but no chain selects it. Still nothing, and a
	// new one (as a rollout would create) gets nothing either.
	kubectl("rollout", "restart", "-n", "curl", "deployment/curl")
	curlAfter := waitForPods(t, ctx, s, "curl", "app=curl", uids([]corev1.Pod{curlPod}))[0]
	for _, pod := range []corev1.Pod{curlPod, curlAfter} {
		var stored corev1.Pod
		if err := s.Client.Get(ctx, client.ObjectKeyFromObject(&pod), &stored); err != nil {
			t.Fatal(err)
		}
		requireNotInjected(t, &stored)
	}
}

// seedPolicy is the guide's PluginConfig spec.config, parsed as the proxy parses it.
func seedPolicy(t *testing.T, s *sandbox.Sandbox) *config.CORS {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(s.RepoRoot, "manifests", "samples", "pluginconfig.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Spec struct {
			Config json.RawMessage `json:"config"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	policy, err := config.ParseCORS(doc.Spec.Config)
	if err != nil {
		t.Fatalf("the guide's policy does not parse: %v", err)
	}
	return policy
}

// waitForPods waits until the namespace has at least one pod matching selector whose UID
// is not in old, and returns those pods.
func waitForPods(t *testing.T, ctx context.Context, s *sandbox.Sandbox, namespace, selector string, old map[types.UID]bool) []corev1.Pod {
	t.Helper()
	var pods []corev1.Pod
	eventually(t, ctx, 60*time.Second, fmt.Sprintf("pods %s in %s", selector, namespace), func() error {
		list, err := s.Clientset.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return err
		}
		pods = pods[:0]
		for _, p := range list.Items {
			if !old[p.UID] && p.DeletionTimestamp == nil {
				pods = append(pods, p)
			}
		}
		if len(pods) == 0 {
			return fmt.Errorf("none yet (%d listed)", len(list.Items))
		}
		return nil
	})
	return pods
}

func uids(pods []corev1.Pod) map[types.UID]bool {
	m := map[types.UID]bool{}
	for _, p := range pods {
		m[p.UID] = true
	}
	return m
}
