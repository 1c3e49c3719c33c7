package seedcheck

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadFindsTheGuidesChecks(t *testing.T) {
	checks, err := Load(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(checks[0].CurlArgs, "|"); got != "-H|Origin: http://www.bbb.com" {
		t.Errorf("first check args = %q", got)
	}
	if got := strings.Join(checks[1].CurlArgs, "|"); got != "-H|Origin: http://www.bbb.com|-X|OPTIONS" {
		t.Errorf("second check args = %q", got)
	}
	if !strings.Contains(checks[1].Expected, "access-control-max-age: 86400") {
		t.Errorf("second expected output = %q", checks[1].Expected)
	}
}

func TestCompare(t *testing.T) {
	guide := "HTTP/1.1 200 OK\naccess-control-allow-origin: http://www.bbb.com\ncontent-length: 20\n\nHi, I am PIPY-OK v1!\n"
	tests := []struct {
		name   string
		actual string
		diffs  int
	}{
		{"same, other case and order, extra headers, CRLF", "HTTP/1.1 200 OK\r\nContent-Length: 20\r\nDate: x\r\nAccess-Control-Allow-Origin: http://www.bbb.com\r\n\r\nHi, I am PIPY-OK v1!", 0},
		{"other status", "HTTP/1.1 502 Bad Gateway\ncontent-length: 20\naccess-control-allow-origin: http://www.bbb.com\n\nHi, I am PIPY-OK v1!", 1},
		{"header missing", "HTTP/1.1 200 OK\ncontent-length: 20\n\nHi, I am PIPY-OK v1!", 1},
		{"header twice", "HTTP/1.1 200 OK\ncontent-length: 20\naccess-control-allow-origin: http://www.bbb.com\naccess-control-allow-origin: *\n\nHi, I am PIPY-OK v1!", 1},
		{"other value", "HTTP/1.1 200 OK\ncontent-length: 20\naccess-control-allow-origin: *\n\nHi, I am PIPY-OK v1!", 1},
		{"other body", "HTTP/1.1 200 OK\ncontent-length: 20\naccess-control-allow-origin: http://www.bbb.com\n\nHi, I am PIPY-OK v2!", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if d := Compare(guide, tt.actual); len(d) != tt.diffs {
				t.Errorf("diffs = %q, want %d", d, tt.diffs)
			}
		})
	}
}

func TestCompareGuideAnswer(t *testing.T) {
	guide := "HTTP/1.1 200 OK\naccess-control-allow-origin: http://www.bbb.com\n\nHi, I am PIPY-OK v1!\n"
	tests := []struct {
		name   string
		actual string
		pass   bool
	}{
		{"v1's answer", "HTTP/1.1 200 OK\r\nAccess-Control-Allow-Origin: http://www.bbb.com\r\n\r\nHi, I am PIPY-OK v1!", true},
		{"v2's answer", "HTTP/1.1 200 OK\r\nAccess-Control-Allow-Origin: http://www.bbb.com\r\n\r\nHi, I am PIPY-OK v2!", true},
		{"another body", "HTTP/1.1 200 OK\r\nAccess-Control-Allow-Origin: http://www.bbb.com\r\n\r\nHi, I am PIPY-OK v3!", false},
		{"v2 without the CORS header", "HTTP/1.1 200 OK\r\n\r\nHi, I am PIPY-OK v2!", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diffs := CompareGuideAnswer(guide, tt.actual); (len(diffs) == 0) != tt.pass {
				t.Errorf("diffs %q, want pass %v", diffs, tt.pass)
			}
		})
	}
}
