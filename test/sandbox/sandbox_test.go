package sandbox

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

func TestWriteVolume(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	read := func(name string) string {
		t.Helper()
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	if err := writeVolume(dir, map[string][]byte{"tls.crt": []byte("cert1"), "tls.key": []byte("key1"), "ca.crt": []byte("ca")}); err != nil {
		t.Fatal(err)
	}
	first, err := os.Readlink(filepath.Join(dir, dataDirName))
	if err != nil {
		t.Fatalf("no %s symlink: %v", dataDirName, err)
	}
	if read("tls.crt") != "cert1" || read("tls.key") != "key1" || read("ca.crt") != "ca" {
		t.Fatal("first payload not readable through the symlinks")
	}
	if target, _ := os.Readlink(filepath.Join(dir, "tls.crt")); target != filepath.Join(dataDirName, "tls.crt") {
		t.Errorf("tls.crt -> %q, want it through %s", target, dataDirName)
	}
	// A reader holding the old file keeps reading the old payload.
	held, err := os.Open(filepath.Join(dir, "tls.crt"))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()

	if err := writeVolume(dir, map[string][]byte{"tls.crt": []byte("cert2"), "tls.key": []byte("key2")}); err != nil {
		t.Fatal(err)
	}
	second, _ := os.Readlink(filepath.Join(dir, dataDirName))
	if second == first || !strings.HasPrefix(second, "..") {
		t.Errorf("%s -> %q after the update (was %q)", dataDirName, second, first)
	}
	if read("tls.crt") != "cert2" || read("tls.key") != "key2" {
		t.Error("second payload not readable")
	}
	if _, err := os.Lstat(filepath.Join(dir, "ca.crt")); !os.IsNotExist(err) {
		t.Errorf("ca.crt, gone from the payload, is still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, first)); !os.IsNotExist(err) {
		t.Errorf("the previous payload directory %s is still there", first)
	}
	buf := make([]byte, 16)
	n, _ := held.Read(buf)
	if string(buf[:n]) != "cert1" {
		t.Errorf("an open file of the old payload reads %q", buf[:n])
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) != 4 { // ..data, the payload dir, tls.crt, tls.key
		t.Errorf("directory holds %q", names)
	}
}

// isolatedTemp points TMPDIR (where the sandbox and envtest put their directories) at a
// directory of the test, and returns a check that nothing was left in it.
func isolatedTemp(t *testing.T) func() {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	return func() {
		t.Helper()
		entries, err := os.ReadDir(tmp)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			t.Errorf("left behind in TMPDIR: %s", e.Name())
		}
	}
}

func requireNoChildren(t *testing.T, assets string) {
	t.Helper()
	// Stopped processes are reaped by then; give a straggler a moment.
	deadline := time.Now().Add(5 * time.Second)
	for {
		pids := childrenRunning(assets)
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("control plane processes still running: %v", pids)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestStartStop(t *testing.T) {
	checkTemp := isolatedTemp(t)
	s := ForTest(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// kube-controller-manager turns a Deployment into a ReplicaSet and a Pod.
	if err := s.CreateNamespace(ctx, "smoke", nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.KubectlWithInput(ctx, []byte(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: smoke
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: registry.example/web:1
`), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		pods, err := s.Clientset.CoreV1().Pods("smoke").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			t.Fatal(err)
		}
		if len(pods.Items) == 2 {
			// The ServiceAccount admission plugin ran: the token volume is there.
			if !hasProjectedToken(&pods.Items[0]) {
				t.Errorf("pod %s has no service account token volume: %v", pods.Items[0].Name, pods.Items[0].Spec.Volumes)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d pods after 30s, want 2", len(pods.Items))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The token controller signs with the key the API server verifies with.
	token := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "smoke", Name: "default-token", Annotations: map[string]string{corev1.ServiceAccountNameKey: "default"}},
		Type:       corev1.SecretTypeServiceAccountToken,
	}
	if err := s.Client.Create(ctx, token); err != nil {
		t.Fatal(err)
	}
	var jwt string
	for deadline := time.Now().Add(30 * time.Second); jwt == ""; time.Sleep(100 * time.Millisecond) {
		if err := s.Client.Get(ctx, types.NamespacedName{Namespace: "smoke", Name: "default-token"}, token); err != nil {
			t.Fatal(err)
		}
		jwt = string(token.Data[corev1.ServiceAccountTokenKey])
		if jwt == "" && time.Now().After(deadline) {
			t.Fatal("the token controller did not fill Secret default-token")
		}
	}
	saCfg := rest.AnonymousClientConfig(s.RestConfig)
	saCfg.BearerToken = jwt
	saClient, err := kubernetes.NewForConfig(saCfg)
	if err != nil {
		t.Fatal(err)
	}
	review, err := saClient.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("the API server does not accept the token: %v", err)
	}
	if got := review.Status.UserInfo.Username; got != "system:serviceaccount:smoke:default" {
		t.Errorf("the token authenticates as %q", got)
	}

	// cert-manager issues from a self-signed Issuer.
	if _, err := s.KubectlWithInput(ctx, []byte(`apiVersion: cert-manager.io/v1
kind: Issuer
metadata: {name: selfsigned, namespace: smoke}
spec: {selfSigned: {}}
---
apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: demo, namespace: smoke}
spec:
  secretName: demo-tls
  dnsNames: [demo.smoke.svc]
  issuerRef: {name: selfsigned, kind: Issuer}
`), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Kubectl(ctx, "wait", "-n", "smoke", "--for=condition=Ready", "certificate/demo", "--timeout=30s"); err != nil {
		t.Fatal(err)
	}
	var secret corev1.Secret
	if err := s.Client.Get(ctx, types.NamespacedName{Namespace: "smoke", Name: "demo-tls"}, &secret); err != nil || len(secret.Data["tls.crt"]) == 0 {
		t.Fatalf("Secret demo-tls: %v", err)
	}

	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	requireNoChildren(t, s.AssetsDir)
	checkTemp()
}

// TestStartFailsHalfway breaks the last step of Start (the local overlay) and checks that
// everything started before it is gone.
func TestStartFailsHalfway(t *testing.T) {
	root, err := FindRepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	assets, err := FindAssets("", root)
	if err != nil {
		if errors.Is(err, ErrNoBinaries) && !OnCI() {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	// A checkout whose local overlay does not point at 127.0.0.1:19443.
	fake := t.TempDir()
	if err := os.CopyFS(filepath.Join(fake, "manifests", "crd"), os.DirFS(filepath.Join(root, "manifests", "crd"))); err != nil {
		t.Fatal(err)
	}
	overlay := filepath.Join(fake, LocalOverlay)
	if err := os.MkdirAll(overlay, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte("resources: [cm.yaml]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(overlay, "cm.yaml"), []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: default}\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	checkTemp := isolatedTemp(t)
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	s, err := Start(ctx, Options{RepoRoot: fake, AssetsDir: assets, Webhook: true, WebhookPort: port, Log: t.Logf})
	if err == nil {
		_ = s.Stop()
		t.Fatal("Start succeeded with a broken local overlay")
	}
	if !strings.Contains(err.Error(), "127.0.0.1:19443") {
		t.Errorf("error %v does not say what is wrong with the overlay", err)
	}
	requireNoChildren(t, assets)
	checkTemp()
}

func hasProjectedToken(pod *corev1.Pod) bool {
	for _, v := range pod.Spec.Volumes {
		if v.Projected != nil && strings.HasPrefix(v.Name, "kube-api-access-") {
			return true
		}
	}
	return false
}
