package main

import (
	"encoding/base64"
	"net/url"
	"strings"
	"testing"

	"github.com/keyflux/keyflux/streams/testkit"
	"github.com/tmaxmax/go-sse"
	"go.uber.org/goleak"
)

// payload decodes the data of a channel event as a client would: as text,
// or from base64 when the event name says so (or the stream asked for it).
func payload(t *testing.T, ev sse.Event, b64 bool) (name, data string) {
	t.Helper()
	name, suffixed := strings.CutSuffix(ev.Type, ";base64")
	if !suffixed && !b64 {
		return name, ev.Data
	}
	raw, err := base64.StdEncoding.DecodeString(ev.Data)
	if err != nil {
		t.Fatalf("event %s: data %q is not base64: %v", ev.Type, ev.Data, err)
	}
	return name, string(raw)
}

func TestChannelPayloadsByteExact(t *testing.T) {
	k := startKeyflux(t, nil)
	text := k.open("/streams/channels/" + url.PathEscape("news/eu ü"))
	b64 := k.open("/streams/channels/" + url.PathEscape("news/eu ü") + "?encoding=base64")
	c := testkit.Data(t, text.Expect("connected"))
	if c["stream"] != "channel" || c["channel"] != "news/eu ü" || c["encoding"] != "text" {
		t.Fatalf("connected %v", c)
	}
	b64.Expect("connected")

	cases := []struct{ payload, name, wire string }{
		{"hello", "message", ""},
		{"", "message", ""},
		{"two\nlines", "message", ""},
		{"trailing newline\n", "message", ""},
		{"\nleading newline", "message", ""},
		{"\n\n", "message", ""},
		{"data: fake\n\nevent: injected\nid: 99\nretry: 1\n\n: comment\n", "message", ""},
		{": comment-lookalike", "message", ""},
		{" leading space, trailing space ", "message", ""},
		{"tab\tand nul\x00byte", "message", ""},
		{"UTF-8: héllo wörld, 日本語, 🎉", "message", ""},
		{`{"event":"order-paid","order":42}`, "order-paid", ""},
		{"{\"event\": \"multi\",\n  \"x\": \"a\"\n}\n", "multi", ""},
		{`{"event":"reset"}`, "message", ""}, // Keyflux's own names cannot be spoofed
		{`{"event":42}`, "message", ""},
		{`["event","x"]`, "message", ""},
		// SSE text cannot carry these: they come base64-encoded, named so.
		{"crlf\r\nline", "message", ";base64"},
		{"lone\rcr", "message", ";base64"},
		{"\r", "message", ";base64"},
		{"{\"event\":\"win\",\r\n\"x\":1}", "win", ";base64"},
		{"\xff\xfe not UTF-8", "message", ";base64"},
	}
	for _, c := range cases {
		k.do("PUBLISH", "news/eu ü", c.payload)
	}
	for _, c := range cases {
		ev := text.Next()
		if ev.Type != c.name+c.wire {
			t.Errorf("payload %q: event %q, want %q", c.payload, ev.Type, c.name+c.wire)
		}
		if _, got := payload(t, ev, false); got != c.payload {
			t.Errorf("payload %q arrived as %q", c.payload, got)
		}
		ev = b64.Next()
		if name, got := payload(t, ev, true); got != c.payload || name != c.name || ev.Type != c.name {
			t.Errorf("base64 stream: payload %q arrived as %q named %q, want %q", c.payload, got, ev.Type, c.name)
		}
	}
}

func TestChannelSharedPatternAndReleased(t *testing.T) {
	k := startKeyflux(t, nil, "--linger", "100ms")
	w := k.open("/streams/channels/warm")
	w.Expect("connected")
	w.Close()
	testkit.Eventually(t, "warm-up released", func() bool { return k.numsub("warm") == 0 && k.srv.hub.Topics() == 0 })
	baseline := append([]goleak.Option{goleak.IgnoreCurrent()}, fasthttpOwn...)

	a := k.open("/streams/channels/news.eu")
	b := k.open("/streams/channels/news.eu")
	p := k.open("/streams/channels?pattern=" + url.QueryEscape("news.*"))
	a.Expect("connected")
	b.Expect("connected")
	if d := testkit.Data(t, p.Expect("connected")); d["pattern"] != "news.*" {
		t.Fatalf("pattern connected %v", d)
	}
	if n := k.numsub("news.eu"); n != 1 || k.numpat() != 1 {
		t.Fatalf("NUMSUB %d, NUMPAT %d: want one SUBSCRIBE and one PSUBSCRIBE for three clients", n, k.numpat())
	}
	k.do("PUBLISH", "news.eu", "one")
	k.do("PUBLISH", "news.us", "two")
	k.do("PUBLISH", "sport", "three")
	for _, s := range []*testkit.Stream{a, b} {
		if got := s.Expect("message").Data; got != "one" {
			t.Fatalf("got %q", got)
		}
	}
	if got := p.Expect("message").Data + "," + p.Expect("message").Data; got != "one,two" {
		t.Fatalf("pattern stream got %q", got)
	}
	a.Close()
	b.Close()
	p.Close()
	testkit.Eventually(t, "subscriptions released", func() bool {
		return k.numsub("news.eu") == 0 && k.numpat() == 0 && k.srv.hub.Topics() == 0 && k.srv.sink.Clients() == 0
	})
	goleak.VerifyNone(t, baseline...)
}

func TestChannelResumeFromRing(t *testing.T) {
	k := startKeyflux(t, nil, "--linger", "1m")
	const path = "/streams/channels/jobs"
	s := k.open(path)
	s.Expect("connected")
	k.do("PUBLISH", "jobs", "1")
	s.Expect("message")
	from := s.LastID
	s.Close()
	w := k.open(path)
	w.Expect("connected")
	for _, m := range []string{"2", "3"} {
		k.do("PUBLISH", "jobs", m)
		w.Expect("message")
	}
	r := k.open(path, "Last-Event-ID", from)
	r.Expect("connected")
	if got := r.Expect("message").Data + r.Expect("message").Data; got != "23" {
		t.Fatalf("resumed with %q", got)
	}
	x := k.open(path, "Last-Event-ID", "1-1")
	x.Expect("connected")
	if reason := testkit.Data(t, x.Expect("reset"))["reason"]; reason != "unknown-id" {
		t.Fatalf("reset %v", reason)
	}
}

func TestChannelBadInput(t *testing.T) {
	k := startKeyflux(t, nil, "--expose-channels", "news.,chat.")
	cases := []struct {
		path   string
		status int
		error  string
	}{
		{"/streams/channels", 400, "give a channel"},
		{"/streams/channels/news.a?pattern=news.*", 400, "not both"},
		{"/streams/channels?pattern=", 400, "empty"},
		{"/streams/channels/news.%0A", 400, "control"},
		{"/streams/channels/news.%FF", 400, "UTF-8"},
		{"/streams/channels/news." + strings.Repeat("a", 2000), 400, "longer"},
		{"/streams/channels/news.a?encoding=hex", 400, "encoding"},
		{"/streams/channels/news.a?lastEventId=%0A", 400, "control"},
		{"/streams/channels/other", 403, "exposed"},
		{"/streams/channels?pattern=*", 403, "exposed"},
		{"/streams/channels?pattern=news*", 403, "exposed"},
	}
	for _, c := range cases {
		status, body := k.get(c.path)
		msg, _ := body["error"].(string)
		if status != c.status || !strings.Contains(msg, c.error) {
			t.Errorf("%s: %d %v, want %d with %q", c.path, status, body, c.status, c.error)
		}
	}
	if k.numpat() != 0 || k.numsub("other") != 0 || k.srv.hub.Topics() != 0 || k.srv.sink.Clients() != 0 {
		t.Fatal("a rejected request left a subscription behind")
	}
	// A glob whose literal start is an exposed prefix is allowed.
	ok := k.open("/streams/channels?pattern=" + url.QueryEscape("chat.[ab]"))
	ok.Expect("connected")
}

// Redis's own keyspace channels name keys that --expose guards, and
// keyspace streams trust them: they are neither relayed nor published to.
func TestChannelInternalChannelsRefused(t *testing.T) {
	k := startKeyflux(t, nil, "--expose", "public:", "--publish-token", "t")
	all := k.open("/streams/channels?pattern=*")
	all.Expect("connected")
	for _, path := range []string{"__keyspace@0__:secret", "__keyevent@0__:set", "__redis__:invalidate"} {
		if status, body := k.get("/streams/channels/" + path); status != 403 {
			t.Errorf("GET %s: %d %v", path, status, body)
		}
		if status, _, body := k.post("/api/channels/"+path, "t", `"del"`); status != 403 {
			t.Errorf("POST %s: %d %v", path, status, body)
		}
	}
	k.do("SET", "secret", "x") // Keyflux turned keyspace notifications on
	k.do("PUBLISH", "news", "after")
	if ev := all.Expect("message"); ev.Data != "after" {
		t.Fatalf("pattern * relayed %q before the ordinary message", ev.Data)
	}
}

func (k *keyflux) numsub(channel string) int64 {
	arr, err := k.do("PUBSUB", "NUMSUB", channel).ToArray()
	if err != nil || len(arr) != 2 {
		k.t.Fatalf("PUBSUB NUMSUB: %v", err)
	}
	n, _ := arr[1].AsInt64()
	return n
}
