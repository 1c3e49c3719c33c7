package proxy

import (
	"bytes"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/corsmesh/corsmesh/corsproxy/cors"
)

// Answer is what the proxy does with one request and the CORS headers it puts on the
// answer, rendered by the same code the forwarding path runs (for corsmeshctl explain).
type Answer struct {
	Decision cors.Decision
	Reason   cors.Reason
	// ByProxy: the proxy answers without asking the app (a preflight, or a refused one
	// under refusedPreflight: answer); Status is then its status code.
	ByProxy bool
	Status  int
	// Headers are the Access-Control-* and Vary lines the proxy sets; on a forwarded
	// request the app's own Access-Control-* lines are removed, and ReportOnly leaves the
	// app's response as it is.
	Headers    []cors.Header
	ReportOnly bool
}

// Explain renders the answer to a request under policy.
func Explain(policy *cors.Policy, req cors.Request) Answer {
	decision, reason := policy.Evaluate(req)
	a := Answer{Decision: decision, Reason: reason, ReportOnly: policy.ReportOnly()}
	if a.ReportOnly {
		return a
	}
	var resp fasthttp.Response
	origin := []byte(req.Origin)
	switch {
	case decision == cors.Preflight:
		writePreflight(&resp, policy, origin, false)
		a.ByProxy = true
	case decision == cors.Rejected && policy.AnswersRefusedPreflight() && policy.IsPreflight(req):
		writeRefusedPreflight(&resp, false)
		a.ByProxy = true
	default:
		applyActual(&resp, policy, decision, origin, false)
	}
	a.Status = resp.StatusCode()
	for name, value := range resp.Header.All() {
		lower := strings.ToLower(string(name))
		if strings.HasPrefix(lower, "access-control-") || lower == cors.HeaderVary {
			a.Headers = append(a.Headers, cors.Header{Name: lower, Value: string(bytes.Clone(value))})
		}
	}
	return a
}
