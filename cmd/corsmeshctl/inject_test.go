package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/yaml"

	"github.com/corsmesh/corsmesh/injector"
	"github.com/corsmesh/corsmesh/injector/kubecluster"
	"github.com/corsmesh/corsmesh/injector/manifest"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// seedCluster is the injector's own test cluster: the seed's namespace, Services and policies.
var seedCluster = filepath.Join("..", "..", "injector", "testdata", "inject", "_cluster.yaml")

// pinned keeps images out of the golden files' churn.
var pinned = []string{"--proxy-image", "corsproxy:test", "--init-image", "corsproxy-init:test"}

func runCLI(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func splitDocs(t *testing.T, data []byte) [][]byte {
	t.Helper()
	docs, err := manifest.Split(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return docs
}

func typeMeta(t *testing.T, doc []byte) metav1.TypeMeta {
	t.Helper()
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		t.Fatalf("document does not parse: %v\n%s", err, doc)
	}
	return tm
}

var injectCases = []struct {
	name  string
	input string
	args  []string
	// stderr lines the run must print, in order, besides the golden file.
	wantLines []string
}{
	{
		name: "seed-pipy", input: "seed-pipy.yaml",
		args: []string{"--policies", seedCluster, "--namespace", "pipy"},
		wantLines: []string{
			"deployment/pipy-ok-v1 (pipy): injected, ports [8080]",
			"deployment/pipy-ok-v2 (pipy): injected, ports [8080]",
		},
	},
	{
		name: "seed-curl", input: "seed-curl.yaml",
		args: []string{"--policies", seedCluster, "-n", "curl"},
		wantLines: []string{
			`corsmeshctl: namespace curl is not in the input, the policies or the cluster read: treating it as monitored by mesh "osm" (openservicemesh.io/monitored-by=osm)`,
			"deployment/curl (curl): not injected: no-chain-selects-pod: no PluginChain selects the pod",
		},
	},
	{
		name: "statefulset", input: "statefulset.yaml",
		args:      []string{"--policies", seedCluster},
		wantLines: []string{"statefulset/pipy-db (pipy): injected, ports [8080]"},
	},
	{
		name: "daemonset", input: "daemonset.yaml",
		args:      []string{"--policies", seedCluster, "--namespace", "pipy"},
		wantLines: []string{"daemonset/pipy-agent (pipy): injected, ports [8080]"},
	},
	{
		name: "job", input: "job.yaml",
		args: []string{"--policies", seedCluster},
		wantLines: []string{
			"job/pipy-batch (pipy): injected, ports [8080]",
			"job/pipy-batch-plain (pipy): not injected: pod-opted-out: pod annotation openservicemesh.io/sidecar-injection=disabled",
		},
	},
	{
		name: "cronjob", input: "cronjob.yaml",
		args:      []string{"--policies", seedCluster},
		wantLines: []string{"cronjob/pipy-nightly (pipy): injected, ports [8080]"},
	},
	{
		name: "list", input: "list.yaml",
		args:      []string{"--policies", seedCluster},
		wantLines: []string{"deployment/pipy-ok-v1 (pipy): injected, ports [8080]"},
	},
	{
		name: "pod", input: "pod.yaml",
		wantLines: []string{"pod/api (shop): injected, ports [8000]"},
	},
	{
		name: "pod-legacy-sidecar", input: "pod.yaml",
		args:      []string{"--native-sidecars=false"},
		wantLines: []string{"pod/api (shop): injected, ports [8000]"},
	},
	{
		name: "pod-other-mesh", input: "pod.yaml",
		args:      []string{"--mesh-name", "edge"},
		wantLines: []string{`pod/api (shop): not injected: namespace-not-monitored: namespace shop is not monitored by mesh "edge"`},
	},
}

// Each case is injected, compared with its golden files (stdout and stderr; rewrite them
// with go test ./cmd/corsmeshctl -update), re-parsed, compared document by document with
// the input, and injected again.
func TestInjectGolden(t *testing.T) {
	for _, tc := range injectCases {
		t.Run(tc.name, func(t *testing.T) {
			inputPath := filepath.Join("testdata", tc.input)
			args := append(append([]string{"inject", "-f", inputPath}, pinned...), tc.args...)
			code, stdout, stderr := runCLI(t, "", args...)
			if code != 0 {
				t.Fatalf("exit %d; stderr:\n%s", code, stderr)
			}
			checkLines(t, stderr, tc.wantLines)
			golden(t, filepath.Join("testdata", "golden", tc.name+".yaml"), stdout)
			golden(t, filepath.Join("testdata", "golden", tc.name+".stderr"), stderr)

			input, err := os.ReadFile(inputPath)
			if err != nil {
				t.Fatal(err)
			}
			in, out := splitDocs(t, input), splitDocs(t, []byte(stdout))
			if len(in) != len(out) {
				t.Fatalf("%d documents in, %d out", len(in), len(out))
			}
			injected := 0
			for i := range in {
				if got, want := typeMeta(t, out[i]), typeMeta(t, in[i]); got != want {
					t.Errorf("document %d: %v out, %v in", i+1, got, want)
				}
				if typeMeta(t, in[i]).Kind == "List" {
					injected += checkList(t, i+1, in[i], out[i])
					continue
				}
				if isInjected(t, i+1, out[i]) {
					injected++
					continue
				}
				// Anything not injected goes through byte for byte.
				if !bytes.Equal(out[i], in[i]) {
					t.Errorf("document %d not injected but changed:\n--- in\n%s\n--- out\n%s", i+1, in[i], out[i])
				}
			}
			if want := strings.Count(strings.Join(tc.wantLines, "\n"), ": injected,"); injected != want {
				t.Errorf("%d workloads injected, want %d", injected, want)
			}

			// The output injected again: the same bytes, every workload already injected.
			args = append(append([]string{"inject", "-f", "-"}, pinned...), tc.args...)
			code, again, stderr2 := runCLI(t, stdout, args...)
			if code != 0 || again != stdout {
				t.Errorf("second pass: exit %d, output changed:\n%s\nstderr:\n%s", code, again, stderr2)
			}
			if injected > 0 && strings.Count(stderr2, "already-injected") != injected {
				t.Errorf("second pass stderr:\n%s", stderr2)
			}
		})
	}
}

// isInjected reports whether an output document is an injected workload, checking that
// it parses strictly and is clean for kubectl apply.
func isInjected(t *testing.T, n int, doc []byte) bool {
	t.Helper()
	w, err := manifest.ParseWorkload(doc)
	if err != nil {
		t.Errorf("document %d: output does not parse strictly: %v", n, err)
		return false
	}
	if w == nil || w.Pod.Annotations[injector.AnnotationStatus] == "" {
		return false
	}
	if bytes.Contains(doc, []byte("creationTimestamp: null")) || bytes.Contains(doc, []byte("status: {}")) {
		t.Errorf("document %d: injected form keeps status or a null creationTimestamp:\n%s", n, doc)
	}
	return true
}

// checkList compares a List's items in and out: the same kinds, the items not injected
// unchanged. It returns how many were injected.
func checkList(t *testing.T, n int, in, out []byte) int {
	t.Helper()
	var before, after struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := yaml.Unmarshal(in, &before); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(out, &after); err != nil {
		t.Fatalf("document %d: output List does not parse: %v", n, err)
	}
	if len(before.Items) != len(after.Items) {
		t.Fatalf("document %d: %d items in, %d out", n, len(before.Items), len(after.Items))
	}
	injected := 0
	for i := range before.Items {
		if typeMeta(t, before.Items[i]) != typeMeta(t, after.Items[i]) {
			t.Errorf("document %d item %d: kind changed", n, i+1)
		}
		if isInjected(t, n, after.Items[i]) {
			injected++
		} else if !bytes.Equal(before.Items[i], after.Items[i]) {
			t.Errorf("document %d item %d not injected but changed:\n%s\n%s", n, i+1, before.Items[i], after.Items[i])
		}
	}
	return injected
}

func checkLines(t *testing.T, stderr string, want []string) {
	t.Helper()
	rest := stderr
	for _, line := range want {
		i := strings.Index(rest, line)
		if i < 0 {
			t.Errorf("stderr lacks (in order) %q:\n%s", line, stderr)
			return
		}
		rest = rest[i+len(line):]
	}
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/corsmeshctl -update)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (run go test ./cmd/corsmeshctl -update and review the diff); got:\n%s", path, got)
	}
}

// The seed's Deployment injected from stdin, from a policies directory, and with the
// policies in the cluster gives what the policies file gives.
func TestInjectPolicySources(t *testing.T) {
	want, err := os.ReadFile(filepath.Join("testdata", "golden", "seed-pipy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	input, err := os.ReadFile(filepath.Join("testdata", "seed-pipy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cluster, err := os.ReadFile(seedCluster)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	nested := filepath.Join(dir, "a", "b")
	if err := os.MkdirAll(nested, 0o755); err != nil {
		t.Fatal(err)
	}
	// Split over a .yml, a .yaml in a subdirectory, and a file that is not read.
	docs := splitDocs(t, cluster)
	first := bytes.Join(docs[:3], []byte("---\n"))
	rest := bytes.Join(docs[3:], []byte("---\n"))
	for path, data := range map[string][]byte{
		filepath.Join(dir, "namespace-and-services.yml"): first,
		filepath.Join(nested, "policies.yaml"):           rest,
		filepath.Join(dir, "README.md"):                  []byte("not: [yaml"),
	} {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	withCluster := func(t *testing.T) {
		objs := &injector.Objects{}
		if err := manifest.AddObjects(objs, docs); err != nil {
			t.Fatal(err)
		}
		useFakeClient(t, kubecluster.Objects(objs)...)
	}

	tests := []struct {
		name  string
		setup func(t *testing.T)
		stdin string
		args  []string
	}{
		{name: "stdin", stdin: string(input), args: []string{"-f", "-", "--policies", seedCluster, "-n", "pipy"}},
		{name: "policies directory", args: []string{"-f", "testdata/seed-pipy.yaml", "--policies", dir, "-n", "pipy"}},
		{name: "two policies flags", args: []string{"-f", "testdata/seed-pipy.yaml", "--policies", filepath.Join(dir, "namespace-and-services.yml"), "--policies", nested, "-n", "pipy"}},
		{name: "from cluster", setup: withCluster, args: []string{"-f", "testdata/seed-pipy.yaml", "--from-cluster", "-n", "pipy"}},
		// The input's Services and the cluster's are the same: the file's replace the cluster's.
		{name: "from cluster and policies", setup: withCluster, args: []string{"-f", "testdata/seed-pipy.yaml", "--from-cluster", "--policies", seedCluster, "-n", "pipy"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup(t)
			}
			code, stdout, stderr := runCLI(t, tc.stdin, append(append([]string{"inject"}, pinned...), tc.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if stdout != string(want) {
				t.Errorf("output differs from testdata/golden/seed-pipy.yaml:\n%s", stdout)
			}
		})
	}
}

// A namespace found nowhere is assumed monitored, and said so once; with --from-cluster,
// the cluster's namespace decides.
func TestInjectAssumedNamespace(t *testing.T) {
	pods := `apiVersion: v1
kind: Pod
metadata:
  name: a
  namespace: web
spec:
  containers:
  - name: app
    image: app
---
apiVersion: v1
kind: Pod
metadata:
  name: b
  namespace: web
spec:
  containers:
  - name: app
    image: app
`
	code, stdout, stderr := runCLI(t, pods, "inject", "-f", "-")
	if code != 0 || stdout != pods {
		t.Fatalf("exit %d, stdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if n := strings.Count(stderr, "namespace web is not in"); n != 1 {
		t.Errorf("notice printed %d times:\n%s", n, stderr)
	}
	checkLines(t, stderr, []string{"pod/a (web): not injected: no-chain-selects-pod", "pod/b (web): not injected: no-chain-selects-pod"})

	// In the cluster, unlabeled: not monitored, and no notice.
	web := namespaceObject("web")
	useFakeClient(t, web)
	code, _, stderr = runCLI(t, pods, "inject", "-f", "-", "--from-cluster")
	if code != 0 || strings.Contains(stderr, "is not in") || !strings.Contains(stderr, "pod/a (web): not injected: namespace-not-monitored") {
		t.Errorf("exit %d, stderr:\n%s", code, stderr)
	}
}

func TestInjectBadInputExits1(t *testing.T) {
	deployment := func(extra string) string {
		return `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: pipy
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: web` + extra + "\n"
	}
	cm := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n"
	tests := []struct {
		name  string
		stdin string
		args  []string
		want  string
	}{
		{name: "not YAML", stdin: cm + "---\n" + cm + "---\nkind: [unclosed\n", want: "<stdin>: document 3"},
		{name: "no kind", stdin: cm + "---\napiVersion: v1\nmetadata:\n  name: x\n", want: "<stdin>: document 2: apiVersion and kind are required"},
		{name: "not an object", stdin: "just a string\n", want: "<stdin>: document 1"},
		{name: "unknown field in a workload", stdin: cm + "---\n" + cm + "---\n" + deployment("\n        imagePullPolicy: Sometimes\n        bogusField: 1"), want: "<stdin>: document 3 (Deployment pipy/web)"},
		{name: "wrong type in a Service", stdin: "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\nspec:\n  ports: 80\n", want: "<stdin>: document 1 (Service)"},
		{name: "missing file", args: []string{"-f", "testdata/no-such-file.yaml"}, want: "no-such-file.yaml"},
		{name: "missing policies", stdin: cm, args: []string{"-f", "-", "--policies", "testdata/no-such-dir"}, want: "--policies"},
		{name: "bad policies file", stdin: cm, args: []string{"-f", "-", "--policies", "testdata/bad-policies.yaml"}, want: "bad-policies.yaml: document 2 (PluginChain)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if args == nil {
				args = []string{"-f", "-"}
			}
			code, stdout, stderr := runCLI(t, tc.stdin, append([]string{"inject"}, args...)...)
			if code != 1 {
				t.Errorf("exit %d, want 1; stderr: %s", code, stderr)
			}
			if stdout != "" {
				t.Errorf("partial output on error:\n%s", stdout)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr %q lacks %q", stderr, tc.want)
			}
		})
	}
}

func TestBadFlagsExit2(t *testing.T) {
	tests := [][]string{
		{},
		{"frobnicate"},
		{"inject"},
		{"inject", "-f", "x.yaml", "extra"},
		{"inject", "-f", "x.yaml", "--no-such-flag"},
		{"inject", "-f", "x.yaml", "--native-sidecars=maybe"},
		{"inject", "-f", "x.yaml", "--namespace", ""},
		{"inject", "-f", "x.yaml", "--mesh-name="},
		{"namespace"},
		{"namespace", "add"},
		{"namespace", "rename", "pipy"},
		{"namespace", "remove", "pipy", "--force"},
		{"namespace", "add", "pipy", "--mesh-name", ""},
		{"check", "extra"},
		{"check", "--bogus"},
	}
	for _, args := range tests {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			useFakeClient(t) // never reached, but never a real cluster either
			code, stdout, stderr := runCLI(t, "", args...)
			if code != 2 {
				t.Errorf("exit %d, want 2 (stderr %q)", code, stderr)
			}
			if stderr == "" || stdout != "" {
				t.Errorf("stdout %q, stderr %q", stdout, stderr)
			}
		})
	}
}

func TestHelpExits0(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"--help"}, {"inject", "-h"}, {"namespace", "-h"}, {"check", "-h"}} {
		if code, _, stderr := runCLI(t, "", args...); code != 0 {
			t.Errorf("%v: exit %d (stderr %q)", args, code, stderr)
		}
	}
}

// useFakeClient makes newClient return a fake client holding objs for the test.
func useFakeClient(t *testing.T, objs ...client.Object) client.Client {
	t.Helper()
	scheme, err := Scheme()
	if err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).Build()
	saved := newClient
	newClient = func(string) (client.Client, error) { return c, nil }
	t.Cleanup(func() { newClient = saved })
	return c
}

// namespaceObject is a namespace with the label the API server gives every namespace.
func namespaceObject(name string) *corev1.Namespace {
	ns := &corev1.Namespace{}
	ns.APIVersion, ns.Kind = "v1", "Namespace"
	ns.Name = name
	ns.Labels = map[string]string{corev1.LabelMetadataName: name}
	return ns
}
