package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/corsmesh/corsmesh/corsproxy/config"
	"github.com/corsmesh/corsmesh/corsproxy/cors"
	"github.com/corsmesh/corsmesh/corsproxy/proxy"
	"github.com/corsmesh/corsmesh/injector"
	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
	"github.com/corsmesh/corsmesh/injector/manifest"
)

type explainFlags struct {
	files       stringList
	namespace   string
	pod         string
	service     string
	origins     stringList
	method      string
	headers     stringList
	host        string
	port        int
	fromCluster bool
	kubeconfig  string
	diff        string
	opts        injector.Options
}

// errBadInput is a usage error: exit code 2.
var errBadInput = errors.New("bad input")

func badInput(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errBadInput}, args...)...)
}

func runExplain(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	f := explainFlags{opts: injector.DefaultOptions()}
	fs := flag.NewFlagSet("corsmeshctl explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: corsmeshctl explain (--pod NAME | --service NAME) [-n NS] --origin ORIGIN [flags]
       corsmeshctl explain --diff FILE --origin ORIGIN... [-f FILE]... [--from-cluster]

Would the proxy let a browser at ORIGIN read the answer? Runs the proxy's own compiled
policy and host routes for the pod (or a pod the Service selects) and prints the decision,
the PluginConfig, Service and allowOrigins entry that matched (or why none did), and the
headers the proxy would send for the actual request and for its preflight. Objects come
from -f files and, with --from-cluster, the cluster; an injected pod read from the cluster
is explained with the policy in its annotation, and its proxy's /debug/cors is read
through the API server's pod proxy.

--diff FILE takes edited PluginConfigs and prints, for each Service they name, which of
the --origin values change from allowed to refused or back.

Exit status: 0 allowed, 1 refused (or no policy applies), 2 bad input.

Flags:
`)
		fs.PrintDefaults()
	}
	fs.Var(&f.files, "f", "manifest file with the workloads and policy objects; repeatable")
	fs.Var(&f.files, "filename", "same as -f")
	fs.StringVar(&f.namespace, "namespace", "default", "namespace of the pod or Service, and of objects that name none")
	fs.StringVar(&f.namespace, "n", "default", "same as --namespace")
	fs.StringVar(&f.pod, "pod", "", "the pod (or, with -f, a Pod or workload of that name)")
	fs.StringVar(&f.service, "service", "", "the Service the request is sent to")
	fs.Var(&f.origins, "origin", "the request's Origin (repeatable with --diff)")
	fs.StringVar(&f.method, "method", "GET", "the request's method")
	fs.Var(&f.headers, "header", "a request header the page sets (name, or name: value); repeatable")
	fs.StringVar(&f.host, "host", "", "the request's Host (default: the Service's name.namespace)")
	fs.IntVar(&f.port, "port", 0, "the pod port the request reaches (default: the Service's target port, or the pod's only intercepted port)")
	fs.BoolVar(&f.fromCluster, "from-cluster", false, "also read objects from the cluster")
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig for --from-cluster")
	fs.StringVar(&f.diff, "diff", "", "file of edited PluginConfigs to compare with the current ones")
	positional, code := parseFlags(fs, args)
	if code >= 0 {
		return code
	}
	err := func() error {
		if len(positional) > 0 {
			return badInput("unexpected arguments %q", positional)
		}
		var remote client.Reader
		if f.fromCluster {
			c, err := newClient(f.kubeconfig)
			if err != nil {
				return fmt.Errorf("--from-cluster: %w", err)
			}
			remote = c
		}
		e, err := newExplainer(ctx, f, remote, stdin, stderr)
		if err != nil {
			return err
		}
		if f.diff != "" {
			return e.diffConfigs(ctx, stdout)
		}
		allowed, err := e.explain(ctx, stdout)
		if err == nil && !allowed {
			return errRefused
		}
		return err
	}()
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errRefused):
		return 1
	case errors.Is(err, errBadInput):
		fmt.Fprintf(stderr, "corsmeshctl explain: %v\n", err)
		return 2
	}
	fmt.Fprintf(stderr, "corsmeshctl explain: %v\n", err)
	return 1
}

var errRefused = errors.New("refused")

type explainer struct {
	f         explainFlags
	objs      *injector.Objects // of the files
	cluster   *injector.Objects // the files' over the cluster's
	resolver  *injector.Resolver
	notices   *notices
	remote    client.Reader
	workloads []*manifest.Workload
}

func newExplainer(ctx context.Context, f explainFlags, remote client.Reader, stdin io.Reader, stderr io.Writer) (*explainer, error) {
	if f.diff == "" {
		switch {
		case (f.pod == "") == (f.service == ""):
			return nil, badInput("name the pod (--pod) or the Service (--service), one of them")
		case len(f.origins) != 1:
			return nil, badInput("--origin ORIGIN is required, once (several only with --diff)")
		case f.method == "" || strings.ContainsAny(f.method, " \t\r\n:"):
			return nil, badInput("--method %q is not an HTTP method", f.method)
		case f.port < 0 || f.port > 65535:
			return nil, badInput("--port %d is not a port", f.port)
		}
	} else if len(f.origins) == 0 {
		return nil, badInput("--diff needs the origins to compare (--origin, repeatable)")
	}
	if len(f.files) == 0 && remote == nil {
		return nil, badInput("give the objects with -f FILE, or read them with --from-cluster")
	}
	e := &explainer{f: f, objs: &injector.Objects{}, remote: remote, notices: newNotices(stderr)}
	for _, file := range f.files {
		name, docs, err := readInput(file, stdin)
		if err != nil {
			return nil, badInput("%v", err)
		}
		if err := addPolicies(e.objs, name, docs, f.namespace); err != nil {
			return nil, badInput("%v", err)
		}
		for i, doc := range docs {
			w, err := manifest.ParseWorkload(doc)
			if err != nil {
				return nil, badInput("%s: document %d: %v", name, i+1, err)
			}
			if w != nil {
				if w.Namespace == "" {
					w.Namespace = f.namespace
				}
				w.Pod.Namespace = w.Namespace
				e.workloads = append(e.workloads, w)
			}
		}
	}
	var err error
	if e.cluster, err = withCluster(ctx, e.objs, remote, f.opts.OwnNamespace); err != nil {
		return nil, err
	}
	e.resolver = injector.NewResolver(injector.New(f.opts), e.cluster, injector.ResolverOptions{Offline: true})
	return e, nil
}

// target is the pod a request reaches and through what.
type target struct {
	pod     *corev1.Pod
	what    string             // how the pod was found, for the report
	service *corev1.Service    // the Service named, if any
	live    bool               // the pod was read from the cluster
	config  *config.Config     // the policy the proxy enforces
	reason  *injector.Decision // set when the pod gets no proxy
}

func (e *explainer) explain(ctx context.Context, w io.Writer) (bool, error) {
	t, err := e.findPod(ctx)
	if err != nil {
		return false, err
	}
	ns := e.f.namespace
	fmt.Fprintf(w, "pod:          %s\n", t.what)
	if t.reason != nil {
		fmt.Fprintf(w, "decision:     no CORS from corsmesh: the pod gets no proxy (%s: %s)\n", t.reason.Reason, t.reason.Message)
		return false, nil
	}
	port, err := e.port(t)
	if err != nil {
		return false, err
	}
	host := e.f.host
	if host == "" && t.service != nil {
		host = t.service.Name + "." + ns
	}
	routes, err := proxy.Compile(t.config)
	if err != nil {
		return false, fmt.Errorf("compiling the pod's policy: %w", err)
	}
	policy := routes.Policy(int32(port), []byte(host))
	fmt.Fprintf(w, "request:      %s port %d, Host %q, Origin %q\n", e.f.method, port, host, e.f.origins[0])
	svc, pc, err := e.provenance(ctx, t, int32(port), host)
	if err != nil {
		return false, err
	}
	if svc != nil {
		fmt.Fprintf(w, "service:      %s/%s\n", svc.Namespace, svc.Name)
	}
	if policy == nil {
		fmt.Fprintf(w, "decision:     no CORS policy for port %d and Host %q: proxied untouched, the app's own headers decide\n", port, host)
		return false, nil
	}
	var corsCfg *config.CORS
	if pc != nil {
		fmt.Fprintf(w, "pluginconfig: %s/%s\n", pc.Namespace, pc.Name)
		corsCfg, _ = config.ParseCORS(pc.Spec.Config.Raw)
	}

	origin := e.f.origins[0]
	method := e.f.method
	actualReq := cors.Request{Method: method, Origin: origin, OriginCount: 1}
	preflightReq := cors.Request{Method: "OPTIONS", Origin: origin, OriginCount: 1, RequestMethod: true}
	actual := proxy.Explain(policy, actualReq)
	preflight := proxy.Explain(policy, preflightReq)

	allowed := actual.Decision == cors.Allowed || actual.Decision == cors.Preflight
	if i, ok := policy.Match(origin); ok && allowed {
		entry := ""
		if corsCfg != nil && i < len(corsCfg.AllowOrigins) {
			o := corsCfg.AllowOrigins[i]
			entry = fmt.Sprintf(" (%s: %q)", o.Kind(), o.Value())
		}
		fmt.Fprintf(w, "matched:      spec.config.allowOrigins[%d]%s\n", i, entry)
	} else {
		fmt.Fprintf(w, "matched:      none: %s\n", refusalText(actual.Reason, origin, corsCfg))
	}
	needsPreflight, blocked := browserChecks(method, e.f.headers, preflight)
	verdict := "allowed"
	switch {
	case !allowed:
		verdict = "refused (" + actual.Reason.String() + ")"
	case blocked != "":
		verdict = "refused by the browser: " + blocked
		allowed = false
	}
	if actual.ReportOnly {
		fmt.Fprintf(w, "decision:     report-only: the policy would say %s; the proxy changes no response and counts it as would-%s\n",
			verdict, map[bool]string{true: "allow", false: "refuse"}[allowed])
		fmt.Fprintln(w, "actual:       forwarded, the app's response unchanged (its own Access-Control-* headers included)")
		fmt.Fprintln(w, "preflight:    forwarded, the app's response unchanged")
	} else {
		fmt.Fprintf(w, "decision:     %s\n", verdict)
		fmt.Fprintf(w, "actual:       %s, forwarded to the app; the proxy sets:\n", method)
		printHeaders(w, actual.Headers)
		prefix := "preflight:    "
		if !needsPreflight {
			prefix += "not needed for this request; one would be "
		}
		if preflight.ByProxy {
			fmt.Fprintf(w, "%sanswered by the proxy, %d, with:\n", prefix, preflight.Status)
		} else {
			fmt.Fprintf(w, "%sforwarded to the app; the proxy sets:\n", prefix)
		}
		printHeaders(w, preflight.Headers)
	}
	if t.live {
		e.printDebugCORS(ctx, w, t.pod, origin)
	}
	return allowed, nil
}

func printHeaders(w io.Writer, hs []cors.Header) {
	if len(hs) == 0 {
		fmt.Fprintln(w, "                (no CORS headers)")
	}
	for _, h := range hs {
		fmt.Fprintf(w, "                %s: %s\n", h.Name, h.Value)
	}
}

// refusalText says why an origin matched no entry.
func refusalText(reason cors.Reason, origin string, c *config.CORS) string {
	switch reason {
	case cors.ReasonInvalid:
		return fmt.Sprintf("%q is not an origin as browsers send it (scheme://host[:port], lower case)", origin)
	case cors.ReasonNull:
		return `"null" is allowed only by an exact: "null" entry`
	case cors.ReasonTooLong:
		return fmt.Sprintf("origins over %d bytes are not looked at", cors.MaxOriginLength)
	}
	if c == nil {
		return "no allowOrigins entry matches"
	}
	var tried []string
	for i, o := range c.AllowOrigins {
		tried = append(tried, fmt.Sprintf("[%d] %s %q", i, o.Kind(), o.Value()))
	}
	return "no allowOrigins entry matches; tried " + strings.Join(tried, ", ")
}

// simpleHeaders are the request headers a page may set without a preflight (the Fetch
// standard's CORS-safelisted names; their values are not checked here).
var simpleHeaders = []string{"accept", "accept-language", "content-language", "content-type", "range"}

// browserChecks applies a browser's preflight rules to the proxy's preflight answer:
// whether the request needs a preflight and, if the answer would stop it, why.
func browserChecks(method string, headers []string, preflight proxy.Answer) (needs bool, blocked string) {
	var custom []string
	for _, h := range headers {
		name, _, _ := strings.Cut(h, ":")
		name = strings.ToLower(strings.TrimSpace(name))
		if !slices.Contains(simpleHeaders, name) {
			custom = append(custom, name)
		}
	}
	if (method == "GET" || method == "HEAD" || method == "POST") && len(custom) == 0 {
		return false, ""
	}
	if preflight.ReportOnly {
		return true, ""
	}
	if preflight.Decision != cors.Preflight {
		return true, "the preflight is refused"
	}
	get := func(name string) []string {
		for _, h := range preflight.Headers {
			if h.Name == name {
				return strings.Split(h.Value, ",")
			}
		}
		return nil
	}
	methods, allowHeaders := get(cors.HeaderAllowMethods), get(cors.HeaderAllowHeaders)
	credentials := len(get(cors.HeaderAllowCredentials)) > 0
	if method != "GET" && method != "HEAD" && method != "POST" &&
		!slices.ContainsFunc(methods, func(m string) bool {
			return strings.TrimSpace(m) == method || (!credentials && strings.TrimSpace(m) == "*")
		}) {
		return true, fmt.Sprintf("method %s is not in access-control-allow-methods", method)
	}
	for _, h := range custom {
		if !slices.ContainsFunc(allowHeaders, func(a string) bool {
			a = strings.TrimSpace(a)
			return strings.EqualFold(a, h) || (!credentials && a == "*" && h != "authorization")
		}) {
			return true, fmt.Sprintf("header %s is not in access-control-allow-headers", h)
		}
	}
	return true, ""
}

// findPod finds the pod the request reaches, and the policy its proxy enforces.
func (e *explainer) findPod(ctx context.Context) (*target, error) {
	ns := e.f.namespace
	t := &target{}
	if e.f.service != "" {
		svcs, err := e.cluster.Services(ctx, ns)
		if err != nil {
			return nil, err
		}
		i := slices.IndexFunc(svcs, func(s *corev1.Service) bool { return s.Name == e.f.service })
		if i < 0 {
			return nil, badInput("Service %s/%s is not in the input%s", ns, e.f.service, map[bool]string{true: " or the cluster"}[e.remote != nil])
		}
		t.service = svcs[i]
	}
	switch {
	case e.f.pod != "":
		for _, w := range e.workloads {
			if w.Name == e.f.pod && w.Namespace == ns {
				t.pod, t.what = w.Pod, fmt.Sprintf("%s %s/%s (from the input)", w.Kind, ns, w.Name)
			}
		}
		if t.pod == nil && e.remote != nil {
			var pod corev1.Pod
			if err := e.remote.Get(ctx, client.ObjectKey{Namespace: ns, Name: e.f.pod}, &pod); err != nil {
				return nil, fmt.Errorf("reading pod %s/%s: %w", ns, e.f.pod, err)
			}
			t.pod, t.what, t.live = &pod, fmt.Sprintf("Pod %s/%s (from the cluster)", ns, pod.Name), true
		}
		if t.pod == nil {
			return nil, badInput("no Pod or workload %s/%s in the input", ns, e.f.pod)
		}
	default:
		for _, w := range e.workloads {
			if w.Namespace == ns && injector.ServiceSelects(t.service, w.Pod.Labels) {
				t.pod, t.what = w.Pod, fmt.Sprintf("%s %s/%s (from the input), selected by Service %s", w.Kind, ns, w.Name, t.service.Name)
				break
			}
		}
		if t.pod == nil && e.remote != nil && len(t.service.Spec.Selector) > 0 {
			var pods corev1.PodList
			if err := e.remote.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels(t.service.Spec.Selector)); err != nil {
				return nil, fmt.Errorf("listing the pods of Service %s/%s: %w", ns, t.service.Name, err)
			}
			if len(pods.Items) > 0 {
				pod := &pods.Items[0]
				t.pod, t.what, t.live = pod, fmt.Sprintf("Pod %s/%s (from the cluster), selected by Service %s", ns, pod.Name, t.service.Name), true
			}
		}
		if t.pod == nil {
			return nil, badInput("no Pod or workload in the input%s is selected by Service %s/%s", map[bool]string{true: " or the cluster"}[e.remote != nil], ns, t.service.Name)
		}
	}
	t.pod.Namespace = ns
	// An injected pod carries the policy its proxy reads: explain that one.
	if raw, ok := t.pod.Annotations[injector.AnnotationConfig]; ok {
		cfg, err := config.Parse([]byte(raw))
		if err != nil {
			return nil, fmt.Errorf("the pod's %s annotation: %w", injector.AnnotationConfig, err)
		}
		t.config = cfg
		return t, nil
	}
	d, err := e.resolver.Decide(ctx, t.pod, ns, injector.ForResync)
	if err != nil {
		return nil, err
	}
	e.notices.assumed(d)
	if !d.Inject {
		t.reason = d
		return t, nil
	}
	t.config = d.Config
	return t, nil
}

// port is the pod port the request reaches.
func (e *explainer) port(t *target) (int, error) {
	if e.f.port != 0 {
		return e.f.port, nil
	}
	if t.service != nil {
		for _, sp := range t.service.Spec.Ports {
			if p := targetPort(t.pod, sp); p > 0 {
				return p, nil
			}
		}
	}
	if len(t.config.Ports) == 1 {
		return int(t.config.Ports[0].Port), nil
	}
	var ports []string
	for _, p := range t.config.Ports {
		ports = append(ports, strconv.Itoa(int(p.Port)))
	}
	return 0, badInput("the pod's proxy intercepts ports %s: choose one with --port", strings.Join(ports, ", "))
}

func targetPort(pod *corev1.Pod, sp corev1.ServicePort) int {
	tp := sp.TargetPort
	switch {
	case tp.Type == intstr.Int && tp.IntVal == 0:
		return int(sp.Port)
	case tp.Type == intstr.Int:
		return int(tp.IntVal)
	}
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.Name == tp.StrVal {
				return int(p.ContainerPort)
			}
		}
	}
	return 0
}

// provenance finds the Service a request to port with host goes through, and the
// PluginConfig in effect for it (the oldest CORS one, as the injector picks).
func (e *explainer) provenance(ctx context.Context, t *target, port int32, host string) (*corev1.Service, *v1alpha1.PluginConfig, error) {
	ns := e.f.namespace
	svc := t.service
	if svc == nil {
		svcs, err := e.cluster.Services(ctx, ns)
		if err != nil {
			return nil, nil, err
		}
		name, _, _ := strings.Cut(host, ":")
		var reaching []*corev1.Service
		for _, s := range svcs {
			if !injector.ServiceSelects(s, t.pod.Labels) {
				continue
			}
			if slices.ContainsFunc(s.Spec.Ports, func(sp corev1.ServicePort) bool { return targetPort(t.pod, sp) == int(port) }) {
				reaching = append(reaching, s)
				if full := s.Name + "." + ns; name == s.Name || name == full || strings.HasPrefix(name, full+".svc") {
					svc = s
				}
			}
		}
		if svc == nil && len(reaching) > 0 {
			svc = reaching[0]
		}
	}
	if svc == nil {
		return nil, nil, nil
	}
	sp, err := e.resolver.Service(ctx, svc.Namespace, svc.Name)
	if err != nil {
		return nil, nil, err
	}
	return svc, sp.InEffect, nil
}

// printDebugCORS shows what the pod's proxy has refused, read through the API server's
// pod proxy; a failure is reported, not fatal.
func (e *explainer) printDebugCORS(ctx context.Context, w io.Writer, pod *corev1.Pod, origin string) {
	body, err := readDebugCORS(ctx, e.f.kubeconfig, pod)
	if err != nil {
		fmt.Fprintf(w, "refusals:     /debug/cors not read: %v\n", err)
		return
	}
	var d proxy.DebugCORS
	if err := json.Unmarshal(body, &d); err != nil {
		fmt.Fprintf(w, "refusals:     /debug/cors not understood: %v\n", err)
		return
	}
	fmt.Fprintf(w, "refusals:     since %s, by reason %v; report-only would-allow %d, would-refuse %d\n",
		d.Since.Format("2006-01-02T15:04:05Z07:00"), d.Refused, d.ReportOnly.WouldAllow, d.ReportOnly.WouldRefuse)
	shown := 0
	for _, row := range d.Top {
		if row.Origin == origin || shown < 5 {
			fmt.Fprintf(w, "                %d× %s (%s) port %d, last %s\n", row.Count, row.Origin, row.Reason, row.Port, row.Last.Format("15:04:05"))
			shown++
		}
	}
}
