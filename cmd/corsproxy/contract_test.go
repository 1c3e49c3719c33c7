package main

import (
	"context"
	"io"
	"net"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/corsmesh/corsmesh/injector"
	"github.com/corsmesh/corsmesh/injector/manifest"
)

// TestInjectedArgsParse is the injector–proxy contract: the args the injector writes into
// the sidecar (and its postStart hook) parse with this command's own parser and mean what
// the rest of the pod expects: the port iptables redirects to, the probed admin port, the
// file the config volume holds.
func TestInjectedArgsParse(t *testing.T) {
	tests := []struct {
		name         string
		native       bool
		maxConns     string // corsmesh.io/proxy-max-conns ("": unset)
		wantMaxConns int
		proxyPort    int32 // 0: the default
	}{
		{name: "native sidecar, defaults", native: true, wantMaxConns: 1024},
		{name: "regular container, max conns, other ports", maxConns: "3000", wantMaxConns: 3000, proxyPort: 16001},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := injector.DefaultOptions()
			opts.NativeSidecars = tt.native
			if tt.proxyPort != 0 {
				opts.ProxyPort, opts.AdminPort = tt.proxyPort, tt.proxyPort+1
			}
			pod := injectSeedPod(t, opts, tt.maxConns)
			proxy, initC := container(pod, injector.ProxyContainerName), container(pod, injector.InitContainerName)
			if proxy == nil || initC == nil {
				t.Fatal("the pod has no proxy or init container")
			}
			f, err := parseFlags(proxy.Args, io.Discard)
			if err != nil {
				t.Fatalf("the proxy's injected args %q do not parse: %v", proxy.Args, err)
			}
			if want := ":" + strconv.Itoa(int(opts.ProxyPort)); f.listen != want {
				t.Errorf("listen %q, want %q", f.listen, want)
			}
			if !slices.Contains(initC.Args, "--proxy-port="+strconv.Itoa(int(opts.ProxyPort))) {
				t.Errorf("the init container %q does not redirect to the proxy's port %d", initC.Args, opts.ProxyPort)
			}
			if _, port, _ := net.SplitHostPort(f.adminListen); port != strconv.Itoa(int(opts.AdminPort)) || proxy.ReadinessProbe.HTTPGet.Port.IntValue() != int(opts.AdminPort) {
				t.Errorf("admin %q, readiness probe on %s, want both on %d", f.adminListen, proxy.ReadinessProbe.HTTPGet.Port.String(), opts.AdminPort)
			}
			if mount := mountOf(proxy, injector.ConfigVolumeName); mount == "" || path.Dir(f.configPath) != mount || path.Base(f.configPath) != injector.ConfigFileName {
				t.Errorf("config %q, config volume mounted at %q holding %s", f.configPath, mount, injector.ConfigFileName)
			}
			if f.opts.MaxConnsPerUpstream != tt.wantMaxConns {
				t.Errorf("max conns per upstream %d, want %d", f.opts.MaxConnsPerUpstream, tt.wantMaxConns)
			}
			if tt.native {
				if f.drainDelay != 0 || proxy.Lifecycle != nil {
					t.Errorf("a native sidecar: drain delay %s, lifecycle %+v; want none", f.drainDelay, proxy.Lifecycle)
				}
				return
			}
			if f.drainDelay != 5*time.Second {
				t.Errorf("drain delay %s, want 5s", f.drainDelay)
			}
			hook := proxy.Lifecycle.PostStart.Exec.Command
			w, err := parseFlags(hook[1:], io.Discard)
			if err != nil {
				t.Fatalf("the postStart hook %q does not parse: %v", hook, err)
			}
			if w.waitReady <= 0 || w.adminListen != f.adminListen {
				t.Errorf("postStart waits %s on %q, want a wait on the proxy's %q", w.waitReady, w.adminListen, f.adminListen)
			}
		})
	}
}

func injectSeedPod(t *testing.T, opts injector.Options, maxConns string) *corev1.Pod {
	t.Helper()
	dir := filepath.Join("..", "..", "injector", "testdata", "inject")
	docs, err := manifest.ReadFiles(filepath.Join(dir, "_cluster.yaml"), filepath.Join(dir, "seed-pipy-ok-v1.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	objs := &injector.Objects{}
	if err := manifest.AddObjects(objs, docs); err != nil {
		t.Fatal(err)
	}
	var w *manifest.Workload
	for _, doc := range docs {
		if w, err = manifest.ParseWorkload(doc); err != nil {
			t.Fatal(err)
		} else if w != nil {
			break
		}
	}
	if w == nil {
		t.Fatal("no workload in the seed case")
	}
	if maxConns != "" {
		if w.Pod.Annotations == nil {
			w.Pod.Annotations = map[string]string{}
		}
		w.Pod.Annotations[injector.AnnotationProxyMaxConns] = maxConns
	}
	d, pod, err := injector.NewResolver(injector.New(opts), objs, injector.ResolverOptions{}).Inject(context.Background(), w.Pod, w.Namespace)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Inject {
		t.Fatalf("the seed pod is not injected: %s: %s", d.Reason, d.Message)
	}
	return pod
}

func container(pod *corev1.Pod, name string) *corev1.Container {
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}

func mountOf(c *corev1.Container, volume string) string {
	for _, m := range c.VolumeMounts {
		if m.Name == volume {
			return m.MountPath
		}
	}
	return ""
}
