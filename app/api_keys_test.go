package main

import (
	"net/url"
	"strconv"
	"strings"
	"testing"
)

func TestKeyAPI(t *testing.T) {
	k := startKeyflux(t, nil, "--expose", "k:")
	k.do("SET", "k:str", "hello")
	k.do("PEXPIRE", "k:str", "60000")
	k.do("HSET", "k:hash", "a", "1", "b", "2")
	k.do("RPUSH", "k:list", "x", "y")
	k.do("SADD", "k:set", "m")
	k.do("ZADD", "k:zset", "1.5", "z")
	k.do("XADD", "k:stream", "1-1", "f", "v")
	k.do("SET", "k:a/b c?d%", "odd name")
	long := make([]string, 0, 302)
	long = append(long, "RPUSH", "k:long")
	for i := range 300 {
		long = append(long, strconv.Itoa(i))
	}
	k.do(long...)

	get := func(key string) map[string]any {
		t.Helper()
		status, body := k.get("/api/keys/" + url.PathEscape(key))
		if status != 200 {
			t.Fatalf("%s: %d %v", key, status, body)
		}
		if body["key"] != key {
			t.Fatalf("%s: key %v", key, body["key"])
		}
		return body
	}
	if b := get("k:str"); b["exists"] != true || b["type"] != "string" || b["value"] != "hello" ||
		b["ttl_ms"].(float64) <= 0 || b["ttl_ms"].(float64) > 60000 {
		t.Fatalf("string: %v", b)
	}
	if b := get("k:hash"); b["type"] != "hash" || b["value"].(map[string]any)["b"] != "2" || b["ttl_ms"] != -1.0 {
		t.Fatalf("hash: %v", b)
	}
	if b := get("k:list"); b["type"] != "list" || len(b["value"].([]any)) != 2 {
		t.Fatalf("list: %v", b)
	}
	if b := get("k:set"); b["type"] != "set" || b["value"].([]any)[0] != "m" {
		t.Fatalf("set: %v", b)
	}
	if b := get("k:zset"); b["type"] != "zset" || b["value"].([]any)[0].(map[string]any)["score"] != 1.5 {
		t.Fatalf("zset: %v", b)
	}
	if b := get("k:stream"); b["type"] != "stream" || b["value"].([]any)[0].(map[string]any)["id"] != "1-1" {
		t.Fatalf("stream: %v", b)
	}
	if b := get("k:a/b c?d%"); b["value"] != "odd name" {
		t.Fatalf("escaped key: %v", b)
	}
	if b := get("k:long"); len(b["value"].([]any)) != 100 || b["truncated"] != true {
		t.Fatalf("long list: %d items, truncated %v", len(b["value"].([]any)), b["truncated"])
	}
	if b := get("k:missing"); b["exists"] != false || b["value"] != nil {
		t.Fatalf("missing: %v", b)
	}

	for _, c := range []struct {
		path   string
		status int
		error  string
	}{
		{"/api/keys/secret", 403, "exposed"},
		{"/api/keys/k:%0A", 400, "control"},
		{"/api/keys/k:x?db=3", 400, "db"},
		{"/api/keys/k:" + strings.Repeat("a", 2000), 400, "longer"},
	} {
		status, body := k.get(c.path)
		if msg, _ := body["error"].(string); status != c.status || !strings.Contains(msg, c.error) {
			t.Errorf("%s: %d %v, want %d with %q", c.path, status, body, c.status, c.error)
		}
	}
}

func TestDashboardFilesAndHeaders(t *testing.T) {
	k := startKeyflux(t, keyspaceFlags)
	for path, typ := range map[string]string{"/": "text/html", "/app.js": "javascript", "/style.css": "text/css"} {
		resp, err := plainClient.Get(k.base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), typ) {
			t.Errorf("%s: %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("%s: CSP %q", path, csp)
		}
	}
}
