package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/tmaxmax/go-sse"
	"go.uber.org/goleak"

	"github.com/keyflux/keyflux/app/redisserver"
)

// Some fasthttp goroutines are not ours: request workers it keeps idle for
// reuse (reaped after MaxIdleWorkerDuration, 10 s), its idle-worker cleaner,
// which sleeps that long before it sees the server stopped, and the Date
// header updater, which runs once per process, forever.
var fasthttpOwn = []goleak.Option{
	goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).workerFunc"),
	goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
	goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, fasthttpOwn...) }

// keyflux is a real Keyflux process-in-a-test against a real redis-server.
type keyflux struct {
	t     testing.TB
	srv   *server
	redis *redisserver.Server
	rc    rueidis.Client // the test's own Redis client
	base  string
	logs  *syncBuffer
	stop  context.CancelFunc
	done  chan error
	once  sync.Once
}

// startKeyflux launches redis-server (with redisArgs) and Keyflux (with
// flags) and stops both when the test ends.
func startKeyflux(t testing.TB, redisArgs []string, flags ...string) *keyflux {
	t.Helper()
	rs, err := redisserver.Start(context.Background(), redisArgs...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rs.Stop)
	return startKeyfluxOn(t, rs, flags...)
}

// startKeyfluxOn starts a Keyflux process on an existing redis-server, as a
// second process or after a restart.
func startKeyfluxOn(t testing.TB, rs *redisserver.Server, flags ...string) *keyflux {
	t.Helper()
	k := &keyflux{t: t, redis: rs, logs: &syncBuffer{}, done: make(chan error, 1)}
	var err error
	k.rc, err = rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{rs.Addr()}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.rc.Close)
	args := append([]string{"--listen", "127.0.0.1:0", "--redis-url", rs.URL(), "--log-level", "debug"}, flags...)
	ctx, cancel := context.WithCancel(context.Background())
	k.stop = cancel
	started := make(chan *server, 1)
	go func() { k.done <- run(ctx, args, k.logs, func(s *server) { started <- s }) }()
	select {
	case k.srv = <-started:
	case err := <-k.done:
		t.Fatalf("keyflux did not start: %v\n%s", err, k.logs)
	}
	k.base = "http://" + k.srv.addr()
	t.Cleanup(k.shutdown)
	return k
}

// shutdown stops Keyflux and waits until it has; it is safe to call again.
func (k *keyflux) shutdown() { k.once.Do(k.stopAndWait) }

func (k *keyflux) stopAndWait() {
	k.stop()
	select {
	case err := <-k.done:
		if err != nil {
			k.t.Errorf("keyflux exited with %v", err)
		}
	case <-time.After(10 * time.Second):
		k.t.Error("keyflux did not shut down")
	}
}

func (k *keyflux) do(args ...string) rueidis.RedisResult {
	k.t.Helper()
	r := k.rc.Do(context.Background(), k.rc.B().Arbitrary(args[0]).Args(args[1:]...).Build())
	for try := 0; try < 3 && isConnError(r.Error()); try++ { // the test's own connection broke (restart)
		r = k.rc.Do(context.Background(), k.rc.B().Arbitrary(args[0]).Args(args[1:]...).Build())
	}
	if err := r.Error(); err != nil && !rueidis.IsRedisNil(err) {
		k.t.Fatalf("redis %v: %v", args, err)
	}
	return r
}

func isConnError(err error) bool {
	_, redisErr := rueidis.IsRedisErr(err)
	return err != nil && !redisErr
}

func (k *keyflux) numpat() int64 {
	n, _ := k.do("PUBSUB", "NUMPAT").AsInt64()
	return n
}

// eventually polls cond, for states that have no event to await (Redis's
// own counters, the server's client count).
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var plainClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}

// get fetches path and decodes a JSON body.
func (k *keyflux) get(path string) (int, map[string]any) {
	k.t.Helper()
	resp, err := plainClient.Get(k.base + path)
	if err != nil {
		k.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &body); err != nil {
		k.t.Fatalf("GET %s: %d, body %q is not JSON", path, resp.StatusCode, b)
	}
	return resp.StatusCode, body
}

// stream is one EventSource-like client, reading with go-sse's parser.
type stream struct {
	t      testing.TB
	resp   *http.Response
	events chan sse.Event
	lastID string
}

func (k *keyflux) open(path string, headers ...string) *stream {
	k.t.Helper()
	req, _ := http.NewRequest("GET", k.base+path, nil)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		k.t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		k.t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	s := &stream{t: k.t, resp: resp, events: make(chan sse.Event, 4096)}
	go func() {
		defer close(s.events)
		for ev, err := range sse.Read(resp.Body, nil) {
			if err != nil {
				return
			}
			s.events <- ev
		}
	}()
	k.t.Cleanup(s.close)
	return s
}

func (s *stream) close() { s.resp.Body.Close() }

// next returns the next event, failing the test if none comes.
func (s *stream) next() sse.Event {
	s.t.Helper()
	select {
	case ev, ok := <-s.events:
		if !ok {
			s.t.Fatal("stream ended")
		}
		s.lastID = ev.LastEventID
		return ev
	case <-time.After(10 * time.Second):
		s.t.Fatal("no event within 10s")
	}
	return sse.Event{}
}

// expect returns the next event and checks its name.
func (s *stream) expect(name string) sse.Event {
	s.t.Helper()
	ev := s.next()
	if ev.Type != name {
		s.t.Fatalf("got event %q (%s), want %q", ev.Type, ev.Data, name)
	}
	return ev
}

// ended waits for the server to end the stream.
func (s *stream) ended() {
	s.t.Helper()
	for {
		select {
		case _, ok := <-s.events:
			if !ok {
				return
			}
		case <-time.After(10 * time.Second):
			s.t.Fatal("stream still open")
		}
	}
}

func data(t testing.TB, ev sse.Event) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(ev.Data), &m); err != nil {
		t.Fatalf("event %s data %q: %v", ev.Type, ev.Data, err)
	}
	return m
}

// syncBuffer collects logs written from many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// rawStream reads a stream's bytes as they are on the wire.
type rawStream struct {
	resp *http.Response
	r    *bufio.Reader
}

func (k *keyflux) openRaw(path string) *rawStream {
	k.t.Helper()
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Get(k.base + path)
	if err != nil {
		k.t.Fatal(err)
	}
	k.t.Cleanup(func() { resp.Body.Close() })
	return &rawStream{resp: resp, r: bufio.NewReader(resp.Body)}
}

// block reads up to and including the next blank line.
func (r *rawStream) block(t testing.TB) string {
	t.Helper()
	var b strings.Builder
	for {
		line, err := r.r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading stream: %v (have %q)", err, b.String())
		}
		b.WriteString(line)
		if line == "\n" {
			return b.String()
		}
	}
}

var _ = fmt.Sprint
