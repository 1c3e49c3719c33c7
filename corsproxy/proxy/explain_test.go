package proxy

import (
	"slices"
	"testing"

	"github.com/corsmesh/corsmesh/corsproxy/config"
	"github.com/corsmesh/corsmesh/corsproxy/cors"
)

func TestExplainRendersTheSeedAnswers(t *testing.T) {
	routes, err := ParseRoutes(seedConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	policy := routes.Policy(8080, []byte("pipy-ok.pipy"))
	actual := Explain(policy, cors.Request{Method: "GET", Origin: "http://www.bbb.com", OriginCount: 1})
	wantActual := []cors.Header{
		{Name: "vary", Value: "Origin"},
		{Name: "access-control-allow-origin", Value: "http://www.bbb.com"},
		{Name: "access-control-allow-credentials", Value: "true"},
		{Name: "access-control-expose-headers", Value: "Content-Encoding,Kuma-Revision"},
	}
	if actual.Decision != cors.Allowed || actual.ByProxy || !sameHeaders(actual.Headers, wantActual) {
		t.Errorf("actual = %+v, want allowed, forwarded, %v", actual, wantActual)
	}
	pre := Explain(policy, cors.Request{Method: "OPTIONS", Origin: "http://www.bbb.com", OriginCount: 1, RequestMethod: true})
	if pre.Decision != cors.Preflight || !pre.ByProxy || pre.Status != 200 || len(pre.Headers) != 7 {
		t.Errorf("preflight = %+v, want answered 200 by the proxy with 7 CORS lines", pre)
	}
	refused := Explain(policy, cors.Request{Method: "GET", Origin: "http://evil.example", OriginCount: 1})
	if refused.Decision != cors.Rejected || refused.Reason != cors.ReasonNotAllowed || !sameHeaders(refused.Headers, []cors.Header{{Name: "vary", Value: "Origin"}}) {
		t.Errorf("refused = %+v, want rejected with Vary only", refused)
	}

	c := &config.CORS{AllowOrigins: []config.OriginMatch{{Exact: "http://a.com"}}, RefusedPreflight: config.RefusedAnswer}
	p, err := cors.Compile(c)
	if err != nil {
		t.Fatal(err)
	}
	if a := Explain(p, cors.Request{Method: "OPTIONS", Origin: "http://b.com", OriginCount: 1, RequestMethod: true}); !a.ByProxy || a.Status != 403 {
		t.Errorf("refused preflight under answer = %+v, want 403 by the proxy", a)
	}
}

func sameHeaders(a, b []cors.Header) bool {
	key := func(x, y cors.Header) int {
		if x.Name != y.Name {
			if x.Name < y.Name {
				return -1
			}
			return 1
		}
		return 0
	}
	a, b = slices.Clone(a), slices.Clone(b)
	slices.SortFunc(a, key)
	slices.SortFunc(b, key)
	return slices.Equal(a, b)
}
