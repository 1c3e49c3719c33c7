package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// ErrNoNode is wrapped by the error Start returns when Options.Node is set but the machine
// cannot run a node: not root, or a binary missing (the node's, built by
// hack/build-controlplane.sh, or Debian's runc, CNI plugins, iptables).
var ErrNoNode = errors.New("cannot run a node here")

// NodeName is the name the sandbox's node registers as.
const NodeName = "corsmesh-node"

// PauseImage is the pod sandbox image containerd is pinned to; the sandbox builds and
// serves it (no registry on the internet is reachable).
const PauseImage = "registry.k8s.io/pause:3.10.2"

// nodeBinaries are built by hack/build-controlplane.sh beside the control plane.
var nodeBinaries = []string{"kubelet", "kube-scheduler", "kube-proxy", "containerd", "containerd-shim-runc-v2"}

// cniPlugins are Debian's containernetworking-plugins the node's network uses.
var cniPlugins = []string{"bridge", "host-local", "loopback", "portmap"}

// cniBinDirs are where Debian and upstream install the CNI plugins.
var cniBinDirs = []string{"/usr/lib/cni", "/opt/cni/bin"}

// node is a real one-node cluster's node: containerd, the kubelet and kube-proxy in a
// network namespace of their own, and kube-scheduler.
type node struct {
	net      *nodeNetwork
	dir      string // containerd's, the kubelet's and CNI's state
	runc     string
	cniBin   string
	registry *imageRegistry
	images   map[string]bool // what the registry serves from the images directory
}

func (n *node) containerdSock() string { return filepath.Join(n.dir, "c", "containerd.sock") }
func (n *node) runcRoot() string       { return filepath.Join(n.dir, "runc") }
func (n *node) cniNetwork() string     { return "corsmesh-" + n.net.ID }

// checkNode reports what this machine lacks to run a node.
func checkNode(assets string) (runc, cniBin string, err error) {
	var missing []string
	if os.Geteuid() != 0 {
		return "", "", fmt.Errorf("%w: the node needs root (network namespaces, mounts, cgroups)", ErrNoNode)
	}
	for _, b := range nodeBinaries {
		if _, err := os.Stat(filepath.Join(assets, b)); err != nil {
			missing = append(missing, filepath.Join(assets, b)+" (hack/build-controlplane.sh)")
		}
	}
	for _, cmd := range []string{"runc", "iptables", "ip", "nsenter", "sysctl"} {
		p, err := exec.LookPath(cmd)
		if err != nil {
			missing = append(missing, cmd)
		}
		if cmd == "runc" {
			runc = p
		}
	}
	for _, dir := range cniBinDirs {
		if _, err := os.Stat(filepath.Join(dir, "bridge")); err == nil {
			cniBin = dir
			break
		}
	}
	for _, p := range cniPlugins {
		if cniBin == "" {
			missing = append(missing, "CNI plugin "+p)
		} else if _, err := os.Stat(filepath.Join(cniBin, p)); err != nil {
			missing = append(missing, filepath.Join(cniBin, p))
		}
	}
	if len(missing) > 0 {
		return "", "", fmt.Errorf("%w: missing %s (apt-get install runc containernetworking-plugins iptables iproute2)", ErrNoNode, strings.Join(missing, ", "))
	}
	return runc, cniBin, nil
}

// startNode starts the node's processes against the running API server and waits until
// the node is Ready.
func (s *Sandbox) startNode(ctx context.Context) error {
	n := s.node
	// Unix socket paths are limited to 108 bytes.
	if len(n.containerdSock()) > 90 {
		return fmt.Errorf("the sandbox's directory %s is too long for containerd's socket path; set TMPDIR to a shorter one", s.WorkDir)
	}
	for _, d := range []string{"c", "kubelet", "pod-logs", "cni/net.d", "cni/ipam", "certs.d", "runc"} {
		if err := os.MkdirAll(filepath.Join(n.dir, d), 0o700); err != nil {
			return err
		}
	}
	if err := s.startNodeWatchdog(); err != nil {
		return err
	}

	var err error
	if n.registry, err = startRegistry(n.net.HostIP.String()); err != nil {
		return err
	}
	s.addCleanup("image registry", n.registry.stop)
	if err := s.pushSandboxImages(ctx); err != nil {
		return err
	}

	if err := n.writeContainerdConfig(); err != nil {
		return err
	}
	s.logf("starting containerd (netns %s)", n.net.Netns)
	env := append(os.Environ(), "PATH="+s.AssetsDir+":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	containerd, err := s.startInNetns("containerd", env, "--config", filepath.Join(n.dir, "c", "config.toml"))
	if err != nil {
		return err
	}
	s.addCleanup("containerd", func() error {
		// The kubelet is stopped by now (cleanups run in reverse): remove every pod so
		// that containers, shims, CNI state and mounts go the way they came.
		rmCtx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		rmErr := n.removeAllPods(rmCtx)
		if err := containerd.stop(10 * time.Second); err != nil {
			return errors.Join(rmErr, err)
		}
		return rmErr
	})
	if err := n.waitForCRI(ctx, containerd, s.logTail("containerd")); err != nil {
		return err
	}

	kubeletUser, err := s.env.AddUser(envtest.User{Name: "system:node:" + NodeName, Groups: []string{"system:nodes", "system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("provisioning the kubelet's user: %w", err)
	}
	kubeletKubeconfig, err := s.writeKubeconfig("kubelet.kubeconfig", kubeletUser.Config())
	if err != nil {
		return err
	}
	if err := n.writeKubeletConfig(); err != nil {
		return err
	}
	s.logf("starting kubelet (node %s, %s)", NodeName, n.net.NodeIP)
	kubelet, err := s.startInNetns("kubelet", nil,
		"--config="+filepath.Join(n.dir, "kubelet", "config.yaml"),
		"--kubeconfig="+kubeletKubeconfig,
		"--root-dir="+filepath.Join(n.dir, "kubelet"),
		"--hostname-override="+NodeName,
		"--node-ip="+n.net.NodeIP.String(),
		"--v=1",
	)
	if err != nil {
		return err
	}
	s.addCleanup("kubelet", func() error { return kubelet.stop(15 * time.Second) })

	s.logf("starting kube-scheduler and kube-proxy (iptables)")
	schedPort, err := FreePort()
	if err != nil {
		return err
	}
	scheduler, err := startProcess("kube-scheduler", filepath.Join(s.AssetsDir, "kube-scheduler"), []string{
		"--kubeconfig=" + s.KubeconfigPath,
		"--authentication-kubeconfig=" + s.KubeconfigPath,
		"--authorization-kubeconfig=" + s.KubeconfigPath,
		"--leader-elect=false",
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(schedPort),
	}, s.output("kube-scheduler"))
	if err != nil {
		return err
	}
	s.addCleanup("kube-scheduler", func() error { return scheduler.stop(10 * time.Second) })

	proxyUser, err := s.env.AddUser(envtest.User{Name: "system:kube-proxy", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("provisioning kube-proxy's user: %w", err)
	}
	proxyKubeconfig, err := s.writeKubeconfig("kube-proxy.kubeconfig", proxyUser.Config())
	if err != nil {
		return err
	}
	if err := n.writeKubeProxyConfig(proxyKubeconfig); err != nil {
		return err
	}
	proxy, err := s.startInNetns("kube-proxy", nil, "--config="+filepath.Join(n.dir, "kube-proxy.yaml"))
	if err != nil {
		return err
	}
	s.addCleanup("kube-proxy", func() error { return proxy.stop(10 * time.Second) })

	s.logf("waiting for node %s to be Ready", NodeName)
	err = wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		for _, p := range []*process{containerd, kubelet, proxy, scheduler} {
			if done, err := p.exited(); done {
				return false, fmt.Errorf("%s exited: %v%s", p.name, err, s.logTail(p.name))
			}
		}
		node, err := s.Clientset.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady {
				return c.Status == corev1.ConditionTrue, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for node %s to be Ready: %w%s%s", NodeName, err, s.logTail("kubelet"), s.logTail("containerd"))
	}
	if n.images[CoreDNSImage] {
		return s.startCoreDNS(ctx)
	}
	s.logf("no cluster DNS: the registry has no %s (make sandbox-images)", CoreDNSImage)
	return nil
}

// startInNetns starts one of the node's binaries inside the node's network namespace.
// nsenter switches only the network namespace: the kubelet and containerd must share the
// host's mount namespace, as the kubelet's volume mounts are what containerd mounts into
// containers (`ip netns exec` would give each a mount namespace of its own).
func (s *Sandbox) startInNetns(name string, env []string, args ...string) (*process, error) {
	full := append([]string{"--net=" + s.node.net.NetnsPath(), "--", filepath.Join(s.AssetsDir, name)}, args...)
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		return nil, err
	}
	return startProcessEnv(name, nsenter, full, env, s.output(name))
}

func (n *node) writeContainerdConfig() error {
	c := filepath.Join(n.dir, "c")
	config := fmt.Sprintf(`version = 3
root = %[1]q
state = %[2]q
# Plugins that need what this machine lacks, or that would write outside the node's directory.
disabled_plugins = [
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.blockfile",
  "io.containerd.snapshotter.v1.erofs",
  "io.containerd.internal.v1.opt",
  "io.containerd.nri.v1.nri",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = %[3]q

[ttrpc]
  address = %[4]q

[plugins.'io.containerd.cri.v1.runtime']
  # runc cannot lower oom_score_adj here (no CAP_SYS_RESOURCE in this container): without
  # this every pod sandbox fails with "can't get final child's PID from pipe".
  restrict_oom_score_adj = true
  # Pod network namespaces under the state directory, not /var/run/netns.
  netns_mounts_under_state_dir = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        # Debian's runc: built with libseccomp, so RuntimeDefault pods work.
        BinaryName = %[5]q
        Root = %[6]q
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = [%[7]q]
    conf_dir = %[8]q

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  # The CRI plugin pulls itself, reading the mirrors from config_path.
  use_local_image_pull = true
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = %[9]q
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = %[10]q

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
`, filepath.Join(c, "root"), filepath.Join(c, "state"), n.containerdSock(), n.containerdSock()+".ttrpc",
		n.runc, n.runcRoot(), n.cniBin, filepath.Join(n.dir, "cni", "net.d"), PauseImage, filepath.Join(n.dir, "certs.d"))
	if err := os.WriteFile(filepath.Join(c, "config.toml"), []byte(config), 0o600); err != nil {
		return err
	}
	for _, reg := range mirroredRegistries {
		upstream := "https://" + reg
		if reg == "docker.io" {
			upstream = "https://registry-1.docker.io"
		}
		hosts := fmt.Sprintf("server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", upstream, "http://"+n.registry.Addr)
		dir := filepath.Join(n.dir, "certs.d", reg)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "hosts.toml"), []byte(hosts), 0o600); err != nil {
			return err
		}
	}
	cni := fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": %q,
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": %q,
        "ranges": [[{"subnet": %q}], [{"subnet": %q}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`, n.cniNetwork(), filepath.Join(n.dir, "cni", "ipam"), n.net.PodCIDR.String(), n.net.PodCIDR6.String())
	return os.WriteFile(filepath.Join(n.dir, "cni", "net.d", "10-bridge.conflist"), []byte(cni), 0o600)
}

func (n *node) writeKubeletConfig() error {
	resolv := filepath.Join(n.dir, "resolv.conf")
	// Pods with dnsPolicy Default get this: there is no DNS server outside the cluster.
	if err := os.WriteFile(resolv, []byte("options ndots:1\n"), 0o644); err != nil {
		return err
	}
	config := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://%[1]s
address: %[2]s
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
# The host has cgroup v1; cgroupfs, and no QoS or node-allocatable cgroups of the
# kubelet's own: pods' and containers' cgroups (and memory limits) are containerd's.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
# The API server reaches the kubelet (logs, exec) over the veth pair only, without a
# client certificate.
authentication:
  anonymous:
    enabled: true
  webhook:
    enabled: false
authorization:
  mode: AlwaysAllow
clusterDNS: [%[3]s]
clusterDomain: cluster.local
resolvConf: %[4]s
podLogsDir: %[5]s
# A shared test machine: no evictions, no image garbage collection.
evictionHard: {}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
maxPods: 110
nodeStatusUpdateFrequency: 5s
syncFrequency: 10s
fileCheckFrequency: 5s
`, n.containerdSock(), n.net.NodeIP, n.net.ServiceIP(10), resolv, filepath.Join(n.dir, "pod-logs"))
	return os.WriteFile(filepath.Join(n.dir, "kubelet", "config.yaml"), []byte(config), 0o600)
}

func (n *node) writeKubeProxyConfig(kubeconfig string) error {
	config := fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection:
  kubeconfig: %[1]s
hostnameOverride: %[2]s
clusterCIDR: %[3]s
bindAddress: %[4]s
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
# Leave the conntrack sysctls alone: several are not per network namespace.
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
iptables:
  syncPeriod: 10s
  minSyncPeriod: 0s
`, kubeconfig, NodeName, n.net.PodCIDR, n.net.NodeIP)
	return os.WriteFile(filepath.Join(n.dir, "kube-proxy.yaml"), []byte(config), 0o600)
}

// waitForCRI waits until containerd answers on its CRI socket.
func (n *node) waitForCRI(ctx context.Context, containerd *process, tail string) error {
	return wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		if done, err := containerd.exited(); done {
			return false, fmt.Errorf("containerd exited: %v%s", err, tail)
		}
		if _, err := os.Stat(n.containerdSock()); err != nil {
			return false, nil
		}
		return n.withCRI(ctx, func(rt runtimeapi.RuntimeServiceClient) error {
			_, err := rt.Version(ctx, &runtimeapi.VersionRequest{})
			return err
		}) == nil, nil
	})
}

func (n *node) withCRI(ctx context.Context, fn func(runtimeapi.RuntimeServiceClient) error) error {
	conn, err := grpc.NewClient("unix://"+n.containerdSock(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	return fn(runtimeapi.NewRuntimeServiceClient(conn))
}

// removeAllPods stops and removes every pod sandbox through the CRI: containerd kills the
// containers, runs CNI DEL (the pod's veth, its IP, its portmap rules), unmounts and stops
// the shims.
func (n *node) removeAllPods(ctx context.Context) error {
	return n.withCRI(ctx, func(rt runtimeapi.RuntimeServiceClient) error {
		list, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
		if err != nil {
			return fmt.Errorf("listing pod sandboxes: %w", err)
		}
		var errs []error
		for _, sb := range list.Items {
			if _, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
				errs = append(errs, fmt.Errorf("stopping pod sandbox %s (%s/%s): %w", sb.Id, sb.Metadata.GetNamespace(), sb.Metadata.GetName(), err))
				continue
			}
			if _, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
				errs = append(errs, fmt.Errorf("removing pod sandbox %s: %w", sb.Id, err))
			}
		}
		return errors.Join(errs...)
	})
}

// cleanupScript removes whatever a node can leave behind when its processes were killed
// rather than stopped: containers (through runc), containerd's shims (their command line
// names this containerd's socket), mounts under the node's directory, empty cgroups, the network
// namespace and the host's veth end, CNI's result cache and the kubelet's
// /var/log/containers links. Stop runs it after the graceful stop, as a net; the watchdog
// runs it when the test process dies.
func (n *node) cleanupScript(runc string) string {
	q := shellQuote
	return strings.Join([]string{
		fmt.Sprintf(`R=%s/k8s.io`, q(n.runcRoot())),
		fmt.Sprintf(`for id in $(%s --root "$R" list -q 2>/dev/null); do %s --root "$R" delete -f "$id" >/dev/null 2>&1; done`, q(runc), q(runc)),
		fmt.Sprintf(`for p in /proc/[0-9]*; do case "$(readlink "$p/exe" 2>/dev/null)" in */containerd-shim-runc-v2) if { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -qF -- %s; then kill -9 "${p#/proc/}" 2>/dev/null; fi;; esac; done`, q("-address "+n.containerdSock()+" ")),
		fmt.Sprintf(`awk -v d=%s 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done`, q(n.dir+"/")),
		// containerd puts containers under k8s.io in every hierarchy (the kubelet gives no
		// parent with cgroupsPerQOS off); rmdir removes it only once empty, so a node of
		// another sandbox keeps it.
		`rmdir /sys/fs/cgroup/*/k8s.io 2>/dev/null`,
		fmt.Sprintf(`ip link del %s 2>/dev/null; ip netns del %s 2>/dev/null`, q(n.net.HostLink), q(n.net.Netns)),
		fmt.Sprintf(`rm -f /var/lib/cni/results/%s-*`, q(n.cniNetwork())),
		fmt.Sprintf(`for l in /var/log/containers/*.log; do case "$(readlink "$l")" in %s/*) rm -f "$l";; esac; done`, q(n.dir)),
		"true",
	}, "\n")
}

// startNodeWatchdog makes sure the node goes when the test process dies without Stop.
func (s *Sandbox) startNodeWatchdog() error {
	rm := s.node.dir
	if !s.opts.KeepWorkDir {
		rm = s.WorkDir
	}
	script := fmt.Sprintf("while kill -0 %d 2>/dev/null; do sleep 1; done\nsleep 3\n%s\nrm -rf %s",
		os.Getpid(), s.node.cleanupScript(s.node.runc), shellQuote(rm))
	return s.runWatchdog(script)
}

// cleanUpNode is Stop's net after the graceful stop: see cleanupScript.
func (s *Sandbox) cleanUpNode() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := run(ctx, "sh", "-c", s.node.cleanupScript(s.node.runc)); err != nil {
		return fmt.Errorf("cleaning up the node: %w: %s", err, out)
	}
	return s.node.net.tearDown(ctx)
}

// NodeIP is the node's InternalIP (empty without Options.Node).
func (s *Sandbox) NodeIP() string {
	if s.node == nil {
		return ""
	}
	return s.node.net.NodeIP.String()
}

// setUpNode checks the machine and creates the node's network, before the API server
// starts: the API server listens on the host's end of the veth pair.
func (s *Sandbox) setUpNode(ctx context.Context) error {
	runc, cniBin, err := checkNode(s.AssetsDir)
	if err != nil {
		return err
	}
	netw, err := setUpNodeNetwork(ctx)
	if err != nil {
		return err
	}
	s.node = &node{net: netw, runc: runc, cniBin: cniBin, dir: filepath.Join(s.WorkDir, "node")}
	s.addCleanup("node network and leftovers", s.cleanUpNode)
	return nil
}

// configureAPIServerForNode makes the API server reachable from the node and its pods:
// it listens and advertises on the host's end of the veth pair, its certificate names the
// `kubernetes` Service, Services get the node's range, and it reaches the kubelet at the
// node's InternalIP.
func (s *Sandbox) configureAPIServerForNode(apiserver *envtest.APIServer) error {
	n := s.node.net
	ln, err := net.Listen("tcp", net.JoinHostPort(n.HostIP.String(), "0"))
	if err != nil {
		return err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	apiserver.SecureServing.Address = n.HostIP.String()
	apiserver.SecureServing.Port = strconv.Itoa(port)
	apiserver.CertDir = filepath.Join(s.WorkDir, "apiserver")
	ca, err := writeAPIServerCerts(apiserver.CertDir,
		[]string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		[]net.IP{net.IPv4(127, 0, 0, 1), n.HostIP.AsSlice(), n.ServiceIP(1).AsSlice()})
	if err != nil {
		return err
	}
	apiserver.SecureServing.CA = ca
	args := apiserver.Configure()
	args.Set("advertise-address", n.HostIP.String())
	args.Set("service-cluster-ip-range", n.ServiceCIDR.String())
	args.Set("kubelet-preferred-address-types", "InternalIP")
	return nil
}
