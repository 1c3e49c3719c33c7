package config_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/corsmesh/corsmesh/corsproxy/config"
)

// seedCORS reads the osm-edge guide's PluginConfig spec.config, converted to JSON.
func seedCORS(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/seed_plugin_config.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// doc wraps one CORS policy (JSON) as the policy of port 8080 of a version 1 document.
func doc(cors string) string {
	return `{"version":1,"ports":[{"port":8080,"cors":` + cors + `}]}`
}

// errorFields returns the Field of every FieldError in err, or nil when err is not an
// ErrorList.
func errorFields(err error) []string {
	var list config.ErrorList
	if !errors.As(err, &list) {
		return nil
	}
	fields := make([]string, len(list))
	for i, e := range list {
		fields[i] = e.Field
	}
	return fields
}

func TestParseSeedPluginConfig(t *testing.T) {
	seed := seedCORS(t)
	want := &config.CORS{
		AllowOrigins: []config.OriginMatch{
			{Regex: "http.*://www.test.cn"},
			{Exact: "http://www.aaa.com"},
			{Prefix: "http://www.bbb.com"},
		},
		AllowCredentials: true,
		AllowMethods:     []string{"POST", "GET", "PATCH", "DELETE"},
		AllowHeaders:     []string{"X-Foo-Bar-1"},
		ExposeHeaders:    []string{"Content-Encoding", "Kuma-Revision"},
		MaxAge:           json.RawMessage(`"24h"`),
	}

	got, err := config.ParseCORS(seed)
	if err != nil {
		t.Fatalf("ParseCORS(seed): %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseCORS(seed) = %+v, want %+v", got, want)
	}

	c, err := config.Parse([]byte(doc(string(seed))))
	if err != nil {
		t.Fatalf("Parse(document with the seed policy): %v", err)
	}
	p := c.Lookup(8080)
	if p == nil || !reflect.DeepEqual(p.CORS, want) {
		t.Errorf("Parse(document).Lookup(8080) = %+v, want the seed policy", p)
	}
	if c.Lookup(9090) != nil {
		t.Errorf("Lookup(9090) on a document without that port is not nil")
	}
}

func TestParseValid(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"no ports", `{"version":1,"ports":[]}`},
		{"port without policy", `{"version":1,"ports":[{"port":80}]}`},
		{"maxAge as a JSON number", doc(`{"allowOrigins":[{"exact":"http://a.com"}],"maxAge":86400}`)},
		{"maxAge as plain seconds in a string", doc(`{"allowOrigins":[{"exact":"http://a.com"}],"maxAge":"600"}`)},
		{"exact null origin", doc(`{"allowOrigins":[{"exact":"null"}]}`)},
		{"hosts with their own policies", `{"version":1,"ports":[{"port":80,"cors":{"allowOrigins":[{"exact":"http://a.com"}]},` +
			`"hosts":[{"names":["api","api.ns.svc.cluster.local"],"cors":{"allowOrigins":[{"prefix":"https://"}]}},{"names":["web"]}]}]}`},
		{"ports at both ends of the range", `{"version":1,"ports":[{"port":1},{"port":65535}]}`},
		{"surrounding whitespace", " \n" + `{"version":1,"ports":[]}` + "\n\t"},
		{"null policy", `{"version":1,"ports":[{"port":80,"cors":null}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := config.Parse([]byte(tt.in)); err != nil {
				t.Errorf("Parse(%s): %v", tt.in, err)
			}
		})
	}
}

func TestParseErrorsNameTheField(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		wantFields []string // every FieldError.Field, in order
		wantDetail string   // a substring of the error message
	}{
		{
			name:       "unknown top-level field",
			in:         `{"version":1,"ports":[],"portz":[]}`,
			wantFields: []string{"portz"},
			wantDetail: "unknown field",
		},
		{
			name:       "unknown field in an origin entry",
			in:         doc(`{"allowOrigins":[{"exact":"http://a.com"},{"exactt":"http://b.com"}]}`),
			wantFields: []string{"ports[0].cors.allowOrigins[1].exactt"},
			wantDetail: "unknown field",
		},
		{
			name:       "wildcard with a bare * host",
			in:         doc(`{"allowOrigins":[{"exact":"http://a.com"},{"wildcard":"https://*"}]}`),
			wantFields: []string{"ports[0].cors.allowOrigins[1].wildcard"},
			wantDetail: "bare * host allows every site",
		},
		{
			name:       "wildcard beside another kind",
			in:         doc(`{"allowOrigins":[{"wildcard":"https://*.a.com","exact":"https://b.a.com"}]}`),
			wantFields: []string{"ports[0].cors.allowOrigins[0]"},
			wantDetail: "set exactly one",
		},
		{
			name:       "unknown preflight mode",
			in:         doc(`{"allowOrigins":[{"exact":"http://a.com"}],"preflight":"strictly"}`),
			wantFields: []string{"ports[0].cors.preflight"},
			wantDetail: `"strictly" is not one of "any-options" (the default) or "strict"`,
		},
		{
			name:       "unknown refused preflight answer",
			in:         doc(`{"allowOrigins":[{"exact":"http://a.com"}],"refusedPreflight":"drop"}`),
			wantFields: []string{"ports[0].cors.refusedPreflight"},
			wantDetail: `"drop" is not one of "forward" (the default) or "answer"`,
		},
		{
			name:       "reportOnly not a boolean",
			in:         doc(`{"allowOrigins":[{"exact":"http://a.com"}],"reportOnly":"yes"}`),
			wantFields: []string{"ports[0].cors.reportOnly"},
			wantDetail: "want true or false",
		},
		{
			name:       "unknown field in a policy",
			in:         doc(`{"allowOrigin":[{"exact":"http://a.com"}]}`),
			wantFields: []string{"ports[0].cors.allowOrigin"},
			wantDetail: "unknown field",
		},
		{
			// encoding/json alone would accept "maxage" for maxAge: field names are exact.
			name:       "field name in the wrong case",
			in:         `{"version":1,"ports":[{"port":80,"hosts":[{"names":["a"],"cors":{"maxage":"1h"}}]}]}`,
			wantFields: []string{"ports[0].hosts[0].cors.maxage"},
			wantDetail: "unknown field",
		},
		{
			name:       "port as a string",
			in:         `{"version":1,"ports":[{"port":"80"}]}`,
			wantFields: []string{"ports[0].port"},
		},
		{
			name:       "port as a fraction",
			in:         `{"version":1,"ports":[{"port":80},{"port":80.5}]}`,
			wantFields: []string{"ports[1].port"},
		},
		{
			name:       "port beyond int32",
			in:         `{"version":1,"ports":[{"port":99999999999}]}`,
			wantFields: []string{"ports[0].port"},
		},
		{
			name:       "version as a string",
			in:         `{"version":"1","ports":[]}`,
			wantFields: []string{"version"},
		},
		{
			name:       "exact as a number",
			in:         `{"version":1,"ports":[{"port":80},{"port":81,"cors":{"allowOrigins":[{"exact":"http://a.com"},{"exact":1}]}}]}`,
			wantFields: []string{"ports[1].cors.allowOrigins[1].exact"},
		},
		{
			name:       "allowCredentials as a string",
			in:         doc(`{"allowOrigins":[{"exact":"http://a.com"}],"allowCredentials":"true"}`),
			wantFields: []string{"ports[0].cors.allowCredentials"},
		},
		{
			name:       "host names as a string",
			in:         `{"version":1,"ports":[{"port":80,"hosts":[{"names":"a"}]}]}`,
			wantFields: []string{"ports[0].hosts[0].names"},
		},
		{
			name:       "policy as an array",
			in:         doc(`[]`),
			wantFields: []string{"ports[0].cors"},
		},
		{
			name:       "empty origin entry",
			in:         doc(`{"allowOrigins":[{"exact":"http://a.com"},{}]}`),
			wantFields: []string{"ports[0].cors.allowOrigins[1]"},
			wantDetail: "empty entry",
		},
		{
			name:       "origin entry with only empty values",
			in:         doc(`{"allowOrigins":[{"exact":"","prefix":""}]}`),
			wantFields: []string{"ports[0].cors.allowOrigins[0]"},
			wantDetail: "empty entry",
		},
		{
			name:       "two kinds in one entry",
			in:         doc(`{"allowOrigins":[{"exact":"http://a.com"},{"prefix":"http://b"},{"exact":"http://c.com","regex":"http://c\\.com"}]}`),
			wantFields: []string{"ports[0].cors.allowOrigins[2]"},
			wantDetail: "more than one",
		},
		{
			name:       "invalid regex",
			in:         doc(`{"allowOrigins":[{"exact":"http://a.com"},{"prefix":"http://b"},{"regex":"http://(a|b"}]}`),
			wantFields: []string{"ports[0].cors.allowOrigins[2].regex"},
			wantDetail: "invalid regular expression",
		},
		{
			name:       "invalid method token",
			in:         doc(`{"allowOrigins":[{"exact":"http://a.com"}],"allowMethods":["GET","PO ST"]}`),
			wantFields: []string{"ports[0].cors.allowMethods[1]"},
			wantDetail: "not a valid HTTP token",
		},
		{
			name:       "invalid allowHeaders token",
			in:         doc(`{"allowOrigins":[{"exact":"http://a.com"}],"allowHeaders":["X-Foo:"]}`),
			wantFields: []string{"ports[0].cors.allowHeaders[0]"},
			wantDetail: "not a valid HTTP token",
		},
		{
			name:       "empty exposeHeaders entry",
			in:         doc(`{"allowOrigins":[{"exact":"http://a.com"}],"exposeHeaders":["X-A",""]}`),
			wantFields: []string{"ports[0].cors.exposeHeaders[1]"},
			wantDetail: "not a valid HTTP token",
		},
		{
			name:       "port zero",
			in:         `{"version":1,"ports":[{"port":0}]}`,
			wantFields: []string{"ports[0].port"},
			wantDetail: "not a TCP port",
		},
		{
			name:       "port above 65535",
			in:         `{"version":1,"ports":[{"port":80},{"port":65536}]}`,
			wantFields: []string{"ports[1].port"},
			wantDetail: "not a TCP port",
		},
		{
			name:       "negative port",
			in:         `{"version":1,"ports":[{"port":-80}]}`,
			wantFields: []string{"ports[0].port"},
			wantDetail: "not a TCP port",
		},
		{
			name:       "duplicate port",
			in:         `{"version":1,"ports":[{"port":80},{"port":81},{"port":80}]}`,
			wantFields: []string{"ports[2].port"},
			wantDetail: "listed twice",
		},
		{
			name:       "host route without names",
			in:         `{"version":1,"ports":[{"port":80,"hosts":[{"names":[]}]}]}`,
			wantFields: []string{"ports[0].hosts[0].names"},
			wantDetail: "at least one host name",
		},
		{
			name:       "empty host name",
			in:         `{"version":1,"ports":[{"port":80,"hosts":[{"names":["a"]},{"names":["b",""]}]}]}`,
			wantFields: []string{"ports[0].hosts[1].names[1]"},
			wantDetail: "not a host name",
		},
		{
			name:       "host name with a port",
			in:         `{"version":1,"ports":[{"port":80,"hosts":[{"names":["a:80"]}]}]}`,
			wantFields: []string{"ports[0].hosts[0].names[0]"},
			wantDetail: "not a host name",
		},
		{
			name:       "invalid policy of a host route",
			in:         `{"version":1,"ports":[{"port":80,"hosts":[{"names":["a"],"cors":{"allowOrigins":[{}]}}]}]}`,
			wantFields: []string{"ports[0].hosts[0].cors.allowOrigins[0]"},
		},
		{
			name:       "unsupported version",
			in:         `{"version":2,"ports":[]}`,
			wantFields: []string{"version"},
			wantDetail: "unsupported version 2",
		},
		{
			name:       "missing version",
			in:         `{"ports":[]}`,
			wantFields: []string{"version"},
			wantDetail: "unsupported version 0",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Parse([]byte(tt.in))
			if err == nil {
				t.Fatalf("Parse(%s) = %+v, want an error", tt.in, c)
			}
			if c != nil {
				t.Errorf("Parse returned a config along with the error %v", err)
			}
			if got := errorFields(err); !slices.Equal(got, tt.wantFields) {
				t.Errorf("Parse(%s) error fields = %q, want %q (error: %v)", tt.in, got, tt.wantFields, err)
			}
			if !strings.Contains(err.Error(), tt.wantDetail) {
				t.Errorf("Parse(%s) error = %q, want it to mention %q", tt.in, err, tt.wantDetail)
			}
			for _, f := range tt.wantFields {
				if !strings.Contains(err.Error(), f+": ") {
					t.Errorf("error message %q does not name %q", err, f)
				}
			}
		})
	}
}

func TestParseBadMaxAge(t *testing.T) {
	for _, maxAge := range []string{
		`"24x"`, `"-1"`, `-1`, `"1.5h"`, `1.5`, `""`, `"1h30m"`, `"h"`, `" 24h"`, `"24H"`,
		`"24h "`, `"99999999999d"`, `"2147483648"`, `2147483648`, `"99999999999999999999999"`,
		`null`, `true`, `{}`, `["24h"]`, `1e3`,
	} {
		t.Run(maxAge, func(t *testing.T) {
			in := doc(`{"allowOrigins":[{"exact":"http://a.com"}],"maxAge":` + maxAge + `}`)
			_, err := config.Parse([]byte(in))
			if got, want := errorFields(err), []string{"ports[0].cors.maxAge"}; !slices.Equal(got, want) {
				t.Errorf("Parse(maxAge %s) error fields = %q, want %q (error: %v)", maxAge, got, want, err)
			}
		})
	}
}

func TestParseReportsEveryError(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		wantFields []string
	}{
		{
			name: "validation errors across ports and fields",
			in: `{"version":3,"ports":[` +
				`{"port":80,"cors":{"allowOrigins":[{"regex":"("},{},{"exact":"http://a.com"}],"allowMethods":["G T"],"maxAge":"24x"}},` +
				`{"port":80},` +
				`{"port":70000,"hosts":[{"names":[""]}]}]}`,
			wantFields: []string{
				"version",
				"ports[0].cors.allowMethods[0]",
				"ports[0].cors.allowOrigins[0].regex",
				"ports[0].cors.allowOrigins[1]",
				"ports[0].cors.maxAge",
				"ports[1].port",
				"ports[2].port",
				"ports[2].hosts[0].names[0]",
			},
		},
		{
			name:       "unknown fields at several depths",
			in:         `{"version":1,"extra":true,"ports":[{"port":80,"cros":{},"cors":{"allowOrigins":[{"exact":"http://a.com","Prefix":"x"}],"max_age":1}}]}`,
			wantFields: []string{"extra", "ports[0].cors.allowOrigins[0].Prefix", "ports[0].cors.max_age", "ports[0].cros"},
		},
		{
			name:       "wrong types at several depths",
			in:         `{"version":"1","ports":[{"port":"80","cors":{"allowOrigins":[{"exact":1}],"allowCredentials":"yes"}}]}`,
			wantFields: []string{"ports[0].cors.allowCredentials", "ports[0].cors.allowOrigins[0].exact", "ports[0].port", "version"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse([]byte(tt.in))
			got := errorFields(err)
			slices.Sort(got)
			want := slices.Clone(tt.wantFields)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("Parse error fields = %q, want %q (error: %v)", got, want, err)
			}
		})
	}
}

func TestParseRejectsWhatIsNotOneJSONDocument(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"empty input", ``},
		{"only whitespace", " \n"},
		{"YAML", "version: 1\nports: []\n"},
		{"truncated", `{"version":1,"ports":[`},
		{"a second document", `{"version":1,"ports":[]} {"version":1,"ports":[]}`},
		{"a stray closing brace", `{"version":1,"ports":[]}}`},
		{"a stray closing bracket", `{"version":1,"ports":[]}]`},
		{"trailing garbage", `{"version":1,"ports":[]}x`},
		{"a top-level array", `[]`},
		{"a top-level string", `"version"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if c, err := config.Parse([]byte(tt.in)); err == nil {
				t.Errorf("Parse(%q) = %+v, want an error", tt.in, c)
			}
		})
	}
}

func TestParseCORS(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		wantFields []string // nil: valid
	}{
		{"minimal", `{"allowOrigins":[{"exact":"http://a.com"}]}`, nil},
		{"all fields", `{"allowOrigins":[{"prefix":"https://"}],"allowCredentials":false,"allowMethods":["GET"],"allowHeaders":["*"],"exposeHeaders":["X-A"],"maxAge":"10s"}`, nil},
		{"unknown field", `{"allowOrigins":[{"exact":"http://a.com"},{"exactt":"http://b.com"}]}`, []string{"allowOrigins[1].exactt"}},
		{"plugin wrapper is not a policy", `{"config":{"allowOrigins":[]},"plugin":"cors-policy"}`, []string{"config", "plugin"}},
		{"invalid regex", `{"allowOrigins":[{"regex":"["}]}`, []string{"allowOrigins[0].regex"}},
		{"bad maxAge", `{"maxAge":"1d12h"}`, []string{"maxAge"}},
		{"wrong type", `{"allowMethods":"GET"}`, []string{"allowMethods"}},
		{"several errors", `{"allowOrigins":[{},{"regex":"*"}],"allowHeaders":["a b"],"maxAge":"-5"}`,
			[]string{"allowHeaders[0]", "allowOrigins[0]", "allowOrigins[1].regex", "maxAge"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.ParseCORS([]byte(tt.in))
			if tt.wantFields == nil {
				if err != nil {
					t.Fatalf("ParseCORS(%s): %v", tt.in, err)
				}
				if c == nil {
					t.Fatalf("ParseCORS(%s) returned nil without an error", tt.in)
				}
				return
			}
			got := errorFields(err)
			slices.Sort(got)
			if !slices.Equal(got, tt.wantFields) {
				t.Errorf("ParseCORS(%s) error fields = %q, want %q (error: %v)", tt.in, got, tt.wantFields, err)
			}
		})
	}
}

func TestParseMaxAge(t *testing.T) {
	tests := []struct {
		raw  string
		want int64
	}{
		{`"10s"`, 10},
		{`"30m"`, 1800},
		{`"24h"`, 86400},
		{`"1d"`, 86400},
		{`"86400"`, 86400},
		{`86400`, 86400},
		{`0`, 0},
		{`"0"`, 0},
		{`"0s"`, 0},
		{` "7200" `, 7200},
		{`"\u0032\u0034h"`, 86400}, // JSON escapes are decoded first
		{`"2147483647"`, 2147483647},
		{`"24855d"`, 24855 * 86400},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			got, err := config.ParseMaxAge(json.RawMessage(tt.raw))
			if err != nil || got != tt.want {
				t.Errorf("ParseMaxAge(%s) = %d, %v; want %d, nil", tt.raw, got, err, tt.want)
			}
		})
	}
}

func TestParseMaxAgeRejects(t *testing.T) {
	for _, raw := range []string{
		`"24x"`, `"-1"`, `-1`, `"1.5h"`, `1.5`, `""`, `"1h30m"`, `"s"`, `"+5"`, `"5 s"`, `"24855d1"`,
		`"24856d"`, `"2147483648"`, `"99999999999999999999"`, `null`, `"unterminated`, ``, `1e2`,
	} {
		t.Run(raw, func(t *testing.T) {
			if got, err := config.ParseMaxAge(json.RawMessage(raw)); err == nil {
				t.Errorf("ParseMaxAge(%s) = %d, want an error", raw, got)
			}
		})
	}
}

func TestCompileOriginRegexMatchesWholeOrigin(t *testing.T) {
	tests := []struct {
		expr, origin string
		want         bool
	}{
		{`http.*://www.test.cn`, "http://www.test.cn", true},
		{`http.*://www.test.cn`, "https://www.test.cn", true},
		{`http.*://www.test.cn`, "http://www.test.cn.evil.com", false},
		{`http.*://www.test.cn`, "evil://http://www.test.cn", false},
		// The anchors wrap the whole expression, so an alternation cannot escape them.
		{`http://a\.com|http://b\.com`, "http://b.com.evil", false},
		{`http://a\.com|http://b\.com`, "xhttp://a.com", false},
		{`http://a\.com|http://b\.com`, "http://b.com", true},
		{`^https://a\.com$`, "https://a.com", true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s~%s", tt.expr, tt.origin), func(t *testing.T) {
			re, err := config.CompileOriginRegex(tt.expr)
			if err != nil {
				t.Fatal(err)
			}
			if got := re.MatchString(tt.origin); got != tt.want {
				t.Errorf("CompileOriginRegex(%q).MatchString(%q) = %v, want %v", tt.expr, tt.origin, got, tt.want)
			}
		})
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	in := `{"version":1,"ports":[{"port":8080,"cors":` + string(seedCORS(t)) + `,"hosts":[{"names":["a"],"cors":{"allowOrigins":[{"exact":"null"}],"maxAge":600}}]}]}`
	c, err := config.Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.MarshalString()
	if err != nil || s != string(b) {
		t.Fatalf("MarshalString() = %q, %v; want Marshal's %q", s, err, b)
	}
	again, err := config.Parse(b)
	if err != nil {
		t.Fatalf("Parse(Marshal()) = %v; marshalled: %s", err, b)
	}
	if !reflect.DeepEqual(c, again) {
		t.Errorf("Parse(Marshal(c)) = %+v, want %+v", again, c)
	}
}

// Unknown fields are found by walking JSON objects, and token lists are checked from a
// map, both of which Go visits in random order; the errors must still come out the same
// way every time.
func TestParseErrorOrderIsStable(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		wantErrors int
	}{
		{"unknown fields and wrong types", `{"a":1,"b":2,"version":1,"c":3,"ports":[{"port":"x","d":4,"e":5,"cors":{"f":6,"g":7,"allowOrigins":[{"h":8,"i":9}]}}]}`, 10},
		{"invalid tokens", doc(`{"allowOrigins":[{"exact":"http://a.com"}],"allowMethods":["a b","c d"],"allowHeaders":["e f","g h"],"exposeHeaders":["i j","k l"]}`), 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, first := config.Parse([]byte(tt.in))
			if n := len(errorFields(first)); n != tt.wantErrors {
				t.Fatalf("Parse error = %v, want %d field errors", first, tt.wantErrors)
			}
			for range 50 {
				if _, err := config.Parse([]byte(tt.in)); err.Error() != first.Error() {
					t.Fatalf("Parse errors changed order:\n%v\n%v", first, err)
				}
			}
		})
	}
}
