package injector

import (
	"context"
	"encoding/json"
	"fmt"

	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
)

// Inject decides for a pod and, when it is injected, returns the mutated pod too.
func (in *Injector) Inject(ctx context.Context, cluster Cluster, pod *corev1.Pod, ns string) (*Decision, *corev1.Pod, error) {
	d, err := in.Decide(ctx, cluster, pod, ns)
	if err != nil || !d.Inject {
		return d, nil, err
	}
	mutated, err := in.Mutate(pod, d)
	if err != nil {
		return nil, nil, err
	}
	return d, mutated, nil
}

// Patch is the JSON patch that turns original into mutated, as an admission response
// carries it.
func Patch(original, mutated *corev1.Pod) ([]jsonpatch.Operation, error) {
	before, err := json.Marshal(original)
	if err != nil {
		return nil, fmt.Errorf("encoding original pod: %w", err)
	}
	after, err := json.Marshal(mutated)
	if err != nil {
		return nil, fmt.Errorf("encoding mutated pod: %w", err)
	}
	ops, err := jsonpatch.CreatePatch(before, after)
	if err != nil {
		return nil, fmt.Errorf("computing patch: %w", err)
	}
	return ops, nil
}
