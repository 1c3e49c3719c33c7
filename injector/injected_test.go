package injector

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/corsmesh/corsmesh/corsproxy/config"
)

func injectDecision(ports ...int32) *Decision {
	return &Decision{Inject: true, Ports: ports, Config: &config.Config{Version: config.Version}}
}

func annotatedPod(annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "app", Annotations: annotations}}
}

// Pods with the same inputs get the containers built and encoded once; a pod differing in
// any input (ports, sidecar mode, a proxy annotation) gets its own.
func TestInjectedBuiltOncePerInputs(t *testing.T) {
	in := New(DefaultOptions())
	first, err := in.Mutation(annotatedPod(nil), injectDecision(8080))
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		m, err := in.Mutation(annotatedPod(map[string]string{"unrelated": "x"}), injectDecision(8080))
		if err != nil {
			t.Fatal(err)
		}
		if m.injected != first.injected {
			t.Fatal("the same inputs built the containers again")
		}
	}
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		d    *Decision
	}{
		{"another port", annotatedPod(nil), injectDecision(8081)},
		{"another port list", annotatedPod(nil), injectDecision(8080, 9090)},
		{"the other sidecar mode", annotatedPod(map[string]string{AnnotationNativeSidecar: fmt.Sprint(!in.opts.NativeSidecars)}), injectDecision(8080)},
		{"a cpu request", annotatedPod(map[string]string{AnnotationProxyCPURequest: "20m"}), injectDecision(8080)},
		{"a memory limit", annotatedPod(map[string]string{AnnotationProxyMemoryLimit: "64Mi"}), injectDecision(8080)},
		{"max conns", annotatedPod(map[string]string{AnnotationProxyMaxConns: "64"}), injectDecision(8080)},
	} {
		m, err := in.Mutation(tc.pod, tc.d)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if m.injected == first.injected {
			t.Errorf("%s: given the containers of another pod", tc.name)
		}
	}
	if entries, _, hits, misses := in.cache.stats(); entries != 7 || hits != 10 || misses != 7 {
		t.Errorf("cache: %d entries, %d hits, %d misses; want 7, 10, 7", entries, hits, misses)
	}
}

// A pod author who changes the annotations of every pod cannot grow the webhook's memory:
// the cache keeps at most maxInjectedEntries, of bounded size, and skips inputs whose key
// is long (built for that pod alone, as before the cache).
func TestInjectedCacheIsBounded(t *testing.T) {
	in := New(DefaultOptions())
	for i := range 20 * maxInjectedEntries {
		pod := annotatedPod(map[string]string{AnnotationProxyCPURequest: fmt.Sprintf("%dm", i+1)})
		if _, err := in.Mutation(pod, injectDecision(8080)); err != nil {
			t.Fatal(err)
		}
	}
	entries, bytes, _, _ := in.cache.stats()
	if entries != maxInjectedEntries {
		t.Errorf("%d entries after %d distinct pods, want the bound %d", entries, 20*maxInjectedEntries, maxInjectedEntries)
	}
	if bytes > maxInjectedEntries*16<<10 {
		t.Errorf("%d bytes in %d entries, want at most 16 kB each", bytes, entries)
	}

	// The most recent survive; the oldest went first.
	if p := in.cache.get(mustKey(t, annotatedPod(map[string]string{AnnotationProxyCPURequest: fmt.Sprintf("%dm", 20*maxInjectedEntries)}), []int32{8080}, in.opts.NativeSidecars)); p == nil {
		t.Error("the most recent entry was evicted")
	}
	if p := in.cache.get(mustKey(t, annotatedPod(map[string]string{AnnotationProxyCPURequest: "1m"}), []int32{8080}, in.opts.NativeSidecars)); p != nil {
		t.Error("the oldest entry is still there")
	}

	// Long inputs: many ports, a long annotation value.
	ports := make([]int32, 200)
	for i := range ports {
		ports[i] = int32(10000 + i)
	}
	long := annotatedPod(map[string]string{AnnotationProxyCPURequest: "1" + strings.Repeat("0", maxInjectedKey) + "m"})
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		d    *Decision
	}{{"200 ports", annotatedPod(nil), injectDecision(ports...)}, {"a long annotation", long, injectDecision(8080)}} {
		_, _, _, missesBefore := in.cache.stats()
		m, err := in.Mutation(tc.pod, tc.d)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if _, _, _, misses := in.cache.stats(); misses != missesBefore {
			t.Errorf("%s: looked up in the cache", tc.name)
		}
		if m.injected == nil || len(m.InitContainers) == 0 {
			t.Errorf("%s: no containers", tc.name)
		}
	}
}

func mustKey(t *testing.T, pod *corev1.Pod, ports []int32, native bool) []byte {
	t.Helper()
	k, ok := injectedKey(nil, pod, ports, native)
	if !ok {
		t.Fatal("key too long")
	}
	return k
}

// Inputs that differ give different keys, however their values are chosen.
func TestInjectedKeyIsUnambiguous(t *testing.T) {
	type input struct {
		ann    map[string]string
		ports  []int32
		native bool
	}
	inputs := []input{
		{nil, nil, false},
		{nil, nil, true},
		{nil, []int32{80}, false},
		{nil, []int32{8, 0}, false},
		{nil, []int32{80, 81}, false},
		{map[string]string{AnnotationProxyCPURequest: ""}, nil, false},
		{map[string]string{AnnotationProxyCPURequest: "1"}, nil, false},
		{map[string]string{AnnotationProxyMemoryRequest: "1"}, nil, false},
		{map[string]string{AnnotationProxyCPURequest: "1;"}, nil, false},
		{map[string]string{AnnotationProxyCPURequest: "1", AnnotationProxyCPULimit: "2"}, nil, false},
		{map[string]string{AnnotationProxyCPURequest: "1:2=3"}, nil, false},
		{map[string]string{AnnotationProxyCPURequest: "1", AnnotationProxyMemoryRequest: "2=3"}, nil, false},
		{map[string]string{AnnotationProxyMaxConns: "80"}, []int32{80}, false},
	}
	seen := map[string]int{}
	for i, in := range inputs {
		k, ok := injectedKey(nil, annotatedPod(in.ann), in.ports, in.native)
		if !ok {
			t.Fatalf("input %d: key too long", i)
		}
		if j, dup := seen[string(k)]; dup {
			t.Errorf("inputs %d and %d share the key %q", j, i, k)
		}
		seen[string(k)] = i
	}
}

// A Mutation whose containers its caller replaced is patched with what it holds, not with
// the encoding of the containers it was built with.
func TestPatchFollowsReplacedContainers(t *testing.T) {
	in := New(DefaultOptions())
	m, err := in.Mutation(annotatedPod(nil), injectDecision(8080))
	if err != nil {
		t.Fatal(err)
	}
	m.InitContainers = append([]corev1.Container(nil), m.InitContainers...)
	m.InitContainers[0].Image = "replaced:1"
	b, err := json.Marshal(m.Patch(annotatedPod(nil)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"image":"replaced:1"`) {
		t.Errorf("patch lacks the replaced image: %s", b)
	}
	// The injector's own stays as built.
	again, err := in.Mutation(annotatedPod(nil), injectDecision(8080))
	if err != nil {
		t.Fatal(err)
	}
	if again.InitContainers[0].Image == "replaced:1" {
		t.Error("the caller's change reached the injector's containers")
	}
}

// The status annotation comes from the injected entry with the decision's stamp spliced in:
// it must be json.Marshal of the Status the pod gets, for either sidecar mode, any ports
// and any stamp, cached or not.
func TestStatusAnnotationIsTheEncodedStatus(t *testing.T) {
	in := New(DefaultOptions())
	for _, native := range []bool{true, false} {
		for _, ports := range [][]int32{{8080}, {80, 8080, 9090}} {
			for _, stamp := range []string{"", "r1a2b3/42", `odd "stamp" <&> é`} {
				for round := range 2 {
					d := injectDecision(ports...)
					d.Stamp = stamp
					m, err := in.Mutation(annotatedPod(map[string]string{AnnotationNativeSidecar: fmt.Sprint(native)}), d)
					if err != nil {
						t.Fatal(err)
					}
					want := Status{Version: 1, InitContainers: []string{InitContainerName}, Volumes: []string{ConfigVolumeName, NoTokenVolumeName}, Ports: ports, NativeSidecar: native, Resolved: stamp}
					if native {
						want.InitContainers = append(want.InitContainers, ProxyContainerName)
					} else {
						want.Containers = []string{ProxyContainerName}
					}
					b, err := json.Marshal(want)
					if err != nil {
						t.Fatal(err)
					}
					if got := m.Annotations[AnnotationStatus]; got != string(b) {
						t.Errorf("native %v, ports %v, stamp %q, round %d: status\n got %s\nwant %s", native, ports, stamp, round, got, b)
					}
				}
			}
		}
	}
}

// Admissions run concurrently: each gets the containers of its own inputs while others
// fill and evict the cache (run with -race to check the locking too).
func TestInjectedCacheConcurrent(t *testing.T) {
	in := New(DefaultOptions())
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				port := int32(1000 + (g*200+i)%(2*maxInjectedEntries))
				m, err := in.Mutation(annotatedPod(nil), injectDecision(port))
				if err != nil {
					errs <- err
					return
				}
				if want := fmt.Sprintf("--inbound-ports=%d", port); !slices.Contains(m.InitContainers[0].Args, want) {
					errs <- fmt.Errorf("port %d: init args %q", port, m.InitContainers[0].Args)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if entries, _, _, _ := in.cache.stats(); entries > maxInjectedEntries {
		t.Errorf("%d entries, bound %d", entries, maxInjectedEntries)
	}
}

// A stamp JSON writes as it is (a Resolver's) costs the status annotation one allocation,
// its own string; one that needs escaping is still encoded by encoding/json
// (TestStatusAnnotationIsTheEncodedStatus checks the text).
func TestStatusWithStampAllocations(t *testing.T) {
	in := New(DefaultOptions())
	d := injectDecision(8080)
	parts, err := in.injected(annotatedPod(nil), d.Ports, true)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		stamp string
		plain bool
	}{
		{"0123456789ABCDEF/42", true},
		{"r1a2b3/0", true},
		{`odd "stamp"`, false},
		{"<&>", false},
		{"é", false},
		{"tab\there", false},
	}
	for _, tt := range tests {
		if got := jsonPlain(tt.stamp); got != tt.plain {
			t.Errorf("jsonPlain(%q) = %v, want %v", tt.stamp, got, tt.plain)
		}
		if !tt.plain {
			continue
		}
		if n := testing.AllocsPerRun(100, func() {
			if _, err := parts.statusWithStamp(tt.stamp); err != nil {
				t.Fatal(err)
			}
		}); n != 1 {
			t.Errorf("stamp %q: %.0f allocations, want 1", tt.stamp, n)
		}
	}
}
