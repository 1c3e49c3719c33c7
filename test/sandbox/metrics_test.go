package sandbox

import (
	"strings"
	"testing"
)

func TestParseMetrics(t *testing.T) {
	text := `# HELP apiserver_request_total Counter of apiserver requests.
# TYPE apiserver_request_total counter
apiserver_request_total{resource="pods",verb="POST"} 4000
apiserver_request_total{resource="pluginchains",subresource="status",verb="PATCH"} 21
# HELP go_goroutines Number of goroutines.
# TYPE go_goroutines gauge
go_goroutines 139
# HELP apiserver_admission_webhook_admission_duration_seconds Webhook latency.
# TYPE apiserver_admission_webhook_admission_duration_seconds histogram
apiserver_admission_webhook_admission_duration_seconds_bucket{name="inject.corsmesh.io",le="0.005"} 990
apiserver_admission_webhook_admission_duration_seconds_bucket{name="inject.corsmesh.io",le="+Inf"} 1000
apiserver_admission_webhook_admission_duration_seconds_sum{name="inject.corsmesh.io"} 4.02
apiserver_admission_webhook_admission_duration_seconds_count{name="inject.corsmesh.io"} 1000
`
	samples, err := ParseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, s := range samples {
		key := s.Name
		for _, l := range []string{"resource", "subresource", "verb", "name"} {
			if v, ok := s.Labels[l]; ok {
				key += " " + l + "=" + v
			}
		}
		got[key] = s.Value
	}
	for key, want := range map[string]float64{
		"apiserver_request_total resource=pods verb=POST":                             4000,
		"apiserver_request_total resource=pluginchains subresource=status verb=PATCH": 21,
		"go_goroutines": 139,
		"apiserver_admission_webhook_admission_duration_seconds_count name=inject.corsmesh.io": 1000,
		"apiserver_admission_webhook_admission_duration_seconds_sum name=inject.corsmesh.io":   4.02,
	} {
		if v, ok := got[key]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", key, v, ok, want)
		}
	}
	if len(samples) != 5 {
		t.Errorf("%d samples, want 5 (buckets are not samples): %v", len(samples), got)
	}
}
