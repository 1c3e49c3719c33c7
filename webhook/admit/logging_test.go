package admit

import (
	"testing"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/corsmesh/corsmesh/injector"
	"github.com/corsmesh/corsmesh/webhook/internal/webhooktest"
)

// countingSink records what reaches a logger whose verbosity is v: each line with the
// values given to WithValues before it, and how often WithValues was called.
type countingSink struct {
	v   int
	kv  []any
	log *sinkRecord
}

type sinkRecord struct {
	withValues int
	lines      []map[string]any
}

func (s *countingSink) Init(logr.RuntimeInfo)  {}
func (s *countingSink) Enabled(level int) bool { return level <= s.v }
func (s *countingSink) Info(level int, msg string, kv ...any) {
	line := map[string]any{"msg": msg}
	kv = append(append([]any(nil), s.kv...), kv...)
	for i := 0; i+1 < len(kv); i += 2 {
		line[kv[i].(string)] = kv[i+1]
	}
	s.log.lines = append(s.log.lines, line)
}
func (s *countingSink) Error(error, string, ...any) {}
func (s *countingSink) WithValues(kv ...any) logr.LogSink {
	s.log.withValues++
	return &countingSink{v: s.v, kv: append(append([]any(nil), s.kv...), kv...), log: s.log}
}
func (s *countingSink) WithName(string) logr.LogSink { return s }

// An admission builds its debug line only when V(1) is on: the webhook's zap logger
// encodes WithValues' fields at once, so an unconditional WithValues cost every admission.
// On, the line still names the pod.
func TestDebugLogOnlyWhenVerbose(t *testing.T) {
	for _, v := range []int{0, 1} {
		rec := &sinkRecord{}
		sink := &countingSink{v: v, log: rec}
		m, err := NewMetrics(prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		r := injector.NewResolver(webhooktest.Injector(), webhooktest.SeedCluster(t), injector.ResolverOptions{})
		h := NewHandler(&PodMutator{Resolver: r, Metrics: m, Log: logr.New(sink)}, m, logr.Discard())
		_, review := post(t, h, reviewFor(t, "Pod", "", "pipy", webhooktest.SeedPod), "application/json")
		if review == nil || review.Response.Patch == nil {
			t.Fatalf("v=%d: not injected", v)
		}
		if rec.withValues != 0 {
			t.Errorf("v=%d: %d WithValues calls per admission", v, rec.withValues)
		}
		switch {
		case v == 0 && len(rec.lines) != 0:
			t.Errorf("v=0: logged %v", rec.lines)
		case v == 1 && (len(rec.lines) != 1 || rec.lines[0]["msg"] != "injected" || rec.lines[0]["namespace"] != "pipy" || rec.lines[0]["pod"] != "pipy-ok-v1-5d8f7c9b7d-<generated>"):
			t.Errorf("v=1: logged %v, want the injected line naming pipy/pipy-ok-v1-5d8f7c9b7d-<generated>", rec.lines)
		}
	}
}
