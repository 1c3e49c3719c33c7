package cors_test

import (
	"testing"

	"github.com/corsmesh/corsmesh/corsproxy/config"
	"github.com/corsmesh/corsmesh/corsproxy/cors"
)

// FuzzDecide runs arbitrary origins and methods against the seed's policy. Decide must not
// panic, must agree with AllowsOrigin, and must only ever allow a serialized origin (or
// "null", which this policy does not allow) no longer than MaxOriginLength: whatever it
// allows, the proxy echoes in access-control-allow-origin.
func FuzzDecide(f *testing.F) {
	p := compile(f, seedJSON)
	for _, seed := range []struct {
		method, origin string
		count          uint8
	}{
		{"GET", "http://www.aaa.com", 1},
		{"OPTIONS", "http://www.bbb.com.evil.net", 1},
		{"GET", "https://www.test.cn", 1},
		{"GET", "http://www.test.cn.evil.com", 1},
		{"options", "null", 1},
		{"GET", "HTTP://WWW.AAA.COM", 1},
		{"POST", "http://www.aaa.com", 2},
		{"GET", "", 0},
		{"GET", "http://[::1]:8080", 1},
	} {
		f.Add(seed.method, seed.origin, seed.count)
	}
	f.Fuzz(func(t *testing.T, method, origin string, count uint8) {
		originCount := int(count % 4)
		d := p.Decide(method, origin, originCount)
		if d > cors.Preflight {
			t.Fatalf("Decide(%q, %q, %d) = %v, not a Decision", method, origin, originCount, d)
		}
		switch {
		case originCount == 0:
			if d != cors.NotCORS {
				t.Fatalf("Decide(%q, %q, 0) = %v, want %v", method, origin, d, cors.NotCORS)
			}
			return
		case originCount > 1:
			if d != cors.InvalidOrigin {
				t.Fatalf("Decide(%q, %q, %d) = %v, want %v", method, origin, originCount, d, cors.InvalidOrigin)
			}
			return
		}
		allowed := d == cors.Allowed || d == cors.Preflight
		if allowed {
			if origin != "null" && !config.IsSerializedOrigin(origin) {
				t.Fatalf("Decide allowed %q, which is not a serialized origin", origin)
			}
			if len(origin) > cors.MaxOriginLength {
				t.Fatalf("Decide allowed an origin of %d bytes, more than %d", len(origin), cors.MaxOriginLength)
			}
			if (d == cors.Preflight) != (method == "OPTIONS") {
				t.Fatalf("Decide(%q, %q) = %v: a preflight is exactly an OPTIONS from an allowed origin", method, origin, d)
			}
		}
		if origin == "null" {
			if allowed {
				t.Fatalf("Decide allowed null, which the seed's policy does not list")
			}
			return
		}
		if config.IsSerializedOrigin(origin) && len(origin) <= cors.MaxOriginLength {
			if want := p.AllowsOrigin(origin); allowed != want {
				t.Fatalf("Decide(%q, %q) = %v but AllowsOrigin = %v", method, origin, d, want)
			}
			if d == cors.InvalidOrigin || d == cors.NotCORS {
				t.Fatalf("Decide(%q, %q) = %v for a well-formed origin", method, origin, d)
			}
		} else if d != cors.InvalidOrigin {
			t.Fatalf("Decide(%q, %q) = %v for a malformed or oversized origin, want %v", method, origin, d, cors.InvalidOrigin)
		}
	})
}
