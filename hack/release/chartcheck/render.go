// Package chartcheck renders corsmesh's Helm chart and its kustomize overlays the way
// users do (`helm template`, `kubectl kustomize`) and compares the two object by object,
// so that the chart cannot drift from manifests/.
package chartcheck

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"sort"
	"strings"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	release "helm.sh/helm/v4/pkg/release/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// KubeVersion is the Kubernetes version charts are rendered for: the one the project's
// control plane is built at.
const KubeVersion = "v1.37.2"

// Object is one rendered Kubernetes object.
type Object struct {
	Kind, Namespace, Name string
	// Map is the object as JSON decodes it: comments, key order and YAML style are gone.
	Map map[string]any
}

// Key identifies an object in a rendering.
func (o Object) Key() string {
	if o.Namespace == "" {
		return o.Kind + " " + o.Name
	}
	return o.Kind + " " + o.Namespace + "/" + o.Name
}

// Kustomize renders a kustomization directory as `kubectl kustomize DIR` does.
func Kustomize(dir string) ([]Object, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize %s: %w", dir, err)
	}
	out, err := m.AsYaml()
	if err != nil {
		return nil, fmt.Errorf("kustomize %s: %w", dir, err)
	}
	return Decode(out)
}

// Chart renders the chart directory as `helm template corsmesh DIR --namespace NS
// --include-crds --kube-version KubeVersion` does, with vals over the chart's values.
// Values are checked against the chart's values.schema.json, as on install.
func Chart(ctx context.Context, dir, namespace string, vals map[string]any) ([]Object, error) {
	text, err := ChartText(ctx, dir, namespace, vals)
	if err != nil {
		return nil, err
	}
	return Decode(text)
}

// ChartText is Chart's YAML stream.
func ChartText(ctx context.Context, dir, namespace string, vals map[string]any) ([]byte, error) {
	ch, err := loader.LoadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("loading chart %s: %w", dir, err)
	}
	kv, err := common.ParseKubeVersion(KubeVersion)
	if err != nil {
		return nil, err
	}
	cfg := action.NewConfiguration()
	cfg.SetLogger(slog.New(slog.DiscardHandler).Handler())
	install := action.NewInstall(cfg)
	install.DryRunStrategy = action.DryRunClient
	install.ReleaseName = "corsmesh"
	install.Namespace = namespace
	install.Replace = true
	install.IncludeCRDs = true
	install.KubeVersion = kv
	if vals == nil {
		vals = map[string]any{}
	}
	r, err := install.RunWithContext(ctx, ch, vals)
	if err != nil {
		return nil, fmt.Errorf("helm template %s: %w", dir, err)
	}
	rel, ok := r.(*release.Release)
	if !ok {
		return nil, fmt.Errorf("helm template %s: unexpected release type %T", dir, r)
	}
	var buf bytes.Buffer
	buf.WriteString(rel.Manifest)
	for _, h := range rel.Hooks {
		fmt.Fprintf(&buf, "\n---\n%s\n", h.Manifest)
	}
	return buf.Bytes(), nil
}

// Decode splits a YAML stream into objects; empty documents are dropped.
func Decode(data []byte) ([]Object, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out []Object
	for i := 1; ; i++ {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if s := string(bytes.TrimSpace(js)); s == "null" || s == "{}" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(js, &m); err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		kind, _ := m["kind"].(string)
		meta, _ := m["metadata"].(map[string]any)
		name, _ := meta["name"].(string)
		namespace, _ := meta["namespace"].(string)
		if kind == "" || name == "" {
			return nil, fmt.Errorf("document %d has no kind or metadata.name", i)
		}
		out = append(out, Object{Kind: kind, Namespace: namespace, Name: name, Map: m})
	}
}

// Index maps each object's Key to it, failing on a duplicate.
func Index(objs []Object) (map[string]Object, error) {
	idx := make(map[string]Object, len(objs))
	for _, o := range objs {
		if _, dup := idx[o.Key()]; dup {
			return nil, fmt.Errorf("%s rendered twice", o.Key())
		}
		idx[o.Key()] = o
	}
	return idx, nil
}

// Compare lists how got differs from want, object by object: objects missing from either,
// and for each object in both, every path whose value differs. Empty means the same
// objects.
func Compare(got, want []Object) ([]string, error) {
	g, err := Index(got)
	if err != nil {
		return nil, fmt.Errorf("chart: %w", err)
	}
	w, err := Index(want)
	if err != nil {
		return nil, fmt.Errorf("kustomize: %w", err)
	}
	var diffs []string
	for _, k := range sortedKeys(w) {
		if _, ok := g[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: missing from the chart", k))
		}
	}
	for _, k := range sortedKeys(g) {
		wo, ok := w[k]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("%s: only in the chart", k))
			continue
		}
		for _, d := range diffValues("", g[k].Map, wo.Map) {
			diffs = append(diffs, k+": "+d)
		}
	}
	return diffs, nil
}

func sortedKeys(m map[string]Object) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// diffValues walks two decoded JSON values and describes each difference by its path.
func diffValues(path string, got, want any) []string {
	gm, gok := got.(map[string]any)
	wm, wok := want.(map[string]any)
	if gok && wok {
		keys := map[string]bool{}
		for k := range gm {
			keys[k] = true
		}
		for k := range wm {
			keys[k] = true
		}
		sorted := make([]string, 0, len(keys))
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		var out []string
		for _, k := range sorted {
			out = append(out, diffValues(path+"."+k, gm[k], wm[k])...)
		}
		return out
	}
	gl, gok := got.([]any)
	wl, wok := want.([]any)
	if gok && wok && len(gl) == len(wl) {
		var out []string
		for i := range gl {
			out = append(out, diffValues(fmt.Sprintf("%s[%d]", path, i), gl[i], wl[i])...)
		}
		return out
	}
	if reflect.DeepEqual(got, want) {
		return nil
	}
	return []string{fmt.Sprintf("%s: chart %s, kustomize %s", strings.TrimPrefix(path, "."), show(got), show(want))}
}

func show(v any) string {
	if v == nil {
		return "<absent>"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
