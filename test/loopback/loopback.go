// Package loopback runs an injected pod's proxy on loopback, without network namespaces or
// iptables: the proxy's own command from the pod with --upstream in place of the redirect,
// in front of pipyok. It is what `make demo` shows a user without root;
// TestDemoWithoutRootMatchesGuide runs that path as the demo does.
package loopback

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/corsmesh/corsmesh/injector"
)

// Pod is a pod's app and proxy running on 127.0.0.1.
type Pod struct {
	ProxyPort int
	dir       string
	cmds      []*exec.Cmd
}

// Run starts pipyok and corsproxy from binDir with the pod's config annotation as the
// proxy's policy file; stderr receives both processes' logs. Close stops them.
func Run(ctx context.Context, pod *corev1.Pod, binDir string, stderr io.Writer) (*Pod, error) {
	config, ok := pod.Annotations[injector.AnnotationConfig]
	if !ok {
		return nil, fmt.Errorf("pod %s has no %s annotation: not injected", pod.Name, injector.AnnotationConfig)
	}
	dir, err := os.MkdirTemp("", "corsmesh-loopback-")
	if err != nil {
		return nil, err
	}
	p := &Pod{dir: dir}
	configPath := filepath.Join(dir, injector.ConfigFileName)
	if err := os.WriteFile(configPath, []byte(config), 0o644); err != nil {
		p.Close()
		return nil, err
	}
	ports, err := freePorts(3)
	if err != nil {
		p.Close()
		return nil, err
	}
	appPort, adminPort := strconv.Itoa(ports[0]), strconv.Itoa(ports[2])
	p.ProxyPort = ports[1]
	app := exec.CommandContext(ctx, filepath.Join(binDir, "pipyok"), "--listen", "127.0.0.1:"+appPort)
	proxy := exec.CommandContext(ctx, filepath.Join(binDir, "corsproxy"), "--config", configPath,
		"--listen", "127.0.0.1:"+strconv.Itoa(p.ProxyPort), "--admin-listen", "127.0.0.1:"+adminPort,
		"--upstream", "127.0.0.1:"+appPort, "--policy-port", "8080", "--log-level", "warn")
	for _, cmd := range []*exec.Cmd{app, proxy} {
		cmd.Stderr = stderr
		if err := cmd.Start(); err != nil {
			p.Close()
			return nil, fmt.Errorf("starting %s: %w", cmd.Path, err)
		}
		p.cmds = append(p.cmds, cmd)
	}
	if err := waitReady(ctx, "http://127.0.0.1:"+adminPort+"/readyz"); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// Curl runs curl -ksi against url (the guide's http://pipy-ok.pipy:8080, say) with the
// connection sent to the proxy, and returns what it printed.
func (p *Pod) Curl(ctx context.Context, hostPort, url string, args ...string) (string, error) {
	args = append([]string{"-ksi", "-m", "10", "--connect-to", hostPort + ":127.0.0.1:" + strconv.Itoa(p.ProxyPort), url}, args...)
	out, err := exec.CommandContext(ctx, "curl", args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("curl %v: %w\n%s", args, err, out)
	}
	return string(out), nil
}

// Close stops the processes it started, by their PIDs, and removes the policy file.
func (p *Pod) Close() {
	for _, cmd := range p.cmds {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}
	_ = os.RemoveAll(p.dir)
}

func waitReady(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return errors.New(url + " not ready in 10s")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// freePorts asks the kernel for n distinct free ports on loopback, holding all of them
// until each is known, so none is handed out twice.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
