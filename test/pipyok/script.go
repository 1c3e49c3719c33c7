package main

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// pipyScript is the one PipyJS program the stand-in understands: the seed
// guide's `pipy -e` one-liner, which listens on a port and answers every
// HTTP request with a fixed message.
type pipyScript struct {
	Port    int
	Message string
}

// onlyScript matches the guide's program and nothing wider: whitespace
// between the calls, one quoted message without quotes or escapes in it.
var onlyScript = regexp.MustCompile(`^\s*pipy\(\)\s*\.listen\(\s*([0-9]{1,5})\s*\)\s*\.serveHTTP\(\s*new\s+Message\(\s*(?:'([^'\\\n]*)'|"([^"\\\n]*)")\s*\)\s*\)\s*;?\s*$`)

// parsePipyScript accepts exactly pipy().listen(PORT).serveHTTP(new
// Message('TEXT')) and refuses any other script, saying so: this is a
// stand-in for the guide, not a PipyJS interpreter.
func parsePipyScript(src string) (pipyScript, error) {
	m := onlyScript.FindStringSubmatch(src)
	if m == nil {
		return pipyScript{}, fmt.Errorf("pipy stand-in: unsupported script %q: only pipy().listen(PORT).serveHTTP(new Message('TEXT')) is implemented (this image is corsmesh's stand-in for flomesh/pipy, not Pipy)", shorten(src))
	}
	port, err := strconv.Atoi(m[1])
	if err != nil || port < 1 || port > 65535 {
		return pipyScript{}, fmt.Errorf("pipy stand-in: listen port %s is not in 1-65535", m[1])
	}
	return pipyScript{Port: port, Message: m[2] + m[3]}, nil
}

func shorten(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}
