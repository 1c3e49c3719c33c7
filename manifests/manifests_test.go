// Package manifests holds corsmesh's kustomize manifests (see README.md). Its tests render
// the overlays with the pinned kubectl and check what the webhook's correctness and safety
// depend on: webhook configuration settings, the Deployment, least-privilege RBAC, the
// cert-manager chain, the local overlay, and that the samples are the seed guide's YAML.
// Applying the manifests to a real API server is the integration suite's job.
package manifests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/corsmesh/corsmesh/injector"
	configv1alpha2 "github.com/corsmesh/corsmesh/injector/api/config/v1alpha2"
	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
)

const (
	ns            = "corsmesh-system"
	webhookName   = "corsmesh-webhook"
	servingCert   = "corsmesh-webhook-cert"
	servingSecret = "corsmesh-webhook-tls"
	localAddr     = "127.0.0.1:19443"
)

// ---------------------------------------------------------------------------------------
// Rendering

// object is one rendered document.
type object struct {
	APIVersion, Kind, Namespace, Name string
	JSON                              []byte
	Map                               map[string]any
}

func (o object) String() string {
	if o.Namespace == "" {
		return o.Kind + " " + o.Name
	}
	return o.Kind + " " + o.Namespace + "/" + o.Name
}

type rendering struct {
	Text    []byte
	Objects []object
}

// find returns the one object of kind named name, failing the test if there is none.
func (r rendering) find(t *testing.T, kind, name string) object {
	t.Helper()
	for _, o := range r.Objects {
		if o.Kind == kind && o.Name == name {
			return o
		}
	}
	t.Fatalf("no %s %s in the rendering", kind, name)
	return object{}
}

func (r rendering) ofKind(kind string) []object {
	var out []object
	for _, o := range r.Objects {
		if o.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

// decodeInto decodes o strictly into a typed object: an unknown field (a typo, a field at
// the wrong level) fails the test.
func decodeInto[T any](t *testing.T, o object) *T {
	t.Helper()
	var v T
	if err := decodeStrict(o.JSON, &v); err != nil {
		t.Fatalf("%s: %v", o, err)
	}
	return &v
}

// decodeStrict decodes as the API server does: field names are case-sensitive (unlike
// encoding/json's), and unknown or duplicate fields are errors.
func decodeStrict(data []byte, v any) error {
	strict, err := kjson.UnmarshalStrict(data, v, kjson.DisallowUnknownFields, kjson.DisallowDuplicateFields)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

// repoRoot is the directory of the module's go.mod, found upwards from the test's directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test's directory")
		}
		dir = parent
	}
}

// kubeVersion is the pinned control-plane version (hack/controlplane/versions.env).
func kubeVersion(root string) string {
	b, err := os.ReadFile(filepath.Join(root, "hack", "controlplane", "versions.env"))
	if err == nil {
		if m := regexp.MustCompile(`(?m)^PINNED_KUBE_VERSION=(\S+)$`).FindSubmatch(b); m != nil {
			return string(m[1])
		}
	}
	return "v1.37.2"
}

// kubectl is the pinned kubectl that hack/build-controlplane.sh builds ($KUBECTL
// overrides). Without it the tests skip, except in CI where that is a failure.
func kubectl(t *testing.T) string {
	t.Helper()
	path := os.Getenv("KUBECTL")
	if path == "" {
		root := repoRoot(t)
		path = filepath.Join(root, "bin", "k8s", kubeVersion(root), "kubectl")
	}
	if _, err := os.Stat(path); err != nil {
		msg := fmt.Sprintf("kubectl not found at %s (build it with hack/build-controlplane.sh): %v", path, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return path
}

var (
	renderMu    sync.Mutex
	renderCache = map[string]rendering{}
)

// render runs `kubectl kustomize manifests/overlays/<overlay>` and decodes every document.
func render(t *testing.T, overlay string) rendering {
	t.Helper()
	kc := kubectl(t)
	renderMu.Lock()
	defer renderMu.Unlock()
	if r, ok := renderCache[overlay]; ok {
		return r
	}
	dir := filepath.Join(repoRoot(t), "manifests", "overlays", overlay)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, kc, "kustomize", dir)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, stderr.String())
	}
	objs, err := decodeStream(stdout.Bytes())
	if err != nil {
		t.Fatalf("overlay %s: %v", overlay, err)
	}
	r := rendering{Text: stdout.Bytes(), Objects: objs}
	renderCache[overlay] = r
	return r
}

// decodeStream splits a YAML stream into objects (empty documents are dropped).
func decodeStream(data []byte) ([]object, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out []object
	for i := 1; ; i++ {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if string(bytes.TrimSpace(js)) == "null" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(js, &m); err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		var meta struct {
			metav1.TypeMeta
			Metadata metav1.ObjectMeta `json:"metadata"`
		}
		if err := json.Unmarshal(js, &meta); err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if meta.Kind == "" || meta.APIVersion == "" {
			return nil, fmt.Errorf("document %d has no kind or apiVersion", i)
		}
		out = append(out, object{APIVersion: meta.APIVersion, Kind: meta.Kind, Namespace: meta.Metadata.Namespace, Name: meta.Metadata.Name, JSON: js, Map: m})
	}
}

// field walks a decoded object along keys (map keys, or list indexes as ints).
func field(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

// ---------------------------------------------------------------------------------------
// Both overlays

var overlays = []string{"default", "local"}

// TestRenderedObjects checks the inventory of each overlay and decodes every object of a
// known type strictly.
func TestRenderedObjects(t *testing.T) {
	common := []string{
		"Namespace " + ns,
		"CustomResourceDefinition plugins.plugin.flomesh.io",
		"CustomResourceDefinition pluginchains.plugin.flomesh.io",
		"CustomResourceDefinition pluginconfigs.plugin.flomesh.io",
		"CustomResourceDefinition meshconfigs.config.openservicemesh.io",
		"MeshConfig " + ns + "/osm-mesh-config",
		"ServiceAccount " + ns + "/corsmesh-webhook",
		"ClusterRole corsmesh-webhook",
		"ClusterRoleBinding corsmesh-webhook",
		"Role " + ns + "/corsmesh-webhook",
		"RoleBinding " + ns + "/corsmesh-webhook",
		"Issuer " + ns + "/corsmesh-selfsigned",
		"Certificate " + ns + "/corsmesh-ca",
		"Issuer " + ns + "/corsmesh-ca-issuer",
		"Certificate " + ns + "/corsmesh-webhook-cert",
		"MutatingWebhookConfiguration corsmesh-webhook",
		"ValidatingWebhookConfiguration corsmesh-policies",
	}
	inCluster := []string{
		"Deployment " + ns + "/corsmesh-webhook",
		"Service " + ns + "/corsmesh-webhook",
		"PodDisruptionBudget " + ns + "/corsmesh-webhook",
	}
	tests := []struct {
		overlay string
		want    []string
	}{
		{"default", append(slices.Clone(common), inCluster...)},
		{"local", common},
	}
	clusterScoped := map[string]bool{"Namespace": true, "CustomResourceDefinition": true, "ClusterRole": true, "ClusterRoleBinding": true, "MutatingWebhookConfiguration": true, "ValidatingWebhookConfiguration": true}
	for _, tt := range tests {
		t.Run(tt.overlay, func(t *testing.T) {
			r := render(t, tt.overlay)
			var got []string
			for _, o := range r.Objects {
				got = append(got, o.String())
				switch {
				case clusterScoped[o.Kind] && o.Namespace != "":
					t.Errorf("%s: cluster-scoped kind with a namespace", o)
				case !clusterScoped[o.Kind] && o.Namespace != ns:
					t.Errorf("%s: want namespace %s", o, ns)
				}
				if v := field(o.Map, "metadata", "labels", "app.kubernetes.io/part-of"); v != "corsmesh" {
					t.Errorf("%s: label app.kubernetes.io/part-of=%v, want corsmesh", o, v)
				}
				decodeKnown(t, o)
			}
			sort.Strings(got)
			want := slices.Clone(tt.want)
			sort.Strings(want)
			if !slices.Equal(got, want) {
				t.Errorf("objects:\n got %q\nwant %q", got, want)
			}
		})
	}
}

// decodeKnown decodes o strictly into its Kubernetes type, when it has one here.
func decodeKnown(t *testing.T, o object) {
	t.Helper()
	switch o.Kind {
	case "Namespace":
		decodeInto[corev1.Namespace](t, o)
	case "ServiceAccount":
		decodeInto[corev1.ServiceAccount](t, o)
	case "Service":
		decodeInto[corev1.Service](t, o)
	case "Deployment":
		decodeInto[appsv1.Deployment](t, o)
	case "PodDisruptionBudget":
		decodeInto[policyv1.PodDisruptionBudget](t, o)
	case "ClusterRole":
		decodeInto[rbacv1.ClusterRole](t, o)
	case "ClusterRoleBinding":
		decodeInto[rbacv1.ClusterRoleBinding](t, o)
	case "Role":
		decodeInto[rbacv1.Role](t, o)
	case "RoleBinding":
		decodeInto[rbacv1.RoleBinding](t, o)
	case "MutatingWebhookConfiguration":
		decodeInto[admissionregistrationv1.MutatingWebhookConfiguration](t, o)
	case "ValidatingWebhookConfiguration":
		decodeInto[admissionregistrationv1.ValidatingWebhookConfiguration](t, o)
	case "CustomResourceDefinition":
		decodeInto[apiextensionsv1.CustomResourceDefinition](t, o)
	case "MeshConfig":
		// osm-edge's switch, installed off as osm-edge does: the guide turns it on.
		mc := decodeInto[configv1alpha2.MeshConfig](t, o)
		if o.APIVersion != configv1alpha2.GroupVersion.String() || mc.Name != configv1alpha2.MeshConfigName || mc.Namespace != ns || mc.Spec.FeatureFlags.EnablePluginPolicy {
			t.Errorf("%s: apiVersion %s, enablePluginPolicy %t; want %s/%s in %s, off", o, o.APIVersion, mc.Spec.FeatureFlags.EnablePluginPolicy, configv1alpha2.GroupVersion, configv1alpha2.MeshConfigName, ns)
		}
	case "Issuer", "Certificate":
		if o.APIVersion != "cert-manager.io/v1" {
			t.Errorf("%s: apiVersion %s, want cert-manager.io/v1", o, o.APIVersion)
		}
	default:
		t.Errorf("%s: unexpected kind", o)
	}
}

// expectedClientConfig is where each overlay sends the API server.
func expectedClientConfig(overlay, path string) admissionregistrationv1.WebhookClientConfig {
	if overlay == "local" {
		u := "https://" + localAddr + path
		return admissionregistrationv1.WebhookClientConfig{URL: &u}
	}
	port := int32(443)
	return admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{Namespace: ns, Name: webhookName, Path: &path, Port: &port}}
}

func TestMutatingWebhook(t *testing.T) {
	for _, overlay := range overlays {
		t.Run(overlay, func(t *testing.T) {
			r := render(t, overlay)
			cfg := decodeInto[admissionregistrationv1.MutatingWebhookConfiguration](t, r.find(t, "MutatingWebhookConfiguration", webhookName))
			checkInjectCA(t, r, cfg.ObjectMeta)
			if len(cfg.Webhooks) != 1 {
				t.Fatalf("%d webhooks, want 1", len(cfg.Webhooks))
			}
			wh := cfg.Webhooks[0]
			checks := []struct {
				name      string
				got, want any
			}{
				{"name", wh.Name, "inject.corsmesh.io"},
				{"failurePolicy", deref(wh.FailurePolicy), admissionregistrationv1.Fail},
				{"sideEffects", deref(wh.SideEffects), admissionregistrationv1.SideEffectClassNone},
				{"timeoutSeconds", deref(wh.TimeoutSeconds), int32(5)},
				{"reinvocationPolicy", deref(wh.ReinvocationPolicy), admissionregistrationv1.IfNeededReinvocationPolicy},
				{"matchPolicy", deref(wh.MatchPolicy), admissionregistrationv1.Equivalent},
				{"admissionReviewVersions", wh.AdmissionReviewVersions, []string{"v1"}},
				{"rules", wh.Rules, []admissionregistrationv1.RuleWithOperations{{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}, Scope: ptr(admissionregistrationv1.NamespacedScope)},
				}}},
				{"clientConfig", wh.ClientConfig, expectedClientConfig(overlay, webhookPath(t, "PathMutatePods"))},
			}
			for _, c := range checks {
				if !reflect.DeepEqual(c.got, c.want) {
					t.Errorf("%s = %s, want %s", c.name, show(c.got), show(c.want))
				}
			}

			nsSel := selector(t, wh.NamespaceSelector)
			defaults := injector.DefaultOptions()
			monitored := labels.Set{injector.LabelMonitoredBy: defaults.MeshName}
			type nsCase struct {
				name   string
				labels labels.Set
				want   bool
			}
			nsCases := []nsCase{
				{"pipy", monitored, true},
				{"pipy", labels.Set{injector.LabelMonitoredBy: "other-mesh"}, true}, // refused in code: the value is a flag
				{"pipy", labels.Set{}, false},
				{"pipy", labels.Set{injector.LabelMonitoredBy + "-not": defaults.MeshName}, false},
			}
			// Never the system namespaces or the webhook's own, even when labelled.
			for _, name := range append(slices.Clone(defaults.SystemNamespaces), defaults.OwnNamespace, ns) {
				nsCases = append(nsCases, nsCase{name, monitored, false})
			}
			for _, c := range nsCases {
				// The API server sets kubernetes.io/metadata.name on every namespace.
				set := labels.Merge(c.labels, labels.Set{"kubernetes.io/metadata.name": c.name})
				if got := nsSel.Matches(set); got != c.want {
					t.Errorf("namespaceSelector on namespace %s %v = %v, want %v", c.name, c.labels, got, c.want)
				}
			}

			objSel := selector(t, wh.ObjectSelector)
			podCases := []struct {
				labels labels.Set
				want   bool
			}{
				{labels.Set{"app": "pipy-ok"}, true},
				{labels.Set{injector.AnnotationSidecarInjection: "enabled"}, true},
				{labels.Set{injector.AnnotationSidecarInjection: "disabled"}, false},
				{labels.Set{injector.AnnotationSidecarInjection: "false"}, false},
				{labels.Set{injector.AnnotationSidecarInjection: "no"}, false},
			}
			for _, c := range podCases {
				if got := objSel.Matches(c.labels); got != c.want {
					t.Errorf("objectSelector on pod labels %v = %v, want %v", c.labels, got, c.want)
				}
			}
		})
	}
}

func TestValidatingWebhook(t *testing.T) {
	for _, overlay := range overlays {
		t.Run(overlay, func(t *testing.T) {
			r := render(t, overlay)
			cfg := decodeInto[admissionregistrationv1.ValidatingWebhookConfiguration](t, r.find(t, "ValidatingWebhookConfiguration", "corsmesh-policies"))
			checkInjectCA(t, r, cfg.ObjectMeta)
			if len(cfg.Webhooks) != 1 {
				t.Fatalf("%d webhooks, want 1", len(cfg.Webhooks))
			}
			wh := cfg.Webhooks[0]

			// The rules cover exactly the served versions and plurals of the CRDs.
			var resources, versions []string
			for _, o := range r.ofKind("CustomResourceDefinition") {
				crd := decodeInto[apiextensionsv1.CustomResourceDefinition](t, o)
				if crd.Spec.Group != v1alpha1.GroupName {
					continue
				}
				resources = append(resources, crd.Spec.Names.Plural)
				for _, v := range crd.Spec.Versions {
					if v.Served && !slices.Contains(versions, v.Name) {
						versions = append(versions, v.Name)
					}
				}
			}
			sort.Strings(resources)
			if len(resources) != 3 || !slices.Equal(versions, []string{v1alpha1.GroupVersion.Version}) {
				t.Errorf("CRDs: resources %v, versions %v", resources, versions)
			}
			if len(wh.Rules) != 1 {
				t.Fatalf("%d rules, want 1", len(wh.Rules))
			}
			rule := wh.Rules[0]
			gotResources := slices.Clone(rule.Resources)
			sort.Strings(gotResources)

			checks := []struct {
				name      string
				got, want any
			}{
				{"name", wh.Name, "validate.plugin.corsmesh.io"},
				{"failurePolicy", deref(wh.FailurePolicy), admissionregistrationv1.Fail},
				{"sideEffects", deref(wh.SideEffects), admissionregistrationv1.SideEffectClassNone},
				{"timeoutSeconds", deref(wh.TimeoutSeconds), int32(5)},
				{"matchPolicy", deref(wh.MatchPolicy), admissionregistrationv1.Equivalent},
				{"admissionReviewVersions", wh.AdmissionReviewVersions, []string{"v1"}},
				{"rule apiGroups", rule.APIGroups, []string{v1alpha1.GroupName}},
				{"rule apiVersions", rule.APIVersions, versions},
				{"rule resources", gotResources, resources},
				{"rule operations", rule.Operations, []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update}},
				// Plugin is cluster-scoped: a Namespaced scope would skip it.
				{"rule scope", deref(rule.Scope), admissionregistrationv1.AllScopes},
				{"clientConfig", wh.ClientConfig, expectedClientConfig(overlay, webhookPath(t, "PathValidatePolicies"))},
			}
			for _, c := range checks {
				if !reflect.DeepEqual(c.got, c.want) {
					t.Errorf("%s = %s, want %s", c.name, show(c.got), show(c.want))
				}
			}
		})
	}
}

// checkInjectCA checks the cainjector annotation names the serving Certificate, and that
// this Certificate writes the Secret the webhook serves with.
func checkInjectCA(t *testing.T, r rendering, meta metav1.ObjectMeta) {
	t.Helper()
	want := ns + "/" + servingCert
	if got := meta.Annotations["cert-manager.io/inject-ca-from"]; got != want {
		t.Errorf("%s: cert-manager.io/inject-ca-from = %q, want %q", meta.Name, got, want)
	}
	cert := r.find(t, "Certificate", servingCert)
	if got := field(cert.Map, "spec", "secretName"); got != servingSecret {
		t.Errorf("%s: secretName %v, want %s", cert, got, servingSecret)
	}
}

// TestCertificates checks the cert-manager chain: self-signed Issuer -> CA Certificate ->
// CA Issuer -> serving Certificate.
func TestCertificates(t *testing.T) {
	for _, overlay := range overlays {
		t.Run(overlay, func(t *testing.T) {
			r := render(t, overlay)
			issuerRef := func(name string) map[string]any {
				return map[string]any{"group": "cert-manager.io", "kind": "Issuer", "name": name}
			}
			privateKey := map[string]any{"algorithm": "ECDSA", "size": float64(256)}
			servingKey := map[string]any{"algorithm": "ECDSA", "size": float64(256), "rotationPolicy": "Always"}
			dnsNames := []any{webhookName + "." + ns + ".svc", webhookName + "." + ns + ".svc.cluster.local"}
			if overlay == "local" {
				dnsNames = append(dnsNames, "localhost")
			}
			checks := []struct {
				kind, name string
				path       []any
				want       any
			}{
				{"Issuer", "corsmesh-selfsigned", []any{"spec", "selfSigned"}, map[string]any{}},
				{"Certificate", "corsmesh-ca", []any{"spec", "isCA"}, true},
				{"Certificate", "corsmesh-ca", []any{"spec", "secretName"}, "corsmesh-ca"},
				{"Certificate", "corsmesh-ca", []any{"spec", "duration"}, "87600h"},
				{"Certificate", "corsmesh-ca", []any{"spec", "privateKey"}, privateKey},
				{"Certificate", "corsmesh-ca", []any{"spec", "issuerRef"}, issuerRef("corsmesh-selfsigned")},
				{"Issuer", "corsmesh-ca-issuer", []any{"spec", "ca", "secretName"}, "corsmesh-ca"},
				{"Certificate", servingCert, []any{"spec", "secretName"}, servingSecret},
				{"Certificate", servingCert, []any{"spec", "dnsNames"}, dnsNames},
				{"Certificate", servingCert, []any{"spec", "duration"}, "2160h"},
				{"Certificate", servingCert, []any{"spec", "renewBefore"}, "720h"},
				{"Certificate", servingCert, []any{"spec", "privateKey"}, servingKey},
				{"Certificate", servingCert, []any{"spec", "issuerRef"}, issuerRef("corsmesh-ca-issuer")},
				{"Certificate", servingCert, []any{"spec", "isCA"}, nil},
			}
			if overlay == "local" {
				checks = append(checks, struct {
					kind, name string
					path       []any
					want       any
				}{"Certificate", servingCert, []any{"spec", "ipAddresses"}, []any{"127.0.0.1"}})
			}
			for _, c := range checks {
				o := r.find(t, c.kind, c.name)
				if got := field(o.Map, c.path...); !reflect.DeepEqual(got, c.want) {
					t.Errorf("%s %v = %s, want %s", o, c.path, show(got), show(c.want))
				}
			}
		})
	}
}

// ---------------------------------------------------------------------------------------
// The in-cluster objects (default overlay)

func TestDeployment(t *testing.T) {
	r := render(t, "default")
	d := decodeInto[appsv1.Deployment](t, r.find(t, "Deployment", webhookName))
	spec := d.Spec.Template.Spec
	if len(spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(spec.Containers))
	}
	c := spec.Containers[0]
	args := flags(t, c.Args)
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m
	}
	defaults := injector.DefaultOptions()
	sc, psc := deref(c.SecurityContext), deref(spec.SecurityContext)
	templateLabels := labels.Set(d.Spec.Template.Labels)

	checks := []struct {
		name      string
		got, want any
	}{
		{"replicas", deref(d.Spec.Replicas), int32(2)},
		{"rollingUpdate.maxUnavailable", deref(deref(d.Spec.Strategy.RollingUpdate).MaxUnavailable), intstr.FromInt32(0)},
		{"selector matches the template", selector(t, d.Spec.Selector).Matches(templateLabels), true},
		{"serviceAccountName", spec.ServiceAccountName, webhookName},
		{"image", c.Image, "ghcr.io/corsmesh/corsmesh-webhook:v0.1.0"},

		{"--cert-dir", args["cert-dir"], "/etc/corsmesh/tls"},
		{"--port", args["port"], "9443"},
		{"--metrics-addr", args["metrics-addr"], ":8080"},
		{"--health-addr", args["health-addr"], ":8081"},
		{"--leader-elect", args["leader-elect"], "true"},
		{"--mesh-name", args["mesh-name"], defaults.MeshName},
		{"--proxy-image", args["proxy-image"], "$(CORSMESH_PROXY_IMAGE)"},
		{"--init-image", args["init-image"], "$(CORSMESH_INIT_IMAGE)"},
		{"env CORSMESH_PROXY_IMAGE", env["CORSMESH_PROXY_IMAGE"].Value, defaults.ProxyImage},
		{"env CORSMESH_INIT_IMAGE", env["CORSMESH_INIT_IMAGE"].Value, defaults.InitImage},
		{"env POD_NAMESPACE", deref(deref(env["POD_NAMESPACE"].ValueFrom).FieldRef).FieldPath, "metadata.namespace"},
		{"env CORSMESH_MEMORY_LIMIT", deref(deref(env["CORSMESH_MEMORY_LIMIT"].ValueFrom).ResourceFieldRef), corev1.ResourceFieldSelector{ContainerName: c.Name, Resource: "limits.memory"}},

		{"port webhook", ports["webhook"], int32(9443)},
		{"port metrics", ports["metrics"], int32(8080)},
		{"port health", ports["health"], int32(8081)},
		{"readiness", probe(c.ReadinessProbe), "/readyz health"},
		{"liveness", probe(c.LivenessProbe), "/healthz health"},

		{"tls volume", deref(volume(spec.Volumes, "tls").Secret).SecretName, servingSecret},
		{"tls mount path = --cert-dir", mounts["tls"].MountPath, args["cert-dir"]},
		{"tls mount readOnly", mounts["tls"].ReadOnly, true},

		{"runAsNonRoot", deref(sc.RunAsNonRoot), true},
		{"runAsUser", deref(sc.RunAsUser), int64(65532)},
		{"pod runAsUser", deref(psc.RunAsUser), int64(65532)},
		{"pod runAsNonRoot", deref(psc.RunAsNonRoot), true},
		{"readOnlyRootFilesystem", deref(sc.ReadOnlyRootFilesystem), true},
		{"allowPrivilegeEscalation", deref(sc.AllowPrivilegeEscalation), false},
		{"privileged", deref(sc.Privileged), false},
		{"capabilities", deref(sc.Capabilities), corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}},
		{"seccompProfile", deref(sc.SeccompProfile).Type, corev1.SeccompProfileTypeRuntimeDefault},
		{"pod seccompProfile", deref(psc.SeccompProfile).Type, corev1.SeccompProfileTypeRuntimeDefault},
		{"hostNetwork", spec.HostNetwork, false},

		{"cpu request set", !c.Resources.Requests.Cpu().IsZero(), true},
		{"memory request set", !c.Resources.Requests.Memory().IsZero(), true},
		{"memory limit set", !c.Resources.Limits.Memory().IsZero(), true},
	}
	for _, ck := range checks {
		if !reflect.DeepEqual(ck.got, ck.want) {
			t.Errorf("%s = %s, want %s", ck.name, show(ck.got), show(ck.want))
		}
	}

	// The replicas spread over nodes.
	var spread bool
	for _, tsc := range spec.TopologySpreadConstraints {
		if tsc.TopologyKey == corev1.LabelHostname && tsc.MaxSkew == 1 && selector(t, tsc.LabelSelector).Matches(templateLabels) {
			spread = true
		}
	}
	if !spread {
		t.Errorf("no topologySpreadConstraint over %s selecting the replicas: %s", corev1.LabelHostname, show(spec.TopologySpreadConstraints))
	}

	// The mounted Secret must be readable by the non-root user: group-owned via fsGroup
	// when its mode gives others no read access.
	if mode := deref(deref(volume(spec.Volumes, "tls").Secret).DefaultMode); mode&0o004 == 0 {
		if deref(psc.FSGroup) != deref(sc.RunAsUser) && deref(psc.FSGroup) != deref(psc.RunAsGroup) {
			t.Errorf("tls volume mode %#o with fsGroup %d: unreadable by user %d", mode, deref(psc.FSGroup), deref(sc.RunAsUser))
		}
	}

	// Leader election: the Role grants exactly the lease the webhook uses.
	leaseName := args["leader-election-id"]
	if leaseName == "" {
		leaseName = webhookName // the flag's default
	}
	role := decodeInto[rbacv1.Role](t, r.find(t, "Role", webhookName))
	var named bool
	for _, rule := range role.Rules {
		named = named || slices.Contains(rule.ResourceNames, leaseName) && slices.Contains(rule.Verbs, "update")
	}
	if !named {
		t.Errorf("Role %s does not let the webhook update Lease %s", role.Name, leaseName)
	}
}

func TestServiceAndPDB(t *testing.T) {
	r := render(t, "default")
	d := decodeInto[appsv1.Deployment](t, r.find(t, "Deployment", webhookName))
	podLabels := labels.Set(d.Spec.Template.Labels)
	var webhookPort int32
	for _, p := range d.Spec.Template.Spec.Containers[0].Ports {
		if p.Name == "webhook" {
			webhookPort = p.ContainerPort
		}
	}

	svc := decodeInto[corev1.Service](t, r.find(t, "Service", webhookName))
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels) || len(svc.Spec.Selector) == 0 {
		t.Errorf("Service selector %v does not select the webhook's pods %v", svc.Spec.Selector, podLabels)
	}
	if len(svc.Spec.Ports) != 1 {
		t.Fatalf("Service ports: %s", show(svc.Spec.Ports))
	}
	p := svc.Spec.Ports[0]
	target := p.TargetPort.IntVal
	if p.TargetPort.Type == intstr.String {
		for _, cp := range d.Spec.Template.Spec.Containers[0].Ports {
			if cp.Name == p.TargetPort.StrVal {
				target = cp.ContainerPort
			}
		}
	}
	if p.Port != 443 || target != 9443 || target != webhookPort {
		t.Errorf("Service port %d -> %s (%d), want 443 -> 9443", p.Port, p.TargetPort.String(), target)
	}

	pdb := decodeInto[policyv1.PodDisruptionBudget](t, r.find(t, "PodDisruptionBudget", webhookName))
	if got := deref(pdb.Spec.MinAvailable); got != intstr.FromInt32(1) || pdb.Spec.MaxUnavailable != nil {
		t.Errorf("PDB minAvailable %s maxUnavailable %s, want minAvailable 1", show(pdb.Spec.MinAvailable), show(pdb.Spec.MaxUnavailable))
	}
	if !selector(t, pdb.Spec.Selector).Matches(podLabels) {
		t.Errorf("PDB selector does not select the webhook's pods")
	}
	if int32(1) >= deref(d.Spec.Replicas) {
		t.Errorf("minAvailable 1 with %d replicas blocks every drain", deref(d.Spec.Replicas))
	}
}

// ---------------------------------------------------------------------------------------
// RBAC

// TestRBAC checks the rendered roles (generated from webhook/rbac.go, where each permission
// is listed once) against what the webhook must never hold: a wildcard, non-resource URLs,
// Secrets, a write verb other than patch (create only for Events and the Lease, update only
// for the Lease by name), a cluster-wide MeshConfig or Lease grant; and that the bindings
// reach the webhook's ServiceAccount.
func TestRBAC(t *testing.T) {
	readVerbs := []string{"get", "list", "watch"}
	allowedWrite := func(scope, group, resource, verb string, names []string) bool {
		switch {
		case verb == "patch":
			return true
		case verb == "create":
			return resource == "events" || (scope == "Role" && resource == "leases")
		case verb == "update":
			return scope == "Role" && resource == "leases" && len(names) > 0
		}
		return false
	}
	for _, overlay := range overlays {
		t.Run(overlay, func(t *testing.T) {
			r := render(t, overlay)
			rules := map[string][]rbacv1.PolicyRule{}
			for _, o := range r.ofKind("ClusterRole") {
				rules[o.String()] = decodeInto[rbacv1.ClusterRole](t, o).Rules
			}
			for _, o := range r.ofKind("Role") {
				rules[o.String()] = decodeInto[rbacv1.Role](t, o).Rules
			}
			for role, rs := range rules {
				scope, _, _ := strings.Cut(role, " ")
				for i, rule := range rs {
					for _, list := range [][]string{rule.Verbs, rule.APIGroups, rule.Resources, rule.ResourceNames} {
						for _, s := range list {
							if s == "*" || strings.Contains(s, "*") {
								t.Errorf("%s rule %d: wildcard %q", role, i, s)
							}
						}
					}
					if len(rule.NonResourceURLs) > 0 {
						t.Errorf("%s rule %d: nonResourceURLs %v", role, i, rule.NonResourceURLs)
					}
					for _, g := range rule.APIGroups {
						for _, res := range rule.Resources {
							if res == "secrets" {
								t.Errorf("%s rule %d: Secrets", role, i)
							}
							if scope == "ClusterRole" && (res == "meshconfigs" || res == "leases") {
								t.Errorf("%s rule %d: %s cluster-wide, want them in %s only", role, i, res, ns)
							}
							for _, v := range rule.Verbs {
								if !slices.Contains(readVerbs, v) && !allowedWrite(scope, g, res, v, rule.ResourceNames) {
									t.Errorf("%s rule %d: %s", role, i, permission(g, res, v, strings.Join(rule.ResourceNames, ",")))
								}
							}
						}
					}
				}
			}

			sa := subject(ns, webhookName)
			crb := decodeInto[rbacv1.ClusterRoleBinding](t, r.find(t, "ClusterRoleBinding", webhookName))
			rb := decodeInto[rbacv1.RoleBinding](t, r.find(t, "RoleBinding", webhookName))
			bindings := []struct {
				name     string
				ref      rbacv1.RoleRef
				subjects []rbacv1.Subject
				wantRef  rbacv1.RoleRef
			}{
				{"ClusterRoleBinding", crb.RoleRef, crb.Subjects, rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: webhookName}},
				{"RoleBinding", rb.RoleRef, rb.Subjects, rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: webhookName}},
			}
			for _, b := range bindings {
				if b.ref != b.wantRef || !reflect.DeepEqual(b.subjects, []rbacv1.Subject{sa}) {
					t.Errorf("%s: roleRef %s subjects %s, want %s and %s", b.name, show(b.ref), show(b.subjects), show(b.wantRef), show(sa))
				}
			}
			if rb.Namespace != ns {
				t.Errorf("RoleBinding in %q, want %s", rb.Namespace, ns)
			}
		})
	}
}

func permission(group, resource, verb, name string) string {
	s := fmt.Sprintf("%s %s/%s", verb, group, resource)
	if name != "" {
		s += " name=" + name
	}
	return s
}

func subject(namespace, name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: namespace, Name: name}
}

// ---------------------------------------------------------------------------------------
// The local overlay

// TestLocalOverlay checks that the local overlay differs from the default one only where
// it must: no in-cluster workload, URLs instead of the Service, an IP SAN.
func TestLocalOverlay(t *testing.T) {
	def, local := render(t, "default"), render(t, "local")

	// Tests replace "127.0.0.1:19443" in the text to use another port: it must occur only
	// in the two URLs.
	if n := bytes.Count(local.Text, []byte(localAddr)); n != 2 {
		t.Errorf("%q occurs %d times in the local rendering, want 2 (the two webhook URLs)", localAddr, n)
	}
	if n := bytes.Count(local.Text, []byte("19443")); n != 2 {
		t.Errorf("19443 occurs %d times in the local rendering, want 2", n)
	}
	for _, wh := range []struct{ kind, name, path string }{
		{"MutatingWebhookConfiguration", webhookName, webhookPath(t, "PathMutatePods")},
		{"ValidatingWebhookConfiguration", "corsmesh-policies", webhookPath(t, "PathValidatePolicies")},
	} {
		raw, _ := field(local.find(t, wh.kind, wh.name).Map, "webhooks", 0, "clientConfig", "url").(string)
		u, err := url.Parse(raw)
		if err != nil || u.Scheme != "https" || u.Hostname() != "127.0.0.1" || u.Path != wh.path {
			t.Errorf("%s url %q: want https://127.0.0.1:<port>%s", wh.kind, raw, wh.path)
		}
	}

	// Everything else is the default overlay's, object for object.
	for _, o := range local.Objects {
		d := def.find(t, o.Kind, o.Name)
		got, want := normalizeLocal(t, o.Map), normalizeLocal(t, d.Map)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s differs from the default overlay's beyond the local changes:\n local: %s\n default: %s", o, show(got), show(want))
		}
	}
}

// normalizeLocal strips the intended differences of the local overlay from a copy of m.
func normalizeLocal(t *testing.T, m map[string]any) map[string]any {
	t.Helper()
	b, _ := json.Marshal(m)
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	if whs, ok := field(c, "webhooks").([]any); ok {
		for _, wh := range whs {
			delete(wh.(map[string]any), "clientConfig")
		}
	}
	if field(c, "kind") == "Certificate" && field(c, "metadata", "name") == servingCert {
		spec := c["spec"].(map[string]any)
		delete(spec, "ipAddresses")
		if names, ok := spec["dnsNames"].([]any); ok {
			spec["dnsNames"] = slices.DeleteFunc(names, func(n any) bool { return n == "localhost" })
		}
	}
	return c
}

// ---------------------------------------------------------------------------------------
// Samples

// guide returns the seed guide: the copy in testdata, which must equal the original when
// the original is at hand ($CORSMESH_SEED_GUIDE, or the shared seed next to the checkout).
func guide(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "cors-plugin.md"))
	if err != nil {
		t.Fatal(err)
	}
	original := os.Getenv("CORSMESH_SEED_GUIDE")
	if original == "" {
		original = filepath.Join(repoRoot(t), "..", "shared", "seed", "cors-plugin.md")
	}
	if o, err := os.ReadFile(original); err == nil && !bytes.Equal(o, b) {
		t.Errorf("testdata/cors-plugin.md differs from the seed guide %s: copy it again", original)
	}
	return b
}

// heredoc is one `kubectl apply [-n NS] -f - <<EOF` document of the guide.
type heredoc struct {
	namespace string
	body      []byte
}

func heredocs(t *testing.T, md []byte) []heredoc {
	t.Helper()
	start := regexp.MustCompile(`^kubectl apply (?:-n (\S+) )?-f - <<EOF$`)
	var docs []heredoc
	var cur *heredoc
	for _, line := range strings.SplitAfter(string(md), "\n") {
		switch {
		case cur != nil && strings.TrimRight(line, "\n") == "EOF":
			docs = append(docs, *cur)
			cur = nil
		case cur != nil:
			cur.body = append(cur.body, line...)
		default:
			if m := start.FindStringSubmatch(strings.TrimRight(line, "\n")); m != nil {
				cur = &heredoc{namespace: m[1]}
			}
		}
	}
	if cur != nil {
		t.Fatal("unterminated heredoc in the guide")
	}
	return docs
}

func TestSamplesAreTheGuides(t *testing.T) {
	docs := heredocs(t, guide(t))
	tests := []struct {
		file, namespace string
		kinds           []string
		objNamespace    string // namespace written in the documents ("" for none)
	}{
		{"curl.yaml", "curl", []string{"ServiceAccount", "Service", "Deployment"}, ""},
		{"pipy.yaml", "pipy", []string{"ServiceAccount", "ServiceAccount", "Service", "Service", "Service", "Deployment", "Deployment"}, ""},
		{"plugin.yaml", "", []string{"Plugin"}, ""},
		{"pluginchain.yaml", "", []string{"PluginChain"}, "pipy"},
		{"pluginconfig.yaml", "", []string{"PluginConfig"}, "pipy"},
	}
	if len(docs) != len(tests) {
		t.Fatalf("the guide has %d kubectl apply documents, want %d", len(docs), len(tests))
	}
	for i, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := os.ReadFile(filepath.Join("samples", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if docs[i].namespace != tt.namespace {
				t.Errorf("guide document %d is applied with -n %q, want %q", i+1, docs[i].namespace, tt.namespace)
			}
			if !bytes.Equal(got, docs[i].body) {
				t.Errorf("samples/%s is not byte for byte the guide's document %d:\n%s", tt.file, i+1, lineDiff(got, docs[i].body))
			}
			objs, err := decodeStream(got)
			if err != nil {
				t.Fatal(err)
			}
			var kinds []string
			for _, o := range objs {
				kinds = append(kinds, o.Kind)
				if o.Namespace != tt.objNamespace {
					t.Errorf("%s: namespace %q, want %q", o, o.Namespace, tt.objNamespace)
				}
				decodeSample(t, o)
			}
			if !slices.Equal(kinds, tt.kinds) {
				t.Errorf("kinds %v, want %v", kinds, tt.kinds)
			}
		})
	}
}

// decodeSample decodes a sample strictly: the corsmesh API types must take every field of
// the guide's policy resources.
func decodeSample(t *testing.T, o object) {
	t.Helper()
	switch o.Kind {
	case "Plugin":
		decodeInto[v1alpha1.Plugin](t, o)
	case "PluginChain":
		decodeInto[v1alpha1.PluginChain](t, o)
	case "PluginConfig":
		decodeInto[v1alpha1.PluginConfig](t, o)
	default:
		decodeKnown(t, o)
	}
}

func TestSampleNamespaces(t *testing.T) {
	entries, err := os.ReadDir("samples")
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range entries {
		files = append(files, e.Name())
	}
	wantFiles := []string{"README.md", "curl.yaml", "namespaces.yaml", "pipy.yaml", "plugin.yaml", "pluginchain.yaml", "pluginconfig.yaml"}
	if !slices.Equal(files, wantFiles) {
		t.Errorf("samples/: %v, want %v", files, wantFiles)
	}

	b, err := os.ReadFile(filepath.Join("samples", "namespaces.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decodeStream(b)
	if err != nil {
		t.Fatal(err)
	}
	chainObjs, err := decodeStream(mustRead(t, filepath.Join("samples", "pluginchain.yaml")))
	if err != nil {
		t.Fatal(err)
	}
	chain := decodeInto[v1alpha1.PluginChain](t, chainObjs[0])

	r := render(t, "default")
	mwc := decodeInto[admissionregistrationv1.MutatingWebhookConfiguration](t, r.find(t, "MutatingWebhookConfiguration", webhookName))
	webhookSel := selector(t, mwc.Webhooks[0].NamespaceSelector)
	chainSel := selector(t, chain.Spec.Selectors.NamespaceSelector)
	var names []string
	for _, o := range objs {
		n := decodeInto[corev1.Namespace](t, o)
		names = append(names, n.Name)
		// The API server adds this label to every namespace.
		set := labels.Merge(n.Labels, labels.Set{"kubernetes.io/metadata.name": n.Name})
		if n.Labels[injector.LabelMonitoredBy] != injector.DefaultOptions().MeshName {
			t.Errorf("namespace %s: %s=%q, want %q", n.Name, injector.LabelMonitoredBy, n.Labels[injector.LabelMonitoredBy], injector.DefaultOptions().MeshName)
		}
		if !webhookSel.Matches(set) {
			t.Errorf("namespace %s is not sent to the injection webhook", n.Name)
		}
		if !chainSel.Matches(set) {
			t.Errorf("namespace %s is not selected by the guide's PluginChain", n.Name)
		}
	}
	if !slices.Equal(names, []string{"curl", "pipy"}) {
		t.Errorf("namespaces %v, want [curl pipy]", names)
	}
}

// ---------------------------------------------------------------------------------------
// Helpers

// webhookPath is the value of the string constant name in package webhook, read from its
// source (the paths the server registers), so that these tests need not build it.
func webhookPath(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "webhook")
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, file, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, id := range vs.Names {
					if id.Name != name || i >= len(vs.Values) {
						continue
					}
					if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						v, err := strconv.Unquote(lit.Value)
						if err != nil {
							t.Fatal(err)
						}
						return v
					}
				}
			}
		}
	}
	t.Fatalf("no string constant %s in package webhook (%s)", name, dir)
	return ""
}

func selector(t *testing.T, s *metav1.LabelSelector) labels.Selector {
	t.Helper()
	if s == nil {
		return labels.Everything()
	}
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil {
		t.Fatalf("selector %s: %v", show(s), err)
	}
	return sel
}

// flags maps --name=value arguments to name -> value.
func flags(t *testing.T, args []string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, a := range args {
		name, value, ok := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !strings.HasPrefix(a, "--") || !ok {
			t.Errorf("argument %q: want --name=value", a)
			continue
		}
		m[name] = value
	}
	return m
}

func probe(p *corev1.Probe) string {
	if p == nil || p.HTTPGet == nil {
		return "<none>"
	}
	return p.HTTPGet.Path + " " + p.HTTPGet.Port.String()
}

func volume(vs []corev1.Volume, name string) corev1.Volume {
	for _, v := range vs {
		if v.Name == name {
			return v
		}
	}
	return corev1.Volume{}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ptr[T any](v T) *T { return &v }

// deref returns *p, or the zero value for nil.
func deref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}

func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// lineDiff shows the first differing line of two texts.
func lineDiff(got, want []byte) string {
	g, w := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("line %d:\n got  %q\n want %q", i+1, gl, wl)
		}
	}
	return "(same lines; different line endings)"
}
