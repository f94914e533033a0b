package chconn

import (
	"context"
	"errors"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// TestWritesToAStalledServerTimeOut: a peer that stops reading fills the
// socket buffers, and the next write must fail after WriteTimeout instead
// of blocking for good.
func TestWritesToAStalledServerTimeOut(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			time.Sleep(time.Minute) // accepts, never reads
		}
	}()
	defer func(old time.Duration) { WriteTimeout = old }(WriteTimeout)
	WriteTimeout = 200 * time.Millisecond
	c, err := dialer(time.Second, nil)(context.Background(), ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.(syscall.Conn); !ok {
		t.Fatal("the connection hides its socket: the driver could not check it for a hang-up")
	}
	buf := make([]byte, 1<<20)
	done := make(chan error, 1)
	go func() {
		for {
			if _, err := c.Write(buf); err != nil {
				done <- err
				return
			}
		}
	}()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("write failed with %v, want a deadline error", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("writes to a peer that reads nothing still block after 30 s")
	}
}
