package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Kubectl runs the sandbox's kubectl against it (--kubeconfig KubeconfigPath) and returns
// its standard output; the error carries its standard error.
func (s *Sandbox) Kubectl(ctx context.Context, args ...string) (string, error) {
	stdout, _, err := s.KubectlIO(ctx, nil, args...)
	return stdout, err
}

// KubectlWithInput is Kubectl with stdin (for `apply -f -`).
func (s *Sandbox) KubectlWithInput(ctx context.Context, stdin []byte, args ...string) (string, error) {
	stdout, _, err := s.KubectlIO(ctx, stdin, args...)
	return stdout, err
}

// KubectlIO runs kubectl with stdin (nil: none) and returns its standard output and
// standard error (where kubectl prints the API server's warnings) separately. It runs in
// RepoRoot, so relative -f paths name repository files.
func (s *Sandbox) KubectlIO(ctx context.Context, stdin []byte, args ...string) (stdout, stderr string, err error) {
	return runKubectl(ctx, filepath.Join(s.AssetsDir, "kubectl"), s.RepoRoot, stdin, append([]string{"--kubeconfig=" + s.KubeconfigPath}, args...)...)
}

func runKubectl(ctx context.Context, path, dir string, stdin []byte, args ...string) (string, string, error) {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = dir
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), stderr.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), stderr.String(), nil
}

// Kustomize renders a kustomization directory (relative to RepoRoot, or absolute) with the
// sandbox's kubectl (`kubectl kustomize`); it needs no API server.
func (s *Sandbox) Kustomize(ctx context.Context, dir string) ([]byte, error) {
	return Kustomize(ctx, s.AssetsDir, s.RepoRoot, dir)
}

// Kustomize renders a kustomization directory with the kubectl in assetsDir.
func Kustomize(ctx context.Context, assetsDir, repoRoot, dir string) ([]byte, error) {
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(repoRoot, dir)
	}
	out, _, err := runKubectl(ctx, filepath.Join(assetsDir, "kubectl"), repoRoot, nil, "kustomize", dir)
	return []byte(out), err
}

// ApplyOptions modify Apply.
type ApplyOptions struct {
	// Namespace is set on namespaced objects that name none (like kubectl apply -n).
	Namespace string
	// FieldManager defaults to FieldManager.
	FieldManager string
	// DryRun asks the API server to validate, admit and default the objects without
	// storing them (kubectl apply --server-side --dry-run=server).
	DryRun bool
}

// DecodeYAML splits a multi-document YAML (or JSON) stream into objects.
func DecodeYAML(data []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var objs []*unstructured.Unstructured
	for {
		var u unstructured.Unstructured
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, fmt.Errorf("decoding YAML: %w", err)
		}
		if len(u.Object) == 0 {
			continue
		}
		objs = append(objs, &u)
	}
}

// Apply server-side applies every object of a YAML stream, in order, with conflicts
// forced (the sandbox is the only applier), and returns them as the API server stored (or,
// with DryRun, would store) them. It stops at the first error, naming the object.
func (s *Sandbox) Apply(ctx context.Context, yaml []byte, opts ApplyOptions) ([]*unstructured.Unstructured, error) {
	objs, err := DecodeYAML(yaml)
	if err != nil {
		return nil, err
	}
	if err := s.ApplyObjects(ctx, objs, opts); err != nil {
		return nil, err
	}
	return objs, nil
}

// ApplyObjects is Apply for decoded objects, which it updates in place with what the API
// server returned.
func (s *Sandbox) ApplyObjects(ctx context.Context, objs []*unstructured.Unstructured, opts ApplyOptions) error {
	if opts.FieldManager == "" {
		opts.FieldManager = FieldManager
	}
	applyOpts := []client.ApplyOption{client.FieldOwner(opts.FieldManager), client.ForceOwnership}
	if opts.DryRun {
		applyOpts = append(applyOpts, client.DryRunAll)
	}
	for _, obj := range objs {
		if opts.Namespace != "" && obj.GetNamespace() == "" {
			namespaced, err := s.Client.IsObjectNamespaced(obj)
			if err != nil {
				return fmt.Errorf("%s %s: %w", obj.GetKind(), obj.GetName(), err)
			}
			if namespaced {
				obj.SetNamespace(opts.Namespace)
			}
		}
		ac := client.ApplyConfigurationFromUnstructured(obj)
		if err := s.Client.Apply(ctx, ac, applyOpts...); err != nil {
			return fmt.Errorf("applying %s %s: %w", obj.GetKind(), objectName(obj), err)
		}
		// The client decodes the response into obj.
	}
	return nil
}

func objectName(obj client.Object) string {
	if obj.GetNamespace() == "" {
		return obj.GetName()
	}
	return obj.GetNamespace() + "/" + obj.GetName()
}

// IsWebhookUnavailable reports whether err is the API server failing to call a webhook.
func IsWebhookUnavailable(err error) bool {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return false
	}
	msg := status.Status().Message
	return strings.Contains(msg, "failed calling webhook")
}
