// Package helm installs, upgrades and uninstalls the Helm chart (manifests/charts/corsmesh)
// with the real helm CLI (built by `make helm` from the version pinned in hack/release)
// against a real API server, with cert-manager's real controllers issuing the webhook's
// certificate and cainjector filling caBundle. TestHelmInstallUpgradeUninstall runs no
// kubelet, so the webhook's pods never start: it checks what the chart leaves in the
// cluster at each step, and what the API server does with the webhook configurations it
// installs. TestHelmOnNode runs the same on the sandbox's real node, with the guide's
// workloads, through an upgrade of the proxy image.
package helm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/corsmesh/corsmesh/test/sandbox"
)

const (
	release   = "corsmesh"
	namespace = "corsmesh-system"
)

// helmCLI is the helm binary ($HELM, else bin/helm from `make helm`). Missing, the test
// skips, except on CI where that is a failure.
func helmCLI(t *testing.T, repo string) string {
	t.Helper()
	path := os.Getenv("HELM")
	if path == "" {
		path = filepath.Join(repo, "bin", "helm")
	}
	if _, err := os.Stat(path); err != nil {
		msg := fmt.Sprintf("helm not found at %s (make helm builds it): %v", path, err)
		if sandbox.OnCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return path
}

type helmCmd struct {
	t          *testing.T
	path, repo string
	kubeconfig string
	home       string
}

// run runs helm with the sandbox's kubeconfig and a HOME of the test's own (no user
// configuration, cache or registry credentials leak in).
func (h helmCmd) run(ctx context.Context, args ...string) (string, error) {
	h.t.Helper()
	cmd := exec.CommandContext(ctx, h.path, append(args, "--kubeconfig", h.kubeconfig)...)
	cmd.Dir = h.repo
	cmd.Env = []string{"HOME=" + h.home, "PATH=" + os.Getenv("PATH"), "HELM_CACHE_HOME=" + filepath.Join(h.home, "cache"),
		"HELM_CONFIG_HOME=" + filepath.Join(h.home, "config"), "HELM_DATA_HOME=" + filepath.Join(h.home, "data")}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	h.t.Logf("helm %s (%.1fs)", strings.Join(args, " "), time.Since(start).Seconds())
	if err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

func (h helmCmd) must(ctx context.Context, args ...string) string {
	h.t.Helper()
	out, err := h.run(ctx, args...)
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

// eventually retries fn every 250 ms until it returns nil, failing the test with its
// last error after timeout.
func eventually(t *testing.T, ctx context.Context, timeout time.Duration, what string, fn func() error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var err error
	for {
		if err = fn(); err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// caBundles checks that cainjector filled every webhook's caBundle of both configurations.
func caBundles(ctx context.Context, c client.Client) error {
	var m admissionregistrationv1.MutatingWebhookConfiguration
	if err := c.Get(ctx, client.ObjectKey{Name: "corsmesh-webhook"}, &m); err != nil {
		return err
	}
	var v admissionregistrationv1.ValidatingWebhookConfiguration
	if err := c.Get(ctx, client.ObjectKey{Name: "corsmesh-policies"}, &v); err != nil {
		return err
	}
	for _, wh := range m.Webhooks {
		if len(wh.ClientConfig.CABundle) == 0 {
			return fmt.Errorf("mutating webhook %s has no caBundle", wh.Name)
		}
	}
	for _, wh := range v.Webhooks {
		if len(wh.ClientConfig.CABundle) == 0 {
			return fmt.Errorf("validating webhook %s has no caBundle", wh.Name)
		}
	}
	return nil
}

// manifestObjects are the objects of the release's manifest (`helm get manifest`).
func manifestObjects(t *testing.T, text string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := sandbox.DecodeYAML([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) == 0 {
		t.Fatal("the release's manifest has no object")
	}
	return objs
}

func exists(ctx context.Context, c client.Client, o *unstructured.Unstructured) (bool, error) {
	got := &unstructured.Unstructured{}
	got.SetGroupVersionKind(o.GroupVersionKind())
	err := c.Get(ctx, client.ObjectKeyFromObject(o), got)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// pod is a minimal pod, in a namespace the injection webhook selects.
func pod(ns, name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": name}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app", Image: "registry.example/app:1", Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
		}}},
	}
}

func TestHelmInstallUpgradeUninstall(t *testing.T) {
	s := sandbox.ForTest(t, sandbox.Options{})
	h := helmCmd{t: t, path: helmCLI(t, s.RepoRoot), repo: s.RepoRoot, kubeconfig: s.KubeconfigPath, home: t.TempDir()}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	c := s.Client
	chart := filepath.Join(s.RepoRoot, "manifests", "charts", "corsmesh")

	removeSandboxCRDs(t, ctx, c)

	// A monitored namespace, as `osm namespace add` leaves it.
	app := "helm-app"
	if err := s.CreateNamespace(ctx, app, map[string]string{"openservicemesh.io/monitored-by": "osm"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitForNamespace(ctx, app); err != nil {
		t.Fatal(err)
	}

	// Install as the README says: Helm keeps its release record in the release's namespace,
	// so it must exist first (--create-namespace), and the chart's Namespace object then
	// adopts it (--take-ownership) to add the Pod Security labels. Nothing runs the
	// webhook's pods here, so the policies' validating webhook is set to Ignore: the test
	// creates a Plugin to see it survive the uninstall. Injection keeps the chart's Fail.
	if _, err := h.run(ctx, "install", release, chart, "--namespace", namespace); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("helm install into a namespace that does not exist, without --create-namespace: %v, want namespace not found", err)
	}
	h.must(ctx, "install", release, chart, "--namespace", namespace, "--create-namespace", "--take-ownership", "--set", "webhook.policyFailurePolicy=Ignore")
	var ns corev1.Namespace
	if err := c.Get(ctx, client.ObjectKey{Name: namespace}, &ns); err != nil {
		t.Fatal(err)
	}
	if ns.Labels["pod-security.kubernetes.io/enforce"] != "restricted" || ns.Annotations["meta.helm.sh/release-name"] != release {
		t.Errorf("namespace %s: labels %v, annotations %v: want the chart's Pod Security labels, owned by the release", namespace, ns.Labels, ns.Annotations)
	}
	installed := manifestObjects(t, h.must(ctx, "get", "manifest", release, "--namespace", namespace))
	for _, o := range installed {
		ok, err := exists(ctx, c, o)
		if err != nil || !ok {
			t.Errorf("%s %s/%s after install: exists=%v, %v", o.GetKind(), o.GetNamespace(), o.GetName(), ok, err)
		}
	}
	// The CRDs come from the chart's crds/ (labelled like the kustomize rendering).
	for _, name := range crds {
		o := crdObject(name)
		if err := c.Get(ctx, client.ObjectKeyFromObject(o), o); err != nil {
			t.Errorf("CRD %s after install: %v", name, err)
		} else if o.GetLabels()["app.kubernetes.io/part-of"] != "corsmesh" {
			t.Errorf("CRD %s after install has labels %v: not the chart's", name, o.GetLabels())
		}
	}
	// cert-manager issues the serving certificate from the chart's chain, and cainjector
	// writes its CA into both webhook configurations.
	eventually(t, ctx, 2*time.Minute, "Secret corsmesh-webhook-tls issued", func() error {
		var sec corev1.Secret
		if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "corsmesh-webhook-tls"}, &sec); err != nil {
			return err
		}
		if len(sec.Data["tls.crt"]) == 0 || len(sec.Data["ca.crt"]) == 0 {
			return errors.New("no tls.crt or ca.crt yet")
		}
		return nil
	})
	eventually(t, ctx, 2*time.Minute, "caBundle injected", func() error { return caBundles(ctx, c) })

	// The injection webhook is in force: with no replica serving, a pod in the monitored
	// namespace is refused (failurePolicy Fail), never run without its proxy.
	if err := c.Create(ctx, pod(app, "before-uninstall")); !sandbox.IsWebhookUnavailable(err) {
		t.Errorf("a pod in a monitored namespace while no webhook replica serves: %v, want the API server failing to call the webhook (failurePolicy Fail)", err)
	}

	// A policy, the users' data that uninstalling must keep.
	plugin := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "plugin.flomesh.io/v1alpha1", "kind": "Plugin",
		"metadata": map[string]any{"name": "cors-policy"},
		"spec":     map[string]any{"priority": int64(165), "pipyscript": "((\n  cfg = pipy.solve('cors.js'),\n) => pipy())\n"},
	}}
	eventually(t, ctx, time.Minute, "Plugin created", func() error { return c.Create(ctx, plugin) })

	// The guide turns plugin policy on with kubectl patch; the upgrade must keep it on.
	if _, err := s.Kubectl(ctx, "patch", "meshconfig", "osm-mesh-config", "-n", namespace, "-p", `{"spec":{"featureFlags":{"enablePluginPolicy":true}}}`, "--type=merge"); err != nil {
		t.Fatal(err)
	}

	// Upgrade to a build with another proxy image: the webhook's Deployment injects the
	// new one, and the caBundles cainjector wrote and the MeshConfig survive the upgrade.
	h.must(ctx, "upgrade", release, chart, "--namespace", namespace, "--set", "webhook.policyFailurePolicy=Ignore", "--set", "images.proxy.tag=v0.2.0")
	var d appsv1.Deployment
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "corsmesh-webhook"}, &d); err != nil {
		t.Fatal(err)
	}
	var proxyImage string
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		if e.Name == "CORSMESH_PROXY_IMAGE" {
			proxyImage = e.Value
		}
	}
	if proxyImage != "ghcr.io/corsmesh/corsproxy:v0.2.0" {
		t.Errorf("after the upgrade the webhook injects %q, want ghcr.io/corsmesh/corsproxy:v0.2.0", proxyImage)
	}
	if err := caBundles(ctx, c); err != nil {
		t.Errorf("after the upgrade: %v", err)
	}
	mc := &unstructured.Unstructured{}
	mc.SetGroupVersionKind(schema.GroupVersionKind{Group: "config.openservicemesh.io", Version: "v1alpha2", Kind: "MeshConfig"})
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "osm-mesh-config"}, mc); err != nil {
		t.Fatal(err)
	}
	if on, _, _ := unstructured.NestedBool(mc.Object, "spec", "featureFlags", "enablePluginPolicy"); !on {
		t.Errorf("the upgrade turned enablePluginPolicy off again: %v", mc.Object["spec"])
	}
	if out := h.must(ctx, "history", release, "--namespace", namespace); strings.Count(out, "\n") != 3 {
		t.Errorf("helm history: want 2 revisions:\n%s", out)
	}

	// Uninstall, then delete the namespace as the README says (checkUninstalled); the
	// Plugin is kept.
	h.must(ctx, "uninstall", release, "--namespace", namespace, "--wait")
	checkUninstalled(t, ctx, c, installed)
	got := plugin.DeepCopy()
	if err := c.Get(ctx, client.ObjectKeyFromObject(plugin), got); err != nil {
		t.Errorf("the Plugin after uninstall: %v", err)
	}
	// A pod created after the uninstall is admitted untouched.
	p := pod(app, "after-uninstall")
	if err := c.Create(ctx, p); err != nil {
		t.Fatalf("a pod after the uninstall: %v", err)
	}
	if len(p.Spec.InitContainers) != 0 || len(p.Spec.Containers) != 1 || len(p.Annotations) != 0 {
		t.Errorf("the pod after the uninstall was changed: init %d, containers %d, annotations %v", len(p.Spec.InitContainers), len(p.Spec.Containers), p.Annotations)
	}

	// Installing again adopts the CRDs left in place.
	h.must(ctx, "install", release, chart, "--namespace", namespace, "--create-namespace", "--take-ownership")
	h.must(ctx, "uninstall", release, "--namespace", namespace, "--wait")
	if out := h.must(ctx, "list", "--all-namespaces"); strings.Contains(out, release) {
		t.Errorf("helm list after the uninstall still shows the release:\n%s", out)
	}
}

// crds are the CRDs of the chart's crds/: Helm installs them when missing and never
// deletes them, so they stay, with the users' policies, after helm uninstall.
var crds = []string{
	"meshconfigs.config.openservicemesh.io", "plugins.plugin.flomesh.io",
	"pluginchains.plugin.flomesh.io", "pluginconfigs.plugin.flomesh.io",
}

func crdObject(name string) *unstructured.Unstructured {
	o := &unstructured.Unstructured{}
	o.SetGroupVersionKind(schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"})
	o.SetName(name)
	return o
}

// removeSandboxCRDs deletes the CRDs the sandbox starts with (from manifests/crd): a
// cluster corsmesh was never installed on has none, and the chart must bring them.
func removeSandboxCRDs(t *testing.T, ctx context.Context, c client.Client) {
	t.Helper()
	for _, name := range crds {
		if err := c.Delete(ctx, crdObject(name)); err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
	}
	eventually(t, ctx, time.Minute, "the sandbox's CRDs deleted", func() error {
		for _, name := range crds {
			if ok, err := exists(ctx, c, crdObject(name)); err != nil || ok {
				return fmt.Errorf("CRD %s: exists=%v, %v", name, ok, err)
			}
		}
		return nil
	})
}

// checkUninstalled checks what `helm uninstall` leaves: no object of the release's
// manifest (installed) but its Namespace (kept: it holds Helm's release records), no
// webhook configuration, the CRDs. Then, as the README says, it deletes the namespace, and
// with it the Secrets cert-manager wrote, and checks that nothing labelled as corsmesh's
// is left but the CRDs.
func checkUninstalled(t *testing.T, ctx context.Context, c client.Client, installed []*unstructured.Unstructured) {
	t.Helper()
	for _, o := range installed {
		ok, err := exists(ctx, c, o)
		if o.GetKind() == "Namespace" {
			if err != nil || !ok {
				t.Errorf("namespace %s after uninstall: exists=%v, %v: want it kept", o.GetName(), ok, err)
			}
			continue
		}
		if err != nil || ok {
			t.Errorf("%s %s/%s after uninstall: exists=%v, %v", o.GetKind(), o.GetNamespace(), o.GetName(), ok, err)
		}
	}
	for _, name := range crds {
		if ok, err := exists(ctx, c, crdObject(name)); err != nil || !ok {
			t.Errorf("CRD %s after uninstall: exists=%v, %v", name, ok, err)
		}
	}
	var mwcs admissionregistrationv1.MutatingWebhookConfigurationList
	var vwcs admissionregistrationv1.ValidatingWebhookConfigurationList
	if err := c.List(ctx, &mwcs); err != nil {
		t.Fatal(err)
	}
	if err := c.List(ctx, &vwcs); err != nil {
		t.Fatal(err)
	}
	if len(mwcs.Items)+len(vwcs.Items) != 0 {
		t.Errorf("webhook configurations left: %d mutating, %d validating", len(mwcs.Items), len(vwcs.Items))
	}

	if err := c.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, ctx, 3*time.Minute, "namespace "+namespace+" deleted", func() error {
		var ns corev1.Namespace
		err := c.Get(ctx, client.ObjectKey{Name: namespace}, &ns)
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		return fmt.Errorf("namespace %s is %s", namespace, ns.Status.Phase)
	})
	for _, gvk := range []schema.GroupVersionKind{
		{Version: "v1", Kind: "ServiceAccountList"}, {Version: "v1", Kind: "ServiceList"}, {Version: "v1", Kind: "SecretList"},
		{Version: "v1", Kind: "PodList"}, {Version: "v1", Kind: "NamespaceList"},
		{Group: "apps", Version: "v1", Kind: "DeploymentList"}, {Group: "policy", Version: "v1", Kind: "PodDisruptionBudgetList"},
		{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRoleList"},
		{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRoleBindingList"},
		{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "RoleList"},
		{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "RoleBindingList"},
		{Group: "cert-manager.io", Version: "v1", Kind: "IssuerList"}, {Group: "cert-manager.io", Version: "v1", Kind: "CertificateList"},
		{Group: "config.openservicemesh.io", Version: "v1alpha2", Kind: "MeshConfigList"},
	} {
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(gvk)
		if err := c.List(ctx, list, client.MatchingLabels{"app.kubernetes.io/part-of": "corsmesh"}); err != nil {
			t.Fatalf("listing %s: %v", gvk.Kind, err)
		}
		for _, o := range list.Items {
			t.Errorf("left after uninstall: %s %s/%s", o.GetKind(), o.GetNamespace(), o.GetName())
		}
	}
}
