// Package podrunner plays the kubelet for an injected pod on a machine without one: it
// gives the pod a network namespace with a veth link to a client namespace, runs the
// injected init container's command exactly as injected (real iptables), delivers the
// config annotation as a downward-API volume, starts the proxy with its injected command,
// arguments and UID, and starts a stand-in for each app container.
//
// It needs root, iproute2, iptables and setpriv. Addresses live only inside the two
// namespaces it creates, which Close deletes with everything it started.
package podrunner

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/corsmesh/corsmesh/injector"
)

// Options configure Run.
type Options struct {
	// BinDir holds corsproxy, corsproxy-init and pipyok (the app stand-in).
	BinDir string
	// Log receives progress lines (default: none).
	Log func(format string, args ...any)
}

// Pod is a pod running in network namespaces.
type Pod struct {
	Name     string
	PodNS    string // network namespace of the pod
	ClientNS string // network namespace of the client
	IP       netip.Addr
	ClientIP netip.Addr
	// IP6 and ClientIP6 are the pod's and the client's IPv6 addresses on the same link.
	IP6       netip.Addr
	ClientIP6 netip.Addr

	opts      Options
	pod       *corev1.Pod
	configDir string // the downward-API volume's host directory
	version   int

	mu    sync.Mutex
	procs map[string]*exec.Cmd // by container name
	logs  map[string]*bytes.Buffer
}

// Preflight reports what the runner needs and this machine lacks.
func Preflight() error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (network namespaces, iptables)")
	}
	for _, bin := range []string{"ip", "iptables", "iptables-restore", "setpriv", "curl"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("needs %s: %w", bin, err)
		}
	}
	return nil
}

// Run starts an injected pod as the kubelet would, up to its app containers running.
func Run(ctx context.Context, pod *corev1.Pod, opts Options) (_ *Pod, err error) {
	if opts.Log == nil {
		opts.Log = func(string, ...any) {}
	}
	if err := Preflight(); err != nil {
		return nil, err
	}
	random := make([]byte, 3)
	_, _ = rand.Read(random)
	suffix := hex.EncodeToString(random)
	octet := 1 + int(random[0])%250
	p := &Pod{
		Name: pod.Name, PodNS: "cm-pod-" + suffix, ClientNS: "cm-cli-" + suffix,
		IP: netip.AddrFrom4([4]byte{10, 214, byte(octet), 2}), ClientIP: netip.AddrFrom4([4]byte{10, 214, byte(octet), 1}),
		IP6:       netip.AddrFrom16([16]byte{0xfd, 0, 0x02, 0x14, 0, byte(octet), 15: 2}),
		ClientIP6: netip.AddrFrom16([16]byte{0xfd, 0, 0x02, 0x14, 0, byte(octet), 15: 1}),
		opts:      opts, pod: pod, procs: map[string]*exec.Cmd{}, logs: map[string]*bytes.Buffer{},
	}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	if err := p.network(ctx, suffix); err != nil {
		return nil, err
	}
	if p.configDir, err = os.MkdirTemp("", "corsproxy-config-"); err != nil {
		return nil, err
	}
	// The proxy runs as its own UID and must read the volume.
	if err := os.Chmod(p.configDir, 0o755); err != nil {
		return nil, err
	}
	if err := p.UpdateConfig(pod.Annotations[injector.AnnotationConfig]); err != nil {
		return nil, err
	}
	for _, c := range pod.Spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			if err := p.startSidecar(ctx, c); err != nil {
				return nil, err
			}
			continue
		}
		opts.Log("running init container %s: %s", c.Name, strings.Join(append(c.Command, c.Args...), " "))
		out, err := p.command(ctx, c).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("init container %s: %w\n%s", c.Name, err, out)
		}
	}
	for _, c := range pod.Spec.Containers {
		if c.Name == injector.ProxyContainerName {
			if err := p.startSidecar(ctx, c); err != nil {
				return nil, err
			}
			continue
		}
		if err := p.StartApp(ctx, c.Name); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// network creates the pod and client namespaces and links them.
func (p *Pod) network(ctx context.Context, suffix string) error {
	vethPod, vethClient := "cmp"+suffix, "cmc"+suffix
	steps := [][]string{
		{"netns", "add", p.PodNS},
		{"netns", "add", p.ClientNS},
		{"-n", p.PodNS, "link", "add", vethPod, "type", "veth", "peer", "name", vethClient, "netns", p.ClientNS},
		{"-n", p.PodNS, "addr", "add", p.IP.String() + "/30", "dev", vethPod},
		{"-n", p.ClientNS, "addr", "add", p.ClientIP.String() + "/30", "dev", vethClient},
		// nodad: the addresses are usable at once, not after duplicate detection.
		{"-n", p.PodNS, "addr", "add", p.IP6.String() + "/64", "dev", vethPod, "nodad"},
		{"-n", p.ClientNS, "addr", "add", p.ClientIP6.String() + "/64", "dev", vethClient, "nodad"},
		{"-n", p.PodNS, "link", "set", "lo", "up"},
		{"-n", p.ClientNS, "link", "set", "lo", "up"},
		{"-n", p.PodNS, "link", "set", vethPod, "up"},
		{"-n", p.ClientNS, "link", "set", vethClient, "up"},
	}
	for _, args := range steps {
		if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, out)
		}
	}
	p.opts.Log("pod %s: network namespace %s, addresses %s and %s (client %s and %s in %s)", p.Name, p.PodNS, p.IP, p.IP6, p.ClientIP, p.ClientIP6, p.ClientNS)
	return nil
}

// UpdateConfig writes the config annotation into the volume as the kubelet does: a new
// timestamped directory, then the "..data" symlink replaced atomically by a rename.
func (p *Pod) UpdateConfig(annotation string) error {
	p.version++
	dir := fmt.Sprintf("..%s.%d", time.Now().UTC().Format("2006_01_02_15_04_05"), p.version)
	if err := os.Mkdir(filepath.Join(p.configDir, dir), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(p.configDir, dir, injector.ConfigFileName), []byte(annotation), 0o644); err != nil {
		return err
	}
	tmp := filepath.Join(p.configDir, "..data_tmp")
	if err := os.Symlink(dir, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(p.configDir, "..data")); err != nil {
		return err
	}
	link := filepath.Join(p.configDir, injector.ConfigFileName)
	if _, err := os.Lstat(link); errors.Is(err, os.ErrNotExist) {
		return os.Symlink(filepath.Join("..data", injector.ConfigFileName), link)
	}
	return nil
}

// command builds a container's process: its command and arguments as injected, with the
// binary taken from BinDir and volume paths mapped to their host directories, inside the
// pod's namespace and as the container's user.
func (p *Pod) command(ctx context.Context, c corev1.Container) *exec.Cmd {
	argv := append(slices.Clone(c.Command), c.Args...)
	if len(argv) > 0 && !strings.Contains(argv[0], "/") {
		argv[0] = filepath.Join(p.opts.BinDir, argv[0])
	}
	for i, a := range argv {
		argv[i] = strings.ReplaceAll(a, injector.ConfigMountPath, p.configDir)
	}
	prefix := []string{"netns", "exec", p.PodNS}
	if sc := c.SecurityContext; sc != nil && sc.RunAsUser != nil && *sc.RunAsUser != 0 {
		uid := strconv.FormatInt(*sc.RunAsUser, 10)
		gid := uid
		if sc.RunAsGroup != nil {
			gid = strconv.FormatInt(*sc.RunAsGroup, 10)
		}
		prefix = append(prefix, "setpriv", "--reuid", uid, "--regid", gid, "--clear-groups", "--")
	}
	cmd := exec.CommandContext(ctx, "ip", append(prefix, argv...)...)
	cmd.Env = os.Environ()
	for _, e := range c.Env {
		cmd.Env = append(cmd.Env, e.Name+"="+e.Value)
	}
	return cmd
}

// startSidecar starts the proxy and waits for its startup probe, as the kubelet does before
// starting the next container.
func (p *Pod) startSidecar(ctx context.Context, c corev1.Container) error {
	if err := p.start(ctx, c); err != nil {
		return err
	}
	probe := c.StartupProbe
	if probe == nil {
		probe = c.ReadinessProbe
	}
	if probe == nil || probe.HTTPGet == nil {
		return nil
	}
	url := fmt.Sprintf("http://%s%s", netip.AddrPortFrom(p.IP, uint16(probe.HTTPGet.Port.IntValue())), probe.HTTPGet.Path)
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if out, err := p.ClientCommand(ctx, "curl", "-fsS", "-m", "1", url).CombinedOutput(); err == nil {
			p.opts.Log("%s ready (%s: %s)", c.Name, url, strings.TrimSpace(string(out)))
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready at %s; its log:\n%s", c.Name, url, p.Log(c.Name))
}

func (p *Pod) start(ctx context.Context, c corev1.Container) error {
	cmd := p.command(ctx, c)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	p.opts.Log("starting %s: %s", c.Name, strings.Join(cmd.Args[4:], " "))
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", c.Name, err)
	}
	p.mu.Lock()
	p.procs[c.Name], p.logs[c.Name] = cmd, &buf
	p.mu.Unlock()
	return nil
}

// pipyMessage finds the text the seed's pipy script answers with.
var pipyMessage = regexp.MustCompile(`new Message\('([^']*)'\)`)

// StartApp starts the stand-in for an app container: pipyok on each of its ports,
// answering what the seed's pipy script answers (over HTTPS on a port named "…-tls").
func (p *Pod) StartApp(ctx context.Context, name string) error {
	i := slices.IndexFunc(p.pod.Spec.Containers, func(c corev1.Container) bool { return c.Name == name })
	if i < 0 {
		return fmt.Errorf("no container %s", name)
	}
	c := p.pod.Spec.Containers[i]
	message := "Hi from " + name
	if m := pipyMessage.FindStringSubmatch(strings.Join(append(c.Command, c.Args...), " ")); m != nil {
		message = m[1]
	}
	for j, port := range c.Ports {
		app := corev1.Container{
			Name:    fmt.Sprintf("%s/%d", name, j),
			Command: []string{"pipyok", fmt.Sprintf("--listen=:%d", port.ContainerPort), "--message=" + message},
		}
		if strings.HasSuffix(port.Name, "-tls") {
			app.Command = append(app.Command, "--tls") // the test's convention for an HTTPS port
		}
		if err := p.start(ctx, app); err != nil {
			return err
		}
		if err := p.waitListening(ctx, port.ContainerPort); err != nil {
			return err
		}
	}
	return nil
}

// waitListening waits until something listens on the port inside the pod.
func (p *Pod) waitListening(ctx context.Context, port int32) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		out, _ := exec.CommandContext(ctx, "ip", "netns", "exec", p.PodNS, "ss", "-Hltn", fmt.Sprintf("sport = :%d", port)).Output()
		if len(bytes.TrimSpace(out)) > 0 {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("nothing listens on port %d in %s", port, p.PodNS)
}

// ClientCommand runs a command in the client namespace.
func (p *Pod) ClientCommand(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", p.ClientNS, name}, args...)...)
}

// Log returns what a container wrote so far.
func (p *Pod) Log(name string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if b := p.logs[name]; b != nil {
		return b.String()
	}
	return ""
}

// Close stops every process and deletes the namespaces (and with them the veth pair).
func (p *Pod) Close() error {
	p.mu.Lock()
	for name, cmd := range p.procs {
		stop(cmd)
		delete(p.procs, name)
	}
	p.mu.Unlock()
	var errs []error
	for _, ns := range []string{p.PodNS, p.ClientNS} {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil && !bytes.Contains(out, []byte("No such file")) {
			errs = append(errs, fmt.Errorf("ip netns del %s: %w: %s", ns, err, out))
		}
	}
	if p.configDir != "" {
		errs = append(errs, os.RemoveAll(p.configDir))
	}
	return errors.Join(errs...)
}

// stop ends a process gracefully (SIGTERM), then for good.
func stop(cmd *exec.Cmd) {
	if cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}
