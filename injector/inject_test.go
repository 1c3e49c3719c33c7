package injector_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/corsmesh/corsmesh/corsproxy/config"
	"github.com/corsmesh/corsmesh/injector"
	"github.com/corsmesh/corsmesh/injector/manifest"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/inject")

// testOptions are the defaults with images pinned, so golden files do not churn.
func testOptions() injector.Options {
	o := injector.DefaultOptions()
	o.ProxyImage = "corsproxy:test"
	o.InitImage = "corsproxy-init:test"
	return o
}

func readDocs(t testing.TB, path string) [][]byte {
	t.Helper()
	docs, err := manifest.ReadFiles(path)
	if err != nil {
		t.Fatal(err)
	}
	return docs
}

// loadCase returns the cluster (the shared seed cluster plus the case's own objects) and
// the case's one workload.
func loadCase(t testing.TB, path string) (*injector.Objects, *manifest.Workload) {
	t.Helper()
	objs := &injector.Objects{}
	shared := readDocs(t, filepath.Join("testdata", "inject", "_cluster.yaml"))
	own := readDocs(t, path)
	if err := manifest.AddObjects(objs, append(shared, own...)); err != nil {
		t.Fatal(err)
	}
	var workload *manifest.Workload
	for _, doc := range own {
		w, err := manifest.ParseWorkload(doc)
		if err != nil {
			t.Fatal(err)
		}
		if w != nil {
			if workload != nil {
				t.Fatalf("%s: more than one workload", path)
			}
			workload = w
		}
	}
	if workload == nil {
		t.Fatalf("%s: no workload", path)
	}
	return objs, workload
}

// Golden files: each testdata/inject/<case>.yaml is injected into <case>.injected.yaml
// (warnings first, as comments); `go test ./injector -update` rewrites them. Every case is
// then injected a second time, which must change nothing.
func TestInjectGolden(t *testing.T) {
	cases, err := filepath.Glob(filepath.Join("testdata", "inject", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	in := injector.New(testOptions())
	ran := 0
	for _, path := range cases {
		base := filepath.Base(path)
		if strings.HasPrefix(base, "_") || strings.HasSuffix(base, ".injected.yaml") {
			continue
		}
		ran++
		t.Run(strings.TrimSuffix(base, ".yaml"), func(t *testing.T) {
			objs, w := loadCase(t, path)
			d, mutated, err := injector.NewResolver(in, objs, injector.ResolverOptions{}).Inject(context.Background(), w.Pod, w.Namespace)
			if err != nil {
				t.Fatal(err)
			}
			if !d.Inject {
				t.Fatalf("not injected: %s: %s", d.Reason, d.Message)
			}
			out, err := w.Encode(mutated)
			if err != nil {
				t.Fatal(err)
			}
			var golden bytes.Buffer
			for _, warning := range d.Warnings {
				golden.WriteString("# warning: " + warning + "\n")
			}
			golden.Write(out)
			goldenPath := strings.TrimSuffix(path, ".yaml") + ".injected.yaml"
			if *update {
				if err := os.WriteFile(goldenPath, golden.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(goldenPath)
			if err != nil {
				t.Fatalf("%v (run go test ./injector -update)", err)
			}
			if !bytes.Equal(golden.Bytes(), want) {
				t.Errorf("%s differs from the injection (run go test ./injector -update and review the diff):\n%s", goldenPath, golden.String())
			}

			// The injected pod through the webhook again: skipped, and an empty patch.
			again, err := injector.NewResolver(in, objs, injector.ResolverOptions{}).Decide(context.Background(), mutated, w.Namespace, injector.ForAdmission)
			if err != nil {
				t.Fatal(err)
			}
			if again.Inject || again.Reason != injector.ReasonAlreadyInjected {
				t.Errorf("second pass: inject=%v reason=%s, want already-injected", again.Inject, again.Reason)
			}
			// And the admission patch, applied to the original as JSON, gives the same pod.
			m, err := in.Mutation(w.Pod, d)
			if err != nil {
				t.Fatal(err)
			}
			requireSameJSON(t, applyPatch(t, mustJSON(t, w.Pod), m.Patch(w.Pod)), mustJSON(t, mutated))
		})
	}
	if ran == 0 {
		t.Fatal("no golden cases found")
	}
}

// The seed's pipy-ok-v1 Deployment with the seed's policies: the pod gets the init
// container redirecting 8080, the proxy, and the seed's policy on port 8080, for requests
// addressed to pipy-ok (and, by default, the pod IP), not to pipy-ok-v1.
func TestSeedPodGetsTheSeedPolicy(t *testing.T) {
	objs, w := loadCase(t, filepath.Join("testdata", "inject", "seed-pipy-ok-v1.yaml"))
	in := injector.New(testOptions())
	d, pod, err := injector.NewResolver(in, objs, injector.ResolverOptions{}).Inject(context.Background(), w.Pod, w.Namespace)
	if err != nil || !d.Inject {
		t.Fatalf("decision %+v, err %v", d, err)
	}
	cfg, err := config.Parse([]byte(pod.Annotations[injector.AnnotationConfig]))
	if err != nil {
		t.Fatalf("config annotation does not parse: %v", err)
	}
	if len(cfg.Ports) != 1 || cfg.Ports[0].Port != 8080 {
		t.Fatalf("ports = %+v, want just 8080", cfg.Ports)
	}
	port := cfg.Ports[0]
	seedPolicy := port.CORS
	if seedPolicy == nil || len(seedPolicy.AllowOrigins) != 3 || seedPolicy.AllowOrigins[2].Prefix != "http://www.bbb.com" ||
		!seedPolicy.AllowCredentials || string(seedPolicy.MaxAge) != `"24h"` ||
		strings.Join(seedPolicy.ExposeHeaders, ",") != "Content-Encoding,Kuma-Revision" {
		t.Errorf("port 8080 policy = %+v, want the seed's PluginConfig", seedPolicy)
	}
	hosts := map[string]*config.CORS{}
	for _, h := range port.Hosts {
		for _, n := range h.Names {
			hosts[n] = h.CORS
		}
	}
	if hosts["pipy-ok.pipy"] == nil || hosts["pipy-ok.pipy.svc.cluster.local"] == nil {
		t.Errorf("pipy-ok's names do not carry the policy: %v", port.Hosts)
	}
	if p, ok := hosts["pipy-ok-v1.pipy"]; !ok || p != nil {
		t.Errorf("pipy-ok-v1 (no PluginConfig) should be listed without a policy: %v", port.Hosts)
	}
	if _, ok := hosts["pipy-ok-v2.pipy"]; ok {
		t.Errorf("pipy-ok-v2 does not select this pod but is listed")
	}
	initC := findContainer(pod.Spec.InitContainers, injector.InitContainerName)
	if initC == nil || !strings.Contains(strings.Join(initC.Args, " "), "--inbound-ports=8080") {
		t.Fatalf("init container = %+v", initC)
	}
	if caps := initC.SecurityContext.Capabilities; strings.Join(capStrings(caps.Add), ",") != "NET_ADMIN,NET_RAW" || strings.Join(capStrings(caps.Drop), ",") != "ALL" {
		t.Errorf("init capabilities = %+v", caps)
	}
	proxy := findContainer(pod.Spec.InitContainers, injector.ProxyContainerName)
	if proxy == nil || proxy.RestartPolicy == nil || *proxy.RestartPolicy != corev1.ContainerRestartPolicyAlways || proxy.StartupProbe == nil {
		t.Fatalf("proxy is not a native sidecar with a startup probe: %+v", proxy)
	}
	sc := proxy.SecurityContext
	if *sc.RunAsUser != 1500 || !*sc.RunAsNonRoot || !*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("proxy securityContext = %+v", sc)
	}
	var status injector.Status
	if err := json.Unmarshal([]byte(pod.Annotations[injector.AnnotationStatus]), &status); err != nil || len(status.Ports) != 1 {
		t.Errorf("status annotation = %q", pod.Annotations[injector.AnnotationStatus])
	}
}

func findContainer(list []corev1.Container, name string) *corev1.Container {
	for i := range list {
		if list[i].Name == name {
			return &list[i]
		}
	}
	return nil
}

func capStrings(caps []corev1.Capability) []string {
	out := make([]string, len(caps))
	for i, c := range caps {
		out[i] = string(c)
	}
	return out
}
