package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/corsmesh/corsmesh/test/sandbox"
)

// The tests run in file name order, then in source order; TestUninstall
// (uninstall_test.go), last, removes corsmesh.

// TestRolloutRestartInjectsWithProbes: a Deployment running before its PluginChain exists
// is not injected; after the chain, `kubectl rollout restart` gives its new pod the init
// container and the native sidecar, the app's own HTTP readiness and liveness probes on
// its port (redirected to the proxy like any inbound traffic) keep passing, and the app
// answers with the policy's CORS headers.
func TestRolloutRestartInjectsWithProbes(t *testing.T) {
	s := installed(t)
	ctx := testContext(t, 6*time.Minute)
	a := app{NS: "e2e-restart", Origin: "http://www.bbb.com"}
	monitoredNamespace(t, ctx, s, a.NS)
	apply(t, ctx, s, a.service()+"---\n"+a.deployment(""))
	before := waitRollout(t, ctx, s, a.NS)
	if inits := initContainers(t, ctx, s, a.NS, before); strings.Contains(inits, "corsproxy") {
		t.Fatalf("pod %s injected before any chain selects it: init containers %q", before, inits)
	}

	apply(t, ctx, s, a.policy())
	s.MustKubectl(t, ctx, "rollout", "restart", "-n", a.NS, "deployment/web")
	pod := waitRollout(t, ctx, s, a.NS)
	if inits := initContainers(t, ctx, s, a.NS, pod); inits != "corsproxy-init corsproxy" {
		t.Fatalf("restarted pod %s: init containers %q, want the init container and the native sidecar%s", pod, inits, s.Diagnose())
	}
	if got := curlApp(t, ctx, s, a.NS, a.Origin); !strings.HasPrefix(got, "http/1.1 200") || !allows(got, a.Origin) {
		t.Errorf("through the sidecar: want 200 allowing %s, got:\n%s", a.Origin, got)
	}
	// The node runs the very images `make images` built: the digests it recorded, which the
	// release pushes and signs, not a re-encoding of them.
	ids := s.MustKubectl(t, ctx, "get", "pod", "-n", a.NS, pod, "-o", `jsonpath={range .status.initContainerStatuses[*]}{.name}={.imageID}{"\n"}{end}`)
	imageIDs := map[string]string{}
	for line := range strings.SplitSeq(ids, "\n") {
		if name, id, ok := strings.Cut(line, "="); ok {
			imageIDs[name] = id
		}
	}
	for _, name := range []string{"corsproxy-init", "corsproxy"} {
		if want := recordedDigest(t, s, name); !strings.HasSuffix(imageIDs[name], "@"+want) {
			t.Errorf("pod %s: container %s runs image %q, want the digest bin/images/index.txt records, %s", pod, name, imageIDs[name], want)
		}
	}
	// The liveness probe runs every 2 s and restarts the app after two failures: a few
	// periods without a restart, and the pod still Ready, say the probes pass.
	time.Sleep(8 * time.Second)
	status := s.MustKubectl(t, ctx, "get", "pod", "-n", a.NS, pod, "-o",
		`jsonpath={.status.conditions[?(@.type=="Ready")].status} {.status.containerStatuses[?(@.name=="pipy")].restartCount}`)
	if status != "True 0" {
		t.Errorf("pod %s: Ready and the app's restart count %q, want \"True 0\"%s", pod, status, s.Diagnose())
	}
}

// TestNativeSidecarOrderingAndJob: a Job's container calls the proxy's readiness endpoint
// (on the pod's IP, where the admin port listens) once, without retrying, as its first act: it succeeds only if the kubelet started it
// after the native sidecar was ready. Then the Job completes: the pod Succeeds, the
// sidecar stopped with it (a regular sidecar would keep the pod running forever).
func TestNativeSidecarOrderingAndJob(t *testing.T) {
	s := installed(t)
	ctx := testContext(t, 5*time.Minute)
	a := app{NS: "e2e-job", Origin: "http://www.bbb.com"}
	monitoredNamespace(t, ctx, s, a.NS)
	apply(t, ctx, s, a.service()+"---\n"+a.policy()+"---\n"+fmt.Sprintf(`apiVersion: batch/v1
kind: Job
metadata: {name: once, namespace: %s}
spec:
  backoffLimit: 0
  template:
    metadata:
      labels: {app: web}
    spec:
      restartPolicy: Never
      containers:
      - name: app
        image: curlimages/curl:latest
        ports: [{name: http, containerPort: 8080}]
        env: [{name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}]
        command: [curl, -sf, --max-time, "5", "http://$(POD_IP):15000/readyz"]
`, a.NS))
	s.MustKubectl(t, ctx, "wait", "-n", a.NS, "--for=condition=complete", "job/once", "--timeout=3m")
	pod := strings.TrimSpace(s.MustKubectl(t, ctx, "get", "pods", "-n", a.NS, "-l", "job-name=once", "-o", "jsonpath={.items[0].metadata.name}"))
	if inits := initContainers(t, ctx, s, a.NS, pod); inits != "corsproxy-init corsproxy" {
		t.Fatalf("job pod %s: init containers %q, want the init container and the native sidecar", pod, inits)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		state := s.MustKubectl(t, ctx, "get", "pod", "-n", a.NS, pod, "-o",
			`jsonpath={.status.phase} {.status.initContainerStatuses[?(@.name=="corsproxy")].state.terminated.reason}`)
		if state == "Succeeded Completed" || state == "Succeeded Error" {
			break // a sidecar SIGTERMed after the app may report either
		}
		if time.Now().After(deadline) {
			t.Fatalf("job pod %s: phase and sidecar state %q, want Succeeded with the sidecar terminated%s", pod, state, s.Diagnose())
		}
		time.Sleep(time.Second)
	}
}

// TestLegacySidecarMode: the pod's corsmesh.io/native-sidecar=false puts the proxy among
// the app's containers (postStart waits for it to be ready), and it serves the policy.
func TestLegacySidecarMode(t *testing.T) {
	s := installed(t)
	ctx := testContext(t, 5*time.Minute)
	a := app{NS: "e2e-legacy", Origin: "http://www.bbb.com"}
	pod := a.deploy(t, ctx, s, `corsmesh.io/native-sidecar: "false"`)
	got := s.MustKubectl(t, ctx, "get", "pod", "-n", a.NS, pod, "-o", "jsonpath={.spec.initContainers[*].name}/{.spec.containers[*].name}")
	if got != "corsproxy-init/corsproxy pipy" {
		t.Fatalf("pod %s: init/containers %q, want the proxy first among the containers", pod, got)
	}
	if got := curlApp(t, ctx, s, a.NS, a.Origin); !strings.HasPrefix(got, "http/1.1 200") || !allows(got, a.Origin) {
		t.Errorf("through the legacy sidecar: want 200 allowing %s, got:\n%s", a.Origin, got)
	}
}

// TestPluginConfigEditReachesProxy edits the PluginConfig of a running injected pod while
// the client keeps sending requests (both origins, in turn, over kept-alive connections)
// and measures how long until the proxy answers by the new policy (config sync patches
// the annotation, the kubelet refreshes the downward-API file, the proxy reloads it): no
// request fails across the reload, the old policy then the new one is seen in effect. The
// delay is logged, not asserted, beyond a two-minute bound.
func TestPluginConfigEditReachesProxy(t *testing.T) {
	s := installed(t)
	ctx := testContext(t, 6*time.Minute)
	a := app{NS: "e2e-edit", Origin: "http://www.bbb.com"}
	a.deploy(t, ctx, s, "")
	if got := curlApp(t, ctx, s, a.NS, a.Origin); !allows(got, a.Origin) {
		t.Fatalf("before the edit: want %s allowed, got:\n%s", a.Origin, got)
	}
	const edited = "http://www.edited.example"
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	// Two clients, each alternating the origins, so that requests overlap the reload.
	results := make(chan loadResult, 2)
	go func() { results <- runLoad(loadCtx, s, a.NS, a.Origin, edited) }()
	go func() { results <- runLoad(loadCtx, s, a.NS, edited, a.Origin) }()
	time.Sleep(2 * time.Second) // some of the load before the edit

	start := time.Now()
	s.MustKubectl(t, ctx, "patch", "pluginconfig", "web", "-n", a.NS, "--type=merge", "-p",
		fmt.Sprintf(`{"spec":{"config":{"allowOrigins":[{"exact":%q}]}}}`, edited))
	for {
		got := curlApp(t, ctx, s, a.NS, edited)
		if allows(got, edited) {
			break
		}
		if time.Since(start) > 2*time.Minute {
			t.Fatalf("2 min after the edit the proxy still does not allow %s:\n%s", edited, got)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("PluginConfig edit in effect in the running proxy after %s", time.Since(start).Round(100*time.Millisecond))
	time.Sleep(2 * time.Second) // some of the load after it
	stopLoad()
	res := <-results
	res.add(<-results)
	t.Logf("load: %d requests, %d failed, allowed %v", res.requests, len(res.failures), res.allowed)
	if len(res.failures) > 0 || res.requests == 0 {
		t.Errorf("%d of %d requests failed across the reload: %v", len(res.failures), res.requests, res.failures)
	}
	if res.allowed[a.Origin] == 0 || res.allowed[edited] == 0 {
		t.Errorf("want the old policy, then the new one, in effect during the load: allowed %v", res.allowed)
	}
	if got := curlApp(t, ctx, s, a.NS, a.Origin); allows(got, a.Origin) {
		t.Errorf("after the edit the old origin is still allowed:\n%s", got)
	}
}

// loadResult counts what runLoad saw.
type loadResult struct {
	requests int
	failures []string       // answers other than 200, or curl's errors
	allowed  map[string]int // origin: answers allowing it
}

func (r *loadResult) add(o loadResult) {
	r.requests += o.requests
	r.failures = append(r.failures, o.failures...)
	for origin, n := range o.allowed {
		r.allowed[origin] += n
	}
}

// runLoad has the client pod send bursts of 20 requests to web.<ns>:8080, one curl (one
// kept-alive connection) per burst, with each origin in turn, until ctx ends.
func runLoad(ctx context.Context, s *sandbox.Sandbox, ns string, origins ...string) loadResult {
	res := loadResult{allowed: map[string]int{}}
	for i := 0; ctx.Err() == nil; i++ {
		origin := origins[i%len(origins)]
		out, err := s.Kubectl(ctx, "exec", clientPod, "-n", clientNamespace, "-c", "curl", "--", "curl", "-s", "-o", "/dev/null",
			"--max-time", "5", "-w", `%{http_code} %header{access-control-allow-origin}\n`, "-H", "Origin: "+origin,
			fmt.Sprintf("http://web.%s:8080/?burst=%d&n=[1-20]", ns, i))
		if ctx.Err() != nil {
			break // the burst cut short by the end of the load says nothing
		}
		if err != nil {
			res.failures = append(res.failures, fmt.Sprintf("burst %d: %v: %s", i, err, out))
			continue
		}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			res.requests++
			code, allowed, _ := strings.Cut(line, " ")
			if code != "200" {
				res.failures = append(res.failures, fmt.Sprintf("burst %d: %q", i, line))
			}
			if allowed != "" {
				res.allowed[allowed]++
			}
		}
	}
	return res
}

// TestAppNotListeningGets502WithCORS: a Service port the app does not listen on is still
// intercepted; the proxy answers 502 and the answer carries the policy's CORS headers, so
// a browser shows the app's failure rather than a CORS error.
func TestAppNotListeningGets502WithCORS(t *testing.T) {
	s := installed(t)
	ctx := testContext(t, 5*time.Minute)
	a := app{NS: "e2e-down", Origin: "http://www.bbb.com"}
	monitoredNamespace(t, ctx, s, a.NS)
	down := a.serviceOn("down", 8081) + "---\n" + a.config("down")
	apply(t, ctx, s, a.service()+"---\n"+down+"---\n"+a.policy()+"---\n"+a.deployment(""))
	waitRollout(t, ctx, s, a.NS)
	out, err := s.CurlFromPod(ctx, clientNamespace, clientPod, "-si", "--max-time", "10", "-H", "Origin: "+a.Origin, "http://down."+a.NS+":8081/")
	got := strings.ToLower(strings.ReplaceAll(out, "\r\n", "\n"))
	if err != nil || !strings.HasPrefix(got, "http/1.1 502") || !allows(got, a.Origin) {
		t.Errorf("port 8081, where the app does not listen: want a 502 allowing %s, got (err %v):\n%s", a.Origin, err, out)
	}
}

// TestProxyMemoryLimitEnforced reads, on the node, the memory cgroup the kubelet put the
// proxy's process in: its limit is the injected 64Mi, and the proxy was told the same
// (CORSPROXY_MEMORY_LIMIT in its environment, and the Go memory limit it derived, in its
// log).
func TestProxyMemoryLimitEnforced(t *testing.T) {
	s := installed(t)
	ctx := testContext(t, 5*time.Minute)
	a := app{NS: "e2e-memory", Origin: "http://www.bbb.com"}
	pod := a.deploy(t, ctx, s, "")
	const want = 64 << 20
	pid, cgroup := processOfContainer(t, proxyContainerID(t, ctx, s, a.NS, pod))
	limit, err := os.ReadFile(filepath.Join(cgroup, "memory.limit_in_bytes"))
	if os.IsNotExist(err) {
		limit, err = os.ReadFile(filepath.Join(cgroup, "memory.max")) // cgroup v2
	}
	if err != nil {
		t.Fatalf("reading the proxy's memory limit in %s: %v", cgroup, err)
	}
	if got := strings.TrimSpace(string(limit)); got != strconv.Itoa(want) {
		t.Errorf("the proxy's cgroup %s limits memory to %s bytes, want %d (64Mi)", cgroup, got, want)
	}
	environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains("\x00"+string(environ)+"\x00", fmt.Sprintf("\x00CORSPROXY_MEMORY_LIMIT=%d\x00", want)) {
		t.Errorf("the proxy's environment has no CORSPROXY_MEMORY_LIMIT=%d: %q", want, strings.ReplaceAll(string(environ), "\x00", " "))
	}
	logs := s.MustKubectl(t, ctx, "logs", "-n", a.NS, pod, "-c", "corsproxy")
	if !strings.Contains(logs, `"memory budget"`) || !strings.Contains(logs, fmt.Sprintf(`"limit":%d`, want)) {
		t.Errorf("the proxy's log does not report the %d-byte budget:\n%s", want, logs)
	}
}

// proxyContainerID is the runtime's ID of the pod's corsproxy container.
func proxyContainerID(t *testing.T, ctx context.Context, s *sandbox.Sandbox, ns, pod string) string {
	t.Helper()
	ref := s.MustKubectl(t, ctx, "get", "pod", "-n", ns, pod, "-o", `jsonpath={.status.initContainerStatuses[?(@.name=="corsproxy")].containerID}`)
	_, id, ok := strings.Cut(ref, "://")
	if !ok || id == "" {
		t.Fatalf("pod %s/%s: no container ID for corsproxy (%q)", ns, pod, ref)
	}
	return id
}

// processOfContainer finds, among the host's processes, one whose memory cgroup is the
// container's (cgroupfs paths end in the container ID) and returns its PID and the cgroup's
// directory.
func processOfContainer(t *testing.T, id string) (int, string) {
	t.Helper()
	procs, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cgroup"))
		if err != nil || !strings.Contains(string(data), id) {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			// hierarchy-ID:controllers:path; v1 names memory, v2 has one line "0::path".
			f := strings.SplitN(line, ":", 3)
			if len(f) != 3 || !strings.Contains(f[2], id) {
				continue
			}
			switch {
			case f[1] == "":
				return pid, filepath.Join("/sys/fs/cgroup", f[2])
			case strings.Contains(","+f[1]+",", ",memory,"):
				return pid, filepath.Join("/sys/fs/cgroup/memory", f[2])
			}
		}
	}
	t.Fatalf("no process on the host is in container %s's memory cgroup", id)
	return 0, ""
}

// TestProxyKilledIsRestarted kills the proxy's process on the node: the kubelet restarts
// the sidecar, no request meanwhile reaches the app around it (every answer still carries
// the policy's CORS headers; the redirect stays in the pod's network namespace), and
// traffic resumes.
func TestProxyKilledIsRestarted(t *testing.T) {
	s := installed(t)
	ctx := testContext(t, 5*time.Minute)
	a := app{NS: "e2e-kill", Origin: "http://www.bbb.com"}
	pod := a.deploy(t, ctx, s, "")
	podIP := s.MustKubectl(t, ctx, "get", "pod", "-n", a.NS, pod, "-o", "jsonpath={.status.podIP}")
	pid, _ := processOfContainer(t, proxyContainerID(t, ctx, s, a.NS, pod))
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("killing the proxy (PID %d): %v", pid, err)
	}
	start := time.Now()
	failed := 0
	for {
		// Straight to the pod's IP, no retry: a refused connection is what a dead proxy
		// gives, an answer without CORS headers would be the app reached around it.
		out, err := s.Kubectl(ctx, "exec", clientPod, "-n", clientNamespace, "-c", "curl", "--",
			"curl", "-si", "--max-time", "3", "-H", "Origin: "+a.Origin, "http://"+podIP+":8080/")
		got := strings.ToLower(out)
		switch {
		case err != nil:
			failed++
		case !allows(got, a.Origin):
			t.Fatalf("an answer without the policy's CORS headers while the proxy restarted:\n%s", out)
		default:
			restarts := s.MustKubectl(t, ctx, "get", "pod", "-n", a.NS, pod, "-o", `jsonpath={.status.initContainerStatuses[?(@.name=="corsproxy")].restartCount}`)
			if restarts == "1" {
				t.Logf("traffic resumed %s after the kill (%d requests failed meanwhile)", time.Since(start).Round(100*time.Millisecond), failed)
				return
			}
		}
		if time.Since(start) > 2*time.Minute {
			t.Fatalf("2 min after the kill: %d requests failed, last: %v\n%s%s", failed, err, out, s.Diagnose())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestWebhookReplicaDeletedDuringBurst deletes one of the webhook's two replicas while pods
// of a monitored namespace are created, until it has exited: with failurePolicy Fail every
// creation must still succeed, each pod injected (the other replica serves; the deleted one
// serves through its preStop sleep, then drains its keep-alive connections before it stops).
func TestWebhookReplicaDeletedDuringBurst(t *testing.T) {
	s := installed(t)
	ctx := testContext(t, 5*time.Minute)
	a := app{NS: "e2e-burst", Origin: "http://www.bbb.com"}
	monitoredNamespace(t, ctx, s, a.NS)
	apply(t, ctx, s, a.service()+"---\n"+a.policy())
	replicas := strings.Fields(s.MustKubectl(t, ctx, "get", "pods", "-n", sandbox.WebhookNamespace, "-l", sandbox.WebhookSelector, "-o", "jsonpath={.items[*].metadata.name}"))
	if len(replicas) != 2 {
		t.Fatalf("want the webhook's 2 replicas, got %v", replicas)
	}
	// Pods are created, four at a time (up to 20 a second), from before the replica is deleted until it has
	// exited: through its preStop sleep, its drain and its shutdown, when the API server's
	// pooled connections to it end. Each pod is held by a scheduling gate: only admission
	// is under test, not the node.
	pod := func(i int) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("burst-%d", i), Namespace: a.NS, Labels: map[string]string{"app": "web"}},
			Spec: corev1.PodSpec{
				SchedulingGates: []corev1.PodSchedulingGate{{Name: "corsmesh.io/e2e-hold"}},
				Containers:      []corev1.Container{{Name: "pipy", Image: "flomesh/pipy:latest", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}},
			},
		}
	}
	const maxPods = 3000 // a bound, whatever happens to the replica (2.5 min)
	var (
		mu      sync.Mutex
		created int
		errs    []error
		next    atomic.Int32
		stop    atomic.Bool
		wg      sync.WaitGroup
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() && ctx.Err() == nil {
				i := int(next.Add(1))
				if i > maxPods {
					return
				}
				_, err := s.Clientset.CoreV1().Pods(a.NS).Create(ctx, pod(i), metav1.CreateOptions{})
				mu.Lock()
				created++
				if err != nil {
					errs = append(errs, fmt.Errorf("pod burst-%d: %w", i, err))
				}
				mu.Unlock()
				time.Sleep(200 * time.Millisecond)
			}
		}()
	}
	time.Sleep(time.Second)
	if out, err := s.Kubectl(ctx, "delete", "pod", "-n", sandbox.WebhookNamespace, replicas[0], "--wait=true", "--timeout=2m"); err != nil {
		t.Errorf("deleting webhook replica %s: %v\n%s", replicas[0], err, out)
	}
	time.Sleep(time.Second) // its last connections closed
	stop.Store(true)
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	out := s.MustKubectl(t, ctx, "get", "pods", "-n", a.NS, "-o", `jsonpath={range .items[*]}{.metadata.name}={.spec.initContainers[*].name}{"\n"}{end}`)
	injected := strings.Count(out, "=corsproxy-init corsproxy")
	t.Logf("%d pods created while webhook replica %s was deleted and exited: %d failed, %d injected", created, replicas[0], len(errs), injected)
	if created >= maxPods {
		t.Errorf("the replica was still there after %d pods", maxPods)
	}
	if injected != created-len(errs) {
		t.Errorf("%d of %d created pods injected", injected, created-len(errs))
	}
}

func testContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// recordedDigest is the manifest digest bin/images/index.txt records for image name.
func recordedDigest(t *testing.T, s *sandbox.Sandbox, name string) string {
	t.Helper()
	index, err := os.ReadFile(filepath.Join(s.RepoRoot, "bin", "images", "index.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(index), "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == name {
			return f[3]
		}
	}
	t.Fatalf("bin/images/index.txt lists no %s", name)
	return ""
}
