package debs

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadLock(t *testing.T) {
	sum := strings.Repeat("a", 64)
	tests := []struct {
		name, text, wantErr string
		want                int
	}{
		{name: "comments and blanks", text: "# header\n\niptables 1.8.9-2 " + sum + "\n", want: 1},
		{name: "epoch in version", text: "zlib1g 1:1.2.13.dfsg-1 " + sum + "\n", want: 1},
		{name: "missing hash", text: "iptables 1.8.9-2\n", wantErr: ":1: want"},
		{name: "short hash", text: "iptables 1.8.9-2 abc\n", wantErr: ":1: want"},
		{name: "pinned twice", text: "a 1 " + sum + "\na 2 " + sum + "\n", wantErr: ":2: package a pinned twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "debs.lock")
			if err := os.WriteFile(file, []byte(tt.text), 0o644); err != nil {
				t.Fatal(err)
			}
			pins, err := ReadLock(file)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ReadLock = %v, %v; want error containing %q", pins, err, tt.wantErr)
				}
				return
			}
			if err != nil || len(pins) != tt.want {
				t.Fatalf("ReadLock = %v, %v; want %d pins", pins, err, tt.want)
			}
		})
	}
}

func TestLockRoundTrip(t *testing.T) {
	file := filepath.Join(t.TempDir(), "debs.lock")
	pins := []Pin{{"curl", "7.88.1-10+deb12u15", strings.Repeat("b", 64)}, {"zlib1g", "1:1.2.13.dfsg-1", strings.Repeat("c", 64)}}
	if err := WriteLock(file, "# test\n", pins); err != nil {
		t.Fatal(err)
	}
	got, err := ReadLock(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != pins[0] || got[1] != pins[1] {
		t.Fatalf("round trip = %v, want %v", got, pins)
	}
}

// TestTreeRefusesDoubleOwner: two packages shipping one file is a lock
// mistake, not something to settle by order.
func TestTreeRefusesDoubleOwner(t *testing.T) {
	tree := NewTree()
	if err := tree.Add("a", map[string]File{"/usr": {Mode: fs.ModeDir | 0o755}, "/usr/bin/x": {Mode: 0o755, Data: []byte("a")}}); err != nil {
		t.Fatal(err)
	}
	if err := tree.Add("b", map[string]File{"/usr": {Mode: fs.ModeDir | 0o755}}); err != nil {
		t.Errorf("a shared directory: %v", err)
	}
	if err := tree.Add("b", map[string]File{"/usr/bin/x": {Mode: 0o755, Data: []byte("b")}}); err == nil {
		t.Error("a file in two packages was accepted")
	}
}
