package main

import (
	"context"
	"fmt"
	"io"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/corsmesh/corsmesh/corsproxy/config"
	"github.com/corsmesh/corsmesh/corsproxy/cors"
	"github.com/corsmesh/corsmesh/injector"
	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
)

// diffConfigs compares the edited PluginConfigs of --diff with the ones in effect (from
// -f or the cluster): for each Service either version names, which origins change.
func (e *explainer) diffConfigs(ctx context.Context, w io.Writer) error {
	name, docs, err := readInput(e.f.diff, nil)
	if err != nil {
		return badInput("--diff: %v", err)
	}
	edited := &injector.Objects{}
	if err := addPolicies(edited, name, docs, e.f.namespace); err != nil {
		return badInput("--diff: %v", err)
	}
	if len(edited.Configs) == 0 {
		return badInput("--diff: %s holds no PluginConfig", name)
	}
	changes := 0
	for _, next := range edited.Configs {
		prev, err := e.currentConfig(ctx, next.Namespace, next.Name)
		if err != nil {
			return err
		}
		nextPolicy, err := compileConfig(next)
		if err != nil {
			return badInput("--diff: PluginConfig %s/%s: spec.config: %v", next.Namespace, next.Name, err)
		}
		var prevPolicy *cors.Policy
		services := injector.DestinationKeys(next)
		if prev != nil {
			if prevPolicy, err = compileConfig(prev); err != nil {
				fmt.Fprintf(w, "PluginConfig %s/%s: the current spec.config is invalid (%v); compared as no policy\n", prev.Namespace, prev.Name, err)
			}
			services = append(services, injector.DestinationKeys(prev)...)
		}
		slices.Sort(services)
		services = slices.Compact(services)
		state := "edited"
		if prev == nil {
			state = "new"
		}
		fmt.Fprintf(w, "PluginConfig %s/%s (%s):\n", next.Namespace, next.Name, state)
		for _, svc := range services {
			namedBefore := prev != nil && slices.Contains(injector.DestinationKeys(prev), svc)
			namedAfter := slices.Contains(injector.DestinationKeys(next), svc)
			for _, origin := range e.f.origins {
				before := namedBefore && allows(prevPolicy, origin)
				after := namedAfter && allows(nextPolicy, origin)
				if before != after {
					changes++
					fmt.Fprintf(w, "  Service %s: %s %s -> %s\n", svc, origin, word(before), word(after))
				}
			}
		}
	}
	if changes == 0 {
		fmt.Fprintln(w, "no change for these origins")
	}
	return nil
}

// currentConfig is the PluginConfig in effect: from -f, else from the cluster.
func (e *explainer) currentConfig(ctx context.Context, ns, name string) (*v1alpha1.PluginConfig, error) {
	for _, c := range e.objs.Configs {
		if c.Namespace == ns && c.Name == name {
			return c, nil
		}
	}
	if e.remote == nil {
		return nil, nil
	}
	var c v1alpha1.PluginConfig
	if err := e.remote.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &c); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("reading PluginConfig %s/%s: %w", ns, name, err)
	}
	return &c, nil
}

func compileConfig(c *v1alpha1.PluginConfig) (*cors.Policy, error) {
	raw := c.Spec.Config.Raw
	if len(raw) == 0 {
		raw = []byte("{}")
	}
	parsed, err := config.ParseCORS(raw)
	if err != nil {
		return nil, err
	}
	return cors.Compile(parsed)
}

// allows: the policy lets a page at origin read an answer (a report-only policy counts
// as what it would do).
func allows(p *cors.Policy, origin string) bool {
	if p == nil {
		return false
	}
	d, _ := p.Evaluate(cors.Request{Method: "GET", Origin: origin, OriginCount: 1})
	return d == cors.Allowed
}

func word(allowed bool) string {
	if allowed {
		return "allowed"
	}
	return "refused"
}
