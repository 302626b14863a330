package main

import (
	"context"
	"net"
	"testing"
)

// TestDrainFindsSplitComment feeds drain the server's last comment split
// across two reads (net.Pipe hands each Write to its own Read), as a TCP
// stream may split it anywhere, and then the end of the connection.
func TestDrainFindsSplitComment(t *testing.T) {
	for _, split := range []int{1, 5, len(slowConsumerComment) - 1} {
		client, server := net.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			msg := "id: 1-1\nevent: set\ndata: {}\n" + slowConsumerComment + ": more than 65536 bytes queued\n\n"
			at := len("id: 1-1\nevent: set\ndata: {}\n") + split
			_, _ = server.Write([]byte(msg[:at]))
			_, _ = server.Write([]byte(msg[at:]))
			server.Close()
		}()
		c := (&stalled{conn: client}).drain(context.Background())
		<-done
		client.Close()
		if !c.comment || c.end != endEOF || !c.byServer() {
			t.Errorf("split at %d: %+v, want the comment found and EOF", split, c)
		}
	}
}
