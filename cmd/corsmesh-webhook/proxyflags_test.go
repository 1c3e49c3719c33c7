package main

import (
	"flag"
	"io"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/corsmesh/corsmesh/injector"
)

func TestProxyDefaultFlags(t *testing.T) {
	q := resource.MustParse
	tests := []struct {
		name    string
		args    []string
		want    corev1.ResourceRequirements
		wantMax int
		wantErr string
	}{
		{name: "unset keeps the defaults", want: injector.DefaultOptions().ProxyResources},
		{
			name: "every flag",
			args: []string{"--proxy-cpu-request=50m", "--proxy-memory-request=32Mi", "--proxy-cpu-limit=1", "--proxy-memory-limit=128Mi", "--proxy-max-conns=4096"},
			want: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: q("50m"), corev1.ResourceMemory: q("32Mi")},
				Limits:   corev1.ResourceList{corev1.ResourceCPU: q("1"), corev1.ResourceMemory: q("128Mi")},
			},
			wantMax: 4096,
		},
		{name: "not a quantity", args: []string{"--proxy-memory-limit=lots"}, wantErr: "--proxy-memory-limit"},
		{name: "zero", args: []string{"--proxy-cpu-request=0"}, wantErr: "--proxy-cpu-request"},
		{name: "negative", args: []string{"--proxy-memory-request=-1Mi"}, wantErr: "--proxy-memory-request"},
		{name: "request above the default limit", args: []string{"--proxy-memory-request=1Gi"}, wantErr: "--proxy-memory-request=1Gi is above --proxy-memory-limit=64Mi"},
		{name: "too many connections", args: []string{"--proxy-max-conns=28001"}, wantErr: "--proxy-max-conns"},
		{name: "negative connections", args: []string{"--proxy-max-conns=-1"}, wantErr: "--proxy-max-conns"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := injector.DefaultOptions()
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			apply := proxyDefaultFlags(fs, &in)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			err := apply()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one naming %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				what      string
				got, want corev1.ResourceList
			}{{"requests", in.ProxyResources.Requests, tt.want.Requests}, {"limits", in.ProxyResources.Limits, tt.want.Limits}} {
				if len(c.got) != len(c.want) {
					t.Errorf("%s %v, want %v", c.what, c.got, c.want)
				}
				for name, w := range c.want {
					if g := c.got[name]; g.Cmp(w) != 0 {
						t.Errorf("%s %s = %s, want %s", c.what, name, g.String(), w.String())
					}
				}
			}
			if in.ProxyMaxConns != tt.wantMax {
				t.Errorf("ProxyMaxConns %d, want %d", in.ProxyMaxConns, tt.wantMax)
			}
		})
	}
}
