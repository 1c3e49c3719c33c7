// Package seedcheck holds the seed guide's two curl checks and compares a response with
// what the guide prints: the status line, every header the guide shows (names compared
// case-insensitively, order free, exactly one line each) and the body.
package seedcheck

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Check is one of the guide's curl commands and the response it prints.
type Check struct {
	// Command is the guide's command line, CurlArgs its curl arguments after the URL.
	Command  string
	CurlArgs []string
	Expected string
}

// GuidePath is the copy of the guide kept in the repository, which the tests read.
const GuidePath = "manifests/testdata/cors-plugin.md"

var (
	curlLine   = regexp.MustCompile("(?m)^kubectl exec .* -- (curl .*)$")
	consoleOut = regexp.MustCompile("(?s)```console\n(.*?)```")
)

// Load reads the two checks from the guide under repoRoot.
func Load(repoRoot string) ([]Check, error) {
	guide, err := os.ReadFile(filepath.Join(repoRoot, GuidePath))
	if err != nil {
		return nil, fmt.Errorf("reading the guide: %w", err)
	}
	commands := curlLine.FindAllStringSubmatch(string(guide), -1)
	outputs := consoleOut.FindAllStringSubmatch(string(guide), -1)
	if len(commands) != 2 || len(outputs) != 2 {
		return nil, fmt.Errorf("the guide has %d curl commands and %d outputs, want 2 and 2", len(commands), len(outputs))
	}
	checks := make([]Check, 2)
	for i := range checks {
		fields := strings.Fields(commands[i][1]) // curl -ksi http://pipy-ok.pipy:8080 -H "Origin: ..." [-X OPTIONS]
		args, err := splitQuoted(strings.Join(fields[3:], " "))
		if err != nil {
			return nil, err
		}
		checks[i] = Check{Command: commands[i][1], CurlArgs: args, Expected: outputs[i][1]}
	}
	return checks, nil
}

// splitQuoted splits on spaces, keeping double-quoted strings whole.
func splitQuoted(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	quoted := false
	for _, r := range s {
		switch {
		case r == '"':
			quoted = !quoted
		case r == ' ' && !quoted:
			if cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteRune(r)
		}
	}
	if quoted {
		return nil, errors.New("unbalanced quotes")
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out, nil
}

// Response is a parsed HTTP/1.1 response as curl -si prints it.
type Response struct {
	StatusLine string
	Headers    map[string][]string // lower-case names
	Body       string
}

// Parse reads curl -si output (CRLF or LF line ends).
func Parse(text string) (*Response, error) {
	text = strings.ReplaceAll(text, "\r\n", "\n")
	head, body, ok := strings.Cut(text, "\n\n")
	if !ok {
		head = strings.TrimRight(text, "\n")
	}
	sc := bufio.NewScanner(strings.NewReader(head))
	r := &Response{Headers: map[string][]string{}, Body: body}
	for sc.Scan() {
		line := sc.Text()
		if r.StatusLine == "" {
			r.StatusLine = strings.TrimSpace(line)
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("not a header line: %q", line)
		}
		key := strings.ToLower(strings.TrimSpace(name))
		r.Headers[key] = append(r.Headers[key], strings.TrimSpace(value))
	}
	if !strings.HasPrefix(r.StatusLine, "HTTP/") {
		return nil, fmt.Errorf("no status line in %q", text)
	}
	return r, nil
}

// Compare returns what differs between the guide's response and the actual one; nil
// means the actual response prints what the guide shows. Headers the guide does not show
// (Date, Vary, ...) are allowed.
func Compare(expected, actual string) []string {
	want, err := Parse(expected)
	if err != nil {
		return []string{"guide: " + err.Error()}
	}
	got, err := Parse(actual)
	if err != nil {
		return []string{"response: " + err.Error()}
	}
	var diffs []string
	if got.StatusLine != want.StatusLine {
		diffs = append(diffs, fmt.Sprintf("status line %q, guide shows %q", got.StatusLine, want.StatusLine))
	}
	for name, values := range want.Headers {
		if g := got.Headers[name]; len(g) != 1 || g[0] != values[0] {
			diffs = append(diffs, fmt.Sprintf("%s: %q, guide shows %q", name, g, values[0]))
		}
	}
	if strings.TrimRight(got.Body, "\n") != strings.TrimRight(want.Body, "\n") {
		diffs = append(diffs, fmt.Sprintf("body %q, guide shows %q", got.Body, want.Body))
	}
	return diffs
}

// CompareGuideAnswer is Compare for the guide's checks: their Service, pipy-ok, selects
// both versions' pods and the guide shows v1's answer; v2's differs only in its body, so
// either passes.
func CompareGuideAnswer(expected, actual string) []string {
	diffs := Compare(expected, actual)
	if len(diffs) > 0 && strings.Contains(expected, "PIPY-OK v1!") {
		if v2 := Compare(strings.Replace(expected, "PIPY-OK v1!", "PIPY-OK v2!", 1), actual); len(v2) == 0 {
			return nil
		}
	}
	return diffs
}
