// Command webhook measures what corsmesh's admission webhook costs pod creation, through
// the real API server of test/sandbox (etcd, kube-apiserver, kube-controller-manager,
// cert-manager) with the real corsmesh-webhook binary run as a separate process:
//
//	go -C hack/bench/webhook run . [--pods 1000] [--services 10000] [--chains 1000]
//
// It creates --pods pods in each of four namespaces, interleaved in batches (none, no-op,
// replay, ours, ...; the order rotates every round), timing each Pods().Create on the
// client:
//
//   - none: a namespace no webhook configuration selects, so the API server calls none;
//   - no-op: a namespace only a MutatingWebhookConfiguration of this program selects, served
//     on loopback over TLS (a self-signed certificate) by a process of its own (this program
//     run again, as corsmesh-webhook runs in its own) with a handler that decodes the
//     AdmissionReview and allows the pod unchanged: the floor any webhook pays;
//   - replay: the same server answering with the patch corsmesh-webhook returned for the
//     bench pod: the API server's cost of this mutation, without corsmesh's own work;
//   - ours: a namespace corsmesh monitors, with a PluginChain, PluginConfig and Service
//     selecting the pods, so every pod is injected (checked on each created pod).
//
// Before that it creates --services headless Services (over 100 namespaces, the ours
// namespace holding its share) and --chains PluginChains, waits until the webhook's cache
// has them, and reads the webhook process's memory (VmRSS, VmHWM, live heap) before, after,
// after a restart with them present, and after the pods. It accounts the CPU time of
// kube-apiserver, etcd, kube-controller-manager and the webhook (/proc) per phase and per
// mode, and checks with the API server's and the webhooks' own counters that each
// namespace reached exactly the webhooks it should.
//
// Unless --handler-bench=false it first runs `go test ./webhook/admit -bench BenchmarkAdmission`
// (the handler alone). The report goes to hack/bench/results/webhook-<date>.md (and a raw
// .tsv of every latency) and to stdout. --webhook-bin runs another build of the webhook (a
// prototype) under the same conditions.
package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/corsmesh/corsmesh/injector"
	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
	"github.com/corsmesh/corsmesh/test/gobuild"
	"github.com/corsmesh/corsmesh/test/sandbox"
	"github.com/corsmesh/corsmesh/webhook"
)

const (
	// The binaries the bench runs as processes (directories from the repository root).
	webhookPkg     = "cmd/corsmesh-webhook"
	baremanagerPkg = "hack/bench/webhook/baremanager"

	nsNone   = "bench-none"
	nsNoop   = "bench-noop"
	nsReplay = "bench-replay"
	nsOurs   = "bench-ours"
	appName  = "bench-app"

	noopWebhookName   = "noop.bench.corsmesh.io"
	noopConfigName    = "bench-noop"
	replayWebhookName = "replay.bench.corsmesh.io"
	replayConfigName  = "bench-replay"
	// replayStatus stands for injector.AnnotationStatus in the replayed patch (same
	// length), so that corsmesh's controllers do not take the replay's pods for theirs.
	replayStatus      = "corsmesh.io/replay"
	corsmeshHookName  = "inject.corsmesh.io"
	sentinelService   = "bench-sentinel"
	sentinelLabel     = "bench-sentinel"
	sentinelPort      = 9090
	captureNamespace  = "pipy"
	serviceCIDR       = "10.128.0.0/16"
	serviceNamespaces = 100
)

type options struct {
	pods, services, chains int
	batch, warmup          int
	handlerBench           bool
	benchtime              string
	benchcount             int
	inProcess              bool
	capture                string
	out                    string
	chainsFirst            bool
	clusterIPs             bool
	webhookBin             string
	label                  string
	quiesce                time.Duration
	cpuProfile             string
	heapProfiles           string
	sustained              time.Duration
}

func main() {
	if os.Getenv(noopHostEnv) != "" {
		os.Exit(runNoopHost())
	}
	var o options
	flag.IntVar(&o.pods, "pods", 1000, "pods to create per mode (none, no-op, ours)")
	flag.IntVar(&o.services, "services", 10000, "Services to create first, over 100 namespaces")
	flag.IntVar(&o.chains, "chains", 1000, "PluginChains in the cluster (the bench's own plus chains-1 selecting nothing)")
	flag.IntVar(&o.batch, "batch", 50, "pods per mode per round")
	flag.IntVar(&o.warmup, "warmup", 20, "unmeasured pods per mode before the rounds")
	flag.BoolVar(&o.handlerBench, "handler-bench", true, "run go test -bench BenchmarkAdmission ./webhook/admit first and report it")
	flag.StringVar(&o.benchtime, "benchtime", "1s", "-benchtime of the handler benchmark")
	flag.IntVar(&o.benchcount, "benchcount", 3, "-count of the handler benchmark")
	flag.BoolVar(&o.inProcess, "in-process", false, "measure the sandbox's in-process webhook instead of the corsmesh-webhook binary (memory from runtime.ReadMemStats)")
	flag.StringVar(&o.capture, "capture-review", "", "also write the AdmissionReview the API server sends for the seed's pipy-ok-v1 pod to this file")
	flag.StringVar(&o.out, "out", "hack/bench/results", "directory for webhook-<date>.md and .raw.tsv, relative to the repository root (empty: stdout only)")
	flag.BoolVar(&o.clusterIPs, "cluster-ips", false, "give the Services cluster IPs (adds a ServiceCIDR; kube-apiserver then spends ~30 ms of CPU per create, rising with the count: minutes for 10,000) instead of headless Services")
	flag.BoolVar(&o.chainsFirst, "chains-first", false, "create the PluginChains before the Services (every Service event then re-reconciles every chain: slow)")
	flag.StringVar(&o.webhookBin, "webhook-bin", "", "run this corsmesh-webhook binary instead of building ./cmd/corsmesh-webhook (to compare a prototype)")
	flag.StringVar(&o.label, "label", "", "a note for the report's title (what this run measures)")
	flag.StringVar(&o.cpuProfile, "cpu-profile", "", "write corsmesh-webhook's CPU profile over the measured pod creations (rounds and sustained phases) to this file (pprof format)")
	flag.DurationVar(&o.sustained, "sustained", 5*time.Second, "after the rounds, create pods back to back in each mode for this long per phase (0: skip), to report throughput and CPU per pod")
	flag.StringVar(&o.heapProfiles, "heap-profiles", "", "write corsmesh-webhook's heap profile (pprof format) at each memory reading into this directory (forces a GC before each reading)")
	flag.DurationVar(&o.quiesce, "quiesce", 90*time.Second, "before measuring memory and pods, wait up to this long for the machine to go idle")
	flag.Parse()
	if o.batch <= 0 || o.pods < 0 || o.services < 0 || o.chains < 1 {
		fmt.Fprintln(os.Stderr, "--batch must be positive, --pods and --services not negative, --chains at least 1")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05.000 ")+format+"\n", args...)
}

type report struct {
	opts      options
	started   time.Time
	load      [2]string
	command   string
	machine   []string
	handler   *handlerResult
	memory    []memSample
	floor     memSample // the bare manager (when: empty if not measured)
	svcNote   string
	cacheLag  time.Duration
	loadTime  time.Duration
	loadCPU   cpuSample
	phases    []loadPhase
	quiesced  []string
	results   map[string]*modeResult
	rounds    int
	checks    []string
	apiCalls  map[string]apiWebhook
	calls     webhookCounters    // corsmesh-webhook's counters over the measured pods
	requests  map[string]float64 // apiserver_request_total during the pods, by "verb resource"
	mounts    string
	failures  []string
	capture   string
	comps     *components
	sustained map[string]*sustainedResult
}

func run(ctx context.Context, o options) error {
	rep := &report{opts: o, started: time.Now().UTC(), command: "go -C hack/bench/webhook run . " + strings.Join(os.Args[1:], " "), results: map[string]*modeResult{}}
	rep.load[0] = loadavg()
	root, err := sandbox.FindRepoRoot()
	if err != nil {
		return err
	}
	if o.out != "" && !filepath.IsAbs(o.out) {
		o.out = filepath.Join(root, o.out) // go -C runs it in hack/bench/webhook
	}
	rep.machine = machineInfo(root)

	if o.handlerBench {
		if rep.handler, err = runHandlerBench(ctx, root, o); err != nil {
			return err
		}
	}

	port, err := sandbox.FreePort()
	if err != nil {
		return err
	}
	startCtx, cancel := context.WithTimeout(ctx, sandbox.StartTimeout)
	s, err := sandbox.Start(startCtx, sandbox.Options{Webhook: true, WebhookPort: port, PluginPolicy: true, RepoRoot: root, Log: logf})
	cancel()
	if err != nil {
		return fmt.Errorf("starting the sandbox: %w", err)
	}
	defer func() {
		if err := s.Stop(); err != nil {
			logf("stopping the sandbox: %v", err)
		}
	}()

	cfg := rest.CopyConfig(s.RestConfig)
	cfg.QPS, cfg.Burst = 1000, 2000
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	cl, err := client.New(cfg, client.Options{Scheme: s.Scheme})
	if err != nil {
		return err
	}

	rep.comps = findComponents(s)
	var hook webhookUnderTest
	var floor *processWebhook // the memory floor, beside the corsmesh-webhook binary
	if o.inProcess {
		hook = &inProcessWebhook{s: s}
	} else {
		// Built as the image's binaries are (trimmed, stripped), as a cluster runs them.
		pkgs := []string{baremanagerPkg}
		if o.webhookBin == "" {
			pkgs = append(pkgs, webhookPkg)
		}
		logf("go build %s", strings.Join(pkgs, " "))
		bins, err := gobuild.Builder{Root: s.RepoRoot, Static: true}.Build(ctx, filepath.Join(s.WorkDir, "bin"), pkgs...)
		if err != nil {
			return err
		}
		p := &processWebhook{s: s, bin: cmp.Or(o.webhookBin, bins[webhookPkg]), pprof: o.cpuProfile != "" || o.heapProfiles != "", heapDir: o.heapProfiles}
		floor = &processWebhook{s: s, bin: bins[baremanagerPkg], bare: true}
		if err := s.StopWebhook(); err != nil {
			return fmt.Errorf("stopping the in-process webhook: %w", err)
		}
		if err := p.start(ctx); err != nil {
			return err
		}
		defer p.stop()
		hook = p
	}
	rep.comps.setWebhook(hook.pid())
	logf("accounting CPU of %v", rep.comps.pids)
	settle := func(what string) {
		waited, busy := quiesce(ctx, o.quiesce)
		line := fmt.Sprintf("%s: waited %s for the machine to go idle (last 2s: %.0f%% of a core busy)", what, waited.Round(100*time.Millisecond), busy*100)
		logf("%s", line)
		rep.quiesced = append(rep.quiesced, line)
	}

	// Namespaces and the policy that injects the bench's pods in nsOurs.
	for _, ns := range []struct {
		name   string
		labels map[string]string
	}{{nsNone, nil}, {nsNoop, nil}, {nsReplay, nil}, {nsOurs, map[string]string{injector.LabelMonitoredBy: "osm"}}} {
		if err := s.CreateNamespace(ctx, ns.name, ns.labels, nil); err != nil {
			return fmt.Errorf("creating namespace %s: %w", ns.name, err)
		}
	}
	if _, err := s.Apply(ctx, []byte(policyYAML), sandbox.ApplyOptions{}); err != nil {
		return fmt.Errorf("applying the bench's policy: %w", err)
	}
	for _, ns := range []string{nsNone, nsNoop, nsReplay} { // the same Service everywhere, so only the webhooks differ
		if _, err := cs.CoreV1().Services(ns).Create(ctx, appService(ns), metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	if err := waitInjected(ctx, cs, nil); err != nil {
		return fmt.Errorf("waiting for the webhook to inject: %w", err)
	}
	settle("before the first memory reading")
	if m, err := hook.memory(ctx, "webhook ready, empty cluster"); err == nil {
		rep.memory = append(rep.memory, m)
	} else {
		logf("memory: %v", err)
	}
	if floor != nil {
		if rep.floor, err = floorMemory(ctx, floor, settle); err != nil {
			return fmt.Errorf("the bare manager's memory: %w", err)
		}
	}

	// A large cluster: chains and Services, then wait for the webhook's cache.
	loadStart, cpuBefore := time.Now(), rep.comps.sample()
	if rep.svcNote, rep.phases, err = loadCluster(ctx, cs, cl, rep.comps, o); err != nil {
		return err
	}
	rep.loadTime = time.Since(loadStart)
	rep.loadCPU = rep.comps.sample().sub(cpuBefore)
	lastCreate := time.Now()
	if _, err := cs.CoreV1().Services(nsOurs).Create(ctx, sentinel(), metav1.CreateOptions{}); err != nil {
		return err
	}
	// Watch events arrive in resourceVersion order: once a dry-run pod is injected on the
	// sentinel's port, every Service and chain created before it is in the cache.
	if err := waitInjected(ctx, cs, map[string]string{sentinelLabel: "yes"}); err != nil {
		return fmt.Errorf("waiting for the webhook's cache to have the Services: %w", err)
	}
	rep.cacheLag = time.Since(lastCreate)
	logf("the webhook's cache has the %d Services and %d PluginChains (%s after the last create)", o.services, o.chains, rep.cacheLag.Round(time.Millisecond))
	if err := waitForEndpointSlices(ctx, cs, o.services+3); err != nil {
		logf("EndpointSlices: %v", err)
	}
	settle("after loading the cluster")
	if m, err := hook.memory(ctx, fmt.Sprintf("+%d Services, %d PluginChains (watched)", o.services, o.chains)); err == nil {
		rep.memory = append(rep.memory, m)
	}
	if err := hook.restart(ctx); err != nil {
		return err
	}
	if err := waitInjected(ctx, cs, map[string]string{sentinelLabel: "yes"}); err != nil {
		return fmt.Errorf("waiting for the restarted webhook: %w", err)
	}
	rep.comps.setWebhook(hook.pid())
	settle("after restarting the webhook")
	if m, err := hook.memory(ctx, fmt.Sprintf("restarted with %d Services, %d PluginChains (listed)", o.services, o.chains)); err == nil {
		rep.memory = append(rep.memory, m)
	}

	noop, err := startNoopWebhook(ctx, cl, cs, o.capture != "")
	if err != nil {
		return err
	}
	defer noop.close()
	rep.comps.setNoopHost(noop.pid())
	if err := noop.startReplay(ctx, s, cl, cs); err != nil {
		return err
	}
	if o.capture != "" {
		if err := captureReview(ctx, s, noop, o.capture); err != nil {
			return err
		}
		rep.capture = o.capture
	}

	settle("before creating pods")
	// The profile spans the rounds and the sustained phases: the webhook is idle in the
	// other modes' pods, so it is the profile of ours.
	var prof *cpuProfiler
	if p, ok := hook.(*processWebhook); ok && p.pprofAddr != "" && o.cpuProfile != "" {
		prof = startCPUProfile(ctx, p.pprofAddr, o.cpuProfile)
	}
	if err := createPods(ctx, s, cs, hook, noop, o, rep); err != nil {
		return err
	}
	if o.sustained > 0 && o.pods > 0 {
		if rep.sustained, err = sustain(ctx, cs, rep.comps, o.sustained); err != nil {
			return err
		}
	}
	if prof != nil {
		if err := prof.stop(); err != nil {
			logf("%v", err)
		}
	}
	settle("after creating pods")
	injected := o.pods + o.warmup
	if res, ok := rep.sustained["ours"]; ok {
		injected += res.pods
	}
	if m, err := hook.memory(ctx, fmt.Sprintf("after the run (+%d injected pods in its cache)", injected)); err == nil {
		rep.memory = append(rep.memory, m)
	}
	rep.load[1] = loadavg()
	return rep.write(o.out)
}

// The policy: the Service, PluginChain and PluginConfig of the bench's app in nsOurs, and
// the seed's CORS Plugin.
var policyYAML = fmt.Sprintf(`apiVersion: plugin.flomesh.io/v1alpha1
kind: Plugin
metadata:
  name: cors-policy
  annotations:
    corsmesh.io/implements: cors
spec:
  priority: 165
  pipyscript: "// implemented natively by corsmesh"
---
apiVersion: v1
kind: Service
metadata: {name: %[2]s, namespace: %[1]s}
spec:
  selector: {app: %[2]s}
  ports: [{name: http, port: 80, targetPort: 8080, protocol: TCP}]
---
apiVersion: plugin.flomesh.io/v1alpha1
kind: PluginChain
metadata: {name: %[2]s, namespace: %[1]s}
spec:
  chains: [{name: inbound-http, plugins: [cors-policy]}]
  selectors:
    podSelector: {matchLabels: {app: %[2]s}}
    namespaceSelector:
      matchExpressions: [{key: openservicemesh.io/monitored-by, operator: In, values: [osm]}]
---
apiVersion: plugin.flomesh.io/v1alpha1
kind: PluginConfig
metadata: {name: %[2]s, namespace: %[1]s}
spec:
  plugin: cors-policy
  destinationRefs: [{kind: Service, name: %[2]s, namespace: %[1]s}]
  config:
    allowCredentials: true
    allowHeaders: [X-Foo-Bar-1]
    allowMethods: [POST, GET, PATCH, DELETE]
    allowOrigins: [{regex: "http.*://www.test.cn"}, {exact: "http://www.aaa.com"}, {prefix: "http://www.bbb.com"}]
    exposeHeaders: [Content-Encoding, Kuma-Revision]
    maxAge: 24h
`, nsOurs, appName)

func appService(ns string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: appName, Namespace: ns},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": appName},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}},
		},
	}
}

func sentinel() *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: sentinelService, Namespace: nsOurs},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{sentinelLabel: "yes"},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 81, TargetPort: intstr.FromInt32(sentinelPort), Protocol: corev1.ProtocolTCP}},
		},
	}
}

// benchPod is the pod created in every mode.
func benchPod(extraLabels map[string]string) *corev1.Pod {
	labels := map[string]string{"app": appName}
	for k, v := range extraLabels {
		labels[k] = v
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: appName + "-", Labels: labels},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name:  "app",
			Image: "registry.example/app:1",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
		}}},
	}
}

// injectedPorts returns the ports a created pod's corsproxy-init redirects ("" when the
// pod is not injected).
func injectedPorts(pod *corev1.Pod) string {
	hasProxy := false
	ports := ""
	for _, c := range pod.Spec.InitContainers {
		switch c.Name {
		case injector.ProxyContainerName:
			hasProxy = true
		case injector.InitContainerName:
			for _, a := range c.Args {
				if v, ok := strings.CutPrefix(a, "--inbound-ports="); ok {
					ports = v
				}
			}
		}
	}
	if !hasProxy || pod.Annotations[injector.AnnotationConfig] == "" {
		return ""
	}
	return ports
}

// waitInjected polls dry-run creates of the bench pod (with extra labels) in nsOurs until
// the webhook injects it on every port the labels should give it.
func waitInjected(ctx context.Context, cs kubernetes.Interface, extra map[string]string) error {
	want := "8080"
	if extra[sentinelLabel] != "" {
		want = "8080," + strconv.Itoa(sentinelPort)
	}
	var last string
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		pod, err := cs.CoreV1().Pods(nsOurs).Create(ctx, benchPod(extra), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		last = "ports " + injectedPorts(pod)
		return injectedPorts(pod) == want, nil
	})
	if err != nil {
		return fmt.Errorf("%w (last: %s; want ports %s)", err, last, want)
	}
	return nil
}

// loadCluster creates chains-1 PluginChains selecting nothing and the Services, over
// nsOurs and bench-svc-1..99, with a worker pool.
func loadCluster(ctx context.Context, cs kubernetes.Interface, cl client.Client, comps *components, o options) (string, []loadPhase, error) {
	nsOf := func(i int) string {
		if i%serviceNamespaces == 0 {
			return nsOurs
		}
		return fmt.Sprintf("bench-svc-%d", i%serviceNamespaces)
	}
	for i := 1; i < serviceNamespaces; i++ {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: nsOf(i)}}
		if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return "", nil, err
		}
	}
	note := "headless Services (clusterIP: None; --cluster-ips for ClusterIPs)"
	if !o.clusterIPs {
		// The Services' IP allocation is kube-apiserver's business, not the webhook's,
		// and costs minutes of its CPU for 10,000 of them.
	} else if o.services > 200 {
		// envtest's service-cluster-ip-range is a /24: add a ServiceCIDR (GA since 1.33)
		// so that 10,000 Services get cluster IPs as in a real cluster.
		if err := addServiceCIDR(ctx, cs); err != nil {
			logf("no ServiceCIDR (%v): creating headless Services", err)
			note = "headless Services (clusterIP: None): " + err.Error()
		} else {
			note = "ClusterIP Services (ServiceCIDR " + serviceCIDR + " added to envtest's /24)"
		}
	} else {
		note = "ClusterIP Services"
	}
	headless := strings.HasPrefix(note, "headless")

	createChains := func(ctx context.Context, i int) error {
		chain := &v1alpha1.PluginChain{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("chain-%d", i), Namespace: nsOf(i)},
			Spec: v1alpha1.PluginChainSpec{
				Chains: []v1alpha1.ChainPluginSpec{{Name: v1alpha1.ChainInboundHTTP, Plugins: []string{"cors-policy"}}},
				Selectors: v1alpha1.ChainSelectorSpec{
					PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app": fmt.Sprintf("app-%d", i)}},
					NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: injector.LabelMonitoredBy, Operator: metav1.LabelSelectorOpIn, Values: []string{"osm"}}}},
				},
			},
		}
		return retry(ctx, func() error { return cl.Create(ctx, chain) })
	}
	createServices := func(ctx context.Context, i int) error {
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("svc-%d", i), Namespace: nsOf(i)},
			Spec: corev1.ServiceSpec{
				Selector: map[string]string{"app": fmt.Sprintf("app-%d", i)},
				Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}},
			},
		}
		if headless {
			svc.Spec.ClusterIP = corev1.ClusterIPNone
		}
		return retry(ctx, func() error {
			_, err := cs.CoreV1().Services(svc.Namespace).Create(ctx, svc, metav1.CreateOptions{})
			return err
		})
	}
	phases := []loadPhase{{name: "Services", n: o.services, create: createServices}, {name: "PluginChains", n: o.chains - 1, create: createChains}}
	if o.chainsFirst {
		phases[0], phases[1] = phases[1], phases[0]
	}
	for i := range phases {
		ph := &phases[i]
		logf("creating %d %s", ph.n, ph.name)
		start, before := time.Now(), comps.sample()
		var done atomic.Int64
		err := parallel(ctx, 16, ph.n, func(ctx context.Context, i int) error {
			if n := done.Add(1); n%2000 == 0 {
				logf("  %d/%d %s created", n, ph.n, ph.name)
			}
			return ph.create(ctx, i)
		})
		if err != nil {
			return note, nil, err
		}
		ph.took, ph.cpu = time.Since(start), comps.sample().sub(before)
		logf("  %d %s in %s; corsmesh-webhook used %s of CPU", ph.n, ph.name, ph.took.Round(100*time.Millisecond), ph.cpu.procs[webhookProcName].Round(10*time.Millisecond))
	}
	return note, phases, nil
}

// loadPhase is the creation of one kind of object in loadCluster.
type loadPhase struct {
	name   string
	n      int
	create func(context.Context, int) error
	took   time.Duration
	cpu    cpuSample
}

func retry(ctx context.Context, fn func() error) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if err = fn(); err == nil || apierrors.IsAlreadyExists(err) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt+1) * 200 * time.Millisecond):
		}
	}
	return err
}

func parallel(ctx context.Context, workers, n int, fn func(context.Context, int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(ctx, i); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

func addServiceCIDR(ctx context.Context, cs kubernetes.Interface) error {
	sc := &networkingv1.ServiceCIDR{ObjectMeta: metav1.ObjectMeta{Name: "bench"}, Spec: networkingv1.ServiceCIDRSpec{CIDRs: []string{serviceCIDR}}}
	if _, err := cs.NetworkingV1().ServiceCIDRs().Create(ctx, sc, metav1.CreateOptions{}); err != nil {
		return err
	}
	return wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		got, err := cs.NetworkingV1().ServiceCIDRs().Get(ctx, "bench", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, c := range got.Status.Conditions {
			if c.Type == networkingv1.ServiceCIDRConditionReady && c.Status == metav1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
}

// waitForEndpointSlices waits until kube-controller-manager has created the Services'
// EndpointSlices, so that its work does not overlap the measurements.
func waitForEndpointSlices(ctx context.Context, cs kubernetes.Interface, want int) error {
	start := time.Now()
	var n int64
	err := wait.PollUntilContextTimeout(ctx, time.Second, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		list, err := cs.DiscoveryV1().EndpointSlices("").List(ctx, metav1.ListOptions{Limit: 1})
		if err != nil {
			return false, nil
		}
		n = int64(len(list.Items))
		if list.RemainingItemCount != nil {
			n += *list.RemainingItemCount
		}
		return n >= int64(want), nil
	})
	logf("kube-controller-manager: %d EndpointSlices (%s)", n, time.Since(start).Round(time.Second))
	return err
}

// Pod creation.

type mode struct {
	name, ns string
}

var modes = []mode{{"none", nsNone}, {"no-op", nsNoop}, {"replay", nsReplay}, {"ours", nsOurs}}

type modeResult struct {
	latencies   []time.Duration // in creation order
	roundMedian []time.Duration
	injected    int
	failures    int
	cpu         cpuSample // CPU used during this mode's batches
}

func createPods(ctx context.Context, s *sandbox.Sandbox, cs kubernetes.Interface, hook webhookUnderTest, noop *noopHost, o options, rep *report) error {
	if o.pods == 0 {
		return nil
	}
	create := func(m mode) (time.Duration, *corev1.Pod, error) {
		pod := benchPod(nil)
		start := time.Now()
		created, err := cs.CoreV1().Pods(m.ns).Create(ctx, pod, metav1.CreateOptions{})
		return time.Since(start), created, err
	}
	logf("warm-up: %d pods per mode", o.warmup)
	for _, m := range modes {
		for range o.warmup {
			if _, _, err := create(m); err != nil {
				return fmt.Errorf("warm-up pod in %s: %w", m.ns, err)
			}
		}
	}

	ourBefore, err := hook.counters(ctx)
	if err != nil {
		return fmt.Errorf("reading the webhook's counters: %w", err)
	}
	noopBefore, err := noop.state(ctx)
	if err != nil {
		return err
	}
	if err := noop.resetNamespaces(ctx); err != nil {
		return err
	}
	apiBefore, reqBefore, err := apiserverWebhookMetrics(ctx, s)
	if err != nil {
		return err
	}

	for _, m := range modes {
		rep.results[m.name] = &modeResult{cpu: cpuSample{procs: map[string]time.Duration{}}}
	}
	rounds := (o.pods + o.batch - 1) / o.batch
	rep.rounds = rounds
	logf("creating %d pods per mode in %d rounds of %d", o.pods, rounds, o.batch)
	for r := range rounds {
		n := min(o.batch, o.pods-r*o.batch)
		for k := range modes {
			m := modes[(k+r)%len(modes)] // rotate, so no mode always follows another
			res := rep.results[m.name]
			var round []time.Duration
			before := rep.comps.sample()
			for range n {
				d, pod, err := create(m)
				if err != nil {
					res.failures++
					logf("creating a pod in %s: %v", m.ns, err)
					if res.failures > 10 {
						return fmt.Errorf("creating pods in %s: %w", m.ns, err)
					}
					continue
				}
				round = append(round, d)
				if injectedPorts(pod) != "" {
					res.injected++
					if rep.mounts == "" {
						rep.mounts = containerMounts(pod)
					}
				}
			}
			res.cpu = res.cpu.add(rep.comps.sample().sub(before))
			res.latencies = append(res.latencies, round...)
			res.roundMedian = append(res.roundMedian, quantile(sorted(round), 0.5))
		}
		if (r+1)%5 == 0 || r == rounds-1 {
			logf("  round %d/%d: median none %s, no-op %s, replay %s, ours %s", r+1, rounds,
				fmtMs(rep.results["none"].roundMedian[r]), fmtMs(rep.results["no-op"].roundMedian[r]), fmtMs(rep.results["replay"].roundMedian[r]), fmtMs(rep.results["ours"].roundMedian[r]))
		}
	}

	// Who called whom.
	ourAfter, err := hook.counters(ctx)
	if err != nil {
		return err
	}
	apiAfter, reqAfter, err := apiserverWebhookMetrics(ctx, s)
	if err != nil {
		return err
	}
	created := map[string]int{}
	for _, m := range modes {
		created[m.name] = len(rep.results[m.name].latencies)
	}
	rep.requests = map[string]float64{}
	for k, v := range reqAfter {
		if d := v - reqBefore[k]; d >= 1 {
			rep.requests[k] = d
		}
	}
	rep.apiCalls = map[string]apiWebhook{}
	var totalCalls float64
	for name, after := range apiAfter {
		d := apiWebhook{calls: after.calls - apiBefore[name].calls, seconds: after.seconds - apiBefore[name].seconds}
		if d.calls > 0 {
			rep.apiCalls[name] = d
			totalCalls += d.calls
		}
	}
	check := func(ok bool, format string, args ...any) {
		line := fmt.Sprintf(format, args...)
		if ok {
			rep.checks = append(rep.checks, "✓ "+line)
		} else {
			rep.checks = append(rep.checks, "✗ "+line)
			rep.failures = append(rep.failures, line)
		}
	}
	ours := ourAfter.sub(ourBefore)
	rep.calls = ours
	noopAfter, err := noop.state(ctx)
	if err != nil {
		return err
	}
	noopCalls, replayCalls := noopAfter.Calls-noopBefore.Calls, noopAfter.ReplayCalls-noopBefore.ReplayCalls
	ourAPI, noopAPI, replayAPI := rep.apiCalls[corsmeshHookName].calls, rep.apiCalls[noopWebhookName].calls, rep.apiCalls[replayWebhookName].calls
	check(totalCalls == ourAPI+noopAPI+replayAPI && ourAPI == ours.requests && noopAPI == float64(noopCalls) && replayAPI == float64(replayCalls),
		"the API server called only the three webhooks (apiserver_admission_webhook_admission_duration_seconds_count: %s %.0f, %s %.0f, %s %.0f), matching their own counts (controller_runtime_webhook_requests_total %.0f, no-op %d, replay %d)",
		corsmeshHookName, ourAPI, noopWebhookName, noopAPI, replayWebhookName, replayAPI, ours.requests, noopCalls, replayCalls)
	check(ours.injected == float64(created["ours"]) && ours.requests == ours.injected+ours.skippedTotal() && ours.skipped[string(injector.ReasonNamespaceNotMonitored)] == 0,
		"corsmesh-webhook injected %.0f pods for %d created in %s; its other %.0f calls were skips %v, none namespace-not-monitored: no pod of %s reached it",
		ours.injected, created["ours"], nsOurs, ours.skippedTotal(), ours.skipped, nsNone)
	check(noopCalls == int64(created["no-op"]) && slices.Equal(noopAfter.Namespaces, []string{nsNoop}),
		"the no-op webhook served %d requests for %d pods created in %s, all for that namespace (%v)", noopCalls, created["no-op"], nsNoop, noopAfter.Namespaces)
	check(rep.results["ours"].injected == created["ours"] && rep.results["replay"].injected == created["replay"],
		"%d of %d pods created in %s and %d of %d in %s carry the sidecar (corsproxy-init redirecting 8080, corsproxy, config annotation)",
		rep.results["ours"].injected, created["ours"], nsOurs, rep.results["replay"].injected, created["replay"], nsReplay)
	check(rep.results["none"].injected == 0 && rep.results["no-op"].injected == 0, "no pod in %s or %s was injected", nsNone, nsNoop)
	for _, c := range rep.checks {
		logf("%s", c)
	}
	return nil
}

// containerMounts lists the volume mounts of a pod's init containers.
func containerMounts(pod *corev1.Pod) string {
	var parts []string
	for _, c := range pod.Spec.InitContainers {
		var mounts []string
		for _, m := range c.VolumeMounts {
			mounts = append(mounts, m.Name+"→"+m.MountPath)
		}
		parts = append(parts, fmt.Sprintf("%s [%s]", c.Name, strings.Join(mounts, ", ")))
	}
	return strings.Join(parts, "; ")
}

// apiWebhook is what the API server's metrics say of one webhook.
type apiWebhook struct{ calls, seconds float64 }

// apiserverWebhookMetrics reads apiserver_admission_webhook_admission_duration_seconds
// (count and sum) by webhook name, and apiserver_request_total by verb and resource, from
// the API server's /metrics.
func apiserverWebhookMetrics(ctx context.Context, s *sandbox.Sandbox) (map[string]apiWebhook, map[string]float64, error) {
	samples, err := s.APIServerMetrics(ctx)
	if err != nil {
		return nil, nil, err
	}
	out := map[string]apiWebhook{}
	requests := map[string]float64{}
	for _, s := range samples {
		name := s.Labels["name"]
		switch s.Name {
		case "apiserver_request_total":
			resource := s.Labels["resource"]
			if g := s.Labels["group"]; g != "" {
				resource += "." + g
			}
			if sub := s.Labels["subresource"]; sub != "" {
				resource += "/" + sub
			}
			requests[s.Labels["verb"]+" "+resource] += s.Value
		case "apiserver_admission_webhook_admission_duration_seconds_count":
			w := out[name]
			w.calls += s.Value
			out[name] = w
		case "apiserver_admission_webhook_admission_duration_seconds_sum":
			w := out[name]
			w.seconds += s.Value
			out[name] = w
		}
	}
	return out, requests, nil
}

// The webhook under test: the corsmesh-webhook binary or the sandbox's in-process one.

type memSample struct {
	when                string
	rssKiB, hwmKiB      int64 // the process (binary only)
	anonKiB, fileKiB    int64 // VmRSS split: anonymous (heap, stacks) and file-backed (the binary's pages)
	heapLive, heapInuse float64
	goroutines          float64
}

type webhookUnderTest interface {
	counters(ctx context.Context) (webhookCounters, error)
	memory(ctx context.Context, when string) (memSample, error)
	restart(ctx context.Context) error
	pid() int
}

// webhookCounters are corsmesh-webhook's admission metrics for mutate-pods.
type webhookCounters struct {
	requests, injected float64
	skipped            map[string]float64 // by reason
	// reconciles are controller_runtime_reconcile_total by "controller result" (the
	// process webhook only).
	reconciles map[string]float64
}

func (c webhookCounters) sub(before webhookCounters) webhookCounters {
	out := webhookCounters{requests: c.requests - before.requests, injected: c.injected - before.injected, skipped: map[string]float64{}, reconciles: map[string]float64{}}
	for r, v := range c.skipped {
		if d := v - before.skipped[r]; d != 0 {
			out.skipped[r] = d
		}
	}
	for r, v := range c.reconciles {
		if d := v - before.reconciles[r]; d != 0 {
			out.reconciles[r] = d
		}
	}
	return out
}

func (c webhookCounters) skippedTotal() float64 {
	var t float64
	for _, v := range c.skipped {
		t += v
	}
	return t
}

type processWebhook struct {
	s   *sandbox.Sandbox
	bin string
	// bare is the memory floor (baremanager) instead of corsmesh-webhook: on a port of its
	// own, beside it, and ready without answering the API server's calls.
	bare        bool
	port        int // bare: where its webhook server listens
	cmd         *exec.Cmd
	done        chan error
	metricsAddr string
	healthAddr  string
	pprof       bool   // serve net/http/pprof (--cpu-profile)
	pprofAddr   string // when pprof
	heapDir     string // heap profiles at each memory reading (needs pprof)
	logPath     string
}

func (p *processWebhook) start(ctx context.Context) error {
	mp, err := sandbox.FreePort()
	if err != nil {
		return err
	}
	hp, err := sandbox.FreePort()
	if err != nil {
		return err
	}
	p.metricsAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(mp))
	p.healthAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(hp))
	name, port := webhookProcName, p.s.WebhookPort
	if p.bare {
		name = "baremanager"
		if p.port == 0 {
			if p.port, err = sandbox.FreePort(); err != nil {
				return err
			}
		}
		port = p.port
	}
	p.logPath = filepath.Join(p.s.WorkDir, name+".log")
	logFile, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	args := []string{
		"--cert-dir", p.s.WebhookCertDir,
		"--port", strconv.Itoa(port),
		"--host", "127.0.0.1",
		"--kubeconfig", p.s.KubeconfigPath,
		"--leader-elect=false",
		"--metrics-addr", p.metricsAddr,
		"--health-addr", p.healthAddr,
	}
	if p.pprof {
		pp, err := sandbox.FreePort()
		if err != nil {
			return err
		}
		p.pprofAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(pp))
		args = append(args, "--pprof-addr", p.pprofAddr)
	}
	p.cmd = exec.Command(p.bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	// Never outlive this program.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		logFile.Close()
		return err
	}
	p.done = make(chan error, 1)
	go func() { p.done <- p.cmd.Wait(); logFile.Close() }()
	logf("started %s (pid %d) on 127.0.0.1:%d, metrics %s, readyz %s", name, p.cmd.Process.Pid, port, p.metricsAddr, p.healthAddr)

	hc := &http.Client{Timeout: 2 * time.Second}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		select {
		case err := <-p.done:
			p.done <- err
			return false, fmt.Errorf("%s exited: %v%s", name, err, tail(p.logPath))
		default:
		}
		resp, err := hc.Get("http://" + p.healthAddr + "/readyz")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || p.bare {
			return resp.StatusCode == http.StatusOK, nil
		}
		probe := &v1alpha1.Plugin{}
		probe.Name = "bench-readiness-probe"
		return p.s.Client.Create(ctx, probe, client.DryRunAll) == nil, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for %s: %w%s", name, err, tail(p.logPath))
	}
	return nil
}

func (p *processWebhook) stop() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	p.cmd = nil
}

// floorMemory starts the bare manager beside corsmesh-webhook, reads its memory once the
// machine is idle again, and stops it.
func floorMemory(ctx context.Context, bare *processWebhook, settle func(what string)) (memSample, error) {
	if err := bare.start(ctx); err != nil {
		return memSample{}, err
	}
	defer bare.stop()
	settle("after starting the bare manager")
	return bare.memory(ctx, "for scale: a bare controller-runtime manager ("+baremanagerPkg+"), ready")
}

func (p *processWebhook) restart(ctx context.Context) error {
	logf("restarting corsmesh-webhook")
	p.stop()
	return p.start(ctx)
}

func (p *processWebhook) metrics(ctx context.Context) ([]sandbox.Sample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.metricsAddr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	return sandbox.ParseMetrics(resp.Body)
}

func (p *processWebhook) counters(ctx context.Context) (webhookCounters, error) {
	c := webhookCounters{skipped: map[string]float64{}, reconciles: map[string]float64{}}
	samples, err := p.metrics(ctx)
	if err != nil {
		return c, err
	}
	for _, s := range samples {
		switch {
		case s.Name == "controller_runtime_webhook_requests_total" && s.Labels["webhook"] == webhook.PathMutatePods:
			c.requests += s.Value // summed over the response codes
		case s.Name == "corsmesh_webhook_injected_total":
			c.injected = s.Value
		case s.Name == "corsmesh_webhook_skipped_total":
			c.skipped[s.Labels["reason"]] = s.Value
		case s.Name == "controller_runtime_reconcile_total":
			c.reconciles[s.Labels["controller"]+" "+s.Labels["result"]] = s.Value
		}
	}
	return c, nil
}

func (p *processWebhook) pid() int { return p.cmd.Process.Pid }

func (p *processWebhook) memory(ctx context.Context, when string) (memSample, error) {
	m := memSample{when: when}
	if p.heapDir != "" {
		if err := p.heapProfile(ctx, when); err != nil {
			return m, err
		}
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return m, err
	}
	for line := range strings.Lines(string(status)) {
		f := strings.Fields(line)
		if len(f) >= 2 {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			switch f[0] {
			case "VmRSS:":
				m.rssKiB = v
			case "VmHWM:":
				m.hwmKiB = v
			case "RssAnon:":
				m.anonKiB = v
			case "RssFile:":
				m.fileKiB = v
			}
		}
	}
	samples, err := p.metrics(ctx)
	if err != nil {
		return m, err
	}
	for _, s := range samples {
		switch s.Name {
		case "go_gc_heap_live_bytes":
			m.heapLive = s.Value
		case "go_memstats_heap_inuse_bytes":
			m.heapInuse = s.Value
		case "go_goroutines":
			m.goroutines = s.Value
		}
	}
	logf("memory (%s): VmRSS %.1f MiB (anon %.1f, file %.1f), VmHWM %.1f MiB, live heap %.1f MiB", when, float64(m.rssKiB)/1024, float64(m.anonKiB)/1024, float64(m.fileKiB)/1024, float64(m.hwmKiB)/1024, m.heapLive/(1<<20))
	return m, nil
}

// inProcessWebhook is the sandbox's webhook, in this process: its memory is this process's
// heap, which also holds the sandbox's cert-manager and clients.
type inProcessWebhook struct{ s *sandbox.Sandbox }

func (w *inProcessWebhook) counters(context.Context) (webhookCounters, error) {
	c := webhookCounters{skipped: map[string]float64{}}
	srv := w.s.WebhookServer()
	if srv == nil {
		return c, errors.New("the webhook is not running")
	}
	requests, err := webhookRequests(webhook.PathMutatePods)
	if err != nil {
		return c, err
	}
	c.requests = requests
	c.injected = testutil.ToFloat64(srv.Metrics.Injected)
	for _, r := range injector.Reasons() {
		c.skipped[string(r)] = testutil.ToFloat64(srv.Metrics.Skipped.WithLabelValues(string(r)))
	}
	return c, nil
}

func (w *inProcessWebhook) pid() int { return os.Getpid() }

func (w *inProcessWebhook) memory(_ context.Context, when string) (memSample, error) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m := memSample{when: when, heapLive: float64(ms.HeapAlloc), heapInuse: float64(ms.HeapInuse), goroutines: float64(runtime.NumGoroutine())}
	logf("memory (%s, whole bench process after GC): heap %.1f MiB", when, m.heapLive/(1<<20))
	return m, nil
}

func (w *inProcessWebhook) restart(ctx context.Context) error {
	if err := w.s.StopWebhook(); err != nil {
		return err
	}
	return w.s.StartWebhook(ctx)
}

// captureReview deploys the seed's pipy Deployments (manifests/samples/pipy.yaml) in
// namespace pipy and writes the AdmissionReview the API server sends the no-op webhook
// for the first pipy-ok-v1 pod.
func captureReview(ctx context.Context, s *sandbox.Sandbox, noop *noopHost, path string) error {
	if err := s.CreateNamespace(ctx, captureNamespace, map[string]string{injector.LabelMonitoredBy: "osm"}, map[string]string{injector.AnnotationSidecarInjection: "enabled"}); err != nil {
		return err
	}
	manifest, err := os.ReadFile(filepath.Join(s.RepoRoot, "manifests", "samples", "pipy.yaml"))
	if err != nil {
		return err
	}
	if _, err := s.Apply(ctx, manifest, sandbox.ApplyOptions{Namespace: captureNamespace}); err != nil {
		return err
	}
	var body []byte
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		st, err := noop.state(ctx)
		body = st.Captured
		return len(body) > 0, err
	})
	if err != nil {
		return fmt.Errorf("no pipy-ok-v1 pod reached the no-op webhook within 90s: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(path, body, 0o644); err != nil {
		return err
	}
	logf("captured the AdmissionReview of a pipy-ok-v1 pod (%d bytes) to %s", len(body), path)
	return nil
}

// The handler benchmark.

type handlerResult struct {
	command string
	rows    []benchRow
	raw     string
}

type benchRow struct {
	name    string
	metrics map[string][]float64 // unit → one value per -count
}

func runHandlerBench(ctx context.Context, root string, o options) (*handlerResult, error) {
	args := []string{"test", "./webhook/admit", "-run", "^$", "-bench", "^BenchmarkAdmission$", "-benchmem", "-benchtime", o.benchtime, "-count", strconv.Itoa(o.benchcount)}
	logf("go %s", strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	res := &handlerResult{command: "go " + strings.Join(args, " "), raw: string(out)}
	byName := map[string]*benchRow{}
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "BenchmarkAdmission/") {
			continue
		}
		name := strings.TrimPrefix(f[0], "BenchmarkAdmission/")
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			name = name[:i] // GOMAXPROCS suffix
		}
		row := byName[name]
		if row == nil {
			row = &benchRow{name: name, metrics: map[string][]float64{}}
			byName[name] = row
			res.rows = append(res.rows, *row)
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err == nil {
				row.metrics[f[i+1]] = append(row.metrics[f[i+1]], v)
			}
		}
	}
	for i := range res.rows {
		res.rows[i] = *byName[res.rows[i].name]
	}
	return res, nil
}

// Statistics.

func sorted(d []time.Duration) []time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s
}

// quantile of sorted durations, linearly interpolated.
func quantile(s []time.Duration, q float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	pos := q * float64(len(s)-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, len(s)-1)
	frac := pos - float64(lo)
	return time.Duration(float64(s[lo]) + frac*float64(s[hi]-s[lo]))
}

func medianFloat(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// bootstrapResamples is how many resamples medianInterval draws.
const bootstrapResamples = 2000

// medianInterval is a 95 % bootstrap interval of v's median: the 2.5th and 97.5th
// percentiles of the medians of resamples of v, drawn with replacement. The seed is fixed,
// so that a report's interval can be recomputed from its raw rounds.
func medianInterval(v []float64) (lo, hi float64) {
	if len(v) == 0 {
		return math.NaN(), math.NaN()
	}
	rng := rand.New(rand.NewPCG(1, 2))
	medians := make([]float64, bootstrapResamples)
	sample := make([]float64, len(v))
	for i := range medians {
		for j := range sample {
			sample[j] = v[rng.IntN(len(v))]
		}
		medians[i] = medianFloat(sample)
	}
	sort.Float64s(medians)
	return medians[bootstrapResamples*25/1000], medians[bootstrapResamples*975/1000-1]
}

func fmtMs(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/1e6) }

// Report.

func (r *report) write(dir string) error {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	o := r.opts
	title := ""
	if o.label != "" {
		title = ": " + o.label
	}
	p("# corsmesh webhook benchmark, %s%s", r.started.Format("2006-01-02 15:04:05 UTC"), title)
	p("")
	for _, m := range r.machine {
		p("- %s", m)
	}
	p("- load average: %s at start, %s at end", r.load[0], r.load[1])
	p("- command: `%s`", r.command)
	hookKind := "the corsmesh-webhook binary (`go build -trimpath -ldflags='-s -w' ./cmd/corsmesh-webhook`, as the image's) as a separate process against the sandbox's kubeconfig, on the port the local overlay's webhook configurations call, with the sandbox's cert dir; --leader-elect=false, default GOMAXPROCS"
	if o.inProcess {
		hookKind = "the sandbox's in-process webhook"
	} else if o.webhookBin != "" {
		hookKind = "the corsmesh-webhook binary " + o.webhookBin + " (--webhook-bin) as a separate process; otherwise as without it"
	}
	p("- setup: test/sandbox (etcd, kube-apiserver, kube-controller-manager, cert-manager in-process) with %s; everything on loopback on this machine, sharing its %d cores", hookKind, runtime.NumCPU())
	for _, q := range r.quiesced {
		p("- %s", q)
	}
	p("")

	if h := r.handler; h != nil {
		p("## Admission handler alone (`BenchmarkAdmission`)")
		p("")
		p("`%s`: the admission handler (admit.NewHandler: the review decoded once, the pod with it, then controller-runtime's admission.Webhook.Handle) through httptest with the AdmissionReview the API server sent for the seed's pipy-ok-v1 pod (hack/bench/webhook/testdata), 1,000 PluginChains and 10,000 Services (100 in the pod's namespace). Medians of %d runs. *informers* is what corsmesh-webhook admits through (a watched injector.Resolver over informers.InformerCluster: the shared informers' indexes, no copy, the compiled PluginChains kept between changes) over a real controller-runtime cache fed from memory; *objects* scans in-memory lists (see webhook/admit/bench_test.go).", h.command, o.benchcount)
		p("")
		p("| cluster | ns/op | p50 µs | p99 µs | B/op | allocs/op |")
		p("| --- | --- | --- | --- | --- | --- |")
		for _, row := range h.rows {
			name := strings.TrimPrefix(strings.Split(row.name, "/")[0], "cluster=")
			p("| %s | %.0f | %.1f | %.1f | %.0f | %.0f |", name, medianFloat(row.metrics["ns/op"]), medianFloat(row.metrics["p50-ns"])/1e3, medianFloat(row.metrics["p99-ns"])/1e3, medianFloat(row.metrics["B/op"]), medianFloat(row.metrics["allocs/op"]))
		}
		for _, row := range h.rows {
			if strings.HasPrefix(row.name, "cluster=informers/") {
				p99 := medianFloat(row.metrics["p99-ns"]) / 1e6
				p("")
				p("Target handler p99 ≤ 1 ms (informers, as served): %.3f ms — %s", p99, passFail(p99 <= 1))
			}
		}
		p("")
	}

	if len(r.memory) > 0 {
		p("## Webhook memory")
		p("")
		p("%s. Cluster: %d PluginChains, %d Services over %d namespaces (%s), loaded in %s; the webhook's cache had them %s after the last create.", func() string {
			if o.inProcess {
				return "The whole bench process (sandbox, cert-manager and webhook in one heap), after runtime.GC()"
			}
			return "The corsmesh-webhook process: VmRSS and VmHWM from /proc/<pid>/status, live heap = go_gc_heap_live_bytes (marked live by the last GC) from its /metrics"
		}(), o.chains, o.services, serviceNamespaces, r.svcNote, r.loadTime.Round(time.Second), r.cacheLag.Round(time.Millisecond))
		p("")
		if len(r.phases) > 0 {
			p("Loading (16 concurrent clients; CPU seconds by process while creating):")
			p("")
			p("| created | took | %s | whole machine |", strings.Join(r.comps.names(), " | "))
			p("| --- | --- |%s --- |", strings.Repeat(" --- |", len(r.comps.names())))
			for _, ph := range r.phases {
				var cells []string
				for _, n := range r.comps.names() {
					cells = append(cells, fmt.Sprintf("%.1f s", ph.cpu.procs[n].Seconds()))
				}
				p("| %d %s | %s | %s | %.1f s |", ph.n, ph.name, ph.took.Round(100*time.Millisecond), strings.Join(cells, " | "), ph.cpu.machine.Seconds())
			}
			p("")
		}
		p("| when | VmRSS MiB | RssAnon MiB | RssFile MiB | VmHWM MiB | live heap MiB | heap in use MiB | goroutines |")
		p("| --- | --- | --- | --- | --- | --- | --- | --- |")
		rows := r.memory
		if r.floor.when != "" {
			rows = append([]memSample{r.floor}, rows...)
		}
		for _, m := range rows {
			p("| %s | %s | %s | %s | %s | %.1f | %.1f | %.0f |", m.when, kib(m.rssKiB), kib(m.anonKiB), kib(m.fileKiB), kib(m.hwmKiB), m.heapLive/(1<<20), m.heapInuse/(1<<20), m.goroutines)
		}
		p("")
		if r.floor.when != "" {
			p("The bare manager is controller-runtime's manager as corsmesh-webhook starts it (webhook server, metrics, probes), answering allow-all with no cache and no controller, built alike and measured beside it: the floor of any webhook on controller-runtime on this machine. corsmesh-webhook above it (VmRSS; RssAnon):")
			p("")
			for _, m := range r.memory {
				p("- %s: %+.1f MiB; %+.1f MiB", m.when, float64(m.rssKiB-r.floor.rssKiB)/1024, float64(m.anonKiB-r.floor.anonKiB)/1024)
			}
			p("")
		}
	}

	if len(r.results) > 0 {
		p("## Pod creation through the API server")
		p("")
		p("%d pods per mode, created one at a time (client-side time around `Pods().Create`), in %d rounds of %d interleaved none / no-op / replay / ours (order rotating each round), after %d warm-up pods per mode. Same pod (one container, port 8080, label app=%s) and same Service in each namespace.", o.pods, r.rounds, o.batch, o.warmup, appName)
		p("")
		p("- **none**: namespace %s, selected by no webhook configuration: the API server calls none.", nsNone)
		p("- **no-op**: namespace %s, selected only by MutatingWebhookConfiguration %s: a Go HTTPS server in a process of its own (this program run again), on loopback (self-signed certificate, HTTP/1.1 as the API server speaks to Service webhooks, TLS ≥ 1.2) that decodes the AdmissionReview and allows the pod unchanged.", nsNoop, noopConfigName)
		p("- **replay**: namespace %s, selected only by MutatingWebhookConfiguration %s (corsmesh's reinvocation policy): the same server answers with the very patch corsmesh-webhook returned for this pod (asked once, directly; its %s annotation renamed %s, same length, so that corsmesh's controllers leave these pods alone), or nothing when the pod already carries it: what the API server does for any webhook injecting this sidecar, without corsmesh's work.", nsReplay, replayConfigName, injector.AnnotationStatus, replayStatus)
		p("- **ours**: namespace %s (monitored by mesh osm, holding %d of the Services), selected by corsmesh's %s; a PluginChain, PluginConfig and Service select the pods, so each is injected (checked on every created pod).", nsOurs, o.services/serviceNamespaces, corsmeshHookName)
		p("")
		p("| mode | pods | median ms | p90 ms | p99 ms | mean ms | min ms | max ms | API server's mean webhook call ms |")
		p("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
		stats := map[string][4]time.Duration{}
		for _, m := range modes {
			res := r.results[m.name]
			s := sorted(res.latencies)
			var sum time.Duration
			for _, d := range s {
				sum += d
			}
			mean := time.Duration(0)
			if len(s) > 0 {
				mean = sum / time.Duration(len(s))
			}
			stats[m.name] = [4]time.Duration{quantile(s, 0.5), quantile(s, 0.9), quantile(s, 0.99), mean}
			call := "—"
			hookName := map[string]string{"no-op": noopWebhookName, "replay": replayWebhookName, "ours": corsmeshHookName}[m.name]
			if w, ok := r.apiCalls[hookName]; ok && w.calls > 0 {
				call = fmt.Sprintf("%.2f", w.seconds/w.calls*1e3)
			}
			p("| %s | %d | %s | %s | %s | %s | %s | %s | %s |", m.name, len(s), ms(quantile(s, 0.5)), ms(quantile(s, 0.9)), ms(quantile(s, 0.99)), ms(mean), ms(s[0]), ms(s[len(s)-1]), call)
		}
		p("")
		ratio := func(a, b string, i int) string {
			return fmt.Sprintf("%.3f", float64(stats[a][i])/float64(stats[b][i]))
		}
		roundRatios := func(a, b string) []float64 {
			var rs []float64
			for i := range r.results[a].roundMedian {
				rs = append(rs, float64(r.results[a].roundMedian[i])/float64(r.results[b].roundMedian[i]))
			}
			return rs
		}
		p("| ratio | median | p90 | p99 | mean | median of per-round median ratios | its 95 %% interval |")
		p("| --- | --- | --- | --- | --- | --- | --- |")
		for _, pair := range [][2]string{{"ours", "no-op"}, {"ours", "replay"}, {"replay", "no-op"}, {"no-op", "none"}, {"ours", "none"}} {
			a, b := pair[0], pair[1]
			rs := roundRatios(a, b)
			lo, hi := medianInterval(rs)
			p("| %s / %s | %s | %s | %s | %s | %.3f | %.3f–%.3f |", a, b, ratio(a, b, 0), ratio(a, b, 1), ratio(a, b, 2), ratio(a, b, 3), medianFloat(rs), lo, hi)
		}
		p("")
		p("The interval is a bootstrap over the rounds (%d resamples of the round ratios, drawn with replacement): a ratio whose interval holds 1.0 is not told apart from 1.0 by this run.", bootstrapResamples)
		p("")
		if w := r.apiCalls[corsmeshHookName]; w.calls > 0 && len(r.results["ours"].latencies) > 0 {
			n := float64(len(r.results["ours"].latencies))
			rw := r.apiCalls[replayWebhookName]
			p("The API server called corsmesh's webhook %.2f times per pod (%.0f calls: %.0f injected, skips %v), %.2f ms per call, %.2f ms per pod; the replay webhook %.2f times per pod, %.2f ms per call; the no-op webhook %.2f ms per call.",
				w.calls/n, w.calls, r.calls.injected, r.calls.skipped, w.seconds/w.calls*1e3, w.seconds/n*1e3,
				rw.calls/float64(max(1, len(r.results["replay"].latencies))), rw.seconds/max(1, rw.calls)*1e3,
				r.apiCalls[noopWebhookName].seconds/max(1, r.apiCalls[noopWebhookName].calls)*1e3)
			p("")
		}
		if len(r.calls.reconciles) > 0 {
			var parts []string
			for _, k := range slices.Sorted(maps.Keys(r.calls.reconciles)) {
				parts = append(parts, fmt.Sprintf("%s %.0f", k, r.calls.reconciles[k]))
			}
			p("corsmesh-webhook's reconciles during the measured pods (controller_runtime_reconcile_total, controller and result): %s.", strings.Join(parts, ", "))
			p("")
		}
		if r.mounts != "" {
			p("Init containers of an injected pod as stored, with their volume mounts: %s.", r.mounts)
			p("")
		}
		if len(r.requests) > 0 {
			keys := slices.Collect(maps.Keys(r.requests))
			slices.SortFunc(keys, func(a, b string) int {
				if c := cmpFloat(r.requests[b], r.requests[a]); c != 0 {
					return c
				}
				return strings.Compare(a, b)
			})
			var parts []string
			for _, k := range keys[:min(12, len(keys))] {
				parts = append(parts, fmt.Sprintf("%s %.0f", k, r.requests[k]))
			}
			p("API requests the API server served during the measured pods (apiserver_request_total, all clients; %d pods created per mode): %s.", len(r.results["ours"].latencies), strings.Join(parts, ", "))
			p("")
		}
		p("CPU per pod created, by process (ms; /proc/<pid>/stat during each mode's batches, so work a batch leaves behind is counted in the next one):")
		p("")
		p("| mode | %s | whole machine |", strings.Join(r.comps.names(), " | "))
		p("| --- |%s --- |", strings.Repeat(" --- |", len(r.comps.names())))
		for _, m := range modes {
			res := r.results[m.name]
			n := float64(max(1, len(res.latencies)))
			var cells []string
			for _, name := range r.comps.names() {
				cells = append(cells, fmt.Sprintf("%.2f", float64(res.cpu.procs[name])/1e6/n))
			}
			p("| %s | %s | %.2f |", m.name, strings.Join(cells, " | "), float64(res.cpu.machine)/1e6/n)
		}
		p("")
		perPod := func(mode, proc string) float64 {
			res := r.results[mode]
			return float64(res.cpu.procs[proc]) / 1e6 / float64(max(1, len(res.latencies)))
		}
		p(aboveNoop, perPod("ours", webhookProcName)-perPod("no-op", noopHostName))
		p("")
		med := float64(stats["ours"][0]) / float64(stats["no-op"][0])
		p("Target pod creation with our webhook ≤ 1.05 × the no-op webhook's median: %.3f — %s. Against the replay webhook (the same mutation, none of corsmesh's work): %.3f.", med, passFail(med <= 1.05), float64(stats["ours"][0])/float64(stats["replay"][0]))
		p("")
		r.writeSustained(p)
		p("Checks (webhook counters, the API server's admission metrics, the created pods):")
		p("")
		for _, c := range r.checks {
			p("- %s", c)
		}
		p("")
		p("Per-round medians (ms), in round order:")
		p("")
		for _, m := range modes {
			var parts []string
			for _, d := range r.results[m.name].roundMedian {
				parts = append(parts, ms(d))
			}
			p("- %s: %s", m.name, strings.Join(parts, " "))
		}
		p("")
	}
	if r.capture != "" {
		p("Captured the AdmissionReview of a pipy-ok-v1 pod to `%s`.", r.capture)
		p("")
	}
	if h := r.handler; h != nil {
		p("<details><summary>go test output</summary>")
		p("")
		p("```")
		b.WriteString(strings.TrimRight(h.raw, "\n") + "\n")
		p("```")
		p("</details>")
	}
	text := b.String()
	fmt.Print(text)
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	base := filepath.Join(dir, "webhook-"+r.started.Format("2006-01-02-150405"))
	if err := os.WriteFile(base+".md", []byte(text), 0o644); err != nil {
		return err
	}
	if len(r.results) > 0 {
		var raw strings.Builder
		raw.WriteString("mode\tseq\tlatency_us\n")
		for _, m := range modes {
			for i, d := range r.results[m.name].latencies {
				fmt.Fprintf(&raw, "%s\t%d\t%d\n", m.name, i, d.Microseconds())
			}
		}
		if err := os.WriteFile(base+".raw.tsv", []byte(raw.String()), 0o644); err != nil {
			return err
		}
	}
	logf("wrote %s.md", base)
	if len(r.failures) > 0 {
		return fmt.Errorf("checks failed: %s", strings.Join(r.failures, "; "))
	}
	return nil
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func passFail(ok bool) string {
	if ok {
		return "**met**"
	}
	return "**missed**"
}

func kib(v int64) string {
	if v == 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f", float64(v)/1024)
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func machineInfo(root string) []string {
	model := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	kernel := "?"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(b))
	}
	mem := "?"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				kb, _ := strconv.ParseFloat(f[1], 64)
				mem = fmt.Sprintf("%.0f GiB", kb/(1<<20))
			}
		}
	}
	rev := "?"
	if out, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output(); err == nil {
		rev = strings.TrimSpace(string(out))
		if st, err := exec.Command("git", "-C", root, "status", "--porcelain").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
			rev += " (uncommitted changes)"
		}
	}
	kube, _ := sandbox.PinnedKubeVersion(root)
	deps := map[string]string{}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			deps[d.Path] = d.Version
		}
	}
	return []string{
		fmt.Sprintf("machine: %d cores, %s, %s RAM, Linux %s", runtime.NumCPU(), model, mem, kernel),
		fmt.Sprintf("versions: %s, corsmesh %s, Kubernetes %s (etcd, kube-apiserver, kube-controller-manager from hack/build-controlplane.sh), controller-runtime %s, client-go %s",
			runtime.Version(), rev, kube, deps["sigs.k8s.io/controller-runtime"], deps["k8s.io/client-go"]),
	}
}

func tail(path string) string {
	data, err := os.ReadFile(path)
	if err != nil || len(data) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return "\n--- " + path + " ---\n" + strings.Join(lines, "\n")
}

// webhookRequests is controller-runtime's count of the requests its webhook server served
// on path, in this process, over all response codes.
func webhookRequests(path string) (float64, error) {
	families, err := crmetrics.Registry.Gather()
	if err != nil {
		return 0, fmt.Errorf("gathering metrics: %w", err)
	}
	var n float64
	for _, f := range families {
		if f.GetName() != "controller_runtime_webhook_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "webhook" && l.GetValue() == path {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n, nil
}
