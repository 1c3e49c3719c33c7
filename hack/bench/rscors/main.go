// Command rscors is the baseline for hack/bench/proxy.sh: the CORS proxy a Go developer
// would write without corsproxy, net/http's server and httputil.ReverseProxy wrapped in
// github.com/rs/cors, configured like the seed's PluginConfig.
//
// rs/cors answers differently from the seed in details it documents: a preflight's
// access-control-allow-methods echoes the requested method (not the whole list), it sends
// access-control-allow-headers only when headers were requested, no expose-headers on a
// preflight, and it joins expose-headers with ", ". Only an OPTIONS that carries
// Access-Control-Request-Method is a preflight to it. Browsers accept both answers.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/rs/cors"
)

// policy is the part of corsproxy's config document this baseline understands.
type policy struct {
	AllowCredentials bool                `json:"allowCredentials"`
	AllowHeaders     []string            `json:"allowHeaders"`
	AllowMethods     []string            `json:"allowMethods"`
	AllowOrigins     []map[string]string `json:"allowOrigins"`
	ExposeHeaders    []string            `json:"exposeHeaders"`
	MaxAge           string              `json:"maxAge"`
}

// seedPolicy is the seed guide's PluginConfig (corsproxy/proxy/testdata/seed-config.json).
var seedPolicy = policy{
	AllowCredentials: true,
	AllowHeaders:     []string{"X-Foo-Bar-1"},
	AllowMethods:     []string{"POST", "GET", "PATCH", "DELETE"},
	AllowOrigins: []map[string]string{
		{"regex": "http.*://www.test.cn"},
		{"exact": "http://www.aaa.com"},
		{"prefix": "http://www.bbb.com"},
	},
	ExposeHeaders: []string{"Content-Encoding", "Kuma-Revision"},
	MaxAge:        "24h",
}

func main() {
	listen := flag.String("listen", "127.0.0.1:15003", "address to serve on")
	upstream := flag.String("upstream", "", "the app, host:port")
	configPath := flag.String("config", "", "corsproxy config document to take the policy from (default: the seed's policy built in)")
	policyPort := flag.Int("policy-port", 8080, "with --config: the port whose policy applies")
	flag.Parse()
	if *upstream == "" {
		log.Fatal("rscors: --upstream is required")
	}
	pol := seedPolicy
	if *configPath != "" {
		var err error
		if pol, err = loadPolicy(*configPath, *policyPort); err != nil {
			log.Fatalf("rscors: %v", err)
		}
	}
	allow, err := originMatcher(pol.AllowOrigins)
	if err != nil {
		log.Fatalf("rscors: %v", err)
	}
	maxAge, err := parseMaxAge(pol.MaxAge)
	if err != nil {
		log.Fatalf("rscors: maxAge: %v", err)
	}

	target := &url.URL{Scheme: "http", Host: *upstream}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConns = 1024
	transport.MaxIdleConnsPerHost = 1024
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = r.In.Host // transparent, like a sidecar
		},
		Transport: transport,
	}
	c := cors.New(cors.Options{
		AllowOriginFunc:      allow,
		AllowCredentials:     pol.AllowCredentials,
		AllowedMethods:       pol.AllowMethods,
		AllowedHeaders:       pol.AllowHeaders,
		ExposedHeaders:       pol.ExposeHeaders,
		MaxAge:               maxAge,
		OptionsPassthrough:   false,
		OptionsSuccessStatus: http.StatusOK, // the seed answers 200, rs/cors defaults to 204
	})
	srv := &http.Server{
		Handler:           c.Handler(rp),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    32 << 10,
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("rscors: %v", err)
	}
	fmt.Fprintln(os.Stderr, "rscors listening on", ln.Addr(), "upstream", *upstream)
	log.Fatal(srv.Serve(ln))
}

// originMatcher implements the seed's allowOrigins with corsproxy's corrections: exact is
// equality, prefix is strings.HasPrefix, regex must match the whole origin (RE2, anchored).
func originMatcher(rules []map[string]string) (func(string) bool, error) {
	exact := map[string]bool{}
	var prefixes []string
	var regexes []*regexp.Regexp
	for i, r := range rules {
		switch {
		case r["exact"] != "":
			exact[r["exact"]] = true
		case r["prefix"] != "":
			prefixes = append(prefixes, r["prefix"])
		case r["regex"] != "":
			re, err := regexp.Compile(`^(?:` + r["regex"] + `)$`)
			if err != nil {
				return nil, fmt.Errorf("allowOrigins[%d]: %w", i, err)
			}
			regexes = append(regexes, re)
		default:
			return nil, fmt.Errorf("allowOrigins[%d]: no exact, prefix or regex", i)
		}
	}
	return func(origin string) bool {
		if exact[origin] {
			return true
		}
		for _, p := range prefixes {
			if strings.HasPrefix(origin, p) {
				return true
			}
		}
		for _, re := range regexes {
			if re.MatchString(origin) {
				return true
			}
		}
		return false
	}, nil
}

// parseMaxAge reads the seed's durations: a number with an s, m, h or d suffix, or seconds.
func parseMaxAge(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	unit := 1
	switch s[len(s)-1] {
	case 's':
		s = s[:len(s)-1]
	case 'm':
		unit, s = 60, s[:len(s)-1]
	case 'h':
		unit, s = 3600, s[:len(s)-1]
	case 'd':
		unit, s = 86400, s[:len(s)-1]
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, err
	}
	return n * unit, nil
}

func loadPolicy(path string, port int) (policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return policy{}, err
	}
	var doc struct {
		Ports []struct {
			Port int             `json:"port"`
			CORS json.RawMessage `json:"cors"`
		} `json:"ports"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return policy{}, fmt.Errorf("%s: %w", path, err)
	}
	for _, p := range doc.Ports {
		if p.Port != port || p.CORS == nil {
			continue
		}
		var raw struct {
			policy
			MaxAge json.RawMessage `json:"maxAge"`
		}
		if err := json.Unmarshal(p.CORS, &raw); err != nil {
			return policy{}, fmt.Errorf("%s: port %d: %w", path, port, err)
		}
		pol := raw.policy
		if len(raw.MaxAge) > 0 {
			var s string
			if json.Unmarshal(raw.MaxAge, &s) != nil {
				s = string(raw.MaxAge) // a JSON number of seconds
			}
			pol.MaxAge = s
		}
		return pol, nil
	}
	return policy{}, fmt.Errorf("%s: no CORS policy for port %d", path, port)
}
