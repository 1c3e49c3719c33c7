package integration

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/corsmesh/corsmesh/injector"
	"github.com/corsmesh/corsmesh/test/sandbox"
	"github.com/corsmesh/corsmesh/webhook"
)

// TestLeaderElection runs two webhook replicas with leader election, as the manifests'
// Deployment may: only one runs the controllers at a time, and when it stops the other
// takes over. The controllers' work is watched through a PluginChain's status after pod
// deletions, which need no admission.
func TestLeaderElection(t *testing.T) {
	s := sb(t)
	ctx := testContext(t, 3*time.Minute)
	app := corsApp{Namespace: "leader", App: "leader-web", Port: 8080, Origin: "https://a.example"}
	app.installMonitored(t, ctx, s)
	for _, name := range []string{"one", "two"} {
		if _, err := s.Clientset.CoreV1().Pods(app.Namespace).Create(ctx, app.pod(name), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	selected := func(want int32) {
		t.Helper()
		waitForSelectedPods(t, ctx, s, app.Namespace, app.App, want, 60*time.Second)
	}
	selected(2)

	// Two replicas instead of the sandbox's single one (which runs without election).
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
	replicas := []*replica{startReplica(t, ctx, s, s.WebhookPort), startReplica(t, ctx, s, 0)}

	leader := waitForLeader(t, ctx, replicas)
	other := replicas[1-leader]
	// The other one does not lead meanwhile.
	select {
	case <-other.server.Manager().Elected():
		t.Fatal("both replicas lead")
	case <-time.After(2 * time.Second):
	}
	// Only the controllers read pods and ReplicaSets: a replica that does not lead caches none.
	if cached := other.server.Pods.Namespaces(); len(cached) != 0 {
		t.Errorf("the replica that does not lead caches the pods of %v", cached)
	}
	if cached := other.server.ReplicaSets.Namespaces(); len(cached) != 0 {
		t.Errorf("the replica that does not lead caches the ReplicaSets of %v", cached)
	}
	if err := s.Clientset.CoreV1().Pods(app.Namespace).Delete(ctx, "one", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	selected(1)

	// The leader stops (and releases the lease); the other takes over.
	replicas[leader].stop(t)
	if got := waitForLeader(t, ctx, replicas); got != 1-leader {
		t.Fatalf("replica %d leads after replica %d stopped", got, leader)
	}
	if err := s.Clientset.CoreV1().Pods(app.Namespace).Delete(ctx, "two", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	selected(0)
	other.stop(t)
}

type replica struct {
	server *webhook.Server
	cancel context.CancelFunc
	done   chan error
}

// startReplica runs a webhook with leader election on port (0: a free one).
func startReplica(t *testing.T, ctx context.Context, s *sandbox.Sandbox, port int) *replica {
	t.Helper()
	if port == 0 {
		var err error
		if port, err = sandbox.FreePort(); err != nil {
			t.Fatal(err)
		}
	}
	health, err := sandbox.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	srv, err := webhook.New(runCtx, s.RestConfig, webhook.Options{
		CertDir:                 s.WebhookCertDir,
		Host:                    "127.0.0.1",
		Port:                    port,
		MetricsAddr:             "0",
		HealthAddr:              net.JoinHostPort("127.0.0.1", strconv.Itoa(health)),
		LeaderElection:          true,
		LeaderElectionNamespace: "kube-system",
		LeaderElectionID:        "corsmesh-leader-test",
		Injector:                injector.DefaultOptions(),
		Registerer:              prometheus.NewRegistry(),
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	r := &replica{server: srv, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- srv.Start(runCtx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *replica) stop(t *testing.T) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("replica stopped with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("replica did not stop within 30s")
	}
}

// waitForLeader returns the index of the running replica that leads.
func waitForLeader(t *testing.T, ctx context.Context, replicas []*replica) int {
	t.Helper()
	elected := make(chan int, len(replicas))
	waitCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for i, r := range replicas {
		if r.cancel == nil {
			continue // stopped
		}
		go func() {
			select {
			case <-r.server.Manager().Elected():
				elected <- i
			case <-waitCtx.Done():
			}
		}()
	}
	select {
	case i := <-elected:
		return i
	case <-waitCtx.Done():
		t.Fatal("no replica was elected within 60s")
		return -1
	}
}
