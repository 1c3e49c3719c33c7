package integration

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/corsmesh/corsmesh/injector"
	"github.com/corsmesh/corsmesh/test/sandbox"
)

// A refused origin's trail, read the way a user reads it: a real corsproxy refuses an
// origin in a network namespace of its own (a pod's address, which the API server may
// proxy to; loopback it refuses), and corsmeshctl explain --pod --from-cluster shows the
// refusal from the proxy's /debug/cors through the real API server's pods/proxy.
func TestExplainReadsRefusalsThroughThePodProxy(t *testing.T) {
	s := sb(t)
	if os.Geteuid() != 0 {
		if sandbox.OnCI() {
			t.Fatal("CI=true but not root: a network namespace is needed")
		}
		t.Skip("skipping: needs root for a network namespace")
	}
	ctx := testContext(t, 3*time.Minute)
	cs, _, _ := clients(t, s)

	// A /30 of 10.200.0.0/16 for this run, and names with the same suffix.
	var r [2]byte
	rand.Read(r[:])
	n := binary.BigEndian.Uint16(r[:]) & 0x3ffc
	hostIP := fmt.Sprintf("10.200.%d.%d", n>>8, n&0xff|1)
	podIP := fmt.Sprintf("10.200.%d.%d", n>>8, n&0xff|2)
	suffix := fmt.Sprintf("%04x", n)
	netns, vethHost, vethPod := "cmx-"+suffix, "cmxh"+suffix, "cmxp"+suffix
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	ip("netns", "add", netns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", netns).Run() })
	ip("link", "add", vethHost, "type", "veth", "peer", "name", vethPod, "netns", netns)
	t.Cleanup(func() { exec.Command("ip", "link", "del", vethHost).Run() })
	ip("addr", "add", hostIP+"/30", "dev", vethHost)
	ip("link", "set", vethHost, "up")
	ip("-n", netns, "addr", "add", podIP+"/30", "dev", vethPod)
	ip("-n", netns, "link", "set", vethPod, "up")
	ip("-n", netns, "link", "set", "lo", "up")

	bins := binaries(t, s)
	const policy = `{"version":1,"ports":[{"port":8080,"cors":{"allowOrigins":[{"wildcard":"https://*.shop.example"}]}}]}`
	configPath := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(configPath, []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	const adminPort = 15000 // inside the namespace, so no other test's port
	proxy := exec.Command("ip", "netns", "exec", netns, bins["cmd/corsproxy"], "--config", configPath,
		"--listen", podIP+":15003", "--admin-listen", fmt.Sprintf("%s:%d", podIP, adminPort), "--upstream", "127.0.0.1:9", "--policy-port", "8080")
	proxy.Stderr = os.Stderr
	proxy.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-proxy.Process.Pid, syscall.SIGTERM)
		proxy.Wait()
	})
	eventually(t, ctx, 20*time.Second, "the proxy to refuse an origin", func() error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+podIP+":15003/", nil)
		req.Header.Set("Origin", "https://shop.example.evil.com")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})

	// The pod as the API server knows it: injected (the policy in its annotation, the
	// admin port named), running at the namespace's address.
	ns := "explain-" + suffix
	namespace(t, ctx, s, ns, false, nil)
	waitForServiceAccount(t, ctx, cs, ns)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns, Annotations: map[string]string{injector.AnnotationConfig: policy}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "web", Image: "web"},
			{Name: "corsproxy", Image: "corsproxy", Ports: []corev1.ContainerPort{{Name: injector.AdminPortName, ContainerPort: adminPort}}},
		}},
	}
	created, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	created.Status.Phase = corev1.PodRunning
	created.Status.PodIP = podIP
	created.Status.PodIPs = []corev1.PodIP{{IP: podIP}}
	if _, err := cs.CoreV1().Pods(ns).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	cmd := exec.CommandContext(ctx, bins["cmd/corsmeshctl"], "explain", "--from-cluster", "--kubeconfig", s.KubeconfigPath,
		"-n", ns, "--pod", "web", "--port", "8080", "--origin", "https://shop.example.evil.com")
	out, err := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Fatalf("explain exited %d (%v), want 1 (refused):\n%s", code, err, out)
	}
	for _, want := range []string{
		"pod:          Pod " + ns + "/web (from the cluster)",
		"decision:     refused (not_allowed)",
		"by reason map[invalid:0 not_allowed:1 null:0 several_origins:0 too_long:0]",
		"1× https://shop.example.evil.com (not_allowed) port 8080",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("explain output lacks %q:\n%s", want, out)
		}
	}
}
