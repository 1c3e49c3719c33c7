package proxy

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
)

// endByClosing sends an HTTP/1.0 client a body of unknown length the only way HTTP/1.0
// has: unframed, ended by closing the connection. HTTP/1.0 has no chunked coding (RFC 9112
// section 6.1: no Transfer-Encoding in a response to a request older than HTTP/1.1), and
// fasthttp would chunk a streamed body without a length whatever the client's version.
//
// Only answers read apart (every HTTP/1.0 request's is, see forward) can be handed from
// ctx to the hijacked connection's handler.
func (p *Proxy) endByClosing(ctx *fasthttp.RequestCtx) {
	answer, ok := ctx.Response.BodyStream().(*appAnswer)
	if !ok || ctx.Request.Header.IsHTTP11() || ctx.Response.Header.ContentLength() >= 0 {
		return
	}
	head := unframedHead(&ctx.Response.Header, ctx.Time())
	// ctx lets go of the body without ending it: the handler below owns it from here.
	answer.handedOver = true
	ctx.Response.ResetBody()
	answer.handedOver = false
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(client net.Conn) {
		_, err := client.Write(head)
		if err == nil {
			_, err = io.Copy(client, answer)
		}
		_ = answer.CloseWithError(err)
	}) // the server closes the client's connection when the handler returns: the body's end
}

// unframedHead serializes h for a body ended by closing: without Content-Length,
// Transfer-Encoding and Trailer, with "Connection: close", and with a Date if the app
// sent none (RFC 9110 section 6.6.1 asks a forwarding recipient with a clock to add it).
func unframedHead(h *fasthttp.ResponseHeader, now time.Time) []byte {
	status := h.StatusCode()
	message := h.StatusMessage()
	if len(message) == 0 {
		message = []byte(fasthttp.StatusMessage(status))
	}
	b := append([]byte("HTTP/1.1 "), strconv.Itoa(status)...) // our version (RFC 9110 section 2.5), whatever the client's
	b = append(append(append(b, ' '), message...), "\r\n"...)
	sawDate := false
	for name, value := range h.All() {
		sawDate = sawDate || bytes.EqualFold(name, []byte(fasthttp.HeaderDate))
		switch {
		case bytes.EqualFold(name, []byte(fasthttp.HeaderContentLength)),
			bytes.EqualFold(name, []byte(fasthttp.HeaderTransferEncoding)),
			bytes.EqualFold(name, []byte(fasthttp.HeaderTrailer)),
			bytes.EqualFold(name, []byte(fasthttp.HeaderConnection)),
			bytes.EqualFold(name, []byte(headerKeepAlive)):
			continue
		}
		b = append(append(append(append(b, name...), ": "...), value...), "\r\n"...)
	}
	if !sawDate {
		b = append(append(b, "Date: "...), now.UTC().Format(http.TimeFormat)...)
		b = append(b, "\r\n"...)
	}
	return append(b, "Connection: close\r\n\r\n"...)
}
