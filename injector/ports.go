package injector

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/corsmesh/corsmesh/corsproxy/config"
)

// servicePolicy is one Service reaching the pod on a port, and its CORS policy (nil: none).
type servicePolicy struct {
	service *corev1.Service
	policy  *config.CORS
	key     string // the policy's canonical JSON, to tell policies apart
}

// resolvePorts finds the pod's intercepted ports (the target ports of the Services that
// select it) and each port's policy (from the PluginConfigs naming those Services), and
// records them in d.
//
// The rule for a port shared by Services with different policies: a request is matched by
// its Host header against each Service's DNS names (name, name.ns, name.ns.svc,
// name.ns.svc.<cluster domain>); a Host naming none of them (the pod IP, say) gets the
// port's only policy if there is exactly one, and no CORS otherwise.
func (r *Resolver) resolvePorts(ctx context.Context, pod *corev1.Pod, ns string, corsPlugins []string, d *Decision) error {
	var services []*corev1.Service
	var err error
	if sc, ok := r.cluster.(SelectingCluster); ok {
		services, err = sc.ServicesSelecting(ctx, ns, pod.Labels)
	} else {
		services, err = r.cluster.Services(ctx, ns)
	}
	if err != nil {
		return fmt.Errorf("listing Services in %s: %w", ns, err)
	}
	byPort := make(map[int32][]servicePolicy)
	for _, svc := range services {
		if !ServiceSelects(svc, pod.Labels) {
			continue
		}
		sp := servicePolicy{service: svc}
		if sp.policy, sp.key, err = r.servicePolicy(ctx, svc, corsPlugins, d); err != nil {
			return err
		}
		for _, port := range svc.Spec.Ports {
			target, ok := r.in.targetPort(pod, svc, port, d)
			if ok && !slices.ContainsFunc(byPort[target], func(o servicePolicy) bool { return o.service == svc }) {
				byPort[target] = append(byPort[target], sp)
			}
		}
	}

	cfg := &config.Config{Version: config.Version}
	for _, port := range slices.Sorted(maps.Keys(byPort)) {
		cfg.Ports = append(cfg.Ports, r.in.portConfig(port, byPort[port], ns, d))
		d.Ports = append(d.Ports, port)
	}
	if len(d.Ports) > 0 && !slices.ContainsFunc(cfg.Ports, func(p config.Port) bool { return p.CORS != nil || len(p.Hosts) > 0 }) {
		d.Warnings = append(d.Warnings, warnNoPolicyYet())
	}
	d.Config = cfg
	return nil
}

// ServiceSelects reports whether a Service's selector matches pod labels: every key and
// value of it among the labels (a Service without a selector selects no pod by itself).
// A plain map walk: building a labels.Selector per Service on every admission was a cost.
// SelectingCluster is a Cluster that finds the Services that may select a pod without
// listing the namespace's: an admission in a namespace of 100 Services copied all 100 out
// of the informer and matched each (18 % of the handler's CPU, 2.5 kB per pod), where an
// index by SelectorKey reads only those sharing one label with the pod.
type SelectingCluster interface {
	Cluster
	// ServicesSelecting returns the namespace's Services that may select a pod with these
	// labels: every one that does (ServiceSelects), perhaps some that do not.
	ServicesSelecting(ctx context.Context, namespace string, podLabels map[string]string) ([]*corev1.Service, error)
}

// SelectorKey is the one label a Service's selector requires that indexes it: the least
// key's "key=value" (each Service under one key, so a lookup per pod label finds it at
// most once), or "" for a Service that selects nothing.
func SelectorKey(svc *corev1.Service) string {
	first := ""
	for k := range svc.Spec.Selector {
		if first == "" || k < first {
			first = k
		}
	}
	if first == "" {
		return ""
	}
	return SelectorLabel(first, svc.Spec.Selector[first])
}

// SelectorLabel is the SelectorKey a pod label matches.
func SelectorLabel(key, value string) string { return key + "=" + value }

func ServiceSelects(svc *corev1.Service, podLabels map[string]string) bool {
	if len(svc.Spec.Selector) == 0 {
		return false
	}
	for k, v := range svc.Spec.Selector {
		if got, ok := podLabels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// targetPort resolves a Service port to the container port it reaches on this pod.
func (in *Injector) targetPort(pod *corev1.Pod, svc *corev1.Service, port corev1.ServicePort, d *Decision) (int32, bool) {
	// Formatted only for a warning: most ports are intercepted, and this ran for each.
	where := func() string { return fmt.Sprintf("Service %s port %d", svc.Name, port.Port) }
	if port.Protocol != "" && port.Protocol != corev1.ProtocolTCP {
		return 0, false
	}
	if p := port.AppProtocol; p != nil && !isHTTP1(*p) {
		d.Warnings = append(d.Warnings, fmt.Sprintf("%s not intercepted: appProtocol %q is not HTTP/1.1", where(), *p))
		return 0, false
	}
	if port.AppProtocol == nil {
		for _, name := range []string{port.Name, port.TargetPort.StrVal} {
			if proto := nonHTTPByName(name); proto != "" {
				d.Warnings = append(d.Warnings, fmt.Sprintf("%s not intercepted: its name %q says %s, not HTTP/1.1 (appProtocol: http would say otherwise)", where(), name, proto))
				return 0, false
			}
		}
	}
	var target int32
	switch {
	case port.TargetPort.Type == intstr.String && port.TargetPort.StrVal != "":
		target = namedPort(pod, port.TargetPort.StrVal)
		if target == 0 {
			d.Warnings = append(d.Warnings, fmt.Sprintf("%s not intercepted: no container port named %q", where(), port.TargetPort.StrVal))
			return 0, false
		}
	case port.TargetPort.IntVal != 0:
		target = port.TargetPort.IntVal
	default:
		target = port.Port
	}
	if port.AppProtocol == nil && serverFirstPorts[target] != "" && !strings.HasPrefix(strings.ToLower(port.Name), "http") {
		d.Warnings = append(d.Warnings, fmt.Sprintf("%s not intercepted: port %d is %s's, where the server speaks first (appProtocol: http would say otherwise)", where(), target, serverFirstPorts[target]))
		return 0, false
	}
	if target == in.opts.ProxyPort || target == in.opts.AdminPort {
		d.Warnings = append(d.Warnings, fmt.Sprintf("%s not intercepted: port %d is the proxy's own", where(), target))
		return 0, false
	}
	return target, true
}

// nonHTTPByName reads a port name the way Istio's naming convention and Helm charts write
// them ("mysql", "tcp-postgresql", "grpc-api", "https"): the part before the first dash
// names the protocol. It returns that protocol when it is not HTTP/1.1, else "". Without
// this, a database port of a selected pod would be parsed as HTTP and broken (and a
// server-first protocol such as MySQL's would hang until the proxy's header timeout).
func nonHTTPByName(name string) string {
	name = strings.ToLower(name)
	if strings.HasPrefix(name, "grpc-web") {
		return "" // gRPC-Web is HTTP/1.1, and browsers send it CORS requests
	}
	prefix, _, _ := strings.Cut(name, "-")
	switch prefix {
	case "grpc", "h2c", "http2", "https", "tls", "tcp", "udp", "mysql", "mariadb", "postgres",
		"postgresql", "mongo", "mongodb", "redis", "memcached", "cassandra", "cql", "amqp",
		"amqps", "kafka", "mqtt", "nats", "zookeeper", "zk", "smtp", "ftp", "ssh", "thrift", "dns":
		return prefix
	}
	return ""
}

// serverFirstPorts are the well-known ports of protocols where the server speaks first:
// the proxy, waiting for a request, and the client, waiting for the greeting, would hang
// until the proxy's header timeout. Client-first protocols on other ports are passed
// through by the proxy itself when it sees they are not HTTP.
// (Their TLS-wrapped ports, 465, 993 and 995, open with the client's TLS hello.)
var serverFirstPorts = map[int32]string{
	21: "FTP", 22: "SSH", 25: "SMTP", 110: "POP3", 143: "IMAP", 587: "SMTP",
	3306: "MySQL", 33060: "MySQL", 5900: "VNC",
}

func isHTTP1(appProtocol string) bool {
	switch strings.ToLower(appProtocol) {
	case "http", "http1", "http/1.1", "kubernetes.io/http":
		return true
	}
	return false
}

func namedPort(pod *corev1.Pod, name string) int32 {
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.Name == name && (p.Protocol == "" || p.Protocol == corev1.ProtocolTCP) {
				return p.ContainerPort
			}
		}
	}
	return 0
}

// servicePolicy returns the CORS policy of a Service for this pod: the PluginConfig in
// effect for the Service (Resolver.Service), when a chain selecting the pod serves its
// plugin. What was ignored is reported.
func (r *Resolver) servicePolicy(ctx context.Context, svc *corev1.Service, corsPlugins []string, d *Decision) (policy *config.CORS, key string, err error) {
	sp, err := r.Service(ctx, svc.Namespace, svc.Name)
	if err != nil {
		return nil, "", err
	}
	for _, ig := range sp.Ignored {
		switch ig.State {
		case ConfigInvalid:
			d.Warnings = append(d.Warnings, warnConfigInvalid(ig.Config, ig.Err))
		case ConfigOverridden:
			d.Warnings = append(d.Warnings, warnConfigOverridden(ig.Config, svc.Name, sp.InEffect))
		}
	}
	if sp.InEffect == nil {
		return nil, "", nil
	}
	if !slices.Contains(corsPlugins, sp.InEffect.Spec.Plugin) {
		d.Warnings = append(d.Warnings, warnPluginNotServed(sp.InEffect, svc.Name))
		return nil, "", nil
	}
	return sp.Policy, sp.policyKey, nil
}

// portConfig builds one port's entry from the Services reaching it.
func (in *Injector) portConfig(port int32, services []servicePolicy, ns string, d *Decision) config.Port {
	p := config.Port{Port: port}
	var distinct []servicePolicy
	for _, sp := range services {
		if sp.policy != nil && !slices.ContainsFunc(distinct, func(o servicePolicy) bool { return o.key == sp.key }) {
			distinct = append(distinct, sp)
		}
	}
	sameForAll := !slices.ContainsFunc(services, func(sp servicePolicy) bool { return sp.key != services[0].key })
	if sameForAll {
		p.CORS = services[0].policy
		return p
	}
	slices.SortFunc(services, func(a, b servicePolicy) int { return strings.Compare(a.service.Name, b.service.Name) })
	p.Hosts = make([]config.HostRoute, 0, len(services))
	for _, sp := range services {
		p.Hosts = append(p.Hosts, config.HostRoute{Names: in.serviceHostNames(sp.service.Name, ns), CORS: sp.policy})
	}
	if len(distinct) == 1 {
		p.CORS = distinct[0].policy
	} else {
		d.Warnings = append(d.Warnings, fmt.Sprintf("port %d is reached through Services with %d different CORS policies: requests are told apart by Host, and a Host naming none of them (such as the pod IP) gets no CORS", port, len(distinct)))
	}
	return p
}

// serviceHostNames are a Service's DNS names, shortest first. Each is a prefix of the
// longest, so they share its one string (one allocation, where four were made per Service
// on a shared port, for every admission).
func (in *Injector) serviceHostNames(name, ns string) []string {
	full := name + "." + ns + ".svc." + in.opts.ClusterDomain
	withNS := len(name) + 1 + len(ns)
	return []string{full[:len(name)], full[:withNS], full[:withNS+len(".svc")], full}
}
