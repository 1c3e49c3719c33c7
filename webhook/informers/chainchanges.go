package informers

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/corsmesh/corsmesh/injector"
	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
)

// chainChanges tells the Resolver which PluginChain writes change what it compiled. It
// sees the store's changes through an index function, called under the store's lock: an
// add with the new object; an update with the stored object (the old version) and then the
// new one; a delete with the stored object only. The old side of an update and a delete
// look alike when they arrive, so the stored object's leaving is announced at once
// (Resolver.ChainLeaving) and settled by the next call for the same key (an update's new
// side: changed unless UID and generation are the same) or else by the informer's delete
// notification (deleted).
type chainChanges struct {
	r *injector.Resolver

	mu      sync.Mutex
	stored  map[*v1alpha1.PluginChain]struct{} // the objects the store holds
	leaving map[string]chainVersion            // by namespace/name: announced, not settled
}

// chainVersion is what decides whether a new version changes what was compiled: the API
// server bumps a PluginChain's generation on every spec change, not on status or metadata.
type chainVersion struct {
	uid        types.UID
	generation int64
}

func versionOf(c *v1alpha1.PluginChain) chainVersion {
	return chainVersion{uid: c.UID, generation: c.Generation}
}

func newChainChanges(r *injector.Resolver) *chainChanges {
	return &chainChanges{r: r, stored: map[*v1alpha1.PluginChain]struct{}{}, leaving: map[string]chainVersion{}}
}

func chainKey(c *v1alpha1.PluginChain) string { return c.Namespace + "/" + c.Name }

// index is the store's index function: it indexes nothing.
func (cc *chainChanges) index(obj any) ([]string, error) {
	c, ok := obj.(*v1alpha1.PluginChain)
	if !ok {
		cc.r.Changed(injector.InputPluginChains)
		return nil, nil
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if len(cc.leaving) > 0 {
		key := chainKey(c)
		if was, ok := cc.leaving[key]; ok {
			// The new side of an update (or a chain created again after a delete whose
			// notification has not come yet). Generation 0 is no generation: always a change.
			delete(cc.leaving, key)
			cc.stored[c] = struct{}{}
			cc.r.ChainSettled(was != versionOf(c) || c.Generation == 0)
			return nil, nil
		}
	}
	if _, ok := cc.stored[c]; ok {
		// The stored object leaving: an update's old side or a delete.
		delete(cc.stored, c)
		cc.leaving[chainKey(c)] = versionOf(c)
		cc.r.ChainLeaving()
		return nil, nil
	}
	cc.stored[c] = struct{}{} // an add
	cc.r.Changed(injector.InputPluginChains)
	return nil, nil
}

// deleted is the informer's delete notification (after the store's delete): it settles a
// delete announced as leaving. A chain deleted while the watch was down comes as a
// tombstone the store never announced: still a change.
func (cc *chainChanges) deleted(obj any) {
	if t, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	c, ok := obj.(*v1alpha1.PluginChain)
	if !ok {
		cc.r.Changed(injector.InputPluginChains)
		return
	}
	key := chainKey(c)
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if was, ok := cc.leaving[key]; ok && was.uid == c.UID {
		delete(cc.leaving, key)
		cc.r.ChainSettled(true)
		return
	}
	cc.r.Changed(injector.InputPluginChains)
}
