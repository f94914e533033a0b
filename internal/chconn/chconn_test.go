package chconn

import (
	"context"
	"errors"
	"io"
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

// TestDeadlineSetWhileWriting: clickhouse-go sets a connection's deadline
// from another goroutine when it cancels a query while a write is under
// way; under -race this failed while the deadline was a plain field.
func TestDeadlineSetWhileWriting(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go func() { _, _ = io.Copy(io.Discard, b) }()
	c := &writeLimitConn{Conn: a}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 1000 {
			_ = c.SetDeadline(time.Now().Add(time.Minute))
			_ = c.SetWriteDeadline(time.Time{})
		}
	}()
	for range 1000 {
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	<-done
}
