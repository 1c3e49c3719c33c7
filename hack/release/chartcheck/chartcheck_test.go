package chartcheck

import (
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/action"
	"sigs.k8s.io/yaml"
)

const namespace = "corsmesh-system"

var (
	repoRoot = filepath.Join("..", "..", "..")
	chartDir = filepath.Join(repoRoot, "manifests", "charts", "corsmesh")
	overlay  = filepath.Join(repoRoot, "manifests", "overlays", "default")
)

// TestChartMatchesKustomize is the drift check: the chart with its default values renders
// the same objects as the default overlay, field for field.
func TestChartMatchesKustomize(t *testing.T) {
	want, err := Kustomize(overlay)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Chart(t.Context(), chartDir, namespace, nil)
	if err != nil {
		t.Fatal(err)
	}
	removeHelmOnly(t, got)
	if len(want) == 0 || len(got) == 0 {
		t.Fatalf("kustomize rendered %d objects, the chart %d", len(want), len(got))
	}
	diffs, err := Compare(got, want)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range diffs {
		t.Error(d)
	}
	if len(diffs) > 0 {
		t.Log("update manifests/charts/corsmesh to match manifests/base: make chart-sync for CRDs and RBAC rules, else the template of the same name (manifests/README.md)")
	}
}

// helmOnly are the chart's only intended differences from the kustomize rendering, fields
// only Helm reads: `helm uninstall` keeps the release's Namespace, which holds Helm's own
// release records (deleting it with the release makes the uninstall fail).
var helmOnly = map[string][]string{
	"Namespace " + namespace: {"metadata", "annotations", "helm.sh/resource-policy"},
}

// removeHelmOnly deletes the helmOnly fields from the chart's objects, failing the test
// if one is missing (then it is no longer a difference: remove it from helmOnly).
func removeHelmOnly(t *testing.T, objs []Object) {
	t.Helper()
	for key, path := range helmOnly {
		found := false
		for _, o := range objs {
			if o.Key() != key {
				continue
			}
			m := o.Map
			for _, k := range path[:len(path)-1] {
				m, _ = m[k].(map[string]any)
			}
			if _, ok := m[path[len(path)-1]]; ok {
				found = true
				delete(m, path[len(path)-1])
				if len(m) == 0 {
					// An annotations map left empty is absent in the kustomize rendering.
					parent := o.Map
					for _, k := range path[:len(path)-2] {
						parent, _ = parent[k].(map[string]any)
					}
					delete(parent, path[len(path)-2])
				}
			}
		}
		if !found {
			t.Errorf("%s: no %s in the chart's rendering", key, strings.Join(path, "."))
		}
	}
}

// TestCompareFindsDrift: the comparison the drift check rests on reports a changed field,
// a missing object and an extra one.
func TestCompareFindsDrift(t *testing.T) {
	obj := func(kind, name string, spec map[string]any) Object {
		return Object{Kind: kind, Namespace: namespace, Name: name, Map: map[string]any{"kind": kind, "spec": spec}}
	}
	want := []Object{obj("Service", "a", map[string]any{"ports": []any{map[string]any{"port": 443.0}}}), obj("Service", "b", nil)}
	got := []Object{obj("Service", "a", map[string]any{"ports": []any{map[string]any{"port": 8443.0}}}), obj("Service", "c", nil)}
	diffs, err := Compare(got, want)
	if err != nil {
		t.Fatal(err)
	}
	wantDiffs := []string{
		"Service corsmesh-system/b: missing from the chart",
		"Service corsmesh-system/a: spec.ports[0].port: chart 8443, kustomize 443",
		"Service corsmesh-system/c: only in the chart",
	}
	if !slices.Equal(diffs, wantDiffs) {
		t.Errorf("diffs:\n got %q\nwant %q", diffs, wantDiffs)
	}
	if d, _ := Compare(want, want); len(d) != 0 {
		t.Errorf("a rendering differs from itself: %q", d)
	}
}

// TestChartLint is `helm lint --strict`: no error and no warning.
func TestChartLint(t *testing.T) {
	lint := action.NewLint()
	lint.Strict = true
	lint.Namespace = namespace
	res := lint.Run([]string{chartDir}, map[string]any{})
	for _, m := range res.Messages {
		t.Log(m)
	}
	for _, err := range res.Errors {
		t.Error(err)
	}
	if res.TotalChartsLinted != 1 {
		t.Errorf("linted %d charts, want 1", res.TotalChartsLinted)
	}
}

// TestChartGeneratedFilesAreCurrent: crds/ and templates/rbac.yaml are what make
// chart-sync writes.
func TestChartGeneratedFilesAreCurrent(t *testing.T) {
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), "go", "run", "./cmd/chart-sync", "-repo", root, "-check")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("%v\n%s", err, out)
	}
}

// render renders the chart with values given as YAML.
func render(t *testing.T, ns, values string) (map[string]Object, error) {
	t.Helper()
	var vals map[string]any
	if err := yaml.Unmarshal([]byte(values), &vals); err != nil {
		t.Fatalf("values %q: %v", values, err)
	}
	objs, err := Chart(t.Context(), chartDir, ns, vals)
	if err != nil {
		return nil, err
	}
	return Index(objs)
}

// at walks a decoded object along map keys and list indexes.
func at(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			l, _ := v.([]any)
			if k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func webhookContainer(objs map[string]Object) any {
	return at(objs["Deployment "+namespace+"/corsmesh-webhook"].Map, "spec", "template", "spec", "containers", 0)
}

func env(container any, name string) any {
	list, _ := at(container, "env").([]any)
	for _, e := range list {
		if at(e, "name") == name {
			return at(e, "value")
		}
	}
	return nil
}

func args(container any) []string {
	var out []string
	list, _ := at(container, "args").([]any)
	for _, a := range list {
		s, _ := a.(string)
		out = append(out, s)
	}
	return out
}

func mutating(objs map[string]Object) any {
	return at(objs["MutatingWebhookConfiguration corsmesh-webhook"].Map, "webhooks", 0)
}

func jsonOf(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal([]byte(s), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestChartValues: each value reaches the objects it names, and only those.
func TestChartValues(t *testing.T) {
	const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		name   string
		ns     string
		values string
		check  func(t *testing.T, objs map[string]Object)
	}{
		{
			name:   "image tags and a digest",
			values: "images: {webhook: {repository: registry.example/cm/webhook, tag: v9.9.9}, proxy: {repository: ghcr.io/corsmesh/corsproxy, tag: v9.9.9}, init: {repository: ghcr.io/corsmesh/corsproxy-init, digest: " + digest + "}, pullPolicy: Always}",
			check: func(t *testing.T, objs map[string]Object) {
				c := webhookContainer(objs)
				for _, c := range []struct{ got, want any }{
					{at(c, "image"), "registry.example/cm/webhook:v9.9.9"},
					{at(c, "imagePullPolicy"), "Always"},
					{env(c, "CORSMESH_PROXY_IMAGE"), "ghcr.io/corsmesh/corsproxy:v9.9.9"},
					{env(c, "CORSMESH_INIT_IMAGE"), "ghcr.io/corsmesh/corsproxy-init@" + digest},
				} {
					if c.got != c.want {
						t.Errorf("got %v, want %v", c.got, c.want)
					}
				}
			},
		},
		{
			name:   "replicas, resources and the disruption budget",
			values: "webhook: {replicas: 3, resources: {requests: {cpu: 200m, memory: 256Mi}, limits: {memory: 1Gi}}, podDisruptionBudget: {minAvailable: 2}}",
			check: func(t *testing.T, objs map[string]Object) {
				d := objs["Deployment "+namespace+"/corsmesh-webhook"].Map
				if got := at(d, "spec", "replicas"); got != 3.0 {
					t.Errorf("replicas %v, want 3", got)
				}
				want := jsonOf(t, "{requests: {cpu: 200m, memory: 256Mi}, limits: {memory: 1Gi}}")
				if got := at(webhookContainer(objs), "resources"); !reflect.DeepEqual(got, want) {
					t.Errorf("resources %v, want %v", got, want)
				}
				if got := at(objs["PodDisruptionBudget "+namespace+"/corsmesh-webhook"].Map, "spec", "minAvailable"); got != 2.0 {
					t.Errorf("PDB minAvailable %v, want 2", got)
				}
			},
		},
		{
			name:   "failure policies",
			values: "webhook: {failurePolicy: Ignore, policyFailurePolicy: Ignore}",
			check: func(t *testing.T, objs map[string]Object) {
				if got := at(mutating(objs), "failurePolicy"); got != "Ignore" {
					t.Errorf("injection failurePolicy %v, want Ignore", got)
				}
				if got := at(objs["ValidatingWebhookConfiguration corsmesh-policies"].Map, "webhooks", 0, "failurePolicy"); got != "Ignore" {
					t.Errorf("validation failurePolicy %v, want Ignore", got)
				}
			},
		},
		{
			name:   "a namespace selector keeps the system namespaces out",
			values: "webhook: {namespaceSelector: {matchLabels: {team: web}, matchExpressions: [{key: env, operator: In, values: [prod]}]}}",
			check: func(t *testing.T, objs map[string]Object) {
				want := jsonOf(t, `{matchLabels: {team: web}, matchExpressions: [{key: env, operator: In, values: [prod]}, {key: kubernetes.io/metadata.name, operator: NotIn, values: [kube-system, kube-public, kube-node-lease, corsmesh-system]}]}`)
				if got := at(mutating(objs), "namespaceSelector"); !reflect.DeepEqual(got, want) {
					t.Errorf("namespaceSelector %v, want %v", got, want)
				}
			},
		},
		{
			name:   "an empty namespace selector still excludes the system namespaces",
			values: "webhook: {namespaceSelector: {matchExpressions: []}}",
			check: func(t *testing.T, objs map[string]Object) {
				want := jsonOf(t, `{matchExpressions: [{key: kubernetes.io/metadata.name, operator: NotIn, values: [kube-system, kube-public, kube-node-lease, corsmesh-system]}]}`)
				if got := at(mutating(objs), "namespaceSelector"); !reflect.DeepEqual(got, want) {
					t.Errorf("namespaceSelector %v, want %v", got, want)
				}
			},
		},
		{
			name:   "mesh name",
			values: "meshName: edge",
			check: func(t *testing.T, objs map[string]Object) {
				if a := args(webhookContainer(objs)); !slices.Contains(a, "--mesh-name=edge") {
					t.Errorf("args %q lack --mesh-name=edge", a)
				}
			},
		},
		{
			name:   "legacy sidecar",
			values: "proxy: {sidecarMode: legacy}",
			check: func(t *testing.T, objs map[string]Object) {
				if a := args(webhookContainer(objs)); !slices.Contains(a, "--native-sidecars=false") {
					t.Errorf("args %q lack --native-sidecars=false", a)
				}
			},
		},
		{
			name:   "native sidecar",
			values: "proxy: {sidecarMode: native}",
			check: func(t *testing.T, objs map[string]Object) {
				if a := args(webhookContainer(objs)); !slices.Contains(a, "--native-sidecars=true") {
					t.Errorf("args %q lack --native-sidecars=true", a)
				}
			},
		},
		{
			name:   "the proxy's defaults",
			values: "proxy: {resources: {requests: {cpu: 50m, memory: 32Mi}, limits: {cpu: 1, memory: 128Mi}}, maxConnsPerUpstream: 4096}",
			check: func(t *testing.T, objs map[string]Object) {
				a := args(webhookContainer(objs))
				for _, want := range []string{"--proxy-cpu-request=50m", "--proxy-memory-request=32Mi", "--proxy-cpu-limit=1", "--proxy-memory-limit=128Mi", "--proxy-max-conns=4096"} {
					if !slices.Contains(a, want) {
						t.Errorf("args %q lack %s", a, want)
					}
				}
			},
		},
		{
			name:   "an existing issuer replaces the self-signed chain",
			values: "certManager: {issuerRef: {kind: ClusterIssuer, name: corp-ca}}",
			check: func(t *testing.T, objs map[string]Object) {
				for _, k := range []string{"Issuer " + namespace + "/corsmesh-selfsigned", "Certificate " + namespace + "/corsmesh-ca", "Issuer " + namespace + "/corsmesh-ca-issuer"} {
					if _, ok := objs[k]; ok {
						t.Errorf("%s rendered with an existing issuer", k)
					}
				}
				want := jsonOf(t, "{group: cert-manager.io, kind: ClusterIssuer, name: corp-ca}")
				if got := at(objs["Certificate "+namespace+"/corsmesh-webhook-cert"].Map, "spec", "issuerRef"); !reflect.DeepEqual(got, want) {
					t.Errorf("serving certificate's issuerRef %v, want %v", got, want)
				}
			},
		},
		{
			name:   "a namespace created by helm --create-namespace",
			values: "namespace: {create: false}",
			check: func(t *testing.T, objs map[string]Object) {
				if _, ok := objs["Namespace "+namespace]; ok {
					t.Error("Namespace rendered with namespace.create=false")
				}
			},
		},
		{
			name: "another namespace",
			ns:   "cors",
			check: func(t *testing.T, objs map[string]Object) {
				for k, o := range objs {
					if o.Namespace != "" && o.Namespace != "cors" {
						t.Errorf("%s outside the release namespace", k)
					}
				}
				if _, ok := objs["Namespace cors"]; !ok {
					t.Error("no Namespace cors")
				}
				sel := at(mutating(objs), "namespaceSelector", "matchExpressions", 1, "values")
				if l, _ := sel.([]any); !slices.Contains(l, any("cors")) || slices.Contains(l, any(namespace)) {
					t.Errorf("excluded namespaces %v: want the release's, cors", sel)
				}
				wantNames := jsonOf(t, "[corsmesh-webhook.cors.svc, corsmesh-webhook.cors.svc.cluster.local]")
				if got := at(objs["Certificate cors/corsmesh-webhook-cert"].Map, "spec", "dnsNames"); !reflect.DeepEqual(got, wantNames) {
					t.Errorf("dnsNames %v, want %v", got, wantNames)
				}
				for _, k := range []string{"MutatingWebhookConfiguration corsmesh-webhook", "ValidatingWebhookConfiguration corsmesh-policies"} {
					if got := at(objs[k].Map, "metadata", "annotations", "cert-manager.io/inject-ca-from"); got != "cors/corsmesh-webhook-cert" {
						t.Errorf("%s inject-ca-from %v", k, got)
					}
					if got := at(objs[k].Map, "webhooks", 0, "clientConfig", "service", "namespace"); got != "cors" {
						t.Errorf("%s service namespace %v", k, got)
					}
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := tt.ns
			if ns == "" {
				ns = namespace
			}
			objs, err := render(t, ns, tt.values)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, objs)
		})
	}
}

// TestChartRejectsBadValues: a bad value fails the install with an error naming it,
// before anything reaches the cluster.
func TestChartRejectsBadValues(t *testing.T) {
	tests := []struct{ values, wantInError string }{
		{"webhook: {failurePolicy: Sometimes}", "failurePolicy"},
		{"webhook: {policyFailurePolicy: fail}", "policyFailurePolicy"},
		{"webhook: {replicas: 0}", "replicas"},
		{"webhook: {replicas: 1}", "webhook.podDisruptionBudget.minAvailable (1) must be below webhook.replicas (1)"},
		{"webhook: {replics: 2}", "replics"},
		{"proxy: {sidecarMode: sometimes}", "sidecarMode"},
		{"meshName: 'osm; rm -rf'", "meshName"},
		{"meshName: ''", "meshName"},
		{"images: {webhook: {repository: 'ghcr.io/x\n  evil: true'}}", "repository"},
		{"images: {proxy: {repository: ghcr.io/corsmesh/corsproxy, tag: 'v1 --init-image=evil'}}", "tag"},
		{"images: {init: {repository: ghcr.io/corsmesh/corsproxy-init, digest: md5:abc}}", "digest"},
		{"webhook: {resources: {limits: {memory: lots}}}", "memory"},
		{"webhook: {namespaceSelector: {matchExpressions: [{key: a, operator: Matches}]}}", "operator"},
		{"proxy: {maxConnsPerUpstream: 28001}", "maxConnsPerUpstream"},
		{"proxy: {resources: {limits: {gpu: 1}}}", "gpu"},
		{"proxy: {resources: {requests: {memory: '16Mi --leader-elect=false'}}}", "memory"},
		{"certManager: {issuerRef: {kind: ClusterIssuer}}", "certManager.issuerRef.name"},
		{"certManager: {issuerRef: {name: corp-ca}}", "certManager.issuerRef.kind"},
	}
	for _, tt := range tests {
		t.Run(tt.values, func(t *testing.T) {
			_, err := render(t, namespace, tt.values)
			if err == nil {
				t.Fatal("rendered; want an error")
			}
			if !strings.Contains(err.Error(), tt.wantInError) {
				t.Errorf("error %q does not name %s", err, tt.wantInError)
			}
		})
	}
}
