package admit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	"sigs.k8s.io/yaml"

	"github.com/corsmesh/corsmesh/injector"
	"github.com/corsmesh/corsmesh/webhook/internal/webhooktest"
)

// newTestHandlers returns the two webhooks' HTTP handlers over an in-memory cluster.
func newTestHandlers(t *testing.T, cluster injector.Cluster) (mutate, validate http.Handler, m *Metrics) {
	t.Helper()
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	r := injector.NewResolver(webhooktest.Injector(), cluster, injector.ResolverOptions{})
	mutate = NewHandler(&PodMutator{Resolver: r, Metrics: m, Log: logr.Discard()}, m, logr.Discard())
	validate = NewHandler(&PolicyValidator{Resolver: r, Log: logr.Discard()}, m, logr.Discard())
	return mutate, validate, m
}

// reviewFor wraps an object's YAML in the AdmissionReview the API server would send.
func reviewFor(t *testing.T, kind, group, namespace, objectYAML string) []byte {
	t.Helper()
	obj, err := yaml.YAMLToJSON([]byte(objectYAML))
	if err != nil {
		t.Fatal(err)
	}
	review := map[string]any{
		"apiVersion": "admission.k8s.io/v1",
		"kind":       "AdmissionReview",
		"request": map[string]any{
			"uid":       "7f0c1d2e-0000-4000-8000-000000000001",
			"kind":      map[string]string{"group": group, "version": "v1", "kind": kind},
			"resource":  map[string]string{"group": group, "version": "v1", "resource": strings.ToLower(kind) + "s"},
			"namespace": namespace,
			"operation": "CREATE",
			"userInfo":  map[string]any{"username": "system:serviceaccount:kube-system:replicaset-controller"},
			"object":    json.RawMessage(obj),
		},
	}
	b, err := json.Marshal(review)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func post(t *testing.T, h http.Handler, body []byte, contentType string) (*httptest.ResponseRecorder, *admissionv1.AdmissionReview) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/mutate-pods", bytes.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		return rec, nil
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("response is not an AdmissionReview: %v\n%s", err, rec.Body)
	}
	return rec, &out
}

func TestMutatePodReview(t *testing.T) {
	mutate, _, metrics := newTestHandlers(t, webhooktest.SeedCluster(t))
	_, review := post(t, mutate, reviewFor(t, "Pod", "", "pipy", webhooktest.SeedPod), "application/json")
	if review == nil {
		t.Fatal("no review")
	}
	resp := review.Response
	if review.APIVersion != "admission.k8s.io/v1" || review.Kind != "AdmissionReview" {
		t.Errorf("response review type %s %s", review.APIVersion, review.Kind)
	}
	if resp.UID != "7f0c1d2e-0000-4000-8000-000000000001" || !resp.Allowed {
		t.Fatalf("uid %q allowed %v: %+v", resp.UID, resp.Allowed, resp.Result)
	}
	if resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
		t.Fatalf("patch type %v", resp.PatchType)
	}
	var ops []map[string]any
	if err := json.Unmarshal(resp.Patch, &ops); err != nil {
		t.Fatal(err)
	}
	patched := string(resp.Patch)
	for _, want := range []string{`"corsproxy-init"`, `"name":"corsproxy"`, `corsmesh.io/cors-config`, `--inbound-ports=8080`, `"restartPolicy":"Always"`} {
		if !strings.Contains(patched, want) {
			t.Errorf("patch lacks %s", want)
		}
	}
	if got := testutil.ToFloat64(metrics.Injected); got != 1 {
		t.Errorf("injected metric = %v", got)
	}

	// Applied to the object the review carried, as the API server does, the patch gives
	// the app's container after ours and the policy's annotation.
	obj, err := yaml.YAMLToJSON([]byte(webhooktest.SeedPod))
	if err != nil {
		t.Fatal(err)
	}
	patch, err := jsonpatch.DecodePatch(resp.Patch)
	if err != nil {
		t.Fatalf("patch does not decode: %v", err)
	}
	out, err := patch.Apply(obj)
	if err != nil {
		t.Fatalf("patch does not apply: %v", err)
	}
	var pod corev1.Pod
	if err := json.Unmarshal(out, &pod); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range append(pod.Spec.InitContainers, pod.Spec.Containers...) {
		names = append(names, c.Name)
	}
	if got := strings.Join(names, ","); got != "corsproxy-init,corsproxy,pipy" {
		t.Errorf("containers after the patch: %s", got)
	}
	if _, err := injector.ParseStatus(&pod); err != nil || pod.Annotations[injector.AnnotationConfig] == "" {
		t.Errorf("annotations after the patch: %v (%v)", pod.Annotations, err)
	}
}

// A per-pod annotation the injector cannot read rejects the pod with a 400 that names it:
// admitting it without the sidecar would run it without its CORS policy.
func TestBadProxyAnnotationIsRejected(t *testing.T) {
	cases := []struct{ annotation, value string }{
		{injector.AnnotationProxyCPULimit, "lots"},
		{injector.AnnotationProxyMaxConns, "many"},
		{injector.AnnotationProxyMaxConns, "0"},
		{injector.AnnotationProxyMaxConns, "100000"},
		{injector.AnnotationNativeSidecar, "maybe"},
	}
	for _, tc := range cases {
		t.Run(tc.annotation+"="+tc.value, func(t *testing.T) {
			mutate, _, metrics := newTestHandlers(t, webhooktest.SeedCluster(t))
			pod := strings.Replace(webhooktest.SeedPod, "  labels:", "  annotations: {"+tc.annotation+": \""+tc.value+"\"}\n  labels:", 1)
			_, review := post(t, mutate, reviewFor(t, "Pod", "", "pipy", pod), "application/json")
			if review == nil {
				t.Fatal("no review")
			}
			resp := review.Response
			if resp.Allowed || resp.Result == nil || resp.Result.Code != http.StatusBadRequest || !strings.Contains(resp.Result.Message, tc.annotation) {
				t.Fatalf("allowed=%v result=%+v: want a 400 naming %s", resp.Allowed, resp.Result, tc.annotation)
			}
			if got := testutil.ToFloat64(metrics.Errors.WithLabelValues(errMutate)); got != 1 {
				t.Errorf("errors{mutate} = %v", got)
			}
		})
	}
}

func TestSkippedPodGetsWarning(t *testing.T) {
	cluster := webhooktest.SeedCluster(t)
	cluster.Namespaces[0].Labels[injector.LabelPodSecurityEnforce] = "restricted"
	mutate, _, metrics := newTestHandlers(t, cluster)
	_, review := post(t, mutate, reviewFor(t, "Pod", "", "pipy", webhooktest.SeedPod), "application/json")
	resp := review.Response
	if !resp.Allowed || resp.Patch != nil {
		t.Fatalf("allowed=%v patch=%s: a skipped pod is admitted unchanged", resp.Allowed, resp.Patch)
	}
	if len(resp.Warnings) == 0 || !strings.Contains(resp.Warnings[0], "NET_ADMIN") {
		t.Errorf("warnings %q do not explain the Pod Security skip", resp.Warnings)
	}
	if got := testutil.ToFloat64(metrics.Skipped.WithLabelValues(string(injector.ReasonPodSecurity))); got != 1 {
		t.Errorf("skipped{pod-security} = %v", got)
	}
}

// While osm-edge's plugin-policy switch is off, a pod the chain selects is admitted
// unchanged with a warning saying how to turn it on, and counted.
func TestPluginPolicyOffPodGetsWarning(t *testing.T) {
	cluster := webhooktest.SeedCluster(t)
	cluster.MeshConfigs[0].Spec.FeatureFlags.EnablePluginPolicy = false
	mutate, _, metrics := newTestHandlers(t, cluster)
	_, review := post(t, mutate, reviewFor(t, "Pod", "", "pipy", webhooktest.SeedPod), "application/json")
	resp := review.Response
	if !resp.Allowed || resp.Patch != nil {
		t.Fatalf("allowed=%v patch=%s: with plugin policy off a pod is admitted unchanged", resp.Allowed, resp.Patch)
	}
	if len(resp.Warnings) == 0 || !strings.Contains(resp.Warnings[0], "kubectl patch meshconfig osm-mesh-config -n corsmesh-system") {
		t.Errorf("warnings %q do not say how to turn plugin policy on", resp.Warnings)
	}
	if got := testutil.ToFloat64(metrics.Skipped.WithLabelValues(string(injector.ReasonPluginPolicyDisabled))); got != 1 {
		t.Errorf("skipped{plugin-policy-disabled} = %v", got)
	}
}

func TestMalformedReviewsGet4xx(t *testing.T) {
	mutate, _, metrics := newTestHandlers(t, webhooktest.SeedCluster(t))
	valid := reviewFor(t, "Pod", "", "pipy", webhooktest.SeedPod)
	tests := []struct {
		name        string
		method      string
		body        string
		contentType string
		want        int
		message     string
	}{
		{"GET", http.MethodGet, "", "application/json", 405, "POST"},
		{"wrong content type", http.MethodPost, string(valid), "text/plain", 415, "application/json"},
		{"empty body", http.MethodPost, "", "application/json", 400, "malformed AdmissionReview"},
		{"not JSON", http.MethodPost, "{not json", "application/json", 400, "malformed AdmissionReview"},
		{"JSON array", http.MethodPost, "[]", "application/json", 400, "malformed AdmissionReview"},
		{"wrong kind", http.MethodPost, `{"apiVersion":"v1","kind":"Pod"}`, "application/json", 400, "malformed AdmissionReview"},
		{"no request", http.MethodPost, `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`, "application/json", 400, "no uid"},
		{"no uid", http.MethodPost, `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{}}`, "application/json", 400, "no uid"},
		{"too large", http.MethodPost, `{"x":"` + strings.Repeat("a", 7<<20) + `"}`, "application/json", 413, "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, "/mutate-pods", strings.NewReader(tt.body))
			req.Header.Set("Content-Type", tt.contentType)
			rec := httptest.NewRecorder()
			mutate.ServeHTTP(rec, req)
			if rec.Code != tt.want || !strings.Contains(rec.Body.String(), tt.message) {
				t.Errorf("got %d %q, want %d mentioning %q", rec.Code, rec.Body.String(), tt.want, tt.message)
			}
		})
	}
	if got := testutil.ToFloat64(metrics.Errors.WithLabelValues(errMalformed)); got != float64(len(tests)) {
		t.Errorf("errors{malformed} = %v, want %d", got, len(tests))
	}
}

// A review whose object is not a pod the handler can decode is answered inside the review
// (the API server sent it) with a 400 result, and never panics.
func TestUndecodablePodIsRejectedInReview(t *testing.T) {
	mutate, _, _ := newTestHandlers(t, webhooktest.SeedCluster(t))
	body := []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u1","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE","namespace":"pipy","object":{"spec":{"containers":"not-a-list"}}}}`)
	_, review := post(t, mutate, body, "application/json")
	if review == nil || review.Response.Allowed || review.Response.Result.Code != 400 {
		t.Fatalf("want a denied review with code 400, got %+v", review)
	}
}

func TestHandlerPanicBecomes500(t *testing.T) {
	m, _ := NewMetrics(prometheus.NewRegistry())
	h := NewHandler(admission.HandlerFunc(func(context.Context, admission.Request) admission.Response {
		var pod *corev1.Pod
		_ = pod.Name // nil dereference
		return admission.Allowed("")
	}), m, logr.Discard())
	_, review := post(t, h, reviewFor(t, "Pod", "", "pipy", webhooktest.SeedPod), "application/json")
	if review == nil || review.Response.Allowed || review.Response.Result.Code != 500 {
		t.Fatalf("want a 500 result, got %+v", review)
	}
}

// Admission records an Event on the pod's controller (the pod has no name or UID yet):
// Normal when injected, Warning when skipped for a reason the user should act on.
func TestAdmissionEvents(t *testing.T) {
	tests := []struct {
		name    string
		cluster func(*injector.Objects)
		want    string
	}{
		{"injected", nil, "Normal CORSProxyInjected CORS proxy injected for ports [8080]"},
		{"skipped", func(o *injector.Objects) { o.Namespaces[0].Labels[injector.LabelPodSecurityEnforce] = "baseline" }, "Warning CORSProxyNotInjected Not injected (pod-security)"},
		{"plugin policy off", func(o *injector.Objects) { o.MeshConfigs[0].Spec.FeatureFlags.EnablePluginPolicy = false },
			"Warning CORSProxyNotInjected Not injected (plugin-policy-disabled): plugin policy is off in MeshConfig corsmesh-system/osm-mesh-config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cluster := webhooktest.SeedCluster(t)
			if tt.cluster != nil {
				tt.cluster(cluster)
			}
			m, _ := NewMetrics(prometheus.NewRegistry())
			recorder := events.NewFakeRecorder(10)
			h := NewHandler(&PodMutator{
				Resolver: injector.NewResolver(webhooktest.Injector(), cluster, injector.ResolverOptions{}), Events: recorder, Metrics: m, Log: logr.Discard(),
			}, m, logr.Discard())
			post(t, h, reviewFor(t, "Pod", "", "pipy", webhooktest.SeedPod), "application/json")
			select {
			case got := <-recorder.Events:
				if !strings.HasPrefix(got, tt.want) {
					t.Errorf("event %q, want it to start with %q", got, tt.want)
				}
			default:
				t.Fatal("no event recorded")
			}
		})
	}
}

// The handler decodes a review once: a PodMutator's object comes decoded as a pod, other
// handlers' (and an object no pod decoder accepts) raw; the version the API server sent is
// kept for the answer, and only AdmissionReviews are accepted.
func TestDecodeReview(t *testing.T) {
	const req = `"request":{"uid":"u1","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE","namespace":"pipy","object":%s}`
	pod := `{"metadata":{"generateName":"p-","labels":{"app":"pipy"}},"spec":{"containers":[{"name":"app","image":"a"}]}}`
	tests := []struct {
		name       string
		decodePod  bool
		body       string
		wantErr    string
		wantType   string // apiVersion of the decoded review
		wantPod    bool   // Object.Object is the decoded pod
		wantRawLen bool   // Object.Raw holds the object
	}{
		{"v1 pod", true, `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview",` + fmt.Sprintf(req, pod) + `}`, "", "admission.k8s.io/v1", true, false},
		{"v1beta1 pod", true, `{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview",` + fmt.Sprintf(req, pod) + `}`, "", "admission.k8s.io/v1beta1", true, false},
		{"no type: v1", true, `{` + fmt.Sprintf(req, pod) + `}`, "", "admission.k8s.io/v1", true, false},
		{"pod for another handler", false, `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview",` + fmt.Sprintf(req, pod) + `}`, "", "admission.k8s.io/v1", false, true},
		{"object no pod decodes", true, `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview",` + fmt.Sprintf(req, `{"spec":{"containers":"not-a-list"}}`) + `}`, "", "admission.k8s.io/v1", false, true},
		{"wrong version", true, `{"apiVersion":"admission.k8s.io/v2","kind":"AdmissionReview",` + fmt.Sprintf(req, pod) + `}`, "not an admission.k8s.io/v1 AdmissionReview", "", false, false},
		{"wrong kind", true, `{"apiVersion":"admission.k8s.io/v1","kind":"Pod"}`, "not an admission.k8s.io/v1 AdmissionReview", "", false, false},
		{"request not an object", true, `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":[]}`, "cannot unmarshal", "", false, false},
		{"truncated", true, `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview",` + fmt.Sprintf(req, pod), "unexpected end", "", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &admissionHandler{}
			if tt.decodePod {
				a.pods = &PodMutator{}
			}
			got, err := a.decode([]byte(tt.body))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.APIVersion != tt.wantType || got.Kind != "AdmissionReview" || got.Request.UID != "u1" || got.Request.Namespace != "pipy" {
				t.Errorf("decoded %s %s uid %q namespace %q", got.APIVersion, got.Kind, got.Request.UID, got.Request.Namespace)
			}
			p, isPod := got.Request.Object.Object.(*corev1.Pod)
			if isPod != tt.wantPod || (isPod && (p.GenerateName != "p-" || p.Labels["app"] != "pipy" || len(p.Spec.Containers) != 1)) {
				t.Errorf("Object.Object = %#v, want the pod: %v", got.Request.Object.Object, tt.wantPod)
			}
			if (len(got.Request.Object.Raw) > 0) != tt.wantRawLen {
				t.Errorf("Object.Raw = %q, want it set: %v", got.Request.Object.Raw, tt.wantRawLen)
			}
		})
	}
}

// The answer is in the AdmissionReview version the API server sent.
func TestAnswerInReviewVersion(t *testing.T) {
	mutate, _, _ := newTestHandlers(t, webhooktest.SeedCluster(t))
	body := bytes.Replace(reviewFor(t, "Pod", "", "pipy", webhooktest.SeedPod), []byte(`"admission.k8s.io/v1"`), []byte(`"admission.k8s.io/v1beta1"`), 1)
	rec, review := post(t, mutate, body, "application/json")
	if review == nil {
		t.Fatalf("HTTP %d: %s", rec.Code, rec.Body)
	}
	if review.APIVersion != "admission.k8s.io/v1beta1" || review.Kind != "AdmissionReview" || !review.Response.Allowed || review.Response.Patch == nil {
		t.Errorf("answer %s %s allowed=%v patch=%s", review.APIVersion, review.Kind, review.Response.Allowed, review.Response.Patch)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
}

func TestReadBody(t *testing.T) {
	big := strings.Repeat("a", maxReviewBytes+1)
	tests := []struct {
		name    string
		body    string
		length  int64 // Content-Length; -1: unknown (chunked)
		wantErr string
	}{
		{"length known", `{"a":1}`, 7, ""},
		{"length unknown", `{"a":1}`, -1, ""},
		{"at the limit, unknown length", big[:maxReviewBytes], -1, ""},
		{"over the limit, unknown length", big, -1, "too large"},
		{"over the limit, said", `{}`, maxReviewBytes + 1, "too large"},
		{"shorter than said", `{"a":1}`, 9, "unexpected EOF"},
		{"longer than said", `{"a":1}`, 3, "longer than its Content-Length"},
		{"empty", ``, 0, "empty body"},
		{"empty, unknown length", ``, -1, "empty body"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/mutate-pods", io.NopCloser(strings.NewReader(tt.body)))
			req.ContentLength = tt.length
			got, _, _, err := readBody(req, &buffers{}, &bodyBudget{})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || string(got) != tt.body {
				t.Fatalf("read %d bytes, %v; want the %d sent", len(got), err, len(tt.body))
			}
		})
	}
}
