package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// connectConfig is a small connect run with args.
func connectConfig(t *testing.T, args ...string) config {
	t.Helper()
	var errs bytes.Buffer
	cfg, err := parseConfig(append([]string{"-mode", "connect", "-timeout", "1m"}, args...), &errs)
	if err != nil {
		t.Fatalf("flags %q: %v\n%s", args, err, errs.String())
	}
	return cfg
}

var connectTimeLine = regexp.MustCompile(`connect time \(dial to "connected"\): mean (\S+)  p50 (\S+)  p99 (\S+)  max (\S+)\n`)

// TestConnectTimesEveryStream opens 40 streams against a real Keyflux, two
// at a time: every one must connect and the report must carry a mean, p50
// and p99 that are positive and ordered.
func TestConnectTimesEveryStream(t *testing.T) {
	k := startKeyflux(t, "--stream-rate-per-ip", "10000", "--stream-burst-per-ip", "10000")
	cfg := connectConfig(t, "-n", "40", "-concurrency", "2", "-url", k.base, "-path", "/streams/keyspace?pattern=conn:*")
	var out, log bytes.Buffer
	if err := runConnect(context.Background(), cfg, &out, &log); err != nil {
		t.Fatalf("runConnect: %v\n%s\n%s", err, out.String(), log.String())
	}
	got := out.String()
	if !strings.Contains(got, "connected 40, refused 0, failed 0\n") || !strings.Contains(got, "/streams/keyspace?pattern=conn:*, 2 at a time, no credentials") {
		t.Errorf("output lacks 40 connects of the -path:\n%s", got)
	}
	m := connectTimeLine.FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("output lacks the connect time line:\n%s", got)
	}
	var d [4]float64
	for i := range d {
		d[i] = seconds(t, m[i+1])
	}
	if !(d[0] > 0 && d[1] > 0 && d[1] <= d[2] && d[2] <= d[3]*1.04 && d[0] <= d[3]) {
		t.Errorf("connect times not positive and ordered (mean, p50, p99, max = %v):\n%s", d, got)
	}
}

// TestConnectWithJWT runs against a real Keyflux with --auth jwt: without
// a token every stream is refused with 401, with a valid HS256 token as
// -token (Authorization: Bearer) or -cookie (the keyflux_token cookie)
// every one connects.
func TestConnectWithJWT(t *testing.T) {
	const secret = "sseload-test-secret-0123456789abcdef"
	k := startKeyflux(t, "--auth", "jwt", "--jwt-key", secret,
		"--stream-rate-per-ip", "10000", "--stream-burst-per-ip", "10000")
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "load", "exp": time.Now().Add(time.Hour).Unix(),
		"keyflux": map[string]any{"keys": []string{"sensor:*"}},
	}).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	path := "/streams/keyspace?pattern=sensor:*"

	var out, log bytes.Buffer
	cfg := connectConfig(t, "-n", "10", "-url", k.base, "-path", path)
	if err := runConnect(context.Background(), cfg, &out, &log); err != errFailed {
		t.Errorf("without a token: err %v, want errFailed\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "connected 0, refused 10 (401: 10), failed 0\n") {
		t.Errorf("without a token:\n%s", out.String())
	}
	for _, creds := range [][]string{{"-token", token}, {"-cookie", "keyflux_token=" + token}} {
		out.Reset()
		cfg := connectConfig(t, append([]string{"-n", "20", "-concurrency", "2", "-url", k.base, "-path", path}, creds...)...)
		if err := runConnect(context.Background(), cfg, &out, &log); err != nil {
			t.Fatalf("%s: %v\n%s", creds[0], err, out.String())
		}
		if !strings.Contains(out.String(), "connected 20, refused 0, failed 0\n") || connectTimeLine.FindString(out.String()) == "" {
			t.Errorf("%s:\n%s", creds[0], out.String())
		}
		if strings.Contains(out.String()+log.String(), token) {
			t.Errorf("the report prints the token:\n%s\n%s", out.String(), log.String())
		}
	}
}

// TestConnectSendsCredentials runs against a server that answers a stream
// only to the token and cookie given (anything else gets the 401 Keyflux
// sends without an identity): with them every stream connects, without
// them every one is counted as refused with its status, and the run fails.
func TestConnectSendsCredentials(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie("keyflux_token")
		if r.Header.Get("Authorization") != "Bearer a.b-c_d" || err != nil || c.Value != "v1" {
			w.Header().Set("WWW-Authenticate", "Bearer")
			http.Error(w, `{"error":"no credentials"}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "event: connected\ndata: {}\n\n")
	}))
	defer srv.Close()

	cfg := connectConfig(t, "-n", "5", "-url", srv.URL+"/streams/x", "-token", "a.b-c_d", "-cookie", "keyflux_token=v1")
	var out, log bytes.Buffer
	if err := runConnect(context.Background(), cfg, &out, &log); err != nil {
		t.Fatalf("with credentials: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "connected 5, refused 0, failed 0\n") || !strings.Contains(out.String(), "bearer token and cookie") {
		t.Errorf("with credentials:\n%s", out.String())
	}

	out.Reset()
	cfg = connectConfig(t, "-n", "5", "-concurrency", "5", "-url", srv.URL+"/streams/x", "-token", "a.b-c_d")
	if err := runConnect(context.Background(), cfg, &out, &log); err != errFailed {
		t.Errorf("without the cookie: err %v, want errFailed\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "connected 0, refused 5 (401: 5), failed 0\n") || !strings.Contains(out.String(), "first refusal: want 200") {
		t.Errorf("without the cookie:\n%s", out.String())
	}
}

// TestConnectFlagsRefuseHeaderInjection: a token or cookie that could end
// its header line, and paths that are not a path, are flag errors.
func TestConnectFlagsRefuseHeaderInjection(t *testing.T) {
	for _, args := range [][]string{
		{"-token", "abc\r\nX-Admin: 1"},
		{"-token", "a b"},
		{"-cookie", "novalue"},
		{"-cookie", "=v"},
		{"-cookie", "a=b\nX: 1"},
		{"-cookie", "a=b; c=d"},
		{"-path", "http://example.com/streams"},
		{"-path", "streams/x"},
		{"-n", "0"},
		{"-concurrency", "0"},
	} {
		var errs bytes.Buffer
		if _, err := parseConfig(append([]string{"-mode", "connect", "-url", "http://127.0.0.1:1"}, args...), &errs); err == nil {
			t.Errorf("flags %q accepted", args)
		}
	}
}

// seconds parses a duration as printed, such as 1.234ms.
func seconds(t *testing.T, s string) float64 {
	t.Helper()
	var d float64
	for _, u := range []struct {
		suffix string
		scale  float64
	}{{"µs", 1e-6}, {"ms", 1e-3}, {"s", 1}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			if _, err := fmt.Sscan(v, &d); err != nil {
				t.Fatalf("duration %q: %v", s, err)
			}
			return d * u.scale
		}
	}
	t.Fatalf("duration %q has no unit", s)
	return 0
}
