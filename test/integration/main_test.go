// Package integration runs corsmesh against the real control plane of test/sandbox: etcd,
// kube-apiserver and kube-controller-manager, cert-manager's controllers and the webhook,
// one sandbox for the whole package. Every scenario asserts on what the API server stored.
//
//	go -C test test ./integration/... -v -count=1
//
// The control plane binaries come from hack/build-controlplane.sh; without them the tests
// skip, except with CI=true where they fail.
package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/corsmesh/corsmesh/corsproxy/config"
	"github.com/corsmesh/corsmesh/injector"
	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
	"github.com/corsmesh/corsmesh/test/gobuild"
	"github.com/corsmesh/corsmesh/test/sandbox"
)

var env sandbox.Main

func TestMain(m *testing.M) {
	// A port of its own, so that this package can run next to others that start a sandbox.
	port, err := sandbox.FreePort()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(env.RunMain(m, sandbox.Options{Webhook: true, WebhookPort: port, PluginPolicy: true}))
}

// sb returns the package's sandbox (or skips the test when there is none).
func sb(t *testing.T) *sandbox.Sandbox {
	t.Helper()
	return env.Require(t)
}

// testContext ends with the test, or after d.
func testContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// eventually polls fn until it returns nil, failing the test with its last error after
// timeout.
func eventually(t *testing.T, ctx context.Context, timeout time.Duration, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for {
		if last = fn(); last == nil {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("%s: still failing after %s: %v", what, timeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// warnings collects the API server's warnings (admission warnings among them).
type warnings struct {
	mu   sync.Mutex
	list []string
}

func (w *warnings) HandleWarningHeader(code int, _ string, text string) {
	if code != 299 || text == "" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, text)
}

func (w *warnings) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.list)
}

func (w *warnings) reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = nil
}

func (w *warnings) containing(substr string) []string {
	var out []string
	for _, s := range w.all() {
		if strings.Contains(s, substr) {
			out = append(out, s)
		}
	}
	return out
}

// clients returns a typed clientset and a controller-runtime client whose warnings land in
// the returned collector.
func clients(t *testing.T, s *sandbox.Sandbox) (kubernetes.Interface, client.Client, *warnings) {
	t.Helper()
	w := &warnings{}
	cfg := rest.CopyConfig(s.RestConfig)
	cfg.WarningHandler = w
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: s.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return cs, c, w
}

// namespace creates a namespace (monitored by mesh osm when monitored) and deletes it when
// the test ends.
func namespace(t *testing.T, ctx context.Context, s *sandbox.Sandbox, name string, monitored bool, labels map[string]string) {
	t.Helper()
	all := map[string]string{}
	for k, v := range labels {
		all[k] = v
	}
	if monitored {
		all[injector.LabelMonitoredBy] = "osm"
	}
	if err := s.CreateNamespace(ctx, name, all, nil); err != nil {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if err := s.Client.Delete(context.Background(), ns); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("deleting namespace %s: %v", name, err)
		}
	})
}

// apply server-side applies YAML (with the sandbox's field manager) and fails the test on
// error.
func apply(t *testing.T, ctx context.Context, s *sandbox.Sandbox, yaml string) {
	t.Helper()
	if _, err := s.Apply(ctx, []byte(yaml), sandbox.ApplyOptions{FieldManager: "integration-test"}); err != nil {
		t.Fatal(err)
	}
}

// corsApp is a CORS-enabled app of one test: its own Plugin, a Service and PluginChain
// selecting app=<App> pods in its namespace only, and a PluginConfig for the Service.
type corsApp struct {
	Namespace, App string
	Port           int32
	// Origin is the PluginConfig's one exact origin.
	Origin string
}

func (a corsApp) plugin() string { return "cors-" + a.App }

func (a corsApp) yaml() string {
	return fmt.Sprintf(`apiVersion: plugin.flomesh.io/v1alpha1
kind: Plugin
metadata:
  name: %[5]s
  annotations:
    corsmesh.io/implements: cors
spec:
  priority: 100
  pipyscript: "// implemented natively by corsmesh"
---
apiVersion: v1
kind: Service
metadata:
  name: %[2]s
  namespace: %[1]s
spec:
  selector:
    app: %[2]s
  ports:
  - name: http
    port: 80
    targetPort: %[3]d
---
apiVersion: plugin.flomesh.io/v1alpha1
kind: PluginChain
metadata:
  name: %[2]s
  namespace: %[1]s
spec:
  chains:
  - name: inbound-http
    plugins: [%[5]s]
  selectors:
    podSelector:
      matchLabels:
        app: %[2]s
    namespaceSelector:
      matchLabels:
        kubernetes.io/metadata.name: %[1]s
---
apiVersion: plugin.flomesh.io/v1alpha1
kind: PluginConfig
metadata:
  name: %[2]s
  namespace: %[1]s
spec:
  plugin: %[5]s
  destinationRefs:
  - kind: Service
    name: %[2]s
    namespace: %[1]s
  config:
    allowOrigins:
    - exact: %[4]s
    allowMethods: [GET, POST]
`, a.Namespace, a.App, a.Port, a.Origin, a.plugin())
}

// install applies the app's policy resources and deletes its cluster-scoped Plugin when
// the test ends (the rest goes with the namespace).
// installMonitored creates the app's namespace, monitored by the mesh, and installs the
// app in it: what most tests start from.
func (a corsApp) installMonitored(t *testing.T, ctx context.Context, s *sandbox.Sandbox) {
	t.Helper()
	namespace(t, ctx, s, a.Namespace, true, nil)
	a.install(t, ctx, s)
}

func (a corsApp) install(t *testing.T, ctx context.Context, s *sandbox.Sandbox) {
	t.Helper()
	apply(t, ctx, s, a.yaml())
	t.Cleanup(func() {
		_, _ = s.Kubectl(context.Background(), "delete", "plugin", a.plugin(), "--ignore-not-found", "--wait=false")
	})
}

// create creates the app's pod (pod) and returns it as admitted.
func (a corsApp) create(t *testing.T, ctx context.Context, s *sandbox.Sandbox, name string) *corev1.Pod {
	t.Helper()
	pod, err := s.Clientset.CoreV1().Pods(a.Namespace).Create(ctx, a.pod(name), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return pod
}

// pod is a minimal pod of the app (named name, or generated from the app when empty).
func (a corsApp) pod(name string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: a.Namespace, Name: name, Labels: map[string]string{"app": a.App}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name:  "app",
			Image: "registry.example/app:1",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: a.Port}},
		}}},
	}
	if name == "" {
		p.GenerateName = a.App + "-"
	}
	return p
}

// Injection, as stored.

func initContainer(pod *corev1.Pod, name string) *corev1.Container {
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return &pod.Spec.InitContainers[i]
		}
	}
	return nil
}

func hasContainerNamed(pod *corev1.Pod, name string) bool {
	if initContainer(pod, name) != nil {
		return true
	}
	return slices.ContainsFunc(pod.Spec.Containers, func(c corev1.Container) bool { return c.Name == name })
}

// injectionTraces lists what of corsmesh a pod carries (nothing for an uninjected pod).
func injectionTraces(pod *corev1.Pod) []string {
	var traces []string
	for _, name := range []string{injector.InitContainerName, injector.ProxyContainerName} {
		if hasContainerNamed(pod, name) {
			traces = append(traces, "container "+name)
		}
	}
	for _, a := range []string{injector.AnnotationConfig, injector.AnnotationStatus} {
		if _, ok := pod.Annotations[a]; ok {
			traces = append(traces, "annotation "+a)
		}
	}
	if slices.ContainsFunc(pod.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == injector.ConfigVolumeName }) {
		traces = append(traces, "volume "+injector.ConfigVolumeName)
	}
	return traces
}

// requireInjected checks the stored pod carries the init container redirecting ports, the
// proxy as a native sidecar and a config annotation that parses; it returns the config.
func requireInjected(t *testing.T, pod *corev1.Pod, ports ...int32) *config.Config {
	t.Helper()
	name := pod.Namespace + "/" + pod.Name
	init := initContainer(pod, injector.InitContainerName)
	if init == nil {
		t.Fatalf("pod %s: no init container %s (init containers %v, annotations %v)", name, injector.InitContainerName, containerNames(pod.Spec.InitContainers), pod.Annotations)
	}
	for _, port := range ports {
		if !slices.ContainsFunc(init.Args, func(a string) bool {
			v, ok := strings.CutPrefix(a, "--inbound-ports=")
			return ok && slices.Contains(strings.Split(v, ","), fmt.Sprint(port))
		}) {
			t.Errorf("pod %s: %s args %q do not redirect port %d", name, injector.InitContainerName, init.Args, port)
		}
	}
	proxy := initContainer(pod, injector.ProxyContainerName)
	switch {
	case proxy == nil:
		t.Errorf("pod %s: the proxy %s is not an init container (native sidecar): init %v, containers %v", name, injector.ProxyContainerName, containerNames(pod.Spec.InitContainers), containerNames(pod.Spec.Containers))
	case proxy.RestartPolicy == nil || *proxy.RestartPolicy != corev1.ContainerRestartPolicyAlways:
		t.Errorf("pod %s: %s restartPolicy %v, want Always (native sidecar)", name, injector.ProxyContainerName, proxy.RestartPolicy)
	}
	raw, ok := pod.Annotations[injector.AnnotationConfig]
	if !ok {
		t.Fatalf("pod %s: no %s annotation", name, injector.AnnotationConfig)
	}
	cfg, err := config.Parse([]byte(raw))
	if err != nil {
		t.Fatalf("pod %s: %s does not parse: %v\n%s", name, injector.AnnotationConfig, err, raw)
	}
	return cfg
}

func requireNotInjected(t *testing.T, pod *corev1.Pod) {
	t.Helper()
	if traces := injectionTraces(pod); len(traces) > 0 {
		t.Errorf("pod %s/%s was injected: %s", pod.Namespace, pod.Name, strings.Join(traces, ", "))
	}
}

func containerNames(cs []corev1.Container) []string {
	names := make([]string, len(cs))
	for i, c := range cs {
		names[i] = c.Name
	}
	return names
}

// sameJSON compares two values by their JSON.
func sameJSON(a, b any) (bool, string, string) {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb), string(ja), string(jb)
}

var (
	binariesOnce  sync.Once
	binariesPaths map[string]string
	binariesErr   error
)

// binaries returns the paths, by package, of the commands the tests run: cmd/corsmeshctl,
// cmd/corsproxy and cmd/corsmesh-webhook, built once per test binary (in one go build) into
// the sandbox's WorkDir, which Stop removes.
func binaries(t *testing.T, s *sandbox.Sandbox) map[string]string {
	t.Helper()
	binariesOnce.Do(func() {
		binariesPaths, binariesErr = gobuild.Builder{Root: s.RepoRoot}.Build(context.Background(),
			filepath.Join(s.WorkDir, "bin"), "cmd/corsmeshctl", "cmd/corsproxy", "cmd/corsmesh-webhook")
	})
	if binariesErr != nil {
		t.Fatal(binariesErr)
	}
	return binariesPaths
}

// corsmeshctl runs cmd/corsmeshctl with the sandbox's kubeconfig.
func corsmeshctl(t *testing.T, ctx context.Context, s *sandbox.Sandbox, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, binaries(t, s)["cmd/corsmeshctl"], append(args, "--kubeconfig", s.KubeconfigPath)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("corsmeshctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// waitForServiceAccount waits for the namespace's default ServiceAccount: until the
// controller creates it, the ServiceAccount admission plugin refuses the namespace's pods.
func waitForServiceAccount(t *testing.T, ctx context.Context, cs kubernetes.Interface, namespace string) {
	t.Helper()
	eventually(t, ctx, 30*time.Second, "the default ServiceAccount of "+namespace, func() error {
		_, err := cs.CoreV1().ServiceAccounts(namespace).Get(ctx, "default", metav1.GetOptions{})
		return err
	})
}

// waitForSelectedPods waits for a PluginChain's status to count want pods.
func waitForSelectedPods(t *testing.T, ctx context.Context, s *sandbox.Sandbox, namespace, name string, want int32, timeout time.Duration) {
	t.Helper()
	eventually(t, ctx, timeout, fmt.Sprintf("PluginChain %s/%s counting %d pods", namespace, name, want), func() error {
		var chain v1alpha1.PluginChain
		if err := s.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &chain); err != nil {
			return err
		}
		if chain.Status.SelectedPods != want {
			return fmt.Errorf("status.selectedPods %d", chain.Status.SelectedPods)
		}
		return nil
	})
}
