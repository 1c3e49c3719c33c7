package admit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/reference"
	"k8s.io/utils/ptr"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/randfill"

	"github.com/corsmesh/corsmesh/injector"
	"github.com/corsmesh/corsmesh/injector/kubecluster"
	"github.com/corsmesh/corsmesh/injector/manifest"
	"github.com/corsmesh/corsmesh/webhook/internal/webhooktest"
)

// The pod handed to the handler is the full decode's with only the fields admission reads
// (admittedPod's list): the rest zero, managedFields never decoded, whatever their value.
func TestDecodeKeepsWhatAdmissionReads(t *testing.T) {
	for _, tt := range []struct{ name, pod string }{
		{"captured from the API server", string(benchPodJSON(t))},
		{"every kept field", `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","generateName":"p-","namespace":"ns","uid":"u","resourceVersion":"7","labels":{"app":"x"},"annotations":{"a":"b"},"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"rs","uid":"o","controller":true}],"finalizers":["f"]},` +
			`"spec":{"hostNetwork":true,"os":{"name":"linux"},"nodeSelector":{"kubernetes.io/os":"linux"},"restartPolicy":"Never","serviceAccountName":"sa",` +
			`"initContainers":[{"name":"init","image":"i","ports":[{"containerPort":1}]}],"containers":[{"name":"app","image":"a","env":[{"name":"E","value":"v"}],"ports":[{"name":"web","containerPort":8080,"protocol":"TCP","hostIP":"127.0.0.1"}]}],` +
			`"volumes":[{"name":"v","emptyDir":{}},{"name":"w","secret":{"secretName":"s"}}]},"status":{"phase":"Pending"}}`},
		{"two managers", `{"metadata":{"name":"p","labels":{"app":"x"},"annotations":{"a":"b"},"managedFields":[{"manager":"kube-controller-manager","operation":"Update","apiVersion":"v1","time":"2026-12-01T10:00:00Z","fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{}}},{"manager":"kubectl","operation":"Apply"}]},"spec":{"containers":[{"name":"app","image":"a","ports":[{"containerPort":8080}]}]}}`},
		{"empty lists and maps", `{"metadata":{"labels":{},"annotations":{},"ownerReferences":[]},"spec":{"initContainers":[],"containers":[],"volumes":[],"nodeSelector":{}}}`},
		{"null lists and maps", `{"metadata":{"labels":null,"annotations":null},"spec":{"initContainers":null,"containers":null,"volumes":null,"os":null}}`},
		{"no spec", `{"metadata":{"name":"p"}}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := (&admissionHandler{pods: &PodMutator{}}).decode(podReviewJSON("pipy", []byte(tt.pod)))
			if err != nil {
				t.Fatal(err)
			}
			pod, ok := got.Request.Object.Object.(*corev1.Pod)
			if !ok {
				t.Fatalf("Object.Object = %T, want the pod", got.Request.Object.Object)
			}
			var full corev1.Pod
			if err := kjson.UnmarshalCaseSensitivePreserveInts([]byte(tt.pod), &full); err != nil {
				t.Fatal(err)
			}
			if want := readFields(&full); !reflect.DeepEqual(pod, want) {
				t.Errorf("decoded pod is not the full decode's read fields:\n got %+v\nwant %+v", pod, want)
			}
		})
	}

	// Skipped values are not decoded, so not type-checked; a kept one of the wrong type
	// fails the decode (and the handler answers 400, TestUndecodablePodIsRejectedInReview).
	for _, tt := range []struct {
		name, pod string
		ok        bool
	}{
		{"managedFields not a list", `{"metadata":{"name":"p","managedFields":5},"spec":{"containers":[{"name":"app"}]}}`, true},
		{"image not a string", `{"spec":{"containers":[{"name":"app","image":5}]}}`, true},
		{"volume not an object", `{"spec":{"volumes":[5,"x",null]}}`, true},
		{"name not a string", `{"spec":{"containers":[{"name":5}]}}`, false},
		{"volumes not a list", `{"spec":{"volumes":{}}}`, false},
		{"labels not a map", `{"metadata":{"labels":["app"]}}`, false},
		{"hostNetwork not a bool", `{"spec":{"hostNetwork":"true"}}`, false},
		{"case differs", `{"spec":{"HostNetwork":true,"Containers":[{"Name":"corsproxy"}]}}`, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := (&admissionHandler{pods: &PodMutator{}}).decode(podReviewJSON("pipy", []byte(tt.pod)))
			if err != nil {
				t.Fatal(err)
			}
			pod, isPod := got.Request.Object.Object.(*corev1.Pod)
			if isPod != tt.ok {
				t.Fatalf("decoded as a pod: %v, want %v", isPod, tt.ok)
			}
			if tt.name == "case differs" && (pod.Spec.HostNetwork || len(pod.Spec.Containers) > 0) {
				t.Errorf("keys of another case decoded: %+v", pod.Spec)
			}
		})
	}
}

// A PodMutator's request keeps what it reads (uid, kind, operation, subresource, namespace,
// dryRun) and skips the rest (podReview's list).
func TestDecodeKeepsWhatPodMutatorReadsOfTheRequest(t *testing.T) {
	got, err := (&admissionHandler{pods: &PodMutator{}}).decode(loadBenchReview(t))
	if err != nil {
		t.Fatal(err)
	}
	var full admissionv1.AdmissionReview
	if err := kjson.UnmarshalCaseSensitivePreserveInts(loadBenchReview(t), &full); err != nil {
		t.Fatal(err)
	}
	want := *full.Request
	want.UserInfo, want.RequestKind, want.RequestResource, want.Resource = authenticationv1.UserInfo{}, nil, nil, metav1.GroupVersionResource{}
	want.Options, want.OldObject, want.Object = runtime.RawExtension{}, runtime.RawExtension{}, runtime.RawExtension{Object: got.Request.Object.Object}
	if full.Request.UserInfo.Username == "" || full.Request.Options.Raw == nil || full.Request.DryRun == nil {
		t.Fatalf("the captured review lacks fields this test is about: %+v", full.Request)
	}
	if !reflect.DeepEqual(*got.Request, want) {
		t.Errorf("decoded request\n got %+v\nwant %+v", *got.Request, want)
	}
}

// readFields is the pod with only the fields admittedPod keeps, volumes counted only.
func readFields(full *corev1.Pod) *corev1.Pod {
	out := &corev1.Pod{TypeMeta: full.TypeMeta}
	m := full.ObjectMeta
	out.Name, out.GenerateName, out.Namespace, out.UID, out.ResourceVersion = m.Name, m.GenerateName, m.Namespace, m.UID, m.ResourceVersion
	out.Labels, out.Annotations, out.OwnerReferences = m.Labels, m.Annotations, m.OwnerReferences
	s := full.Spec
	out.Spec.HostNetwork, out.Spec.OS, out.Spec.NodeSelector, out.Spec.RestartPolicy = s.HostNetwork, s.OS, s.NodeSelector, s.RestartPolicy
	names := func(cs []corev1.Container) []corev1.Container {
		if cs == nil {
			return nil
		}
		out := make([]corev1.Container, len(cs))
		for i, c := range cs {
			out[i] = corev1.Container{Name: c.Name, Ports: c.Ports}
		}
		return out
	}
	out.Spec.InitContainers, out.Spec.Containers = names(s.InitContainers), names(s.Containers)
	if s.Volumes != nil {
		out.Spec.Volumes = make([]corev1.Volume, len(s.Volumes))
	}
	return out
}

// The lean decode cannot change what admission does: for the test data's pods, the
// benchmark's, and thousands filled at random over every field of corev1.Pod (the fields
// admission reads drawn so that a good share is injected and every skip happens), the
// AdmissionReview answered, the Events recorded, the log lines and the metrics are the
// same, byte for byte, as when the pod is decoded whole into a corev1.Pod.
//
// It is also the guard for the list in admittedPod: a field the injector starts reading
// that the lean decode drops is zero on one side and random on the other, so the answers
// part as soon as the field changes one (a field read only to compare with one rare value
// may need its value drawn in randomPods).
func TestLeanDecodeDecidesAsFullDecode(t *testing.T) {
	objs := equivalenceCluster(t)
	resolver := injector.NewResolver(webhooktest.Injector(), objs, injector.ResolverOptions{})
	lean, full := newObservedHandler(t, resolver, true), newObservedHandler(t, resolver, false)

	type admission struct {
		name, namespace string
		pod             []byte
	}
	var cases []admission
	cases = append(cases, admission{"benchmark pod", "pipy", benchPodJSON(t)})
	for _, w := range testdataWorkloads(t) {
		pod, err := json.Marshal(w.Pod)
		if err != nil {
			t.Fatal(err)
		}
		cases = append(cases, admission{w.Kind + " " + w.Name, w.Namespace, pod})
	}
	const seed, random = 14, 2000
	gen := newPodGenerator(seed)
	for i := range random {
		ns, pod := gen.pod()
		b, err := json.Marshal(pod)
		if err != nil {
			t.Fatalf("random pod %d: %v", i, err)
		}
		cases = append(cases, admission{fmt.Sprintf("random pod %d (seed %d)", i, seed), ns, b})
	}

	injected := 0
	for _, c := range cases {
		body := podReviewJSON(c.namespace, c.pod)
		l, f := lean.admit(t, body), full.admit(t, body)
		if l != f {
			t.Fatalf("%s: the lean decode's admission differs from the full decode's\nlean: %s\nfull: %s\npod: %s", c.name, l, f, c.pod)
		}
		if strings.Contains(l, `"patch":`) {
			injected++
		}
	}
	if got, want := metricsText(t, lean.registry), metricsText(t, full.registry); got != want {
		t.Errorf("metrics differ:\nlean: %s\nfull: %s", got, want)
	}
	t.Logf("%d admissions, %d injected; skips: %s", len(cases), injected, skipCounts(lean.metrics))
	// Random pods that all skip early would prove nothing about the fields read later.
	if injected < len(cases)/4 {
		t.Errorf("only %d of %d pods injected: draw the read fields so that more are", injected, len(cases))
	}
	for _, r := range []injector.Reason{injector.ReasonHostNetwork, injector.ReasonWindows, injector.ReasonAlreadyInjected,
		injector.ReasonPodOptedOut, injector.ReasonInvalidAnnotation, injector.ReasonNoChain, injector.ReasonNoHTTPPorts} {
		if testutil.ToFloat64(lean.metrics.Skipped.WithLabelValues(string(r))) == 0 {
			t.Errorf("no pod skipped for %s: draw the read fields so that some are", r)
		}
	}
	if testutil.ToFloat64(lean.metrics.Errors.WithLabelValues(errMutate)) == 0 {
		t.Errorf("no pod rejected for an unreadable annotation: draw the annotations so that some are")
	}
}

// observedHandler is an admission handler whose every output is kept: the HTTP answer, the
// Events, the log lines (at V(1), where each names the pod) and the metrics.
type observedHandler struct {
	h        http.Handler
	events   *eventLog
	logs     *strings.Builder
	registry *prometheus.Registry
	metrics  *Metrics
}

func newObservedHandler(t *testing.T, r *injector.Resolver, lean bool) *observedHandler {
	t.Helper()
	o := &observedHandler{logs: &strings.Builder{}, registry: prometheus.NewRegistry()}
	var err error
	if o.metrics, err = NewMetrics(o.registry); err != nil {
		t.Fatal(err)
	}
	scheme, err := kubecluster.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	o.events = &eventLog{scheme: scheme}
	log := funcr.New(func(prefix, args string) { fmt.Fprintf(o.logs, "%s %s\n", prefix, args) }, funcr.Options{Verbosity: 1})
	h := NewHandler(&PodMutator{Resolver: r, Events: o.events, Metrics: o.metrics, Log: log}, o.metrics, log).(*admissionHandler)
	if !lean {
		h.pods = nil // the pod is decoded whole, by requestPod
	}
	o.h = h
	return o
}

// admit serves one review and returns all it gave out.
func (o *observedHandler) admit(t *testing.T, body []byte) string {
	t.Helper()
	o.events.lines, o.logs = nil, &strings.Builder{}
	rec := serve(o.h, body)
	return fmt.Sprintf("HTTP %d %s\nevents: %q\nlogs:\n%s", rec.Code, rec.Body, o.events.lines, o.logs)
}

// eventLog keeps each Event as a line: the reference to its object and its text.
type eventLog struct {
	scheme *runtime.Scheme
	lines  []string
}

func (e *eventLog) Eventf(regarding, _ runtime.Object, eventtype, reason, action, note string, args ...any) {
	ref, err := reference.GetReference(e.scheme, regarding)
	e.lines = append(e.lines, fmt.Sprintf("%+v (%v) %s %s %s %s", ref, err, eventtype, reason, action, fmt.Sprintf(note, args...)))
}

func metricsText(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, f := range families {
		for _, m := range f.Metric {
			fmt.Fprintf(&b, "%s %v %v\n", f.GetName(), m.GetLabel(), m.GetCounter().GetValue())
		}
	}
	return b.String()
}

func skipCounts(m *Metrics) string {
	var b strings.Builder
	for _, r := range injector.Reasons() {
		if n := testutil.ToFloat64(m.Skipped.WithLabelValues(string(r))); n > 0 {
			fmt.Fprintf(&b, "%s=%.0f ", r, n)
		}
	}
	return b.String()
}

// podReviewJSON wraps a pod's JSON in the AdmissionReview the API server sends for its
// creation in namespace ns.
func podReviewJSON(ns string, pod []byte) []byte {
	nsJSON, _ := json.Marshal(ns)
	return []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"7f0c1d2e-0000-4000-8000-000000000001",` +
		`"kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},"namespace":` + string(nsJSON) +
		`,"operation":"CREATE","userInfo":{"username":"system:serviceaccount:kube-system:replicaset-controller"},"object":` + string(pod) + `}}`)
}

// benchPodJSON is the pod of the benchmark's captured review.
func benchPodJSON(t *testing.T) []byte {
	t.Helper()
	var review struct {
		Request struct {
			Object json.RawMessage `json:"object"`
		} `json:"request"`
	}
	if err := json.Unmarshal(loadBenchReview(t), &review); err != nil {
		t.Fatal(err)
	}
	return review.Request.Object
}

// injectTestdata are the injector's golden cases: the seed's cluster and each case's own
// objects and workload.
var injectTestdata = filepath.Join("..", "..", "injector", "testdata", "inject")

func testdataFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(injectTestdata, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range files {
		if base := filepath.Base(f); !strings.HasPrefix(base, "_") && !strings.HasSuffix(base, ".injected.yaml") {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no test cases in %s", injectTestdata)
	}
	return out
}

func testdataWorkloads(t *testing.T) []*manifest.Workload {
	t.Helper()
	var out []*manifest.Workload
	for _, f := range testdataFiles(t) {
		docs, err := manifest.ReadFiles(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range docs {
			w, err := manifest.ParseWorkload(doc)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if w != nil {
				out = append(out, w)
			}
		}
	}
	return out
}

// equivalenceCluster is the seed's cluster with every golden case's objects, and Services
// that reach the random pods in each way the injector tells apart: named target ports,
// non-HTTP names and app protocols, server-first and the proxy's own ports, UDP.
func equivalenceCluster(t *testing.T) *injector.Objects {
	t.Helper()
	docs, err := manifest.ReadFiles(append([]string{filepath.Join(injectTestdata, "_cluster.yaml")}, testdataFiles(t)...)...)
	if err != nil {
		t.Fatal(err)
	}
	objs := &injector.Objects{}
	if err := manifest.AddObjects(objs, docs); err != nil {
		t.Fatal(err)
	}
	opts := injector.DefaultOptions()
	objs.ServiceList = append(objs.ServiceList, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "pipy", Name: "pipy-mixed"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "pipy-ok", "mixed": "yes"},
			Ports: []corev1.ServicePort{
				{Name: "http-named", Port: 80, TargetPort: intstr.FromString("http")},
				{Name: "metrics", Port: 9090, TargetPort: intstr.FromString("metrics"), AppProtocol: ptr.To("http")},
				{Name: "grpc-api", Port: 9000},
				{Name: "h2", Port: 8443, AppProtocol: ptr.To("kubernetes.io/h2c")},
				{Name: "db", Port: 3306},
				{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP},
				{Name: "own", Port: 1, TargetPort: intstr.FromInt32(opts.AdminPort)},
			},
		},
	})
	return objs
}

// podGenerator fills pods at random (randfill, over every field), then draws what
// admission reads from values that matter to it.
type podGenerator struct {
	fill *randfill.Filler
	r    *rand.Rand
}

func newPodGenerator(seed int64) *podGenerator {
	fill := webhooktest.PodFiller(seed).NilChance(0.5).NumElements(1, 2)
	return &podGenerator{fill: fill, r: rand.New(rand.NewSource(seed))}
}

// pick returns one of values.
func pick[T any](r *rand.Rand, values ...T) T { return values[r.Intn(len(values))] }

// pod returns a random pod and the namespace it is created in.
func (g *podGenerator) pod() (string, *corev1.Pod) {
	r := g.r
	chance := func(p float64) bool { return r.Float64() < p }
	pod := &corev1.Pod{}
	g.fill.Fill(pod)

	if chance(0.8) {
		pod.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}
	} else if chance(0.5) {
		pod.TypeMeta = metav1.TypeMeta{} // the recorder finds the kind in its scheme
	}
	ns := pick(r, "pipy", "pipy", "pipy", "pipy", "pipy", "pipy", "pipy", "pipy", "kube-system", "ns-nowhere")
	pod.Namespace = pick(r, "", ns, pod.Namespace)
	pod.Name = pick(r, "", pod.Name)
	pod.UID = pick(r, "", pod.UID)
	pod.ResourceVersion = pick(r, "", pod.ResourceVersion)
	switch {
	case chance(0.2):
		pod.OwnerReferences = nil
	case chance(0.6):
		pod.OwnerReferences = append(pod.OwnerReferences, metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "rs", UID: "u", Controller: ptr.To(true)})
	}

	// Labels the chains and Services select, and the annotations admission reads.
	pod.Labels = g.draw(pod.Labels, []mapDraw{
		{"app", 0.85, []string{"pipy-ok"}},
		{"version", 0.5, []string{"v1", "v2", "v3"}},
		{"tier", 0.3, []string{"api"}},
		{"mixed", 0.4, []string{"yes"}},
	})
	pod.Annotations = g.draw(pod.Annotations, []mapDraw{
		{injector.AnnotationSidecarInjection, 0.08, []string{"enabled", "disabled", "No", "bogus"}},
		{injector.AnnotationStatus, 0.03, []string{`{"version":1}`}},
		{injector.AnnotationNativeSidecar, 0.4, []string{"true", "false", "false", "maybe"}},
		{injector.AnnotationProxyCPURequest, 0.05, []string{"50m", "lots"}},
		{injector.AnnotationProxyMemoryLimit, 0.05, []string{"128Mi", "1e3"}},
		{injector.AnnotationProxyMaxConns, 0.05, []string{"100", "0"}},
		{injector.AnnotationConfig, 0.05, []string{"{}"}},
	})

	// The pod-only skips.
	pod.Spec.HostNetwork = chance(0.05)
	switch {
	case chance(0.6):
		pod.Spec.OS = nil
	default:
		pod.Spec.OS = &corev1.PodOS{Name: pick(r, corev1.Linux, corev1.Linux, corev1.Windows, corev1.OSName("plan9"))}
	}
	if chance(0.1) {
		if pod.Spec.NodeSelector == nil {
			pod.Spec.NodeSelector = map[string]string{}
		}
		pod.Spec.NodeSelector[corev1.LabelOSStable] = pick(r, "linux", "windows")
	}
	pod.Spec.RestartPolicy = pick(r, "", corev1.RestartPolicyAlways, corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever)

	// Containers: their names (already injected?) and ports (named target ports).
	containers := func(list []corev1.Container, names ...string) []corev1.Container {
		switch {
		case chance(0.1):
			return nil
		case chance(0.05):
			return []corev1.Container{}
		}
		for i := range list {
			if chance(0.03) {
				list[i].Name = pick(r, names...)
			}
			for j := range list[i].Ports {
				p := &list[i].Ports[j]
				p.Name = pick(r, "http", "metrics", "pipy", "web", "grpc-x", p.Name)
				p.ContainerPort = pick(r, 8080, 8081, 9000, p.ContainerPort)
				p.Protocol = pick(r, "", corev1.ProtocolTCP, corev1.ProtocolTCP, corev1.ProtocolUDP)
			}
		}
		return list
	}
	pod.Spec.Containers = containers(pod.Spec.Containers, injector.ProxyContainerName)
	pod.Spec.InitContainers = containers(pod.Spec.InitContainers, injector.ProxyContainerName, injector.InitContainerName)
	switch {
	case chance(0.3):
		pod.Spec.Volumes = nil
	case chance(0.05):
		pod.Spec.Volumes = []corev1.Volume{}
	}
	return ns, pod
}

// mapDraw sets key, with probability p, to one of values.
type mapDraw struct {
	key    string
	p      float64
	values []string
}

// draw returns m (random) with the draws made, or now and then nil or empty (the patch
// adds such a map whole).
func (g *podGenerator) draw(m map[string]string, draws []mapDraw) map[string]string {
	switch r := g.r.Float64(); {
	case r < 0.05:
		return nil
	case r < 0.1:
		return map[string]string{}
	}
	if m == nil {
		m = map[string]string{}
	}
	for _, d := range draws {
		if g.r.Float64() < d.p {
			m[d.key] = pick(g.r, d.values...)
		}
	}
	return m
}

// The generated pods are valid JSON pods whatever was drawn: they encode, and decode to
// themselves, so the equivalence above compares two decodes of a pod the API server
// could have sent (in its encoding, not its validation).
func TestRandomPodsRoundTrip(t *testing.T) {
	gen := newPodGenerator(1)
	for i := range 50 {
		_, pod := gen.pod()
		b, err := json.Marshal(pod)
		if err != nil {
			t.Fatalf("pod %d: %v", i, err)
		}
		var back corev1.Pod
		if err := kjson.UnmarshalCaseSensitivePreserveInts(b, &back); err != nil {
			t.Fatalf("pod %d: %v", i, err)
		}
		again, err := json.Marshal(&back)
		if err != nil || !bytes.Equal(b, again) {
			t.Fatalf("pod %d does not round-trip (%v):\n%s\n%s", i, err, b, again)
		}
	}
}
