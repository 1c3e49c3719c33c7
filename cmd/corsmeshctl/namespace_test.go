package main

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/corsmesh/corsmesh/injector"
)

func namespaceWith(name string, labels, annotations map[string]string) *corev1.Namespace {
	ns := &corev1.Namespace{}
	ns.Name, ns.Labels, ns.Annotations = name, labels, annotations
	return ns
}

// patchOnly is a fake client that records patch types and fails updates: namespace must
// merge-patch, never overwrite.
func patchOnly(t *testing.T, objs ...client.Object) (client.Client, *[]types.PatchType) {
	t.Helper()
	scheme, err := Scheme()
	if err != nil {
		t.Fatal(err)
	}
	var patches []types.PatchType
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).WithInterceptorFuncs(interceptor.Funcs{
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			patches = append(patches, patch.Type())
			return c.Patch(ctx, obj, patch, opts...)
		},
		Update: func(context.Context, client.WithWatch, client.Object, ...client.UpdateOption) error {
			t.Error("namespace used Update")
			return nil
		},
	}).Build()
	return c, &patches
}

func TestNamespaceAddRemove(t *testing.T) {
	const (
		mon = injector.LabelMonitoredBy
		inj = injector.AnnotationSidecarInjection
	)
	tests := []struct {
		name    string
		ns      *corev1.Namespace
		remove  bool
		opts    NamespaceOptions
		wantMsg string
		wantErr string
		// The namespace's labels and annotations after (nil map: none of ours).
		wantLabels, wantAnnotations map[string]string
	}{
		{
			name:       "add",
			ns:         namespaceWith("pipy", map[string]string{"team": "a"}, nil),
			opts:       NamespaceOptions{Mesh: "osm"},
			wantMsg:    "Namespace [pipy] successfully added to mesh [osm]",
			wantLabels: map[string]string{"team": "a", mon: "osm"}, wantAnnotations: map[string]string{inj: "enabled"},
		},
		{
			name:       "add with injection disabled",
			ns:         namespaceWith("pipy", nil, map[string]string{"note": "x"}),
			opts:       NamespaceOptions{Mesh: "osm", DisableInjection: true},
			wantMsg:    "Namespace [pipy] successfully added to mesh [osm] with sidecar injection disabled",
			wantLabels: map[string]string{mon: "osm"}, wantAnnotations: map[string]string{"note": "x", inj: "disabled"},
		},
		{
			name:       "add again re-enables injection",
			ns:         namespaceWith("pipy", map[string]string{mon: "osm"}, map[string]string{inj: "disabled"}),
			opts:       NamespaceOptions{Mesh: "osm"},
			wantMsg:    "Namespace [pipy] successfully added to mesh [osm]",
			wantLabels: map[string]string{mon: "osm"}, wantAnnotations: map[string]string{inj: "enabled"},
		},
		{
			name:       "add refuses another mesh's namespace",
			ns:         namespaceWith("pipy", map[string]string{mon: "edge"}, nil),
			opts:       NamespaceOptions{Mesh: "osm"},
			wantErr:    "namespace [pipy] already has [openservicemesh.io/monitored-by] set to [edge]: use --force",
			wantLabels: map[string]string{mon: "edge"},
		},
		{
			name:       "add takes another mesh's namespace with force",
			ns:         namespaceWith("pipy", map[string]string{mon: "edge"}, nil),
			opts:       NamespaceOptions{Mesh: "osm", Force: true},
			wantMsg:    "Namespace [pipy] successfully added to mesh [osm]",
			wantLabels: map[string]string{mon: "osm"}, wantAnnotations: map[string]string{inj: "enabled"},
		},
		{
			name:       "add to a custom mesh",
			ns:         namespaceWith("pipy", nil, nil),
			opts:       NamespaceOptions{Mesh: "edge"},
			wantMsg:    "Namespace [pipy] successfully added to mesh [edge]",
			wantLabels: map[string]string{mon: "edge"}, wantAnnotations: map[string]string{inj: "enabled"},
		},
		{
			name:       "remove",
			ns:         namespaceWith("pipy", map[string]string{mon: "osm", "team": "a"}, map[string]string{inj: "enabled", "note": "x"}),
			remove:     true,
			opts:       NamespaceOptions{Mesh: "osm"},
			wantMsg:    "Namespace [pipy] successfully removed from mesh [osm]",
			wantLabels: map[string]string{"team": "a"}, wantAnnotations: map[string]string{"note": "x"},
		},
		{
			name:       "remove refuses another mesh's namespace",
			ns:         namespaceWith("pipy", map[string]string{mon: "edge"}, map[string]string{inj: "enabled"}),
			remove:     true,
			opts:       NamespaceOptions{Mesh: "osm"},
			wantErr:    "namespace [pipy] belongs to mesh [edge], not mesh [osm]",
			wantLabels: map[string]string{mon: "edge"}, wantAnnotations: map[string]string{inj: "enabled"},
		},
		{
			name:            "remove from no mesh",
			ns:              namespaceWith("pipy", nil, map[string]string{inj: "disabled"}),
			remove:          true,
			opts:            NamespaceOptions{Mesh: "osm"},
			wantMsg:         "Namespace [pipy] already does not belong to any mesh",
			wantAnnotations: map[string]string{inj: "disabled"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, patches := patchOnly(t, tc.ns)
			var msg string
			var err error
			if tc.remove {
				msg, err = RemoveFromMesh(context.Background(), c, tc.ns.Name, tc.opts.Mesh)
			} else {
				msg, err = AddToMesh(context.Background(), c, tc.ns.Name, tc.opts)
			}
			switch {
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("error %v, want %q", err, tc.wantErr)
			case tc.wantErr == "" && err != nil:
				t.Errorf("error %v", err)
			case msg != tc.wantMsg:
				t.Errorf("message %q, want %q", msg, tc.wantMsg)
			}
			for _, p := range *patches {
				if p != types.MergePatchType {
					t.Errorf("patch type %s, want a merge patch", p)
				}
			}
			var got corev1.Namespace
			if err := c.Get(context.Background(), types.NamespacedName{Name: tc.ns.Name}, &got); err != nil {
				t.Fatal(err)
			}
			if !sameMap(got.Labels, tc.wantLabels) || !sameMap(got.Annotations, tc.wantAnnotations) {
				t.Errorf("labels %v annotations %v, want %v %v", got.Labels, got.Annotations, tc.wantLabels, tc.wantAnnotations)
			}
		})
	}
}

func sameMap(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestNamespaceNotFound(t *testing.T) {
	c, _ := patchOnly(t)
	if _, err := AddToMesh(context.Background(), c, "nope", NamespaceOptions{Mesh: "osm"}); err == nil || !strings.Contains(err.Error(), "namespace [nope] not found") {
		t.Errorf("add: %v", err)
	}
	if _, err := RemoveFromMesh(context.Background(), c, "nope", "osm"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("remove: %v", err)
	}
}

// Another mesh claiming the namespace between our read and our patch: the patch, which
// carries the resourceVersion read, conflicts; the retry sees the claim and refuses.
func TestNamespaceAddRacesAnotherMesh(t *testing.T) {
	scheme, err := Scheme()
	if err != nil {
		t.Fatal(err)
	}
	raced := false
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(namespaceWith("pipy", nil, nil)).WithInterceptorFuncs(interceptor.Funcs{
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			if !raced {
				raced = true
				var cur corev1.Namespace
				if err := c.Get(ctx, types.NamespacedName{Name: "pipy"}, &cur); err != nil {
					return err
				}
				cur.Labels = map[string]string{injector.LabelMonitoredBy: "edge"}
				if err := c.Update(ctx, &cur); err != nil {
					return err
				}
			}
			return c.Patch(ctx, obj, patch, opts...)
		},
	}).Build()
	_, err = AddToMesh(context.Background(), c, "pipy", NamespaceOptions{Mesh: "osm"})
	if err == nil || !strings.Contains(err.Error(), "set to [edge]") {
		t.Fatalf("error %v, want refusal after the race", err)
	}
	var got corev1.Namespace
	_ = c.Get(context.Background(), types.NamespacedName{Name: "pipy"}, &got)
	if got.Labels[injector.LabelMonitoredBy] != "edge" {
		t.Errorf("the other mesh's claim was overwritten: %v", got.Labels)
	}
}

func TestNamespaceCommand(t *testing.T) {
	c := useFakeClient(t, namespaceWith("pipy", nil, nil), namespaceWith("curl", nil, nil),
		namespaceWith("edge-ns", map[string]string{injector.LabelMonitoredBy: "edge"}, nil))

	code, stdout, stderr := runCLI(t, "", "namespace", "add", "curl", "pipy", "--mesh-name", "osm")
	if code != 0 || stdout != "Namespace [curl] successfully added to mesh [osm]\nNamespace [pipy] successfully added to mesh [osm]\n" {
		t.Errorf("add: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	// One refusal fails the command, the others still happen.
	code, stdout, stderr = runCLI(t, "", "namespace", "add", "--disable-sidecar-injection", "edge-ns", "pipy")
	if code != 1 || !strings.Contains(stderr, "already has") || stdout != "Namespace [pipy] successfully added to mesh [osm] with sidecar injection disabled\n" {
		t.Errorf("add: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, stdout, stderr = runCLI(t, "", "namespace", "remove", "pipy")
	if code != 0 || stdout != "Namespace [pipy] successfully removed from mesh [osm]\n" {
		t.Errorf("remove: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	var ns corev1.Namespace
	_ = c.Get(context.Background(), types.NamespacedName{Name: "pipy"}, &ns)
	if len(ns.Labels) != 0 || len(ns.Annotations) != 0 {
		t.Errorf("after remove: %v %v", ns.Labels, ns.Annotations)
	}
	if code, _, stderr = runCLI(t, "", "namespace", "add", "kube-system"); code != 1 || !strings.Contains(stderr, "never injected") {
		t.Errorf("kube-system: exit %d, stderr %q", code, stderr)
	}
}
