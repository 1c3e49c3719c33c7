package proxy

import (
	"time"

	"github.com/valyala/fasthttp"

	"github.com/corsmesh/corsmesh/corsproxy/cors"
)

const headerRequestMethod = "Access-Control-Request-Method"

// corsAction is what a policy's decision leaves to do with a request.
type corsAction uint8

const (
	corsApply       corsAction = iota // forward it and set the CORS headers on the answer
	corsPassThrough                   // report-only: forward it and leave the answer untouched
	corsAnswered                      // the proxy answered it (a refused preflight): done
)

// decideCORS evaluates a request under its port's policy, counts the decision and makes a
// refusal visible. A refused preflight that the proxy answers itself is written to
// ctx.Response; a report-only policy passes the request through untouched.
func (p *Proxy) decideCORS(ctx *fasthttp.RequestCtx, up *upstream, policy *cors.Policy, origin []byte, originCount int, closing bool) (cors.Decision, corsAction) {
	req := cors.Request{Method: b2s(ctx.Method()), Origin: b2s(origin), OriginCount: originCount}
	if originCount > 0 && req.Method == fasthttp.MethodOptions {
		req.RequestMethod = len(ctx.Request.Header.Peek(headerRequestMethod)) > 0
	}
	decision, reason := policy.Evaluate(req)
	if policy.ReportOnly() {
		if decision != cors.NotCORS {
			p.metrics.refusals.observeReportOnly(reason == cors.NoReason)
		}
		if reason != cors.NoReason {
			p.refused(ctx, up, origin, reason, true)
		}
		return decision, corsPassThrough
	}
	p.metrics.decision(decision)
	if reason != cors.NoReason {
		p.refused(ctx, up, origin, reason, false)
	}
	if decision == cors.Rejected && policy.AnswersRefusedPreflight() && policy.IsPreflight(req) {
		writeRefusedPreflight(&ctx.Response, closing)
		return decision, corsAnswered
	}
	return decision, corsApply
}

func (p *Proxy) refused(ctx *fasthttp.RequestCtx, up *upstream, origin []byte, reason cors.Reason, reportOnly bool) {
	p.metrics.refusals.record(p.opts.Logger, Refusal{
		Origin: origin, Host: ctx.Request.Header.Host(), Method: ctx.Method(),
		Port: up.port, Reason: reason, ReportOnly: reportOnly,
	}, time.Now())
}

// writeRefusedPreflight answers a preflight from a refused origin without asking the app:
// 403 and no CORS headers, so the browser fails the request it was about to send.
func writeRefusedPreflight(resp *fasthttp.Response, closing bool) {
	resp.Reset()
	resp.SetStatusCode(fasthttp.StatusForbidden)
	resp.Header.Add(cors.HeaderVary, cors.VaryPreflight)
	resp.Header.SetContentLength(0)
	keepAlive(resp, closing)
}
