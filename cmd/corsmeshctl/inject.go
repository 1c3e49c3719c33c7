package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/corsmesh/corsmesh/injector"
	"github.com/corsmesh/corsmesh/injector/manifest"
)

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

type injectFlags struct {
	file        string
	policies    stringList
	fromCluster bool
	kubeconfig  string
	namespace   string
	opts        injector.Options
}

func runInject(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	f := injectFlags{opts: injector.DefaultOptions()}
	fs := flag.NewFlagSet("corsmeshctl inject", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: corsmeshctl inject -f FILE|- [flags]

Injects the CORS sidecar into the Pods and pod templates (Deployment, StatefulSet,
DaemonSet, ReplicaSet, Job, CronJob) of FILE, offline, with the webhook's injector, and
writes every document of FILE to stdout: injected workloads in their injected form, the
others unchanged. Policies (Namespace, Service, Plugin, PluginChain, PluginConfig) are read
from FILE, from --policies and, with --from-cluster, from the cluster. A namespace found
nowhere is taken as monitored by the mesh. One line per workload goes to stderr.

Flags:
`)
		fs.PrintDefaults()
	}
	fs.StringVar(&f.file, "f", "", "manifest file to inject (- for stdin)")
	fs.StringVar(&f.file, "filename", "", "same as -f")
	fs.Var(&f.policies, "policies", "directory (every *.yaml and *.yml under it) or file of policy objects; repeatable")
	fs.BoolVar(&f.fromCluster, "from-cluster", false, "also read policy objects and namespaces from the cluster")
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig for --from-cluster (default: $KUBECONFIG, ~/.kube/config, in-cluster)")
	fs.StringVar(&f.namespace, "namespace", "default", "namespace of the objects that name none")
	fs.StringVar(&f.namespace, "n", "default", "same as --namespace")
	fs.StringVar(&f.opts.MeshName, "mesh-name", f.opts.MeshName, "value of the "+injector.LabelMonitoredBy+" label that opts a namespace in")
	fs.StringVar(&f.opts.ProxyImage, "proxy-image", f.opts.ProxyImage, "image of the corsproxy sidecar")
	fs.StringVar(&f.opts.InitImage, "init-image", f.opts.InitImage, "image of the corsproxy-init container")
	fs.BoolVar(&f.opts.NativeSidecars, "native-sidecars", f.opts.NativeSidecars, "inject the proxy as a native sidecar (Kubernetes >= 1.29)")
	positional, code := parseFlags(fs, args)
	if code >= 0 {
		return code
	}
	switch {
	case len(positional) > 0:
		fmt.Fprintf(stderr, "corsmeshctl inject: unexpected arguments %q (the manifest is given with -f)\n", positional)
		return 2
	case f.file == "":
		fmt.Fprintln(stderr, "corsmeshctl inject: -f FILE (or -f - for stdin) is required")
		return 2
	case f.namespace == "":
		fmt.Fprintln(stderr, "corsmeshctl inject: --namespace must not be empty")
		return 2
	case f.opts.MeshName == "":
		fmt.Fprintln(stderr, "corsmeshctl inject: --mesh-name must not be empty")
		return 2
	}

	var remote client.Reader
	if f.fromCluster {
		c, err := newClient(f.kubeconfig)
		if err != nil {
			fmt.Fprintf(stderr, "corsmeshctl inject: --from-cluster: %v\n", err)
			return 1
		}
		remote = c
	}
	if err := inject(ctx, f, remote, stdin, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "corsmeshctl inject: %v\n", err)
		return 1
	}
	return 0
}

// inject reads the input and the policies, injects, and writes the result; nothing is
// written to stdout unless every document could be read and handled.
func inject(ctx context.Context, f injectFlags, remote client.Reader, stdin io.Reader, stdout, stderr io.Writer) error {
	name, docs, err := readInput(f.file, stdin)
	if err != nil {
		return err
	}
	if err := checkDocuments(name, docs); err != nil {
		return err
	}
	objs := &injector.Objects{}
	for _, path := range f.policies {
		if err := addPolicyPath(objs, path, f.namespace); err != nil {
			return err
		}
	}
	// The input's own documents come last: what is about to be applied wins.
	if err := addPolicies(objs, name, docs, f.namespace); err != nil {
		return err
	}
	cluster, err := withCluster(ctx, objs, remote, f.opts.OwnNamespace)
	if err != nil {
		return err
	}
	resolver := injector.NewResolver(injector.New(f.opts), cluster, injector.ResolverOptions{Offline: true})
	w := &workloadInjector{resolver: resolver, namespace: f.namespace, report: stderr, notices: newNotices(stderr)}
	out := make([][]byte, len(docs))
	for i, doc := range docs {
		where := fmt.Sprintf("%s: document %d", name, i+1)
		injected, err := w.inject(ctx, doc, where)
		switch {
		case err != nil:
			return err
		case injected == nil:
			out[i] = doc
		default:
			out[i] = append(leadingComments(doc), injected...)
		}
	}
	var buf bytes.Buffer
	for i, doc := range out {
		if i > 0 {
			buf.WriteString("---\n")
		}
		buf.Write(doc)
		if len(doc) > 0 && doc[len(doc)-1] != '\n' {
			buf.WriteByte('\n')
		}
	}
	_, err = stdout.Write(buf.Bytes())
	return err
}

// workloadInjector injects the workloads of documents and reports each on stderr.
type workloadInjector struct {
	resolver  *injector.Resolver
	namespace string // of workloads that name none
	report    io.Writer
	notices   *notices
}

// inject returns the injected form of a document holding a workload, or of a List holding
// some, and nil when nothing in it is injected.
func (w *workloadInjector) inject(ctx context.Context, doc []byte, where string) ([]byte, error) {
	if tm, _ := manifest.KindOf(doc); tm.Kind == "List" {
		return w.injectList(ctx, doc, where)
	}
	wl, err := manifest.ParseWorkload(doc)
	if err != nil {
		return nil, fmt.Errorf("%s (%s): %w", where, describe(doc), err)
	}
	if wl == nil {
		return nil, nil
	}
	ns := wl.Namespace
	if ns == "" {
		ns = w.namespace
	}
	name := wl.Name
	if name == "" {
		name = wl.Pod.GenerateName
	}
	id := fmt.Sprintf("%s/%s (%s)", strings.ToLower(wl.Kind), name, ns)
	d, mutated, err := w.resolver.Inject(ctx, wl.Pod, ns)
	if err != nil {
		return nil, fmt.Errorf("%s, %s: %w", where, id, err)
	}
	w.notices.assumed(d)
	if d.Inject {
		fmt.Fprintf(w.report, "%s: injected, ports %v\n", id, d.Ports)
	} else {
		fmt.Fprintf(w.report, "%s: not injected: %s: %s\n", id, d.Reason, d.Message)
	}
	for _, warning := range d.Warnings {
		fmt.Fprintf(w.report, "  warning: %s\n", warning)
	}
	if !d.Inject {
		return nil, nil
	}
	encoded, err := wl.Encode(mutated)
	if err == nil {
		encoded, err = applyable(encoded)
	}
	if err != nil {
		return nil, fmt.Errorf("%s, %s: encoding: %w", where, id, err)
	}
	return encoded, nil
}

// injectList injects the items of a List (kubectl get -o yaml): the List is re-encoded
// only when one of its items is injected.
func (w *workloadInjector) injectList(ctx context.Context, doc []byte, where string) ([]byte, error) {
	j, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return nil, fmt.Errorf("%s (List): %w", where, err)
	}
	var list map[string]json.RawMessage
	var items []json.RawMessage
	if err := json.Unmarshal(j, &list); err != nil {
		return nil, fmt.Errorf("%s (List): %w", where, err)
	}
	if raw, ok := list["items"]; ok {
		if err := json.Unmarshal(raw, &items); err != nil {
			return nil, fmt.Errorf("%s (List): items: %w", where, err)
		}
	}
	changed := false
	for i, item := range items {
		injected, err := w.inject(ctx, item, fmt.Sprintf("%s, item %d", where, i+1))
		if err != nil {
			return nil, err
		}
		if injected == nil {
			continue
		}
		if items[i], err = yaml.YAMLToJSON(injected); err != nil {
			return nil, fmt.Errorf("%s, item %d: %w", where, i+1, err)
		}
		changed = true
	}
	if !changed {
		return nil, nil
	}
	if list["items"], err = json.Marshal(items); err != nil {
		return nil, err
	}
	if j, err = json.Marshal(list); err != nil {
		return nil, err
	}
	return yaml.JSONToYAML(j)
}

func readInput(file string, stdin io.Reader) (string, [][]byte, error) {
	name := file
	var r io.Reader = stdin
	if file == "-" {
		name = "<stdin>"
	} else {
		f, err := os.Open(file)
		if err != nil {
			return name, nil, err
		}
		defer f.Close()
		r = f
	}
	docs, err := manifest.Split(r)
	if err != nil {
		return name, nil, fmt.Errorf("%s: %w", name, err)
	}
	return name, docs, nil
}

// checkDocuments rejects what kubectl apply would: a document that is not YAML, or not an
// object with apiVersion and kind.
func checkDocuments(name string, docs [][]byte) error {
	for i, doc := range docs {
		tm, err := manifest.KindOf(doc)
		if err != nil {
			return fmt.Errorf("%s: document %d: not a Kubernetes object: %w", name, i+1, err)
		}
		if tm.APIVersion == "" || tm.Kind == "" {
			return fmt.Errorf("%s: document %d: apiVersion and kind are required", name, i+1)
		}
	}
	return nil
}

// describe names a document for error messages: "Deployment pipy/web".
func describe(doc []byte) string {
	var obj struct {
		metav1.TypeMeta
		Metadata struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	_ = yaml.Unmarshal(doc, &obj)
	switch {
	case obj.Metadata.Namespace != "":
		return obj.Kind + " " + obj.Metadata.Namespace + "/" + obj.Metadata.Name
	case obj.Metadata.Name != "":
		return obj.Kind + " " + obj.Metadata.Name
	}
	return obj.Kind
}

// addPolicyPath reads a --policies directory (every *.yaml and *.yml under it, in lexical
// order) or file.
func addPolicyPath(objs *injector.Objects, path, defaultNS string) error {
	info, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("--policies: %w", err)
	}
	files := []string{path}
	if info.IsDir() {
		files = nil
		err := filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if ext := filepath.Ext(p); !d.IsDir() && (ext == ".yaml" || ext == ".yml") {
				files = append(files, p)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("--policies: %w", err)
		}
	}
	for _, file := range files {
		name, docs, err := readInput(file, nil)
		if err != nil {
			return fmt.Errorf("--policies: %w", err)
		}
		if err := addPolicies(objs, name, docs, defaultNS); err != nil {
			return fmt.Errorf("--policies: %w", err)
		}
	}
	return nil
}

// addPolicies adds the policy objects of a file's documents to objs, replacing objects of
// the same kind and name read before. Namespaced objects without a namespace take
// defaultNS, as with kubectl apply -n.
func addPolicies(objs *injector.Objects, name string, docs [][]byte, defaultNS string) error {
	var part injector.Objects
	if err := manifest.AddObjects(&part, docs); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	for _, o := range part.ServiceList {
		defaultNamespace(o, defaultNS)
	}
	for _, o := range part.Chains {
		defaultNamespace(o, defaultNS)
	}
	for _, o := range part.Configs {
		defaultNamespace(o, defaultNS)
	}
	for _, ns := range part.Namespaces {
		if ns.Labels == nil {
			ns.Labels = map[string]string{}
		}
		ns.Labels[corev1.LabelMetadataName] = ns.Name
	}
	objs.Namespaces = replace(objs.Namespaces, part.Namespaces)
	objs.ServiceList = replace(objs.ServiceList, part.ServiceList)
	objs.Chains = replace(objs.Chains, part.Chains)
	objs.Configs = replace(objs.Configs, part.Configs)
	objs.Plugins = replace(objs.Plugins, part.Plugins)
	return nil
}

func defaultNamespace(o client.Object, ns string) {
	if o.GetNamespace() == "" {
		o.SetNamespace(ns)
	}
}

func replace[T any, PT interface {
	*T
	client.Object
}](list, add []PT) []PT {
	for _, o := range add {
		if i := slices.IndexFunc(list, func(x PT) bool { return key(x) == key(o) }); i >= 0 {
			list[i] = o
		} else {
			list = append(list, o)
		}
	}
	return list
}

// applyable drops from an encoded object what the Go types add and kubectl apply would
// trip on or show as a diff: the top-level status, empty nested ones and null
// creationTimestamps.
func applyable(doc []byte) ([]byte, error) {
	j, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return nil, err
	}
	delete(obj, "status")
	dropEmptyFields(obj)
	if j, err = json.Marshal(obj); err != nil {
		return nil, err
	}
	return yaml.JSONToYAML(j)
}

func dropEmptyFields(v any) {
	switch v := v.(type) {
	case map[string]any:
		if ts, ok := v["creationTimestamp"]; ok && ts == nil {
			delete(v, "creationTimestamp")
		}
		if s, ok := v["status"].(map[string]any); ok && len(s) == 0 {
			delete(v, "status") // volumeClaimTemplates' empty status
		}
		for _, e := range v {
			dropEmptyFields(e)
		}
	case []any:
		for _, e := range v {
			dropEmptyFields(e)
		}
	}
}

// leadingComments returns the comment lines that open a document, kept above its
// injected form.
func leadingComments(doc []byte) []byte {
	var out []byte
	for line := range bytes.Lines(doc) {
		t := bytes.TrimSpace(line)
		if len(t) > 0 && t[0] != '#' {
			break
		}
		out = append(out, line...)
	}
	return out
}
