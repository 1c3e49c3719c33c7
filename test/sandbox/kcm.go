package sandbox

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// kcmControllers are the kube-controller-manager controllers the sandbox runs: all those on
// by default except the ones that need nodes, a cloud, volumes or a signing CA, which have
// nothing to do here and only cost CPU.
var kcmControllers = []string{
	"*",
	"-node-ipam-controller",
	"-node-lifecycle-controller",
	"-taint-eviction-controller",
	"-device-taint-eviction-controller",
	"-ttl-controller",
	"-persistentvolume-attach-detach-controller",
	"-persistentvolume-binder-controller",
	"-persistentvolume-expander-controller",
	"-ephemeral-volume-controller",
	"-certificatesigningrequest-signing-controller",
	"-certificatesigningrequest-approving-controller",
	"-horizontal-pod-autoscaler-controller",
}

// kcmControllers are kcmControllers, and with a node also those that keep its taints and
// its pods' lifecycle (node-lifecycle, taint-eviction, ttl).
func (s *Sandbox) kcmControllers() []string {
	if s.node == nil {
		return kcmControllers
	}
	var cs []string
	for _, c := range kcmControllers {
		switch c {
		case "-node-lifecycle-controller", "-taint-eviction-controller", "-ttl-controller":
		default:
			cs = append(cs, c)
		}
	}
	return cs
}

// startControllerManager runs the real kube-controller-manager against the sandbox's API
// server: Deployments get ReplicaSets, ReplicaSets get Pods, namespaces get their default
// ServiceAccount and kube-root-ca.crt, garbage collection and namespace deletion work.
func (s *Sandbox) startControllerManager(ctx context.Context, env *envtest.Environment, out io.Writer) error {
	apiserver := env.ControlPlane.GetAPIServer()
	dir := filepath.Join(s.WorkDir, "kube-controller-manager")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	user, err := env.AddUser(envtest.User{Name: "system:kube-controller-manager", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("provisioning the kube-controller-manager user: %w", err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return err
	}
	kubeconfigPath := filepath.Join(dir, "kubeconfig")
	rootCA := filepath.Join(dir, "root-ca.crt")
	if err := os.WriteFile(kubeconfigPath, kubeconfig, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(rootCA, apiserver.SecureServing.CA, 0o600); err != nil {
		return err
	}
	port, err := FreePort()
	if err != nil {
		return err
	}
	args := []string{
		"--kubeconfig=" + kubeconfigPath,
		"--authentication-kubeconfig=" + kubeconfigPath,
		"--authorization-kubeconfig=" + kubeconfigPath,
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--cert-dir=" + dir,
		"--leader-elect=false",
		"--controllers=" + strings.Join(s.kcmControllers(), ","),
		// The API server verifies tokens with sa-signer.crt (envtest's
		// --service-account-key-file); the token controller signs with its key.
		"--service-account-private-key-file=" + filepath.Join(apiserver.CertDir, "sa-signer.key"),
		"--root-ca-file=" + rootCA,
		"--use-service-account-credentials=false",
		// Quick reactions in tests: the defaults are tuned for large clusters.
		"--concurrent-deployment-syncs=5",
		"--concurrent-replicaset-syncs=5",
		"--kube-api-qps=200",
		"--kube-api-burst=400",
	}
	s.logf("starting kube-controller-manager (127.0.0.1:%d)", port)
	p, err := startProcess("kube-controller-manager", filepath.Join(s.AssetsDir, "kube-controller-manager"), args, out)
	if err != nil {
		return err
	}
	s.addCleanup("kube-controller-manager", func() error { return p.stop(10 * time.Second) })

	// Ready when its serviceaccount controller has given the default namespace its
	// ServiceAccount: pods cannot be created in a namespace before that (ServiceAccount
	// admission plugin).
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		if done, err := p.exited(); done {
			return false, fmt.Errorf("kube-controller-manager exited: %v%s", err, s.logTail("kube-controller-manager"))
		}
		return s.hasDefaultServiceAccount(ctx, "default")
	})
	if err != nil {
		return fmt.Errorf("waiting for kube-controller-manager: %w%s", err, s.logTail("kube-controller-manager"))
	}
	return nil
}

func (s *Sandbox) hasDefaultServiceAccount(ctx context.Context, namespace string) (bool, error) {
	// Not found yet, or a transient error: poll again.
	return s.Client.Get(ctx, types.NamespacedName{Namespace: namespace, Name: "default"}, &corev1.ServiceAccount{}) == nil, nil
}

// WaitForNamespace waits until the namespace's default ServiceAccount exists: before that,
// the ServiceAccount admission plugin refuses pods that do not name another one.
func (s *Sandbox) WaitForNamespace(ctx context.Context, namespace string) error {
	return wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		return s.hasDefaultServiceAccount(ctx, namespace)
	})
}

// CreateNamespace creates a namespace with labels and annotations and waits until pods can
// be created in it.
func (s *Sandbox) CreateNamespace(ctx context.Context, name string, labels, annotations map[string]string) error {
	ns := &corev1.Namespace{}
	ns.Name, ns.Labels, ns.Annotations = name, labels, annotations
	if err := s.Client.Create(ctx, ns); err != nil {
		return err
	}
	return s.WaitForNamespace(ctx, name)
}
