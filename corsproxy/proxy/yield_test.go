package proxy

import (
	"net"
	"testing"
	"time"
)

func TestYielderPolledWithin(t *testing.T) {
	cases := []struct {
		name     string
		lastWake time.Duration // 0: no read has waited yet
		now      time.Duration
		want     bool
	}{
		{"no read has waited yet", 0, time.Second, false},
		{"a read came back from a wait just now", time.Second, time.Second, true},
		{"inside the window", time.Second, time.Second + pollWindow - time.Microsecond, true},
		{"the window has passed: stop yielding so the queue drains", time.Second, time.Second + pollWindow, false},
		{"long ago", time.Second, time.Minute, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			y := newYielder()
			y.lastWake.Store(int64(tc.lastWake))
			if got := y.polledWithin(tc.now); got != tc.want {
				t.Errorf("polledWithin(%v) with lastWake %v = %v, want %v", tc.now, tc.lastWake, got, tc.want)
			}
		})
	}
}

// TestYielderReadNotesAWait: a read that had to wait for its data marks the network as
// just polled, so the writes after it yield again.
func TestYielderReadNotesAWait(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	go func() {
		time.Sleep(10 * parkedRead)
		_, _ = server.Write([]byte("answer"))
	}()
	y := newYielder()
	buf := make([]byte, 16)
	n, err := y.read(client, buf)
	if err != nil || string(buf[:n]) != "answer" {
		t.Fatalf("read = %q, %v; want \"answer\"", buf[:n], err)
	}
	if !y.polledWithin(time.Duration(y.lastWake.Load())) {
		t.Fatalf("a read that waited %v did not mark the network as polled (lastWake %d)", 10*parkedRead, y.lastWake.Load())
	}
	// A write right after it yields and still writes everything.
	go func() { _, _ = server.Read(make([]byte, 16)) }()
	if n, err := y.write(client, []byte("next")); n != 4 || err != nil {
		t.Fatalf("write = %d, %v; want 4, nil", n, err)
	}
}
