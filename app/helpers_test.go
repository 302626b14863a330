package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"go.uber.org/goleak"

	"github.com/keyflux/keyflux/streams/redis/redisserver"
	"github.com/keyflux/keyflux/streams/testkit"
)

// Some fasthttp goroutines are not ours: request workers it keeps idle for
// reuse (reaped after MaxIdleWorkerDuration, 10 s), its idle-worker cleaner,
// which sleeps that long before it sees the server stopped, and the Date
// header updater, which runs once per process, forever.
var fasthttpOwn = []goleak.Option{
	goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).workerFunc"),
	goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
	goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
	// rueidis's cluster client closes replaced node connections 5 s late.
	goleak.IgnoreAnyFunction(testkit.RueidisLateCloser),
	goleak.IgnoreAnyFunction(testkit.RueidisLateRefresh),
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
	return startKeyfluxOn(t, testkit.StartRedis(t, redisArgs...), flags...)
}

// startKeyfluxOn starts a Keyflux process on an existing redis-server, as a
// second process or after a restart.
func startKeyfluxOn(t testing.TB, rs *redisserver.Server, flags ...string) *keyflux {
	t.Helper()
	k := launch(t, rs.URL(), testkit.NewClient(t, rs), flags...)
	k.redis = rs
	return k
}

// launch runs Keyflux on the Redis at url (rc: a client of that Redis, for
// the test) and stops it when the test ends.
func launch(t testing.TB, url string, rc rueidis.Client, flags ...string) *keyflux {
	t.Helper()
	k := &keyflux{t: t, rc: rc, logs: &syncBuffer{}, done: make(chan error, 1)}
	args := append([]string{"--listen", "127.0.0.1:0", "--redis-url", url, "--log-level", "debug"}, flags...)
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
	return testkit.Do(k.t, k.rc, args...)
}

func (k *keyflux) numpat() int64 {
	n, _ := k.do("PUBSUB", "NUMPAT").AsInt64()
	return n
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

// request makes one request (headers as name, value pairs; a pair with an
// empty value is left out) and decodes its JSON answer; a stream's body is
// left unread and closed.
func (k *keyflux) request(method, path, body string, headers ...string) (*http.Response, map[string]any) {
	k.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, k.base+path, r)
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] != "" {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	resp, err := plainClient.Do(req)
	if err != nil {
		k.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(b, &m); err != nil {
			k.t.Fatalf("%s %s: %d, body %q is not JSON", method, path, resp.StatusCode, b)
		}
	}
	return resp, m
}

// bearer is an Authorization value for token ("" for none).
func bearer(token string) string {
	if token == "" {
		return ""
	}
	return "Bearer " + token
}

// open starts a stream of path on this Keyflux.
func (k *keyflux) open(path string, headers ...string) *testkit.Stream {
	k.t.Helper()
	return testkit.Open(k.t, k.base+path, headers...)
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

// openRaw starts a stream of path without parsing it.
func (k *keyflux) openRaw(path string) *testkit.RawStream {
	k.t.Helper()
	return testkit.OpenRaw(k.t, k.base+path)
}
