package main

import (
	"flag"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/corsmesh/corsmesh/injector"
)

// proxyDefaultFlags registers the flags that set what is injected when a pod's annotations
// do not say otherwise: the proxy's requests and limits and its connection bound (the
// chart's proxy values). The returned function applies them to in after parsing; a
// malformed value is an error naming its flag, and an unset flag keeps in's default.
func proxyDefaultFlags(fs *flag.FlagSet, in *injector.Options) func() error {
	type quantity struct {
		flag  string
		limit bool
		name  corev1.ResourceName
		value *string
	}
	quantities := []quantity{
		{flag: "proxy-cpu-request", name: corev1.ResourceCPU},
		{flag: "proxy-memory-request", name: corev1.ResourceMemory},
		{flag: "proxy-cpu-limit", limit: true, name: corev1.ResourceCPU},
		{flag: "proxy-memory-limit", limit: true, name: corev1.ResourceMemory},
	}
	for i, q := range quantities {
		list := in.ProxyResources.Requests
		if q.limit {
			list = in.ProxyResources.Limits
		}
		def := "none"
		if v, ok := list[q.name]; ok {
			def = v.String()
		}
		quantities[i].value = fs.String(q.flag, "", fmt.Sprintf("the injected proxy's %s %s, a quantity (default %s; a pod's corsmesh.io/%s annotation overrides)", q.name, map[bool]string{false: "request", true: "limit"}[q.limit], def, q.flag))
	}
	maxConns := fs.Int("proxy-max-conns", 0, fmt.Sprintf("the injected proxy's connections to each app port, 1 to %d (default: the proxy's own, 1024; a pod's %s annotation overrides)", injector.MaxProxyConns, injector.AnnotationProxyMaxConns))
	return func() error {
		for _, q := range quantities {
			if *q.value == "" {
				continue
			}
			v, err := resource.ParseQuantity(*q.value)
			if err != nil || v.Sign() <= 0 {
				return fmt.Errorf("--%s=%q: want a positive quantity such as 100m or 64Mi", q.flag, *q.value)
			}
			list := &in.ProxyResources.Requests
			if q.limit {
				list = &in.ProxyResources.Limits
			}
			if *list == nil {
				*list = corev1.ResourceList{}
			}
			(*list)[q.name] = v
		}
		for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			req, hasReq := in.ProxyResources.Requests[name]
			lim, hasLim := in.ProxyResources.Limits[name]
			if hasReq && hasLim && req.Cmp(lim) > 0 {
				return fmt.Errorf("--proxy-%s-request=%s is above --proxy-%s-limit=%s: no injected pod would be admitted", name, req.String(), name, lim.String())
			}
		}
		if *maxConns != 0 && (*maxConns < 1 || *maxConns > injector.MaxProxyConns) {
			return fmt.Errorf("--proxy-max-conns=%d: want 1 to %d", *maxConns, injector.MaxProxyConns)
		}
		in.ProxyMaxConns = *maxConns
		return nil
	}
}
