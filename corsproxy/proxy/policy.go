package proxy

import (
	"time"

	"github.com/valyala/fasthttp"

	"github.com/corsmesh/corsmesh/corsproxy/cors"
)

const headerRequestMethod = "Access-Control-Request-Method"

// decideCORS evaluates a request under its port's policy, counts the decision and makes a
// refusal visible. It answers the request itself (done) when the policy is report-only,
// which forwards it untouched, or when a refused preflight is to be answered by the proxy.
func (p *Proxy) decideCORS(ctx *fasthttp.RequestCtx, up *upstream, policy *cors.Policy, origin []byte, originCount int, closing bool) (decision cors.Decision, done bool) {
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
		if sw := p.forwardOrUpgrade(ctx, up); sw != nil {
			p.switchProtocols(ctx, sw)
		} else {
			p.endByClosing(ctx)
		}
		return decision, true
	}
	p.metrics.decision(decision)
	if reason != cors.NoReason {
		p.refused(ctx, up, origin, reason, false)
	}
	if decision == cors.Rejected && policy.AnswersRefusedPreflight() && policy.IsPreflight(req) {
		writeRefusedPreflight(&ctx.Response, closing)
		return decision, true
	}
	return decision, false
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
