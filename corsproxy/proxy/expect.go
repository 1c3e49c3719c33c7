package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httputil"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/corsmesh/corsmesh/corsproxy/cors"
)

// A request with "Expect: 100-continue" asks whether its body is wanted before sending it,
// and only the app can say: its 100, or a final answer (417, 413, 401) in place of one.
// fasthttp's server would answer 100 itself, and its client writes a body right behind the
// header, so neither can relay that question. Such a request takes a way of its own, as an
// Upgrade does; every other request is untouched (the server asks only for these):
//
//  1. expectContinue, the server's ExpectHandler, runs before any of the body is read. It
//     decides CORS first: what the proxy answers itself (a preflight, a refusal, a
//     malformed request) is answered at once and reaches no app. Otherwise it sends the
//     header alone to the app, on a connection of its own, and waits for the app's first
//     answer. A final one goes to the client with the policy's CORS headers, the body is
//     never read, and the connection closes after it (the client may have begun sending
//     the body anyway). A 100 lets the server send the client its 100.
//  2. serve then streams the body to the app and reads its answer (finishContinued).
//
// An app that says nothing for continueWait (an HTTP/1.0 server, or one that reads the body
// before answering) gets the body all the same: the proxy tells the client to go on, as a
// client may do itself after a while (RFC 9110 section 10.1.1).
const continueWait = time.Second

// continued is a request whose header the app has and whose body it is waiting for.
type continued struct {
	app net.Conn
	br  *bufio.Reader
	bw  *bufio.Writer
	// policy applies to the answer (nil: it passes through untouched).
	policy   *cors.Policy
	decision cors.Decision
	origin   []byte
}

func (c *continued) close() { _ = c.app.Close() }

// expectContinue is the server's ExpectHandler: StatusContinue lets the server send the
// client 100 and read the body; any other status is the final answer left in ctx.Response.
func (p *Proxy) expectContinue(ctx *fasthttp.RequestCtx) int {
	conn, _ := ctx.Conn().(*interceptedConn)
	h := &ctx.Request.Header
	if conn == nil || conn.upstream == nil || h.ConnectionUpgrade() || h.ContentLength() == 0 || h.ContentLength() == -2 {
		// serve answers a connection without a destination itself; no body, nothing to
		// ask; an Upgrade's body goes with its header on the upgrade's own connection.
		return fasthttp.StatusContinue
	}
	up := conn.upstream
	conn.bodyErr = nil   // the last request's: an app error here is the app's
	const closing = true // the server closes after a final answer here: say so, not keep-alive
	if reason := prepareRequest(&ctx.Request, up); reason != "" {
		p.refuse(ctx, clientMalformed, fasthttp.StatusBadRequest, reason)
		return fasthttp.StatusBadRequest
	}
	ex := &continued{}
	if policy := p.routes.Load().Policy(up.port, h.Host()); policy == nil {
		p.metrics.passthrough.Add(1)
	} else {
		origins := h.PeekAll(fasthttp.HeaderOrigin)
		var origin []byte
		if len(origins) > 0 {
			origin = origins[0]
		}
		decision, action := p.decideCORS(ctx, up, policy, origin, len(origins), closing)
		switch {
		case action == corsAnswered:
			return ctx.Response.StatusCode()
		case action == corsApply && decision == cors.Preflight:
			writePreflight(&ctx.Response, policy, origin, closing)
			return fasthttp.StatusOK
		case action == corsApply:
			// Used once the body is through: a copy, not a view into the header's buffer.
			ex.policy, ex.decision, ex.origin = policy, decision, bytes.Clone(origin)
		}
	}
	answered, err := p.sendHead(ctx, up, ex)
	if err != nil {
		p.writeUpstreamError(ctx, err)
	}
	if err != nil || answered {
		ex.applyCORS(&ctx.Response, closing)
		return ctx.Response.StatusCode()
	}
	conn.continued = ex
	return fasthttp.StatusContinue
}

// sendHead sends the request's header to the app on a connection of its own and waits up
// to continueWait for the app's first answer. A final answer is left in ctx.Response
// (answered); a 100, or silence, means the app is to get the body.
func (p *Proxy) sendHead(ctx *fasthttp.RequestCtx, up *upstream, ex *continued) (answered bool, err error) {
	app, err := net.DialTimeout("tcp", up.addr.String(), p.opts.DialTimeout)
	if err != nil {
		return false, err
	}
	ex.app = app
	ex.bw = bufio.NewWriterSize(app, upgradeBufferSize)
	ex.br = bufio.NewReaderSize(app, p.opts.MaxHeaderBytes)
	if _, err = ex.bw.Write(ctx.Request.Header.Header()); err == nil {
		err = ex.bw.Flush()
	}
	if err != nil {
		ex.close()
		return false, fmt.Errorf("sending the header of a request expecting 100-continue: %w", err)
	}
	_ = app.SetReadDeadline(time.Now().Add(continueWait))
	if _, err := ex.br.Peek(1); err != nil {
		var netErr net.Error
		if errors.As(err, &netErr) && netErr.Timeout() {
			_ = app.SetReadDeadline(time.Time{})
			return false, nil // the app waits for the body
		}
		ex.close()
		return false, fmt.Errorf("waiting for the answer to a request expecting 100-continue: %w", err)
	}
	p.answerDeadline(app)
	answer := &soloAnswer{app: app}
	answer.resp.StreamBody = true
	for range maxInterim {
		if err := answer.resp.Header.Read(ex.br); err != nil {
			ex.close()
			return false, fmt.Errorf("reading the answer to a request expecting 100-continue: %w", err)
		}
		switch status := answer.resp.StatusCode(); {
		case status == fasthttp.StatusContinue:
			_ = app.SetReadDeadline(time.Time{})
			return false, nil
		case status == fasthttp.StatusSwitchingProtocols:
			ex.close()
			return false, errors.New("101 to a request that asked for no protocol switch")
		case status >= 200:
			_ = app.SetReadDeadline(time.Time{}) // the body streams as long as it flows, as an upgrade's
			if err := answer.readBody(ex.br, ctx.IsHead()); err != nil {
				ex.close()
				return false, err
			}
			answer.moveTo(&ctx.Response)
			return true, nil
		}
		// Another 1xx (103 Early Hints): not forwarded, as on the pooled path.
	}
	ex.close()
	return false, errors.New("too many 1xx answers")
}

// maxInterim bounds the 1xx answers read before a request's 100 or final answer.
const maxInterim = 16

// finishContinued streams the body of a request the app asked for to it, and leaves its
// answer in ctx.Response.
func (p *Proxy) finishContinued(ctx *fasthttp.RequestCtx, ex *continued) {
	err := ex.sendBody(&ctx.Request)
	if err == nil {
		p.answerDeadline(ex.app)
		answer := &soloAnswer{app: ex.app}
		answer.resp.StreamBody = true
		answer.resp.SkipBody = ctx.IsHead()
		// Read skips 1xx answers, a 100 the app sent after continueWait among them.
		if err = answer.resp.Read(ex.br); err == nil {
			_ = ex.app.SetReadDeadline(time.Time{})
			answer.moveTo(&ctx.Response)
		} else {
			err = fmt.Errorf("reading the answer to a request expecting 100-continue: %w", err)
		}
	}
	if err != nil {
		ex.close()
		p.writeUpstreamError(ctx, err)
	}
	ex.applyCORS(&ctx.Response, ctx.Request.Header.ConnectionClose())
}

// sendBody writes the request's body to the app, framed as its header said.
func (ex *continued) sendBody(req *fasthttp.Request) error {
	body := req.BodyStream()
	if body == nil {
		body = bytes.NewReader(req.Body())
	}
	var err error
	if n := req.Header.ContentLength(); n >= 0 {
		var sent int64
		if sent, err = io.CopyN(ex.bw, body, int64(n)); err == nil && sent != int64(n) {
			err = io.ErrUnexpectedEOF
		}
	} else {
		chunked := httputil.NewChunkedWriter(ex.bw)
		if _, err = io.Copy(chunked, body); err == nil {
			err = chunked.Close()
		}
		if err == nil {
			_, err = ex.bw.WriteString("\r\n") // no trailer
		}
	}
	if err == nil {
		err = ex.bw.Flush()
	}
	if err != nil {
		return fmt.Errorf("sending the body of a request expecting 100-continue: %w", err)
	}
	return nil
}

// applyCORS sets the policy's headers on the answer, if a policy applies.
func (ex *continued) applyCORS(resp *fasthttp.Response, closing bool) {
	if ex.policy != nil {
		applyActual(resp, ex.policy, ex.decision, ex.origin, closing)
	}
}

// answerDeadline bounds the wait for the app's answer by the upstream timeout, if any.
func (p *Proxy) answerDeadline(app net.Conn) {
	var deadline time.Time
	if p.opts.UpstreamTimeout > 0 {
		deadline = time.Now().Add(p.opts.UpstreamTimeout)
	}
	_ = app.SetReadDeadline(deadline)
}
