package proxy

import (
	"net/http"
	"testing"
)

// The seed guide's two curl checks, through a real listener: status, every header value the
// guide shows, and the body must be exactly what it prints.
func TestSeedResponses(t *testing.T) {
	upstream := startUpstream(t, pipyOK())
	addr, _, _ := startProxy(t, seedConfig(t), Options{Upstream: upstream, PolicyPort: 8080})

	tests := []struct {
		name    string
		method  string
		headers map[string]string
		body    string
	}{
		{
			name:   "curl -H Origin: http://www.bbb.com",
			method: http.MethodGet,
			headers: map[string]string{
				"access-control-allow-credentials": "true",
				"access-control-expose-headers":    "Content-Encoding,Kuma-Revision",
				"access-control-allow-origin":      "http://www.bbb.com",
				"content-length":                   "20",
				"connection":                       "keep-alive",
			},
			body: "Hi, I am PIPY-OK v1!",
		},
		{
			name:   "curl -H Origin: http://www.bbb.com -X OPTIONS",
			method: http.MethodOptions,
			headers: map[string]string{
				"access-control-allow-origin":      "http://www.bbb.com",
				"access-control-allow-credentials": "true",
				"access-control-expose-headers":    "Content-Encoding,Kuma-Revision",
				"access-control-allow-methods":     "POST,GET,PATCH,DELETE",
				"access-control-allow-headers":     "X-Foo-Bar-1",
				"access-control-max-age":           "86400",
				"content-length":                   "0",
				"connection":                       "keep-alive",
			},
			body: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// What curl sends for `curl -ksi http://pipy-ok.pipy:8080 -H "Origin: ..."`.
			resp := rawExchange(t, addr, tt.method+" / HTTP/1.1\nHost: pipy-ok.pipy:8080\nUser-Agent: curl/8.5.0\nAccept: */*\nOrigin: http://www.bbb.com\n\n")
			if resp.StatusCode != http.StatusOK || resp.Proto != "HTTP/1.1" {
				t.Errorf("status line = %s %s, want HTTP/1.1 200 OK", resp.Proto, resp.Status)
			}
			for name, want := range tt.headers {
				got := resp.Header.Values(name)
				if name == "content-length" {
					got = []string{itoa(resp.ContentLength)}
				}
				if len(got) != 1 || got[0] != want {
					t.Errorf("%s = %q, want exactly one line %q", name, got, want)
				}
			}
			// Transparent: the app sends no Server header, so neither does the proxy.
			if got := resp.Header.Values("Server"); len(got) != 0 {
				t.Errorf("Server = %q, want none", got)
			}
			if body := readBody(t, resp); body != tt.body {
				t.Errorf("body = %q, want %q", body, tt.body)
			}
		})
	}
}
