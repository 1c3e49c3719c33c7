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
//
// Informers hand out the same pointer until the object changes, so the pointer is looked
// up first (cheaper than hashing namespace and name, a thousand times per admission);
// readers that copy objects fall back to the name and resourceVersion.
type derivedCache[V any] struct {
	mu     sync.Mutex
	byName map[types.NamespacedName]*derived[V]
	byObj  map[metav1.Object]*derived[V]
}

type derived[V any] struct {
	obj             metav1.Object // the object last seen with this resourceVersion
	resourceVersion string
	value           V
}

func (c *derivedCache[V]) get(obj metav1.Object, compute func() V) V {
	rv := obj.GetResourceVersion()
	if rv == "" {
		return compute()
	}
	c.mu.Lock()
	if e, ok := c.byObj[obj]; ok && e.resourceVersion == rv { // rv: in case obj was changed in place
		c.mu.Unlock()
		return e.value
	}
	key := types.NamespacedName{Namespace: obj.GetNamespace(), Name: obj.GetName()}
	if e, ok := c.byName[key]; ok && e.resourceVersion == rv {
		c.repoint(e, obj)
		c.mu.Unlock()
		return e.value
	}
	c.mu.Unlock()

	e := &derived[V]{resourceVersion: rv, value: compute()}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byName == nil || len(c.byName) >= maxCached {
		c.byName = make(map[types.NamespacedName]*derived[V])
		c.byObj = make(map[metav1.Object]*derived[V])
	}
	if old, ok := c.byName[key]; ok {
		delete(c.byObj, old.obj)
	}
	c.byName[key] = e
	c.repoint(e, obj)
	return e.value
}

// repoint makes obj the entry's pointer; the previous one is no longer handed out.
func (c *derivedCache[V]) repoint(e *derived[V], obj metav1.Object) {
	if e.obj != nil {
		delete(c.byObj, e.obj)
	}
	e.obj = obj
	c.byObj[obj] = e
}

func (c *derivedCache[V]) forget(namespace, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	key := types.NamespacedName{Namespace: namespace, Name: name}
	if e, ok := c.byName[key]; ok {
		delete(c.byObj, e.obj)
		delete(c.byName, key)
	}
}
