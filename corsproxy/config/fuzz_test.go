package config_test

import (
	"reflect"
	"testing"

	"github.com/corsmesh/corsmesh/corsproxy/config"
)

// FuzzParse feeds arbitrary bytes to Parse: it must never panic, and whatever it accepts
// must survive Marshal and a second Parse unchanged, since the webhook marshals the
// document the proxy parses.
func FuzzParse(f *testing.F) {
	f.Add([]byte(doc(seedJSON)))
	f.Add([]byte(`{"version":1,"ports":[]}`))
	f.Add([]byte(`{"version":1,"ports":[{"port":80,"hosts":[{"names":["a"],"cors":{"allowOrigins":[{"exact":"null"}],"maxAge":600}}]}]}`))
	f.Add([]byte(`{"version":1,"ports":[{"port":"80","cors":{"allowOrigins":[{},{"exactt":1}]}}]}`))
	f.Add([]byte(`{"version":1,"ports":[{"port":80,"cors":{"allowOrigins":[],"allowMethods":[],"maxAge":"0"}}]}`))
	f.Add([]byte(`{"version":1,"ports":[]}}`))
	f.Add([]byte(``))
	f.Add([]byte(`{"version":1,"ports":[{"port":80,"cors":{"allowOrigins":[{"wildcard":"https://*.example.com:*"},{"wildcard":"http://localhost:*"}],"preflight":"strict","refusedPreflight":"answer","reportOnly":true}}]}`))
	f.Add([]byte(`{"version":1,"ports":[{"port":80,"cors":{"allowOrigins":[{"wildcard":"https://*"}],"preflight":"x"}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := config.Parse(data)
		if err != nil {
			if c != nil {
				t.Fatalf("Parse returned a config along with the error %v", err)
			}
			return
		}
		b, err := c.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a parsed config: %v", err)
		}
		again, err := config.Parse(b)
		if err != nil {
			t.Fatalf("Parse(Marshal(Parse(%q))) = %v; marshalled %s", data, err, b)
		}
		if !reflect.DeepEqual(normalize(c), normalize(again)) {
			t.Fatalf("Parse(Marshal(c)) = %+v, want %+v; marshalled %s", again, c, b)
		}
	})
}

// normalize makes empty and nil slices equal: omitempty drops an empty list, which means
// the same as an absent one.
func normalize(c *config.Config) *config.Config {
	out := *c
	out.Ports = nilIfEmpty(out.Ports)
	for i := range out.Ports {
		p := &out.Ports[i]
		p.CORS = normalizeCORS(p.CORS)
		p.Hosts = nilIfEmpty(p.Hosts)
		for j := range p.Hosts {
			h := &p.Hosts[j]
			h.Names = nilIfEmpty(h.Names)
			h.CORS = normalizeCORS(h.CORS)
		}
	}
	return &out
}

func normalizeCORS(c *config.CORS) *config.CORS {
	if c == nil {
		return nil
	}
	out := *c
	out.AllowOrigins = nilIfEmpty(out.AllowOrigins)
	out.AllowMethods = nilIfEmpty(out.AllowMethods)
	out.AllowHeaders = nilIfEmpty(out.AllowHeaders)
	out.ExposeHeaders = nilIfEmpty(out.ExposeHeaders)
	if len(out.MaxAge) == 0 {
		out.MaxAge = nil
	}
	return &out
}

func nilIfEmpty[S ~[]E, E any](s S) S {
	if len(s) == 0 {
		return nil
	}
	return append(S(nil), s...)
}
