package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/corsmesh/corsmesh/injector"
	"github.com/corsmesh/corsmesh/test/sandbox"
)

// The no-op and replay webhooks run in a process of their own: this program run again with
// noopHostEnv set (runNoopHost). A webhook in a cluster is a process of its own, idle
// between calls, as corsmesh-webhook is here; served from the bench process instead, whose
// threads are kept busy by the client and cert-manager, they were answering the API server
// from threads already awake, a head start no real webhook has.
const noopHostEnv = "CORSMESH_BENCH_NOOP_HOST"

// noopState is what the no-op host has seen, for the bench's checks.
type noopState struct {
	Calls, ReplayCalls int64
	// Namespaces the no-op webhook was called for since the last reset.
	Namespaces []string
	// LastNoopReview is the last review of a pod of nsNoop (startReplay's model).
	LastNoopReview []byte
	// Captured is the first review of a seed pipy-ok-v1 pod, with capture on.
	Captured []byte
}

// noopHello is the no-op host's first line on its standard output.
type noopHello struct {
	Addr  string
	CAPEM []byte
}

// noopWebhook is the no-op host's server: the no-op webhook (/mutate), the replay webhook
// (/replay), and the bench's control requests (/bench/...).
type noopWebhook struct {
	capture     bool
	calls       atomic.Int64
	replayCalls atomic.Int64
	replayPatch atomic.Pointer[[]byte]
	lastReview  atomic.Pointer[[]byte]
	captured    atomic.Pointer[[]byte]

	mu         sync.Mutex
	namespaces map[string]bool
}

// runNoopHost serves the no-op and replay webhooks on a loopback port until its standard
// input closes (the bench ended). It returns the process's exit code.
func runNoopHost() int {
	certPEM, keyPEM, err := selfSignedCert()
	if err == nil {
		err = serveNoopHost(certPEM, keyPEM, os.Getenv(noopHostEnv) == "capture")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "no-op host:", err)
		return 1
	}
	return 0
}

func serveNoopHost(certPEM, keyPEM []byte, capture bool) error {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return err
	}
	// As corsmesh-webhook: TLS 1.2 at least, HTTP/1.1, which is what the API server speaks to
	// any webhook it reaches through a Service (it would use HTTP/2 on this loopback URL if
	// offered, and so measure a path no cluster takes).
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}, NextProtos: []string{"http/1.1"}, MinVersion: tls.VersionTLS12})
	if err != nil {
		return err
	}
	w := &noopWebhook{capture: capture, namespaces: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/mutate", w.serve)
	mux.HandleFunc("/replay", w.replay)
	mux.HandleFunc("GET /bench/state", w.state)
	mux.HandleFunc("POST /bench/reset-namespaces", func(rw http.ResponseWriter, _ *http.Request) {
		w.mu.Lock()
		w.namespaces = map[string]bool{}
		w.mu.Unlock()
	})
	mux.HandleFunc("PUT /bench/replay-patch", func(rw http.ResponseWriter, r *http.Request) {
		patch, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(rw, err.Error(), http.StatusBadRequest)
			return
		}
		w.replayPatch.Store(&patch)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	if err := json.NewEncoder(os.Stdout).Encode(noopHello{Addr: l.Addr().String(), CAPEM: certPEM}); err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, os.Stdin) // until the bench closes it, or ends
	return srv.Close()
}

func (w *noopWebhook) state(rw http.ResponseWriter, _ *http.Request) {
	st := noopState{Calls: w.calls.Load(), ReplayCalls: w.replayCalls.Load()}
	w.mu.Lock()
	st.Namespaces = slices.Sorted(maps.Keys(w.namespaces))
	w.mu.Unlock()
	if b := w.lastReview.Load(); b != nil {
		st.LastNoopReview = *b
	}
	if b := w.captured.Load(); b != nil {
		st.Captured = *b
	}
	rw.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(rw).Encode(&st)
}

// readReview reads an AdmissionReview request, answering 400 itself when it cannot.
func readReview(rw http.ResponseWriter, r *http.Request) ([]byte, *admissionv1.AdmissionReview, bool) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 7<<20))
	if err != nil {
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return nil, nil, false
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil || review.Request == nil {
		http.Error(rw, "malformed AdmissionReview", http.StatusBadRequest)
		return nil, nil, false
	}
	return body, &review, true
}

// writeReview answers a review with resp.
func writeReview(rw http.ResponseWriter, review *admissionv1.AdmissionReview, resp *admissionv1.AdmissionResponse) {
	rw.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(rw).Encode(&admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: resp})
}

func (w *noopWebhook) serve(rw http.ResponseWriter, r *http.Request) {
	w.calls.Add(1)
	body, review, ok := readReview(rw, r)
	if !ok {
		return
	}
	w.mu.Lock()
	w.namespaces[review.Request.Namespace] = true
	w.mu.Unlock()
	if review.Request.Namespace == nsNoop {
		w.lastReview.Store(&body)
	}
	if w.capture && review.Request.Namespace == captureNamespace && w.captured.Load() == nil &&
		bytes.Contains(review.Request.Object.Raw, []byte(`"generateName":"pipy-ok-v1-`)) {
		w.captured.CompareAndSwap(nil, &body)
	}
	writeReview(rw, review, &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true})
}

// replay answers as corsmesh-webhook would for the bench pod, without its work: the
// patch it returned for that pod (it names nothing of the pod's own, so it fits every bench
// pod), or, on a reinvocation, nothing for a pod already carrying the status annotation.
func (w *noopWebhook) replay(rw http.ResponseWriter, r *http.Request) {
	w.replayCalls.Add(1)
	_, review, ok := readReview(rw, r)
	if !ok {
		return
	}
	var pod metav1.PartialObjectMetadata
	if err := json.Unmarshal(review.Request.Object.Raw, &pod); err != nil {
		http.Error(rw, "malformed pod", http.StatusBadRequest)
		return
	}
	resp := &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true}
	if _, injected := pod.Annotations[replayStatus]; !injected {
		if patch := w.replayPatch.Load(); patch != nil {
			resp.Patch, resp.PatchType = *patch, ptr.To(admissionv1.PatchTypeJSONPatch)
		}
	}
	writeReview(rw, review, resp)
}

// noopHost is the bench's side of the no-op host process.
type noopHost struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	addr  string
	caPEM []byte
	hc    *http.Client
}

// startNoopHost starts the no-op host process and reads where it serves.
func startNoopHost(capture bool) (*noopHost, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	mode := "serve"
	if capture {
		mode = "capture"
	}
	h := &noopHost{cmd: exec.Command(self)}
	h.cmd.Env = append(os.Environ(), noopHostEnv+"="+mode)
	h.cmd.Stderr = os.Stderr
	// Never outlive this program.
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if h.stdin, err = h.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := h.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := h.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the no-op host: %w", err)
	}
	var hello noopHello
	if err := json.NewDecoder(bufio.NewReader(stdout)).Decode(&hello); err != nil {
		h.close()
		return nil, fmt.Errorf("reading the no-op host's address: %w", err)
	}
	h.addr, h.caPEM = hello.Addr, hello.CAPEM
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(h.caPEM)
	h.hc = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	return h, nil
}

func (h *noopHost) pid() int { return h.cmd.Process.Pid }

// do sends a control request to the no-op host, decoding its JSON answer into out (if
// not nil).
func (h *noopHost) do(ctx context.Context, method, path string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "https://"+h.addr+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := h.hc.Do(req)
	if err != nil {
		return fmt.Errorf("no-op host %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("no-op host %s %s: HTTP %d: %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	return nil
}

func (h *noopHost) state(ctx context.Context) (noopState, error) {
	var st noopState
	err := h.do(ctx, http.MethodGet, "/bench/state", nil, &st)
	return st, err
}

func (h *noopHost) resetNamespaces(ctx context.Context) error {
	return h.do(ctx, http.MethodPost, "/bench/reset-namespaces", nil, nil)
}

func (h *noopHost) close() {
	if h.stdin != nil {
		h.stdin.Close()
	}
	done := make(chan struct{})
	go func() { _ = h.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = h.cmd.Process.Kill()
		<-done
	}
}

// startNoopWebhook starts the no-op host and registers its no-op webhook for nsNoop (and
// captureNamespace, to capture a review).
func startNoopWebhook(ctx context.Context, cl client.Client, cs kubernetes.Interface, capture bool) (*noopHost, error) {
	h, err := startNoopHost(capture)
	if err != nil {
		return nil, err
	}
	namespaces := []string{nsNoop}
	if capture {
		namespaces = append(namespaces, captureNamespace)
	}
	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: noopConfigName},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    noopWebhookName,
			AdmissionReviewVersions: []string{"v1"},
			ClientConfig: admissionregistrationv1.WebhookClientConfig{
				URL:      ptr.To("https://" + h.addr + "/mutate"),
				CABundle: h.caPEM,
			},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}, Scope: ptr.To(admissionregistrationv1.NamespacedScope)},
			}},
			MatchPolicy: ptr.To(admissionregistrationv1.Equivalent),
			NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
				Key: corev1.LabelMetadataName, Operator: metav1.LabelSelectorOpIn, Values: namespaces,
			}}},
			FailurePolicy:  ptr.To(admissionregistrationv1.Fail),
			SideEffects:    ptr.To(admissionregistrationv1.SideEffectClassNone),
			TimeoutSeconds: ptr.To[int32](5),
		}},
	}
	if err := cl.Create(ctx, cfg); err != nil {
		h.close()
		return nil, fmt.Errorf("registering the no-op webhook: %w", err)
	}
	logf("no-op webhook on https://%s/mutate (process %d), registered as %s", h.addr, h.pid(), noopConfigName)
	// The API server picks configurations up from an informer: wait until it calls us.
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		before, err := h.state(ctx)
		if err != nil {
			return false, err
		}
		if _, err := cs.CoreV1().Pods(nsNoop).Create(ctx, benchPod(nil), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
			return false, nil
		}
		after, err := h.state(ctx)
		return err == nil && after.Calls > before.Calls, err
	})
	if err != nil {
		h.close()
		return nil, fmt.Errorf("waiting for the API server to call the no-op webhook: %w", err)
	}
	return h, nil
}

// startReplay asks corsmesh-webhook directly (as the API server would, over TLS) for its
// patch for the bench pod as the API server last sent it to the no-op webhook, moved to
// nsOurs, hands it to the replay webhook, and registers that for nsReplay with corsmesh's
// reinvocation policy.
func (h *noopHost) startReplay(ctx context.Context, s *sandbox.Sandbox, cl client.Client, cs kubernetes.Interface) error {
	if _, err := cs.CoreV1().Pods(nsNoop).Create(ctx, benchPod(nil), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		return err
	}
	st, err := h.state(ctx)
	if err != nil {
		return err
	}
	if st.LastNoopReview == nil {
		return errors.New("the no-op webhook has seen no bench pod")
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(st.LastNoopReview, &review); err != nil {
		return err
	}
	var pod corev1.Pod
	if err := json.Unmarshal(review.Request.Object.Raw, &pod); err != nil {
		return err
	}
	pod.Namespace = nsOurs
	raw, err := json.Marshal(&pod)
	if err != nil {
		return err
	}
	review.Request.Namespace, review.Request.Object.Raw, review.Request.UID = nsOurs, raw, "bench-replay-capture"
	body, err := json.Marshal(&review)
	if err != nil {
		return err
	}
	ca, err := os.ReadFile(filepath.Join(s.WebhookCertDir, "ca.crt"))
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}, ForceAttemptHTTP2: true}}
	resp, err := hc.Post(fmt.Sprintf("https://127.0.0.1:%d/mutate-pods", s.WebhookPort), "application/json", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("asking corsmesh-webhook for its patch: %w", err)
	}
	defer resp.Body.Close()
	var answer admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil || answer.Response == nil {
		return fmt.Errorf("corsmesh-webhook's answer (HTTP %d): %v", resp.StatusCode, err)
	}
	if !bytes.Contains(answer.Response.Patch, []byte(injector.ProxyContainerName)) {
		return fmt.Errorf("corsmesh-webhook did not inject the bench pod: %+v", answer.Response)
	}
	patch := bytes.ReplaceAll(answer.Response.Patch, []byte(injector.AnnotationStatus), []byte(replayStatus))
	patch = bytes.ReplaceAll(patch, []byte(strings.ReplaceAll(injector.AnnotationStatus, "/", "~1")), []byte(strings.ReplaceAll(replayStatus, "/", "~1")))
	if len(patch) != len(answer.Response.Patch) || !bytes.Contains(patch, []byte("corsmesh.io")) {
		return errors.New("could not rename the status annotation in corsmesh-webhook's patch")
	}
	if err := h.do(ctx, http.MethodPut, "/bench/replay-patch", patch, nil); err != nil {
		return err
	}
	var ours admissionregistrationv1.MutatingWebhookConfiguration
	if err := cl.Get(ctx, client.ObjectKey{Name: sandbox.MutatingWebhookConfigurationName}, &ours); err != nil {
		return err
	}
	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: replayConfigName},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    replayWebhookName,
			AdmissionReviewVersions: []string{"v1"},
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: ptr.To("https://" + h.addr + "/replay"), CABundle: h.caPEM},
			Rules:                   ours.Webhooks[0].Rules,
			MatchPolicy:             ptr.To(admissionregistrationv1.Equivalent),
			NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
				Key: corev1.LabelMetadataName, Operator: metav1.LabelSelectorOpIn, Values: []string{nsReplay},
			}}},
			FailurePolicy:      ptr.To(admissionregistrationv1.Fail),
			SideEffects:        ptr.To(admissionregistrationv1.SideEffectClassNone),
			TimeoutSeconds:     ptr.To[int32](5),
			ReinvocationPolicy: ours.Webhooks[0].ReinvocationPolicy,
		}},
	}
	if err := cl.Create(ctx, cfg); err != nil {
		return fmt.Errorf("registering the replay webhook: %w", err)
	}
	logf("replay webhook on https://%s/replay (%d-byte patch, reinvocation %v), registered as %s", h.addr, len(patch), ptr.Deref(ours.Webhooks[0].ReinvocationPolicy, ""), replayConfigName)
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		pod, err := cs.CoreV1().Pods(nsReplay).Create(ctx, benchPod(nil), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			logf("replay dry run: %v", err)
			return false, nil
		}
		return injectedPorts(pod) == "8080", nil
	})
}

func selfSignedCert() (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "bench no-op webhook"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}
