package cors_test

import (
	"testing"

	"github.com/corsmesh/corsmesh/corsproxy/cors"
)

func TestWildcardOrigins(t *testing.T) {
	p := compile(t, `{"allowOrigins":[{"exact":"https://app.example.org"},{"wildcard":"https://*.example.com"},{"wildcard":"http://localhost:*"}]}`)
	tests := []struct {
		origin    string
		want      cors.Decision
		wantIndex int
	}{
		{"https://a.example.com", cors.Allowed, 1},
		{"https://a.b.example.com", cors.Allowed, 1},
		{"http://localhost:5173", cors.Allowed, 2},
		{"http://localhost", cors.Allowed, 2},
		{"https://app.example.org", cors.Allowed, 0},
		{"https://example.com", cors.Rejected, -1},
		{"https://example.com.evil.com", cors.Rejected, -1},
		{"https://notexample.com", cors.Rejected, -1},
		{"https://a.example.com:8443", cors.Rejected, -1},
		{"http://a.example.com", cors.Rejected, -1},
		{"http://localhost.evil.com:5173", cors.Rejected, -1},
	}
	for _, tt := range tests {
		t.Run(tt.origin, func(t *testing.T) {
			if got := p.Decide("GET", tt.origin, 1); got != tt.want {
				t.Errorf("Decide(GET, %q) = %v, want %v", tt.origin, got, tt.want)
			}
			if i, ok := p.Match(tt.origin); i != tt.wantIndex || ok != (tt.wantIndex >= 0) {
				t.Errorf("Match(%q) = %d, %v, want %d", tt.origin, i, ok, tt.wantIndex)
			}
		})
	}
	if n := testing.AllocsPerRun(1000, func() { p.Decide("GET", "https://a.b.example.com", 1) }); n != 0 {
		t.Errorf("a wildcard decision allocates %v times, want 0", n)
	}
}

func TestEvaluateReasons(t *testing.T) {
	p := compile(t, seedJSON)
	long := "http://" + string(make([]byte, cors.MaxOriginLength)) // over the limit whatever it holds
	tests := []struct {
		name   string
		req    cors.Request
		want   cors.Decision
		reason cors.Reason
	}{
		{"no origin", cors.Request{Method: "GET"}, cors.NotCORS, cors.NoReason},
		{"allowed", cors.Request{Method: "GET", Origin: "http://www.aaa.com", OriginCount: 1}, cors.Allowed, cors.NoReason},
		{"not allowed", cors.Request{Method: "GET", Origin: "https://evil.example", OriginCount: 1}, cors.Rejected, cors.ReasonNotAllowed},
		{"null", cors.Request{Method: "GET", Origin: "null", OriginCount: 1}, cors.Rejected, cors.ReasonNull},
		{"invalid", cors.Request{Method: "GET", Origin: "HTTP://WWW.AAA.COM", OriginCount: 1}, cors.InvalidOrigin, cors.ReasonInvalid},
		{"several", cors.Request{Method: "GET", Origin: "http://www.aaa.com", OriginCount: 2}, cors.InvalidOrigin, cors.ReasonSeveralOrigins},
		{"too long", cors.Request{Method: "GET", Origin: long, OriginCount: 1}, cors.InvalidOrigin, cors.ReasonTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, r := p.Evaluate(tt.req)
			if d != tt.want || r != tt.reason {
				t.Errorf("Evaluate = %v, %v, want %v, %v", d, r, tt.want, tt.reason)
			}
		})
	}
}

func TestPreflightModes(t *testing.T) {
	const origins = `"allowOrigins":[{"exact":"http://a.com"}]`
	tests := []struct {
		name          string
		policy        string
		method        string
		requestMethod bool
		want          cors.Decision
	}{
		{"default: OPTIONS with ACRM", `{` + origins + `}`, "OPTIONS", true, cors.Preflight},
		{"default: any OPTIONS (osm-edge)", `{` + origins + `}`, "OPTIONS", false, cors.Preflight},
		{"any-options named", `{` + origins + `,"preflight":"any-options"}`, "OPTIONS", false, cors.Preflight},
		{"strict: OPTIONS with ACRM", `{` + origins + `,"preflight":"strict"}`, "OPTIONS", true, cors.Preflight},
		{"strict: plain OPTIONS goes to the app", `{` + origins + `,"preflight":"strict"}`, "OPTIONS", false, cors.Allowed},
		{"strict: GET with ACRM is no preflight", `{` + origins + `,"preflight":"strict"}`, "GET", true, cors.Allowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := compile(t, tt.policy)
			req := cors.Request{Method: tt.method, Origin: "http://a.com", OriginCount: 1, RequestMethod: tt.requestMethod}
			if d, _ := p.Evaluate(req); d != tt.want {
				t.Errorf("Evaluate = %v, want %v", d, tt.want)
			}
			req.Origin = "http://b.com"
			if d, _ := p.Evaluate(req); d != cors.Rejected {
				t.Errorf("Evaluate(refused origin) = %v, want %v", d, cors.Rejected)
			}
		})
	}
	p := compile(t, `{`+origins+`,"refusedPreflight":"answer","reportOnly":true}`)
	if !p.AnswersRefusedPreflight() || !p.ReportOnly() {
		t.Errorf("AnswersRefusedPreflight, ReportOnly = %v, %v, want true, true", p.AnswersRefusedPreflight(), p.ReportOnly())
	}
	if p := compile(t, seedJSON); p.AnswersRefusedPreflight() || p.ReportOnly() {
		t.Errorf("the seed's policy answers refused preflights or is report-only")
	}
}
