package proxy

import (
	"sync"

	"github.com/valyala/fasthttp"
)

// appAnswer is the app's response, read into a Response of its own and not into the one the
// server writes to the client. fasthttp's client decides whether the app's connection can go
// back to the pool when the streamed body is closed, by asking the response it read into
// whether it says "Connection: close"; the server marks the client's response that way
// whenever the client asked to close. Read into the same response, every request from such
// a client (health checks, scripts, HTTP/1.0) cost a new connection to the app and left one
// in TIME_WAIT.
//
// The Response is a field, not embedded: embedded, its WriteTo (the whole response) would
// make the body stream an io.WriterTo, which copies prefer over Read.
type appAnswer struct {
	resp fasthttp.Response
	pool *sync.Pool
	// handedOver: the response holding this body lets go of it without ending it, as
	// the body moves to a hijacked connection's handler (endByClosing).
	handedOver bool
}

// answerPool hands out appAnswers that return to it once their body is done.
type answerPool struct{ sync.Pool }

func (p *answerPool) get() *appAnswer {
	if a, ok := p.Get().(*appAnswer); ok {
		return a
	}
	return &appAnswer{pool: &p.Pool}
}

func (a *appAnswer) release() {
	a.resp.Reset()
	a.pool.Put(a)
}

// Read streams the app's body to the server writing it to the client.
func (a *appAnswer) Read(b []byte) (int, error) { return a.resp.BodyStream().Read(b) }

// CloseWithError is how the server ends the body: the app's connection goes back to the
// pool when the body was read whole and nothing failed, and the answer to its pool.
func (a *appAnswer) CloseWithError(err error) error {
	if a.handedOver {
		return nil
	}
	var closeErr error
	if s, ok := a.resp.BodyStream().(fasthttp.ReadCloserWithError); ok {
		closeErr = s.CloseWithError(err)
	}
	a.release()
	return closeErr
}

// moveTo hands the app's status, headers and body to resp, which the server writes to the
// client. The body stays a stream: it flows through without being buffered.
func (a *appAnswer) moveTo(resp *fasthttp.Response) {
	a.resp.Header.CopyTo(&resp.Header)
	resp.Header.SetNoDefaultContentType(true) // CopyTo takes the client's default; no Content-Type stays none
	// The app's Connection header is about its connection to us (an HTTP/1.0 app's
	// "keep-alive", say); the server states the client's, which closes after this.
	resp.Header.Del(fasthttp.HeaderConnection)
	if a.resp.BodyStream() == nil {
		// No body to stream (HEAD, 1xx, 204, 304): the copied header says all.
		resp.SetBody(a.resp.Body())
		a.release()
		return
	}
	resp.SetBodyStream(a, a.resp.Header.ContentLength())
}
