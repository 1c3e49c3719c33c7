package main

import (
	"context"
	"fmt"
	"io"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/corsmesh/corsmesh/injector"
	"github.com/corsmesh/corsmesh/injector/kubecluster"
)

// withCluster is what the injector reads: the objects of the files over those of the
// cluster (--from-cluster; an object of the files replaces the cluster's of the same
// name), read once per run. remote nil: the files alone.
func withCluster(ctx context.Context, local *injector.Objects, remote client.Reader, meshNamespace string) (*injector.Objects, error) {
	if remote == nil {
		return local, nil
	}
	objs, err := kubecluster.Load(ctx, remote, meshNamespace)
	if err != nil {
		return nil, fmt.Errorf("reading the cluster: %w", err)
	}
	return injector.Overlay(local, objs), nil
}

// notices prints, once each, what the offline Resolver assumed about objects found nowhere.
type notices struct {
	w    io.Writer
	seen map[injector.Assumption]bool
}

func newNotices(w io.Writer) *notices { return &notices{w: w, seen: map[injector.Assumption]bool{}} }

func (n *notices) assumed(d *injector.Decision) {
	for _, a := range d.Assumed {
		if !n.seen[a] {
			n.seen[a] = true
			fmt.Fprintf(n.w, "corsmeshctl: %s\n", a.Message())
		}
	}
}

func key(o client.Object) string { return o.GetNamespace() + "/" + o.GetName() }
