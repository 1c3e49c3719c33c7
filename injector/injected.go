package injector

import (
	"container/list"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
)

// injected is what one set of inputs (the pod's ports, sidecar mode and proxy annotations,
// and the injector's options) makes of the containers and volumes injection adds: typed for
// Apply and encoded for Patch. Pods of one Deployment share every input, so an Injector
// builds and encodes them once (building and reflecting over two Containers per admission
// was a quarter of its allocations and a fifth of its CPU) and hands the same values out.
// Nothing may modify them: Apply copies what it puts in a pod.
type injected struct {
	labels                     map[string]string
	initContainers, containers []corev1.Container
	volumes                    []corev1.Volume

	// Each element's JSON, and each list's (the patch adds a list whole when the pod has
	// none), each a json.RawMessage already boxed for jsonpatch.Operation.Value (boxing a
	// slice header allocates; these are shared).
	initJSON, containersJSON, volumesJSON []any
	initList, containersList, volumesList any
	bytes                                 int // of all the JSON

	// status is the status annotation of a pod injected with these, but for the
	// decision's Stamp (statusWithStamp).
	status string
}

func newInjected(initContainers, containers []corev1.Container, volumes []corev1.Volume, ports []int32, native bool) (*injected, error) {
	p := &injected{labels: map[string]string{LabelInjected: "true"}, initContainers: initContainers, containers: containers, volumes: volumes}
	status := Status{Version: 1, Ports: ports, NativeSidecar: native}
	for _, c := range initContainers {
		status.InitContainers = append(status.InitContainers, c.Name)
	}
	for _, c := range containers {
		status.Containers = append(status.Containers, c.Name)
	}
	for _, v := range volumes {
		status.Volumes = append(status.Volumes, v.Name)
	}
	b, err := json.Marshal(status)
	if err != nil {
		return nil, fmt.Errorf("encoding status annotation: %w", err)
	}
	p.status = string(b)
	var n [3]int
	if p.initJSON, p.initList, n[0], err = encodeEach(initContainers); err != nil {
		return nil, fmt.Errorf("encoding init containers: %w", err)
	}
	if p.containersJSON, p.containersList, n[1], err = encodeEach(containers); err != nil {
		return nil, fmt.Errorf("encoding containers: %w", err)
	}
	if p.volumesJSON, p.volumesList, n[2], err = encodeEach(volumes); err != nil {
		return nil, fmt.Errorf("encoding volumes: %w", err)
	}
	p.bytes = n[0] + n[1] + n[2] + len(p.status)
	return p, nil
}

// encodeEach encodes each element and the list of them, as json.Marshal encodes a slice:
// the elements' JSON between brackets, comma-separated. n is the bytes encoded.
func encodeEach[T any](items []T) (each []any, list any, n int, err error) {
	if len(items) == 0 {
		return nil, nil, 0, nil
	}
	each = make([]any, len(items))
	all := json.RawMessage{'['}
	for i := range items {
		b, err := json.Marshal(&items[i])
		if err != nil {
			return nil, nil, 0, err
		}
		each[i] = json.RawMessage(b)
		if i > 0 {
			all = append(all, ',')
		}
		all = append(all, b...)
	}
	all = append(all, ']')
	return each, all, 2 * len(all), nil
}

// statusWithStamp is the status annotation with the decision's stamp: Resolved is
// Status's last field, omitted when empty, so its JSON goes before the closing brace
// (TestStatusAnnotationIsTheEncodedStatus).
func (p *injected) statusWithStamp(stamp string) (string, error) {
	if stamp == "" {
		return p.status, nil
	}
	// A Resolver's stamp (base32 id, "/", revision) is its own JSON between quotes: encoding
	// it by reflection was 2 of every admission's allocations.
	quoted := `"` + stamp + `"`
	if !jsonPlain(stamp) {
		s, err := json.Marshal(stamp)
		if err != nil {
			return "", fmt.Errorf("encoding status annotation: %w", err)
		}
		quoted = string(s)
	}
	const field = `,"resolved":`
	var b strings.Builder
	b.Grow(len(p.status) + len(field) + len(quoted))
	b.WriteString(p.status[:len(p.status)-1])
	b.WriteString(field)
	b.WriteString(quoted)
	b.WriteByte('}')
	return b.String(), nil
}

// jsonPlain reports whether encoding/json writes s as it is between quotes: printable ASCII
// without the characters it escapes (quote, backslash, and <, >, & for HTML).
func jsonPlain(s string) bool {
	for i := range len(s) {
		switch c := s[i]; {
		case c < 0x20 || c >= 0x7f, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}

// Bounds of an Injector's cache of injected containers. Pod authors choose the inputs
// (annotations, ports through their Services), so they could make a new set for every pod:
// the cache keeps the most recently used few and skips inputs whose key is long (such a pod
// is built as if the cache were not there). An entry holds about 13 kB of live heap (two
// ports; keys of at most maxInjectedKey bytes allow about 80), so a full cache about 1 MB;
// a cluster's workloads share far fewer input sets than that.
const (
	maxInjectedEntries = 64
	maxInjectedKey     = 512
)

// injectedCache is a small LRU from the inputs of injection to what they make.
type injectedCache struct {
	mu      sync.Mutex
	max     int
	entries map[string]*list.Element // of *injectedEntry
	order   list.List                // most recently used first
	hits    int                      // for tests
	misses  int
}

type injectedEntry struct {
	key   string
	value *injected
}

func newInjectedCache(max int) *injectedCache {
	return &injectedCache{max: max, entries: make(map[string]*list.Element, max)}
}

// get returns the entry for key, or nil. (The map lookup by string(key) does not allocate.)
func (c *injectedCache) get(key []byte) *injected {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[string(key)]
	if !ok {
		c.misses++
		return nil
	}
	c.hits++
	c.order.MoveToFront(e)
	return e.Value.(*injectedEntry).value
}

// add stores value under key, evicting the least recently used entry when full.
func (c *injectedCache) add(key []byte, value *injected) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[string(key)]; ok { // built concurrently: keep the first
		c.order.MoveToFront(e)
		return
	}
	if c.order.Len() >= c.max {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.entries, oldest.Value.(*injectedEntry).key)
	}
	k := string(key)
	c.entries[k] = c.order.PushFront(&injectedEntry{key: k, value: value})
}

// stats are the entries held, their encoded bytes, and the lookups that hit and missed.
func (c *injectedCache) stats() (entries, bytes, hits, misses int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for e := c.order.Front(); e != nil; e = e.Next() {
		bytes += len(e.Value.(*injectedEntry).key) + e.Value.(*injectedEntry).value.bytes
	}
	return c.order.Len(), bytes, c.hits, c.misses
}

// proxyAnnotations are the pod's annotations that shape the injected containers (besides
// the sidecar mode, which is keyed as decided).
var proxyAnnotations = [...]string{
	AnnotationProxyCPURequest, AnnotationProxyMemoryRequest, AnnotationProxyCPULimit,
	AnnotationProxyMemoryLimit, AnnotationProxyMaxConns,
}

// injectedKey appends the inputs of injection for pod to buf, unambiguously: the sidecar
// mode, the ports, and each proxy annotation as absent or its length and value. The
// injector's options are the same for every key of one Injector. ok is false when the key
// would be longer than maxInjectedKey.
func injectedKey(buf []byte, pod *corev1.Pod, ports []int32, native bool) (key []byte, ok bool) {
	if native {
		buf = append(buf, 'n')
	} else {
		buf = append(buf, 'r')
	}
	if ports == nil { // the status annotation tells nil ("null") from empty ("[]")
		buf = append(buf, '!')
	}
	for _, p := range ports {
		if len(buf) > maxInjectedKey {
			return nil, false
		}
		buf = strconv.AppendInt(append(buf, ','), int64(p), 10)
	}
	for _, a := range proxyAnnotations {
		v, ok := pod.Annotations[a]
		if !ok {
			buf = append(buf, ';')
			continue
		}
		if len(buf)+len(v) > maxInjectedKey {
			return nil, false
		}
		buf = strconv.AppendInt(append(buf, ':'), int64(len(v)), 10)
		buf = append(append(buf, '='), v...)
	}
	return buf, len(buf) <= maxInjectedKey
}
