package informers_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	toolscache "k8s.io/client-go/tools/cache"
	fcache "k8s.io/client-go/tools/cache/testing"

	"github.com/corsmesh/corsmesh/webhook/informers"
)

// fakeNamespaces serves one fake source per namespace, each holding one Service named
// after it.
type fakeNamespaces struct {
	mu      sync.Mutex
	sources map[string]*fcache.FakeControllerSource
	// block, when set, holds every List until it is closed.
	block chan struct{}
}

func (f *fakeNamespaces) listWatch(ns string) toolscache.ListerWatcher {
	f.mu.Lock()
	defer f.mu.Unlock()
	src, ok := f.sources[ns]
	if !ok {
		src = fcache.NewFakeControllerSource()
		src.Add(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "svc-" + ns}})
		f.sources[ns] = src
	}
	if f.block == nil {
		return src
	}
	block := f.block
	return &toolscache.ListWatch{
		ListFunc: func(o metav1.ListOptions) (kruntime.Object, error) {
			<-block
			return src.List(o)
		},
		WatchFunc: src.Watch,
	}
}

func (f *fakeNamespaces) shutdown() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, src := range f.sources {
		src.Shutdown()
	}
}

// adds records the creations a handler is told of, by name, and whether each was an
// initial list's.
type adds struct {
	mu   sync.Mutex
	seen []string
}

func (a *adds) OnAdd(obj any, initial bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.seen = append(a.seen, fmt.Sprintf("%s initial=%t", obj.(*corev1.Service).Name, initial))
}
func (a *adds) OnUpdate(any, any) {}
func (a *adds) OnDelete(any)      {}

func (a *adds) wait(t *testing.T, want ...string) {
	t.Helper()
	var got []string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		a.mu.Lock()
		got = slices.Clone(a.seen)
		a.mu.Unlock()
		if slices.Equal(got, want) {
			return
		}
	}
	t.Fatalf("handler told of %q, want %q", got, want)
}

func (a *adds) waitSorted(t *testing.T, want ...string) {
	t.Helper()
	var got []string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		a.mu.Lock()
		got = slices.Sorted(slices.Values(a.seen))
		a.mu.Unlock()
		if slices.Equal(got, want) {
			return
		}
	}
	t.Fatalf("handler told of %q, want %q in any order", got, want)
}

func startNamespaced(t *testing.T, f *fakeNamespaces, opts informers.NamespacedOptions) (*informers.NamespacedInformer, context.CancelFunc) {
	t.Helper()
	opts.ListWatch, opts.Example = f.listWatch, &corev1.Service{}
	n := informers.NewNamespacedInformer(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		f.shutdown()
	})
	return n, cancel
}

func names(t *testing.T, objs []any) []string {
	t.Helper()
	var out []string
	for _, o := range objs {
		out = append(out, o.(*corev1.Service).Name)
	}
	return out
}

// Informers of objects only the controllers read run on the leader alone.
func TestNamespacedInformerLeaderElected(t *testing.T) {
	for _, leader := range []bool{false, true} {
		n := informers.NewNamespacedInformer(informers.NamespacedOptions{Example: &corev1.Pod{}, LeaderElected: leader})
		if got := n.NeedLeaderElection(); got != leader {
			t.Errorf("LeaderElected %t: NeedLeaderElection = %t", leader, got)
		}
	}
}

// A namespace's informer runs while the namespace is monitored: its objects are listed
// and its events handled; unmonitored, it stops and its objects go; monitored again, it
// starts again. The initial list of a namespace monitored after start reaches the
// handlers as ordinary creations (the controllers drop initial lists).
func TestNamespacedInformerFollowsNamespaces(t *testing.T) {
	f := &fakeNamespaces{sources: map[string]*fcache.FakeControllerSource{}}
	var changes atomic.Int32
	ctx := context.Background()
	n := informers.NewNamespacedInformer(informers.NamespacedOptions{ListWatch: f.listWatch, Example: &corev1.Service{}, Changed: func() { changes.Add(1) }})
	n.Follow("a", true) // before Start: a namespace monitored when the webhook starts
	n.Follow("x", false)
	h := &adds{}
	if _, err := n.AddEventHandler(h); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- n.Start(runCtx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		if !n.IsStopped() {
			t.Error("IsStopped = false after Start returned")
		}
		f.shutdown()
	}()
	if !toolscache.WaitForCacheSync(runCtx.Done(), n.HasSynced) {
		t.Fatal("not synced")
	}
	h.wait(t, "svc-a initial=true")

	list := func(ns string) ([]string, bool) {
		objs, ok := n.List(ctx, ns)
		return names(t, objs), ok
	}
	if got, ok := list("a"); !ok || !slices.Equal(got, []string{"svc-a"}) {
		t.Errorf("List(a) = %v, %t; want [svc-a], true", got, ok)
	}
	if got, ok := list("x"); ok {
		t.Errorf("List(x), not monitored = %v, true; want nothing (read live)", got)
	}
	for _, tc := range []struct {
		namespace, name string
		found, ok       bool
	}{{"a", "svc-a", true, true}, {"a", "gone", false, true}, {"x", "svc-x", false, false}} {
		obj, ok, err := n.Get(ctx, tc.namespace, tc.name)
		if err != nil || ok != tc.ok || (obj != nil) != tc.found {
			t.Errorf("Get(%s, %s) = %v, %t, %v; want found %t, ok %t", tc.namespace, tc.name, obj, ok, err, tc.found, tc.ok)
		}
	}

	n.Follow("b", true)
	if got, ok := list("b"); !ok || !slices.Equal(got, []string{"svc-b"}) {
		t.Errorf("List(b) after it became monitored = %v, %t", got, ok)
	}
	h.wait(t, "svc-a initial=true", "svc-b initial=false")
	// A handler joining later (a controller starting when its replica becomes leader) is
	// replayed what the informers hold as their initial lists, as by any informer.
	joined := &adds{}
	if _, err := n.AddEventHandler(joined); err != nil {
		t.Fatal(err)
	}
	joined.waitSorted(t, "svc-a initial=true", "svc-b initial=true")
	if got := n.Namespaces(); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("Namespaces = %v, want [a b]", got)
	}
	if !n.Watches("b") || n.Watches("x") {
		t.Errorf("Watches(b), Watches(x) = %t, %t; want true, false", n.Watches("b"), n.Watches("x"))
	}

	before := changes.Load()
	n.Follow("a", false)
	if got, ok := list("a"); ok {
		t.Errorf("List(a) after it stopped being monitored = %v, true", got)
	}
	if got := n.Namespaces(); !slices.Equal(got, []string{"b"}) {
		t.Errorf("Namespaces after a's label went = %v, want [b]", got)
	}
	if changes.Load() == before {
		t.Error("stopping a's informer did not tell Changed (its Services vanished from the decisions' view)")
	}

	n.Follow("a", true)
	if got, ok := list("a"); !ok || !slices.Equal(got, []string{"svc-a"}) {
		t.Errorf("List(a) relabelled = %v, %t", got, ok)
	}
	h.wait(t, "svc-a initial=true", "svc-b initial=false", "svc-a initial=false")
}

// A decision reading a namespace whose informer has just started waits for its list,
// bounded: past SyncWait the caller reads the API server instead.
func TestNamespacedInformerListWaitsForSync(t *testing.T) {
	block := make(chan struct{})
	f := &fakeNamespaces{sources: map[string]*fcache.FakeControllerSource{}, block: block}
	n, _ := startNamespaced(t, f, informers.NamespacedOptions{SyncWait: 200 * time.Millisecond})
	if !toolscache.WaitForCacheSync(t.Context().Done(), n.HasSynced) {
		t.Fatal("not synced")
	}
	if objs, ok := n.List(t.Context(), "c"); ok {
		t.Fatalf("List of a namespace not followed = %v, true; want false (read live)", names(t, objs))
	}
	n.Follow("c", true)
	start := time.Now()
	if objs, ok := n.List(t.Context(), "c"); ok {
		t.Fatalf("List before the informer listed = %v, true; want false (read live)", names(t, objs))
	}
	if waited := time.Since(start); waited < 200*time.Millisecond {
		t.Errorf("List gave up after %s, before SyncWait", waited)
	}
	listed := make(chan []string)
	go func() {
		objs, _ := n.List(context.Background(), "c")
		listed <- names(t, objs)
	}()
	time.Sleep(50 * time.Millisecond)
	close(block)
	if got := <-listed; !slices.Equal(got, []string{"svc-c"}) {
		t.Errorf("List once synced = %v, want [svc-c]", got)
	}
}

// A namespace monitored at start and unlabelled before its informer listed does not hold
// back the informer's sync (the readiness check waits on it).
func TestNamespacedInformerSyncsWithoutAStoppedNamespace(t *testing.T) {
	block := make(chan struct{})
	f := &fakeNamespaces{sources: map[string]*fcache.FakeControllerSource{}, block: block}
	n := informers.NewNamespacedInformer(informers.NamespacedOptions{ListWatch: f.listWatch, Example: &corev1.Service{}})
	n.Follow("gone", true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		f.shutdown()
	})
	t.Cleanup(func() { close(block) }) // first: the stopped informer's list returns
	for !n.Watches("gone") {
		time.Sleep(10 * time.Millisecond)
	}
	n.Follow("gone", false)
	syncCtx, syncCancel := context.WithTimeout(ctx, 10*time.Second)
	defer syncCancel()
	if !toolscache.WaitForCacheSync(syncCtx.Done(), n.HasSynced) {
		t.Fatal("never synced: waiting on the informer of a namespace no longer monitored")
	}
}

// Namespaces flipping between monitored and not leave no informer goroutine behind.
func TestNamespacedInformerFlipsLeakNothing(t *testing.T) {
	f := &fakeNamespaces{sources: map[string]*fcache.FakeControllerSource{}}
	n, _ := startNamespaced(t, f, informers.NamespacedOptions{})
	if _, err := n.AddEventHandler(&adds{}); err != nil {
		t.Fatal(err)
	}
	if !toolscache.WaitForCacheSync(t.Context().Done(), n.HasSynced) {
		t.Fatal("not synced")
	}
	// Each namespace's source once, so that the fake sources' own goroutines are counted
	// in the baseline.
	for i := range 5 {
		ns := fmt.Sprint("ns", i)
		n.Follow(ns, true)
		if _, ok := n.List(t.Context(), ns); !ok {
			t.Fatalf("%s did not sync", ns)
		}
		n.Follow(ns, false)
	}
	baseline := settledGoroutines(0)
	for i := range 200 {
		ns := fmt.Sprint("ns", i%5)
		n.Follow(ns, true)
		if i%2 == 0 {
			if _, ok := n.List(t.Context(), ns); !ok {
				t.Fatalf("flip %d: %s did not sync", i, ns)
			}
		}
		n.Follow(ns, false)
	}
	if got := n.Namespaces(); len(got) != 0 {
		t.Fatalf("informers still running for %v", got)
	}
	if after := settledGoroutines(baseline); after > baseline {
		t.Errorf("goroutines: %d after 200 flips, %d before", after, baseline)
	}
}

// settledGoroutines waits up to 10s for the goroutine count to fall to want (0: for it to
// stop changing) and returns it.
func settledGoroutines(want int) int {
	last := runtime.NumGoroutine()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		cur := runtime.NumGoroutine()
		if (want > 0 && cur <= want) || (want == 0 && cur == last) {
			return cur
		}
		last = cur
	}
	return last
}
