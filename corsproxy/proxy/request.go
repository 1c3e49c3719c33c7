package proxy

import (
	"bytes"

	"github.com/valyala/fasthttp"
)

// prepareRequest makes what the app will be sent agree with what the policy is chosen by,
// and takes off what belongs to the client's hop. It returns a reason to refuse the
// request, or "" to go on.
//
//   - A header name must be a token (RFC 9110 section 5.1): fasthttp takes "X-Foo Bar",
//     which the app may read otherwise than the proxy did.
//   - An absolute-form target ("GET http://a.svc/ HTTP/1.1") names the host, whatever the
//     Host header says (RFC 9112 section 3.2.2): fasthttp sends the app the URI's host, so
//     the policy must be chosen by it too, and Host is made to say it.
//   - A Transfer-Encoding that is not chunked leaves the body's length to guesswork
//     (RFC 9112 section 6.3): refused, as a front proxy may have guessed otherwise.
//   - A later HTTP/1.x goes on as HTTP/1.1, the version the proxy speaks to the app, and
//     so needs a Host; an HTTP/1.0 request without one gets the app's address.
//   - Headers named in Connection are the client's hop's own (RFC 9110 section 7.6.1).
//   - A body without Content-Type stays without: fasthttp's client would add
//     application/octet-stream, making a CORS-simple request something else to the app.
func prepareRequest(req *fasthttp.Request, up *upstream) string {
	h := &req.Header
	h.SetNoDefaultContentType(true)
	fields := scanFieldNames(h.RawHeaders())
	if fields.badName {
		return "a header name that is not a token"
	}
	if uri := h.RequestURI(); len(uri) > 0 && uri[0] != '/' && uri[0] != '*' {
		host := req.URI().Host()
		if len(host) == 0 {
			return "absolute-form target without a host"
		}
		h.SetHostBytes(host)
	}
	if h.ContentLength() == -1 && fields.contentLength {
		// fasthttp follows Transfer-Encoding and drops Content-Length, but a front proxy
		// that read it the other way would desynchronise from us.
		return "both Content-Length and Transfer-Encoding"
	}
	if h.ContentLength() != -1 && fields.transferEncoding {
		return "a Transfer-Encoding other than chunked"
	}
	if proto := h.Protocol(); !bytes.Equal(proto, http11) && !bytes.Equal(proto, http10) {
		h.SetProtocolBytes(http11)
	}
	if len(h.Host()) == 0 {
		if !bytes.Equal(h.Protocol(), http10) {
			return "no Host" // RFC 9112 section 3.2
		}
		h.SetHostBytes(up.host) // HTTP/1.0 may leave it out: it went to the app's address
	}
	if conn := h.Peek(fasthttp.HeaderConnection); len(conn) > 0 {
		dropConnectionOptions(h, conn)
	}
	if !h.ConnectionUpgrade() && len(h.Peek(fasthttp.HeaderUpgrade)) > 0 {
		// Upgrade without "Connection: upgrade" asks nothing of this hop, and must not
		// reach the app over a pooled connection: an app switching there would leave it
		// speaking another protocol to the next request.
		h.Del(fasthttp.HeaderUpgrade)
	}
	return ""
}

var (
	http11 = []byte("HTTP/1.1")
	http10 = []byte("HTTP/1.0")
)

// dropConnectionOptions deletes the headers the Connection header names, but for the
// tokens the proxy acts on itself (close, keep-alive, upgrade).
func dropConnectionOptions(h *fasthttp.RequestHeader, conn []byte) {
	var named [][]byte
	for token := range bytes.SplitSeq(conn, []byte(",")) {
		token = bytes.TrimSpace(token)
		switch {
		case len(token) == 0,
			bytes.EqualFold(token, []byte("close")),
			bytes.EqualFold(token, []byte("keep-alive")),
			bytes.EqualFold(token, []byte("upgrade")):
			continue
		}
		named = append(named, append([]byte(nil), token...)) // Del reuses conn's memory
	}
	for _, name := range named {
		if !bytes.EqualFold(name, []byte(fasthttp.HeaderHost)) && !bytes.EqualFold(name, []byte(fasthttp.HeaderContentLength)) &&
			!bytes.EqualFold(name, []byte(fasthttp.HeaderTransferEncoding)) {
			h.DelBytes(name) // the framing and the target stay: they are this request's, not the hop's
		}
	}
}

// fieldNames is what one pass over a raw header block finds.
type fieldNames struct {
	badName, contentLength, transferEncoding bool
}

// scanFieldNames looks at each field's name in a raw header block, however spelt: it runs
// on every request, so once, without allocating.
func scanFieldNames(raw []byte) (f fieldNames) {
	for len(raw) > 0 {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		if len(line) == 0 || line[0] == ' ' || line[0] == '\t' || line[0] == '\r' {
			continue // a folded line's continuation, or the end
		}
		i := bytes.IndexByte(line, ':')
		if i < 0 || !isToken(line[:i]) {
			f.badName = true
			continue
		}
		switch name := line[:i]; {
		case bytes.EqualFold(name, []byte(fasthttp.HeaderContentLength)):
			f.contentLength = true
		case bytes.EqualFold(name, []byte(fasthttp.HeaderTransferEncoding)):
			f.transferEncoding = true
		}
	}
	return f
}

// isToken reports whether b is a non-empty RFC 9110 token.
func isToken(b []byte) bool {
	for _, c := range b {
		if !tokenChars[c] {
			return false
		}
	}
	return len(b) > 0
}

var tokenChars = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()
