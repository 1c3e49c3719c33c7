package integration

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/corsmesh/corsmesh/hack/memcgroup"
	"github.com/corsmesh/corsmesh/test/sandbox"
)

// TestWebhookSurvivesHostileClients runs the corsmesh-webhook binary (or
// CORSMESH_WEBHOOK_HOSTILE_BIN, to try another build) under the manifests' memory limit in
// a real memory cgroup, and attacks its port as any pod of a cluster could: bodies of
// several MiB sent in full at once, requests claiming the largest body and sending a few
// bytes, and thousands of connections that finish TLS and send nothing. The webhook must
// not be OOM-killed, and must go on injecting pods while the connections are still held.
func TestWebhookSurvivesHostileClients(t *testing.T) {
	memcgroup.Require(t)
	s := sb(t)
	ctx := testContext(t, 4*time.Minute)
	app := corsApp{Namespace: "hostile", App: "hostile-web", Port: 8080, Origin: "https://hostile.example"}
	app.installMonitored(t, ctx, s)

	limit := manifestMemoryLimit(t, s)
	if err := s.StopWebhook(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if s.WebhookServer() == nil {
			if err := s.StartWebhook(context.Background()); err != nil {
				t.Errorf("restarting the sandbox's webhook: %v", err)
			}
		}
	})
	hook := startWebhookInCgroup(t, ctx, s, limit)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(s.WebhookPort))
	// A pod is injected, within a minute: on a loaded machine a call may time out (5 s),
	// which is the machine, not the webhook giving up.
	injects := func(when string) {
		t.Helper()
		eventually(t, ctx, time.Minute, when+": a pod injected", func() error {
			pod, err := s.Clientset.CoreV1().Pods(app.Namespace).Create(ctx, app.pod(""), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			if err != nil {
				return fmt.Errorf("creating a pod: %w", err)
			}
			if !hasContainerNamed(pod, "corsproxy") {
				t.Fatalf("%s: the pod was not injected: %v", when, injectionTraces(pod))
			}
			return nil
		})
	}
	injects("before the attack")

	// Bodies sent in full, 100 of 6 MiB at once: more than the webhook lets request bodies
	// hold together, so some are refused (503) rather than held. Before the budget, all were
	// held, and the OOM killer took the webhook at its 512Mi limit.
	var wg sync.WaitGroup
	codes := make([]int, 100)
	body := strings.Repeat(" ", 6<<20)
	for i := range codes {
		wg.Go(func() {
			c, err := dialWebhook(addr)
			if err != nil {
				t.Errorf("dialling the webhook: %v", err)
				return
			}
			defer c.Close()
			fmt.Fprintf(c, "POST /mutate-pods HTTP/1.1\r\nHost: webhook\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
			c.SetReadDeadline(time.Now().Add(time.Minute))
			if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
				codes[i] = resp.StatusCode
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	byCode := map[int]int{}
	for _, code := range codes {
		byCode[code]++
	}
	t.Logf("the %d bodies of 6 MiB got, by status code: %v", len(codes), byCode)
	// 408: on a loaded machine a body may take longer than the webhook waits for it.
	if byCode[http.StatusBadRequest]+byCode[http.StatusServiceUnavailable]+byCode[http.StatusRequestTimeout] != len(codes) {
		t.Errorf("want each answered 400 (no AdmissionReview), 503 (refused) or 408 (too slow), none unanswered (0)")
	}
	hook.Alive(t)
	injects("after the 6 MiB bodies")

	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	// Claims of the largest body (7 MiB) with a few bytes sent: before the webhook read
	// bodies as they arrive, 100 of them allocated 700 MiB of heap at once (fresh pages, so
	// not yet resident; reused ones are zeroed, and so are).
	for range 100 {
		c := mustDialWebhook(t, addr)
		held = append(held, c)
		fmt.Fprintf(c, "POST /mutate-pods HTTP/1.1\r\nHost: webhook\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{\"apiVersion\":", 7<<20)
	}
	// Connections that finish TLS and send nothing.
	for range 2000 {
		held = append(held, mustDialWebhook(t, addr))
	}
	hook.Alive(t)
	injects("with 2,100 hostile connections held")

	// A stalled claim is answered once its body is late (the read deadline reaches the
	// connection through the webhook server's wrappers), and its connection closed.
	held[0].SetReadDeadline(time.Now().Add(time.Minute))
	br := bufio.NewReader(held[0])
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("a stalled claim got no answer: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("a stalled claim got %s, want 408", resp.Status)
	}
	if _, err := br.ReadByte(); err == nil || !resp.Close {
		t.Errorf("the stalled claim's connection was kept open after its answer (Connection: close %v; read %v)", resp.Close, err)
	}

	t.Logf("peak memory %s", hook.cg.Peak(t))
}

// manifestMemoryLimit is the webhook container's memory limit in manifests/base.
func manifestMemoryLimit(t *testing.T, s *sandbox.Sandbox) int64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.RepoRoot, "manifests", "base", "deployment.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var d appsv1.Deployment
	if err := yaml.UnmarshalStrict(b, &d); err != nil {
		t.Fatalf("manifests/base/deployment.yaml: %v", err)
	}
	for _, c := range d.Spec.Template.Spec.Containers {
		if q, ok := c.Resources.Limits[corev1.ResourceMemory]; ok && c.Name == "webhook" {
			return q.Value()
		}
	}
	t.Fatal("no memory limit on the webhook container in manifests/base/deployment.yaml")
	return 0
}

// dialWebhook opens a TLS connection to the webhook, as any client could (the server's
// certificate is not checked: an attacker has no reason to). The timeout is generous: the
// handshakes queue behind each other on a loaded machine.
func dialWebhook(addr string) (net.Conn, error) {
	return tls.DialWithDialer(&net.Dialer{Timeout: time.Minute}, "tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
}

func mustDialWebhook(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := dialWebhook(addr)
	if err != nil {
		t.Fatalf("dialling the webhook: %v", err)
	}
	return c
}

// cgroupWebhook is the corsmesh-webhook binary in a memory cgroup of its own.
type cgroupWebhook struct {
	cg *memcgroup.Cgroup
	*memcgroup.Process
}

// startWebhookInCgroup runs corsmesh-webhook as the sandbox's webhook (its port, cert dir
// and kubeconfig) in a cgroup limited to limit, given that limit as the Deployment gives
// it, and waits until it is ready. Its Go heap's soft limit must be 7/8 of limit.
func startWebhookInCgroup(t *testing.T, ctx context.Context, s *sandbox.Sandbox, limit int64) *cgroupWebhook {
	t.Helper()
	bin := os.Getenv("CORSMESH_WEBHOOK_HOSTILE_BIN")
	if bin == "" {
		bin = binaries(t, s)["cmd/corsmesh-webhook"]
	}
	health, err := sandbox.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	w := &cgroupWebhook{cg: memcgroup.New(t, "corsmesh-webhook-", limit)}
	w.Process = w.cg.Start(t, "corsmesh-webhook", w.cg.Command(bin,
		"--cert-dir", s.WebhookCertDir, "--port", strconv.Itoa(s.WebhookPort), "--host", "127.0.0.1",
		"--kubeconfig", s.KubeconfigPath, "--leader-elect=false", "--metrics-addr", "0",
		"--memory-limit", strconv.FormatInt(limit, 10),
		"--health-addr", "127.0.0.1:"+strconv.Itoa(health)))
	eventually(t, ctx, 90*time.Second, "corsmesh-webhook ready", func() error {
		w.Alive(t)
		resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(health) + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz: %s", resp.Status)
		}
		return nil
	})
	// The build under test reports its soft limit (an older one, given to compare, may not).
	soft := fmt.Sprintf(`"goMemLimit":%d`, limit-limit/8)
	if os.Getenv("CORSMESH_WEBHOOK_HOSTILE_BIN") == "" && !strings.Contains(w.Output(), soft) {
		t.Errorf("corsmesh-webhook's log does not report the soft memory limit %s of its %d bytes:\n%s", soft, limit, w.Output())
	}
	return w
}
