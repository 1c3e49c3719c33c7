package sandbox

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
)

// TestNodeRunsPod starts a sandbox with a real node, runs a plain pod on it (an image
// served by the in-process registry, pulled by containerd with pull policy Always), reads
// its logs, execs into it and calls it over the pod network; then checks that Stop leaves
// no network namespace, link, route, iptables rule, mount or process behind.
func TestNodeRunsPod(t *testing.T) {
	s := ForTest(t, Options{Node: true})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "plain", Namespace: "default"},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name:            "app",
				Image:           TestImage,
				ImagePullPolicy: corev1.PullAlways,
				Ports:           []corev1.ContainerPort{{ContainerPort: 8080}},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{
					HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromInt32(8080)},
				}, PeriodSeconds: 1},
			}},
		},
	}
	if err := s.Client.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	podIP := waitPodReady(ctx, t, s, "default", "plain")
	// Dual-stack pods: the IPv6 address from the node's own unique local range too.
	got, err := s.Clientset.CoreV1().Pods("default").Get(ctx, "plain", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ips := got.Status.PodIPs; len(ips) != 2 || !s.node.net.PodCIDR6.Contains(netip.MustParseAddr(ips[1].IP)) {
		t.Errorf("pod IPs %v, want an IPv4 address and one in %s", ips, s.node.net.PodCIDR6)
	}

	resp, err := http.Get("http://" + podIP + ":8080/hello")
	if err != nil {
		t.Fatalf("calling the pod at %s from the host: %v", podIP, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.HasPrefix(string(body), "hello from plain") {
		t.Errorf("the pod answered %q", body)
	}
	out, err := s.Kubectl(ctx, "exec", "plain", "-c", "app", "--", "/testimage", "echo", "from", "exec")
	if err != nil || strings.TrimSpace(out) != "[from exec]" {
		t.Errorf("kubectl exec: %q, %v", out, err)
	}
	logs, err := s.Kubectl(ctx, "logs", "plain", "-c", "app")
	if err != nil || !strings.Contains(logs, "listening on :8080") || !strings.Contains(logs, "request GET /hello") {
		t.Errorf("kubectl logs: %q, %v", logs, err)
	}

	netw, dir := s.node.net, s.node.dir
	sock := s.node.containerdSock()
	if err := s.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if out, _ := exec.Command("ip", "netns", "list").CombinedOutput(); strings.Contains(string(out), netw.Netns) {
		t.Errorf("network namespace %s left behind", netw.Netns)
	}
	if err := exec.Command("ip", "link", "show", netw.HostLink).Run(); err == nil {
		t.Errorf("link %s left behind", netw.HostLink)
	}
	routes, _ := exec.Command("ip", "route").CombinedOutput()
	rules, _ := exec.Command("iptables-save").CombinedOutput()
	for _, cidr := range []string{netw.PodCIDR.String(), netw.ServiceCIDR.String(), netw.NodeIP.String()} {
		if strings.Contains(string(routes), cidr) {
			t.Errorf("a host route names %s:\n%s", cidr, routes)
		}
		if strings.Contains(string(rules), cidr) {
			t.Errorf("a host iptables rule names %s", cidr)
		}
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), dir) {
		t.Errorf("mounts under %s left behind", dir)
	}
	if pids := processesNaming(sock); len(pids) > 0 {
		t.Errorf("processes naming %s left behind: %v", sock, pids)
	}
	if links, _ := filepath.Glob("/var/log/containers/*.log"); len(links) > 0 {
		for _, l := range links {
			if target, _ := os.Readlink(l); strings.HasPrefix(target, dir) {
				t.Errorf("%s -> %s left behind", l, target)
			}
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s left behind", dir)
	}
}

func waitPodReady(ctx context.Context, t *testing.T, s *Sandbox, ns, name string) string {
	t.Helper()
	var pod *corev1.Pod
	err := wait.PollUntilContextTimeout(ctx, time.Second, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		p, err := s.Clientset.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		pod = p
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		events, _ := s.Kubectl(context.Background(), "get", "events", "-n", ns, "-o", "wide")
		t.Fatalf("pod %s/%s not ready: %v\nstatus: %+v\nevents:\n%s%s", ns, name, err, pod.Status, events, s.logTail("kubelet"))
	}
	return pod.Status.PodIP
}

// processesNaming returns the PIDs whose command line contains s.
func processesNaming(s string) []string {
	var pids []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && strings.Contains(string(cmdline), s) {
			pids = append(pids, fmt.Sprintf("%s (%s)", e.Name(), strings.ReplaceAll(string(cmdline), "\x00", " ")))
		}
	}
	return pids
}
