package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/corsmesh/corsmesh/injector"
)

// NamespaceOptions configure AddToMesh and RemoveFromMesh.
type NamespaceOptions struct {
	// Mesh is the value of the monitored-by label.
	Mesh string
	// DisableInjection sets the sidecar-injection annotation to disabled instead of enabled.
	DisableInjection bool
	// Force takes a namespace monitored by another mesh.
	Force bool
}

func runNamespace(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	var o NamespaceOptions
	var kubeconfig string
	fs := flag.NewFlagSet("corsmeshctl namespace", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: corsmeshctl namespace add|remove NAMESPACE... [flags]

add labels the namespaces `+injector.LabelMonitoredBy+`=MESH and annotates them
`+injector.AnnotationSidecarInjection+`=enabled (disabled with --disable-sidecar-injection);
remove deletes both from namespaces the mesh monitors.

Flags:
`)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.Mesh, "mesh-name", injector.DefaultOptions().MeshName, "name of the mesh")
	fs.BoolVar(&o.DisableInjection, "disable-sidecar-injection", false, "add: monitor the namespace but annotate sidecar injection disabled")
	fs.BoolVar(&o.Force, "force", false, "add: take a namespace monitored by another mesh")
	fs.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig (default: $KUBECONFIG, ~/.kube/config, in-cluster)")
	positional, code := parseFlags(fs, args)
	if code >= 0 {
		return code
	}
	if len(positional) < 2 || (positional[0] != "add" && positional[0] != "remove") {
		fmt.Fprintln(stderr, "corsmeshctl namespace: want add|remove NAMESPACE...")
		fs.Usage()
		return 2
	}
	if o.Mesh == "" {
		fmt.Fprintln(stderr, "corsmeshctl namespace: --mesh-name must not be empty")
		return 2
	}
	verb, names := positional[0], positional[1:]
	if verb == "remove" && (o.DisableInjection || o.Force) {
		fmt.Fprintln(stderr, "corsmeshctl namespace remove: --disable-sidecar-injection and --force apply to add only")
		return 2
	}
	c, err := newClient(kubeconfig)
	if err != nil {
		fmt.Fprintf(stderr, "corsmeshctl namespace: %v\n", err)
		return 1
	}
	defaults := injector.DefaultOptions()
	failed := false
	for _, name := range names {
		var msg string
		if verb == "add" {
			if slices.Contains(defaults.SystemNamespaces, name) || name == defaults.OwnNamespace {
				fmt.Fprintf(stderr, "warning: pods of namespace [%s] are never injected (system or corsmesh namespace)\n", name)
			}
			msg, err = AddToMesh(ctx, c, name, o)
		} else {
			msg, err = RemoveFromMesh(ctx, c, name, o.Mesh)
		}
		if err != nil {
			fmt.Fprintf(stderr, "corsmeshctl namespace %s: %v\n", verb, err)
			failed = true
			continue
		}
		fmt.Fprintln(stdout, msg)
	}
	if verb == "add" {
		// Pods of the namespace get the sidecar only once plugin policy is on.
		if policy, err := pluginPolicy(ctx, c, defaults.OwnNamespace); err == nil && !policy.Enabled {
			fmt.Fprintf(stderr, "note: %s\n", policy.Message())
		}
	}
	if failed {
		return 1
	}
	return 0
}

// AddToMesh labels the namespace monitored by o.Mesh and sets its sidecar-injection
// annotation, with a merge patch that holds only if the namespace did not change since it
// was read (so a concurrent claim by another mesh is not overwritten). It returns the
// message to print.
func AddToMesh(ctx context.Context, c client.Client, name string, o NamespaceOptions) (string, error) {
	injection := "enabled"
	if o.DisableInjection {
		injection = "disabled"
	}
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		ns, err := getNamespace(ctx, c, name)
		if err != nil {
			return err
		}
		if mesh, ok := ns.Labels[injector.LabelMonitoredBy]; ok && mesh != o.Mesh && !o.Force {
			return fmt.Errorf("namespace [%s] already has [%s] set to [%s]: use --force to have mesh [%s] monitor it instead",
				name, injector.LabelMonitoredBy, mesh, o.Mesh)
		}
		return patchNamespace(ctx, c, ns, map[string]any{injector.LabelMonitoredBy: o.Mesh},
			map[string]any{injector.AnnotationSidecarInjection: injection})
	})
	if err != nil {
		return "", err
	}
	msg := fmt.Sprintf("Namespace [%s] successfully added to mesh [%s]", name, o.Mesh)
	if o.DisableInjection {
		msg += " with sidecar injection disabled"
	}
	return msg, nil
}

// RemoveFromMesh deletes the monitored-by label and the sidecar-injection annotation of a
// namespace the mesh monitors; a namespace of another mesh is refused, one of no mesh left
// alone.
func RemoveFromMesh(ctx context.Context, c client.Client, name, mesh string) (string, error) {
	var msg string
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		ns, err := getNamespace(ctx, c, name)
		if err != nil {
			return err
		}
		current, ok := ns.Labels[injector.LabelMonitoredBy]
		switch {
		case !ok:
			msg = fmt.Sprintf("Namespace [%s] already does not belong to any mesh", name)
			return nil
		case current != mesh:
			return fmt.Errorf("namespace [%s] belongs to mesh [%s], not mesh [%s]: please specify the correct mesh with --mesh-name",
				name, current, mesh)
		}
		msg = fmt.Sprintf("Namespace [%s] successfully removed from mesh [%s]", name, mesh)
		return patchNamespace(ctx, c, ns, map[string]any{injector.LabelMonitoredBy: nil},
			map[string]any{injector.AnnotationSidecarInjection: nil})
	})
	return msg, err
}

func getNamespace(ctx context.Context, c client.Client, name string) (*corev1.Namespace, error) {
	var ns corev1.Namespace
	if err := c.Get(ctx, types.NamespacedName{Name: name}, &ns); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("namespace [%s] not found", name)
		}
		return nil, fmt.Errorf("getting namespace [%s]: %w", name, err)
	}
	return &ns, nil
}

// patchNamespace merge-patches labels and annotations (nil deletes), conditional on the
// resourceVersion read.
func patchNamespace(ctx context.Context, c client.Client, ns *corev1.Namespace, labels, annotations map[string]any) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"resourceVersion": ns.ResourceVersion,
		"labels":          labels,
		"annotations":     annotations,
	}})
	if err != nil {
		return err
	}
	if err := c.Patch(ctx, ns, client.RawPatch(types.MergePatchType, patch)); err != nil {
		if apierrors.IsConflict(err) {
			return err // retried
		}
		return fmt.Errorf("patching namespace [%s]: %w", ns.Name, err)
	}
	return nil
}
