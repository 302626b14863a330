package main

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tmaxmax/go-sse"

	"github.com/keyflux/keyflux/streams/testkit"
)

// The deployment of docs/deploy.md: two Keyflux processes on one Redis
// behind nginx with docs/deploy/nginx.conf, TLS and HTTP/2.
func TestBehindNginx(t *testing.T) {
	rs := testkit.StartRedis(t)
	a := startKeyfluxOn(t, rs, "--trusted-proxies", "127.0.0.1/32")
	b := startKeyfluxOn(t, rs, "--trusted-proxies", "127.0.0.1/32")
	ng := testkit.StartNginx(t, testkit.NginxOptions{Upstreams: []string{a.srv.addr(), b.srv.addr()}, TLS: true})
	clients := func() (int, int) { return a.srv.sink.Clients(), b.srv.sink.Clients() }

	// HTTP/2: one connection, counted where it is dialled.
	var dials atomic.Int32
	h2 := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: ng.Pool},
		ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}
	t.Cleanup(h2.CloseIdleConnections) // after the streams' bodies are closed
	if resp := nginxGet(t, h2, ng.URL+"/readyz"); resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Fatalf("/readyz through nginx: %d over %s, want 200 over HTTP/2", resp.StatusCode, resp.Proto)
	}

	// Ten streams at once over that one connection, spread over both
	// instances, each getting its event as soon as it happens: nothing
	// buffers it.
	const n = 10
	streams := make([]*proxied, n)
	var wg sync.WaitGroup
	for i := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			streams[i] = openProxied(t, h2, ng.URL+"/streams/keyspace?pattern=nginx:*", 2)
		}()
	}
	wg.Wait()
	for i, s := range streams {
		if s == nil {
			t.Fatalf("stream %d did not open", i)
		}
		s.expect(t, "connected")
	}
	if d := dials.Load(); d != 1 {
		t.Fatalf("the HTTP/2 client dialled %d connections, want 1 for all its streams", d)
	}
	testkit.Eventually(t, "10 streams on the two instances", func() bool { x, y := clients(); return x+y == n })
	if x, y := clients(); x == 0 || y == 0 {
		t.Fatalf("least_conn put %d streams on one instance and %d on the other", x, y)
	}
	sent := time.Now()
	a.do("SET", "nginx:h2", "1")
	for i, s := range streams {
		ev := s.expect(t, "set")
		if lag := time.Since(sent); lag > 3*time.Second {
			t.Fatalf("stream %d got its event %v after the SET", i, lag)
		}
		if !strings.Contains(ev.Data, `"key":"nginx:h2"`) {
			t.Fatalf("stream %d: %s", i, ev.Data)
		}
	}
	for _, s := range streams {
		s.close()
	}
	testkit.Eventually(t, "the HTTP/2 streams' ends to reach Keyflux", func() bool { x, y := clients(); return x+y == 0 })

	// HTTP/1.1 over TLS, one connection per stream. least_conn, not round
	// robin: once an instance has two streams fewer, the next two both go
	// there.
	h1 := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ng.Pool}}
	t.Cleanup(h1.CloseIdleConnections)
	var on [2][]*proxied // streams by instance, in the order they opened
	for range 4 {
		x0, y0 := clients()
		s := openProxied(t, h1, ng.URL+"/streams/keyspace?pattern=nginx:*", 1)
		s.expect(t, "connected")
		testkit.Eventually(t, "the stream on an instance", func() bool { x, y := clients(); return x+y == x0+y0+1 })
		if x, _ := clients(); x > x0 {
			on[0] = append(on[0], s)
		} else {
			on[1] = append(on[1], s)
		}
	}
	if len(on[0]) != 2 {
		t.Fatalf("4 HTTP/1.1 streams: %d on one instance, %d on the other", len(on[0]), len(on[1]))
	}
	for _, s := range on[0] {
		s.close()
	}
	testkit.Eventually(t, "the first instance's streams to end", func() bool { x, y := clients(); return x == 0 && y == 2 })
	more := []*proxied{
		openProxied(t, h1, ng.URL+"/streams/keyspace?pattern=nginx:*", 1),
		openProxied(t, h1, ng.URL+"/streams/keyspace?pattern=nginx:*", 1),
	}
	for _, s := range more {
		s.expect(t, "connected")
	}
	testkit.Eventually(t, "both new streams on the emptied instance", func() bool { x, y := clients(); return x == 2 && y == 2 })
	a.do("SET", "nginx:h1", "1")
	for _, s := range append(on[1], more...) {
		if ev := s.expect(t, "set"); !strings.Contains(ev.Data, `"key":"nginx:h1"`) {
			t.Fatalf("HTTP/1.1 stream: %s", ev.Data)
		}
	}
}

// proxied is one stream read through nginx with the test's own transport.
type proxied struct {
	resp   *http.Response
	events <-chan sse.Event
}

// openProxied opens url, checks it streams over HTTP/proto, and reads its
// events; it is closed when the test ends.
func openProxied(t *testing.T, tr *http.Transport, url string, proto int) *proxied {
	t.Helper()
	resp, err := (&http.Client{Transport: tr}).Get(url)
	if err != nil {
		t.Error(err) // also from the goroutines that open streams at once
		return nil
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 || resp.ProtoMajor != proto || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Errorf("GET %s: %d %s %s, want 200 HTTP/%d text/event-stream", url, resp.StatusCode, resp.Proto,
			resp.Header.Get("Content-Type"), proto)
		return nil
	}
	return &proxied{resp: resp, events: testkit.ReadEvents(resp.Body, 64)}
}

func (s *proxied) close() { s.resp.Body.Close() }

func (s *proxied) expect(t *testing.T, name string) sse.Event {
	t.Helper()
	select {
	case ev, ok := <-s.events:
		if !ok {
			t.Fatal("stream ended")
		}
		if ev.Type != name {
			t.Fatalf("got event %q (%s), want %q", ev.Type, ev.Data, name)
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s event within 10s", name)
	}
	return sse.Event{}
}

func nginxGet(t *testing.T, tr *http.Transport, url string) *http.Response {
	t.Helper()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}
