package main

import (
	"strings"
	"testing"
)

func TestParsePipyScript(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		want    pipyScript
		wantErr string
	}{
		{name: "the guide's v1 block", src: "pipy()\n.listen(8080)\n.serveHTTP(new Message('Hi, I am PIPY-OK v1!'))\n", want: pipyScript{8080, "Hi, I am PIPY-OK v1!"}},
		{name: "one line, double quotes", src: `pipy().listen(9000).serveHTTP(new Message("ok"));`, want: pipyScript{9000, "ok"}},
		{name: "empty message", src: "pipy().listen(1).serveHTTP(new Message(''))", want: pipyScript{1, ""}},
		{name: "port zero", src: "pipy().listen(0).serveHTTP(new Message('x'))", wantErr: "not in 1-65535"},
		{name: "port too large", src: "pipy().listen(65536).serveHTTP(new Message('x'))", wantErr: "not in 1-65535"},
		{name: "another pipeline", src: "pipy().listen(8080).connect('10.0.0.1:80')", wantErr: "unsupported script"},
		{name: "code after the pipeline", src: "pipy().listen(8080).serveHTTP(new Message('x')); os.exit()", wantErr: "unsupported script"},
		{name: "escaped quote", src: `pipy().listen(8080).serveHTTP(new Message('a\'b'))`, wantErr: "unsupported script"},
		{name: "function body", src: "pipy().listen(8080).serveHTTP(() => new Message('x'))", wantErr: "unsupported script"},
		{name: "empty", src: "", wantErr: "unsupported script"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parsePipyScript(tt.src)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parsePipyScript(%q) = %+v, %v; want error containing %q", tt.src, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parsePipyScript(%q) = %+v, %v; want %+v", tt.src, got, err, tt.want)
			}
		})
	}
}
