package injector

import (
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// maxCached bounds a derivedCache: objects deleted from the cluster are never named again,
// so the cache is emptied when it reaches this size rather than tracking deletions.
const maxCached = 20000

// derivedCache keeps what is computed from an API object (compiled selectors, a parsed
// policy) for as long as the object's resourceVersion stays the same: with a thousand
// chains, recomputing on every admission would dominate its cost. Objects without a
// resourceVersion (read from files) are computed each time.
type derivedCache[V any] struct {
	mu      sync.Mutex
	entries map[types.NamespacedName]derived[V]
}

type derived[V any] struct {
	resourceVersion string
	value           V
}

func (c *derivedCache[V]) get(obj metav1.Object, compute func() V) V {
	if obj.GetResourceVersion() == "" {
		return compute()
	}
	key := types.NamespacedName{Namespace: obj.GetNamespace(), Name: obj.GetName()}
	c.mu.Lock()
	e, ok := c.entries[key]
	c.mu.Unlock()
	if ok && e.resourceVersion == obj.GetResourceVersion() {
		return e.value
	}
	v := compute()
	c.mu.Lock()
	if c.entries == nil || len(c.entries) >= maxCached {
		c.entries = make(map[types.NamespacedName]derived[V])
	}
	c.entries[key] = derived[V]{resourceVersion: obj.GetResourceVersion(), value: v}
	c.mu.Unlock()
	return v
}
