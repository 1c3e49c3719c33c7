package admit

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	jsonpatchapply "github.com/evanphx/json-patch/v5"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/corsmesh/corsmesh/corsproxy/config"
	"github.com/corsmesh/corsmesh/injector"
	"github.com/corsmesh/corsmesh/webhook/internal/webhooktest"
)

// The injected containers are encoded once per set of inputs and copied into each patch:
// for every shape of pod the patch must be byte for byte what encoding a freshly built
// typed mutation by reflection gives (the encoding before the cache), and applied to the
// pod as the API server sent it, give Mutation.Apply's pod. The table runs twice through
// one injector, so the second round (and cases sharing inputs) is served from its cache.
func TestPatchEncodedOnceIsTheTypedEncoding(t *testing.T) {
	body := loadBenchReview(t)
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil {
		t.Fatal(err)
	}
	base := review.Request.Object.Raw
	resolver := injector.NewResolver(webhooktest.Injector(), webhooktest.SeedCluster(t), injector.ResolverOptions{})

	for _, tc := range []struct {
		name  string
		edit  func(pod map[string]any)
		ports []int32 // instead of the decision's
	}{
		{name: "as the API server sent it"},
		{name: "plain: no annotations, init containers or volumes", edit: func(pod map[string]any) {
			delete(meta(pod), "annotations")
			delete(spec(pod), "initContainers")
			delete(spec(pod), "volumes")
		}},
		{name: "native sidecar off", edit: func(pod map[string]any) {
			meta(pod)["annotations"] = map[string]any{injector.AnnotationNativeSidecar: "false"}
		}},
		{name: "native sidecar on", edit: func(pod map[string]any) {
			meta(pod)["annotations"] = map[string]any{injector.AnnotationNativeSidecar: "true"}
		}},
		{name: "resource and connection annotations", edit: func(pod map[string]any) {
			meta(pod)["annotations"] = map[string]any{
				injector.AnnotationProxyCPURequest: "25m", injector.AnnotationProxyMemoryLimit: "96Mi",
				injector.AnnotationProxyMaxConns: "512", "example.com/a~b/<c>&": "\u2028\"x\"",
			}
		}},
		{name: "several ports", ports: []int32{8080, 8443, 9090}},
		{name: "several ports, legacy sidecar", ports: []int32{80, 8080}, edit: func(pod map[string]any) {
			meta(pod)["annotations"] = map[string]any{injector.AnnotationNativeSidecar: "false"}
		}},
		{name: "existing init containers and volumes", edit: func(pod map[string]any) {
			spec(pod)["initContainers"] = []any{
				map[string]any{"name": "migrate", "image": "app:1"},
				map[string]any{"name": "warm", "image": "app:1"},
			}
			spec(pod)["volumes"] = append(spec(pod)["volumes"].([]any), map[string]any{"name": "data", "emptyDir": map[string]any{}})
		}},
	} {
		for round := range 2 {
			t.Run(tc.name, func(t *testing.T) {
				var raw map[string]any
				if err := json.Unmarshal(base, &raw); err != nil {
					t.Fatal(err)
				}
				if tc.edit != nil {
					tc.edit(raw)
				}
				original, err := json.Marshal(raw)
				if err != nil {
					t.Fatal(err)
				}
				var pod corev1.Pod
				if err := json.Unmarshal(original, &pod); err != nil {
					t.Fatal(err)
				}
				d, err := resolver.Decide(context.Background(), &pod, "pipy", injector.ForAdmission)
				if err != nil || !d.Inject {
					t.Fatalf("decision %+v, err %v", d, err)
				}
				if tc.ports != nil {
					d.Ports = tc.ports
				}
				m, err := resolver.Injector().Mutation(&pod, d)
				if err != nil {
					t.Fatal(err)
				}
				got, err := appendPatch(nil, m.Patch(&pod))
				if err != nil {
					t.Fatal(err)
				}
				// The reference: a new injector builds this pod's containers afresh.
				fresh, err := webhooktest.Injector().Mutation(&pod, d)
				if err != nil {
					t.Fatal(err)
				}
				if want := typedPatch(t, fresh, &pod); !bytes.Equal(got, want) {
					t.Fatalf("round %d: patch differs from the typed encoding:\n got %s\nwant %s", round, got, want)
				}

				p, err := jsonpatchapply.DecodePatch(got)
				if err != nil {
					t.Fatalf("patch does not decode: %v", err)
				}
				patched, err := p.Apply(original)
				if err != nil {
					t.Fatalf("patch does not apply: %v", err)
				}
				var after corev1.Pod
				if err := json.Unmarshal(patched, &after); err != nil {
					t.Fatal(err)
				}
				if a, b := mustMarshal(t, &after), mustMarshal(t, m.Apply(&pod)); !bytes.Equal(a, b) {
					t.Errorf("patched pod differs from Mutation.Apply's:\n got %s\nwant %s", a, b)
				}
			})
		}
	}
}

// typedPatch is m's patch with its containers and volumes as typed values, encoded by
// reflection as the webhook did before they were encoded once: a Mutation its caller
// builds carries no encoded parts.
func typedPatch(t *testing.T, m *injector.Mutation, pod *corev1.Pod) []byte {
	t.Helper()
	typed := &injector.Mutation{Annotations: m.Annotations, Labels: m.Labels, InitContainers: m.InitContainers, Containers: m.Containers, Volumes: m.Volumes}
	type patchOp struct {
		Op    string `json:"op"`
		Path  string `json:"path"`
		Value any    `json:"value,omitempty"`
	}
	var ops []patchOp
	for _, op := range typed.Patch(pod) {
		if _, raw := op.Value.(json.RawMessage); raw {
			t.Fatalf("%s: a caller's Mutation patched with encoded values", op.Path)
		}
		ops = append(ops, patchOp{Op: op.Operation, Path: op.Path, Value: op.Value})
	}
	return mustMarshal(t, ops)
}

// appendJSONString writes a string as encoding/json does, on its fast path and off it.
func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{
		"", "add", "/metadata/annotations/corsmesh.io~1cors-config", `{"version":1,"ports":[8080]}`,
		"<script>&", "tab\there", "\x00\x1f\x7f", "é", "\u2028\u2029", "bad \xff utf-8", `back\slash`,
	} {
		want := mustMarshal(t, s)
		if got := appendJSONString([]byte("x"), s); !bytes.Equal(got, append([]byte("x"), want...)) {
			t.Errorf("appendJSONString(%q) = %s, want x%s", s, got, want)
		}
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "/spec/volumes/-", "<>&\"\\", "\u2028", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := appendJSONString(nil, s); !bytes.Equal(got, want) {
			t.Errorf("appendJSONString(%q) = %s, want %s", s, got, want)
		}
	})
}

func meta(pod map[string]any) map[string]any { return pod["metadata"].(map[string]any) }
func spec(pod map[string]any) map[string]any { return pod["spec"].(map[string]any) }

func mustMarshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// appendPatch allocates nothing in a buffer of patchLen, for a pod without annotations (the
// annotations added as one map) and with them (one operation each): patchLen is enough for
// the injector's patches, and no value is encoded by reflection.
func TestAppendPatchAllocatesNothing(t *testing.T) {
	in := webhooktest.Injector()
	for _, annotations := range []map[string]string{nil, {"team": "web"}} {
		pod := &corev1.Pod{}
		pod.Annotations = annotations
		d := &injector.Decision{Inject: true, Ports: []int32{8080}, Config: &config.Config{Version: config.Version}, Stamp: "r1/7"}
		m, err := in.Mutation(pod, d)
		if err != nil {
			t.Fatal(err)
		}
		ops := m.Patch(pod)
		buf := make([]byte, 0, patchLen(ops))
		if allocs := testing.AllocsPerRun(20, func() {
			if _, err := appendPatch(buf, ops); err != nil {
				t.Fatal(err)
			}
		}); allocs != 0 {
			t.Errorf("annotations %v: %.0f allocations per patch, want 0", annotations, allocs)
		}
	}
}
