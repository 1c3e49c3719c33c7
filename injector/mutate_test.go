package injector_test

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	jsonpatchapply "github.com/evanphx/json-patch/v5"
	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/corsmesh/corsmesh/injector"
)

// The admission patch is built from the mutation, not by diffing two pods: applied to the
// pod as the API server encoded it (whatever shape its lists and maps have there), it must
// give exactly the pod Mutate builds, and leave fields our types do not know alone.
func TestPatchGivesTheMutatedPod(t *testing.T) {
	objs, w := loadCase(t, filepath.Join("testdata", "inject", "seed-pipy-ok-v1.yaml"))
	in := injector.New(testOptions())
	base := mustJSON(t, w.Pod)

	for _, tc := range []struct {
		name string
		// edit changes the seed pod's JSON as the API server would send it.
		edit func(pod map[string]any)
	}{
		{"as encoded", func(map[string]any) {}},
		{"empty annotations, init containers and volumes present", func(pod map[string]any) {
			meta(pod)["annotations"] = map[string]any{}
			spec(pod)["initContainers"] = []any{}
			spec(pod)["volumes"] = []any{}
		}},
		{"null lists", func(pod map[string]any) {
			meta(pod)["annotations"] = nil
			spec(pod)["initContainers"] = nil
			spec(pod)["volumes"] = nil
		}},
		{"annotations whose keys need escaping", func(pod map[string]any) {
			meta(pod)["annotations"] = map[string]any{"example.com/a~b": "1", "plain": "2"}
		}},
		{"a stale config annotation is replaced", func(pod map[string]any) {
			meta(pod)["annotations"] = map[string]any{injector.AnnotationConfig: `{"version":1,"ports":[]}`}
		}},
		{"existing init containers run after ours", func(pod map[string]any) {
			spec(pod)["initContainers"] = []any{
				map[string]any{"name": "migrate", "image": "app:1"},
				map[string]any{"name": "warm", "image": "app:1"},
			}
		}},
		{"existing volumes keep their places", func(pod map[string]any) {
			spec(pod)["volumes"] = []any{map[string]any{"name": "data", "emptyDir": map[string]any{}}}
		}},
		{"legacy sidecar: the proxy becomes the first container", func(pod map[string]any) {
			meta(pod)["annotations"] = map[string]any{injector.AnnotationNativeSidecar: "false"}
			spec(pod)["containers"] = append(spec(pod)["containers"].([]any), map[string]any{"name": "logger", "image": "log:1"})
		}},
		{"fields unknown to our types survive", func(pod map[string]any) {
			spec(pod)["someFutureField"] = "kept"
			spec(pod)["containers"].([]any)[0].(map[string]any)["anotherFutureField"] = true
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var raw map[string]any
			if err := json.Unmarshal(base, &raw); err != nil {
				t.Fatal(err)
			}
			tc.edit(raw)
			original := mustJSON(t, raw)
			var pod corev1.Pod // what the webhook decodes from the review
			if err := json.Unmarshal(original, &pod); err != nil {
				t.Fatal(err)
			}
			d, err := injector.NewResolver(in, objs, injector.ResolverOptions{}).Decide(context.Background(), &pod, w.Namespace, injector.ForAdmission)
			if err != nil || !d.Inject {
				t.Fatalf("decision %+v, err %v", d, err)
			}
			m, err := in.Mutation(&pod, d)
			if err != nil {
				t.Fatal(err)
			}
			patched := applyPatch(t, original, m.Patch(&pod))

			// Typed, the patched pod is Mutate's pod.
			var got corev1.Pod
			if err := json.Unmarshal(patched, &got); err != nil {
				t.Fatal(err)
			}
			requireSameJSON(t, mustJSON(t, &got), mustJSON(t, m.Apply(&pod)))
			// Untyped, everything the original carried is still there, unknown fields too.
			var before, after map[string]any
			_ = json.Unmarshal(original, &before)
			_ = json.Unmarshal(patched, &after)
			if spec(after)["someFutureField"] != spec(before)["someFutureField"] {
				t.Errorf("spec.someFutureField: %v, was %v", spec(after)["someFutureField"], spec(before)["someFutureField"])
			}
			app := findContainer(got.Spec.Containers, "pipy")
			if app == nil {
				t.Fatalf("the app's container is gone: %v", containerNames(got.Spec.Containers))
			}
			if c := lastContainer(after); c["name"] != "pipy" && c["name"] != "logger" {
				t.Errorf("containers reordered: %v", containerNames(got.Spec.Containers))
			}
		})
	}
}

// Mutate's pod is the original plus the mutation: the original is not modified, and a
// second Apply of the same mutation to the original gives the same pod.
func TestApplyLeavesTheOriginal(t *testing.T) {
	objs, w := loadCase(t, filepath.Join("testdata", "inject", "seed-pipy-ok-v1.yaml"))
	in := injector.New(testOptions())
	before := mustJSON(t, w.Pod)
	d, err := injector.NewResolver(in, objs, injector.ResolverOptions{}).Decide(context.Background(), w.Pod, w.Namespace, injector.ForAdmission)
	if err != nil || !d.Inject {
		t.Fatalf("decision %+v, err %v", d, err)
	}
	m, err := in.Mutation(w.Pod, d)
	if err != nil {
		t.Fatal(err)
	}
	first, second := m.Apply(w.Pod), m.Apply(w.Pod)
	if !bytes.Equal(mustJSON(t, w.Pod), before) {
		t.Errorf("Apply modified the original pod")
	}
	requireSameJSON(t, mustJSON(t, first), mustJSON(t, second))
	if n := len(first.Spec.InitContainers); n != 2 {
		t.Errorf("%d init containers, want ours two", n)
	}
}

func meta(pod map[string]any) map[string]any { return pod["metadata"].(map[string]any) }
func spec(pod map[string]any) map[string]any { return pod["spec"].(map[string]any) }

func lastContainer(pod map[string]any) map[string]any {
	cs := spec(pod)["containers"].([]any)
	return cs[len(cs)-1].(map[string]any)
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// applyPatch applies ops as the API server does (an independent RFC 6902 implementation).
func applyPatch(t testing.TB, doc []byte, ops []jsonpatch.Operation) []byte {
	t.Helper()
	p, err := jsonpatchapply.DecodePatch(mustJSON(t, ops))
	if err != nil {
		t.Fatalf("decoding patch: %v", err)
	}
	out, err := p.Apply(doc)
	if err != nil {
		t.Fatalf("applying patch %s: %v", mustJSON(t, ops), err)
	}
	return out
}

// requireSameJSON compares two JSON documents as values (key order aside).
func requireSameJSON(t testing.TB, got, want []byte) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mustJSON(t, g), mustJSON(t, w)) { // encoding/json sorts map keys
		t.Errorf("documents differ:\n got %s\nwant %s", mustJSON(t, g), mustJSON(t, w))
	}
}

func containerNames(cs []corev1.Container) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Name
	}
	return out
}

// The proxy's resources come from the injector's options without a copy per pod: a pod
// Mutate returns is the caller's to change, and an annotation overriding one value changes
// that pod only. Neither may reach the options, nor the next pod.
func TestProxyResourcesAreNotShared(t *testing.T) {
	objs, w := loadCase(t, filepath.Join("testdata", "inject", "seed-pipy-ok-v1.yaml"))
	in := injector.New(testOptions())
	want := mustJSON(t, in.Options().ProxyResources)
	proxyOf := func(pod *corev1.Pod) *corev1.Container {
		for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
			for i := range list {
				if list[i].Name == injector.ProxyContainerName {
					return &list[i]
				}
			}
		}
		t.Fatalf("no %s container", injector.ProxyContainerName)
		return nil
	}
	mutate := func(annotations map[string]string) *corev1.Pod {
		t.Helper()
		pod := w.Pod.DeepCopy()
		for k, v := range annotations {
			metav1.SetMetaDataAnnotation(&pod.ObjectMeta, k, v)
		}
		d, err := injector.NewResolver(in, objs, injector.ResolverOptions{}).Decide(context.Background(), pod, w.Namespace, injector.ForAdmission)
		if err != nil || !d.Inject {
			t.Fatalf("decision %+v, err %v", d, err)
		}
		out, err := in.Mutate(pod, d)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}

	first := proxyOf(mutate(nil))
	first.Resources.Limits[corev1.ResourceMemory] = resource.MustParse("1Ti")
	first.Resources.Requests[corev1.ResourceCPU] = resource.MustParse("64")
	overridden := proxyOf(mutate(map[string]string{injector.AnnotationProxyCPULimit: "3"}))
	if got := overridden.Resources.Limits[corev1.ResourceCPU]; got.String() != "3" {
		t.Errorf("annotated pod's CPU limit %s, want 3", got.String())
	}
	next := proxyOf(mutate(nil))
	if got := mustJSON(t, in.Options().ProxyResources); !bytes.Equal(got, want) {
		t.Errorf("the injector's options changed: %s, want %s", got, want)
	}
	if got := mustJSON(t, next.Resources); !bytes.Equal(got, want) {
		t.Errorf("the next pod's proxy resources are %s, want the options' %s", got, want)
	}
}
