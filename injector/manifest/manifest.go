// Package manifest reads and writes Kubernetes YAML for offline injection: it sorts the
// documents of a file into the objects the injector reads (namespaces, Services and the
// plugin resources) and the workloads it injects (pods and pod templates).
package manifest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/corsmesh/corsmesh/injector"
	configv1alpha2 "github.com/corsmesh/corsmesh/injector/api/config/v1alpha2"
	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
)

// Split returns the non-empty documents of a multi-document YAML stream.
func Split(r io.Reader) ([][]byte, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var docs [][]byte
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading YAML: %w", err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) > 0 {
			docs = append(docs, doc)
		}
	}
}

// ReadFiles returns the documents of the files, in order.
func ReadFiles(paths ...string) ([][]byte, error) {
	var all [][]byte
	for _, path := range paths {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		docs, err := Split(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		all = append(all, docs...)
	}
	return all, nil
}

func stripComments(doc []byte) []byte {
	var out []byte
	for line := range bytes.Lines(doc) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			out = append(out, line...)
		}
	}
	return out
}

// KindOf reads a document's apiVersion and kind.
func KindOf(doc []byte) (metav1.TypeMeta, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return tm, fmt.Errorf("reading kind: %w", err)
	}
	return tm, nil
}

// AddObjects adds the documents the injector reads (Namespace, Service, Plugin,
// PluginChain, PluginConfig, and List of them) to objs; others are ignored.
func AddObjects(objs *injector.Objects, docs [][]byte) error {
	for i, doc := range docs {
		tm, err := KindOf(doc)
		if err != nil {
			return fmt.Errorf("document %d: %w", i+1, err)
		}
		if err := addObject(objs, tm, doc); err != nil {
			return fmt.Errorf("document %d (%s): %w", i+1, tm.Kind, err)
		}
	}
	return nil
}

func addObject(objs *injector.Objects, tm metav1.TypeMeta, doc []byte) error {
	var err error
	switch {
	case tm.Kind == "List":
		var list struct {
			Items []jsonRaw `json:"items"`
		}
		if err := yaml.Unmarshal(doc, &list); err != nil {
			return err
		}
		for _, item := range list.Items {
			itm, err := KindOf(item)
			if err != nil {
				return err
			}
			if err := addObject(objs, itm, item); err != nil {
				return err
			}
		}
	case tm.APIVersion == "v1" && tm.Kind == "Namespace":
		objs.Namespaces, err = appendDecoded(objs.Namespaces, doc)
	case tm.APIVersion == "v1" && tm.Kind == "Service":
		objs.ServiceList, err = appendDecoded(objs.ServiceList, doc)
	case tm.APIVersion == v1alpha1.GroupVersion.String() && tm.Kind == "Plugin":
		objs.Plugins, err = appendDecoded(objs.Plugins, doc)
	case tm.APIVersion == v1alpha1.GroupVersion.String() && tm.Kind == "PluginChain":
		objs.Chains, err = appendDecoded(objs.Chains, doc)
	case tm.APIVersion == v1alpha1.GroupVersion.String() && tm.Kind == "PluginConfig":
		objs.Configs, err = appendDecoded(objs.Configs, doc)
	case tm.GroupVersionKind().Group == configv1alpha2.GroupName && tm.Kind == "MeshConfig":
		// v1alpha1 and v1alpha2 have the same fields. Not strict: the rest of an osm-edge
		// MeshConfig is osm-edge's, kept but not read.
		mc := new(configv1alpha2.MeshConfig)
		if err = yaml.Unmarshal(doc, mc); err == nil {
			objs.MeshConfigs = append(objs.MeshConfigs, mc)
		}
	}
	return err
}

// jsonRaw keeps a List item as raw bytes (YAML is converted to JSON by sigs.k8s.io/yaml).
type jsonRaw []byte

func (j *jsonRaw) UnmarshalJSON(b []byte) error { *j = append((*j)[:0], b...); return nil }

func appendDecoded[T any](list []*T, doc []byte) ([]*T, error) {
	obj := new(T)
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return list, err
	}
	return append(list, obj), nil
}

// Workload is a document holding a pod or a pod template.
type Workload struct {
	Kind      string
	Name      string
	Namespace string
	// Pod is the pod, or a pod made of the template (its metadata and spec).
	Pod *corev1.Pod
	// encode writes the workload back with a (possibly mutated) pod.
	encode func(*corev1.Pod) ([]byte, error)
}

// Encode renders the workload as YAML with pod in place of its pod or template.
func (w *Workload) Encode(pod *corev1.Pod) ([]byte, error) { return w.encode(pod) }

// ParseWorkload returns the Workload in a document, or nil if it holds none.
func ParseWorkload(doc []byte) (*Workload, error) {
	tm, err := KindOf(doc)
	if err != nil {
		return nil, err
	}
	switch {
	case tm.APIVersion == "v1" && tm.Kind == "Pod":
		var pod corev1.Pod
		if err := yaml.UnmarshalStrict(doc, &pod); err != nil {
			return nil, fmt.Errorf("Pod: %w", err)
		}
		return &Workload{Kind: "Pod", Name: pod.Name, Namespace: pod.Namespace, Pod: &pod,
			encode: func(p *corev1.Pod) ([]byte, error) { return yaml.Marshal(p) }}, nil
	case tm.APIVersion == "apps/v1" && tm.Kind == "Deployment":
		return templated[appsv1.Deployment](doc, func(d *appsv1.Deployment) (*metav1.ObjectMeta, *corev1.PodTemplateSpec) {
			return &d.ObjectMeta, &d.Spec.Template
		})
	case tm.APIVersion == "apps/v1" && tm.Kind == "StatefulSet":
		return templated[appsv1.StatefulSet](doc, func(d *appsv1.StatefulSet) (*metav1.ObjectMeta, *corev1.PodTemplateSpec) {
			return &d.ObjectMeta, &d.Spec.Template
		})
	case tm.APIVersion == "apps/v1" && tm.Kind == "DaemonSet":
		return templated[appsv1.DaemonSet](doc, func(d *appsv1.DaemonSet) (*metav1.ObjectMeta, *corev1.PodTemplateSpec) {
			return &d.ObjectMeta, &d.Spec.Template
		})
	case tm.APIVersion == "apps/v1" && tm.Kind == "ReplicaSet":
		return templated[appsv1.ReplicaSet](doc, func(d *appsv1.ReplicaSet) (*metav1.ObjectMeta, *corev1.PodTemplateSpec) {
			return &d.ObjectMeta, &d.Spec.Template
		})
	case tm.APIVersion == "batch/v1" && tm.Kind == "Job":
		return templated[batchv1.Job](doc, func(d *batchv1.Job) (*metav1.ObjectMeta, *corev1.PodTemplateSpec) {
			return &d.ObjectMeta, &d.Spec.Template
		})
	case tm.APIVersion == "batch/v1" && tm.Kind == "CronJob":
		return templated[batchv1.CronJob](doc, func(d *batchv1.CronJob) (*metav1.ObjectMeta, *corev1.PodTemplateSpec) {
			return &d.ObjectMeta, &d.Spec.JobTemplate.Spec.Template
		})
	}
	return nil, nil
}

// templated reads a workload of type T whose pod template parts() points at.
func templated[T any](doc []byte, parts func(*T) (*metav1.ObjectMeta, *corev1.PodTemplateSpec)) (*Workload, error) {
	obj := new(T)
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return nil, err
	}
	meta, tmpl := parts(obj)
	pod := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: *tmpl.ObjectMeta.DeepCopy(),
		Spec:       *tmpl.Spec.DeepCopy(),
	}
	pod.Namespace = meta.Namespace
	tm, _ := KindOf(doc)
	return &Workload{Kind: tm.Kind, Name: meta.Name, Namespace: meta.Namespace, Pod: pod,
		encode: func(p *corev1.Pod) ([]byte, error) {
			tmpl.ObjectMeta = *p.ObjectMeta.DeepCopy()
			tmpl.ObjectMeta.Namespace = ""
			tmpl.Spec = *p.Spec.DeepCopy()
			return yaml.Marshal(obj)
		}}, nil
}
