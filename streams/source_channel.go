package streams

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"unicode/utf8"

	"github.com/reactivex/rxgo/v2"
	"github.com/redis/rueidis"
)

// ChannelQuery selects Redis pub/sub messages: those PUBLISHed to one
// channel, or to any channel a glob Pattern matches (PSUBSCRIBE).
type ChannelQuery struct {
	Name    string
	Pattern bool
	// Base64 sends every payload base64-encoded, for binary channels.
	Base64 bool
}

// Base64Suffix ends the event name of a payload that SSE text cannot carry
// byte for byte (one holding a carriage return, or bytes that are not
// UTF-8): such a payload is sent base64-encoded, as "message;base64" (or
// "<event>;base64"), instead of being silently altered.
const Base64Suffix = ";base64"

// Channels relays Redis pub/sub. Delivery is at most once: a message
// published while no Keyflux process is subscribed is gone, and a
// reconnecting client resumes only from the hub's bounded replay ring.
type Channels struct {
	Upstreams *Upstreams
	Metrics   *Metrics
	// Buffer is how many messages may wait for the pipeline before the
	// stream drops them and resets its subscribers.
	Buffer int
}

// Stream returns the spec of the stream q selects.
func (c *Channels) Stream(q ChannelQuery) Spec { return &channelSpec{c: c, q: q} }

type channelSpec struct {
	c *Channels
	q ChannelQuery
}

func (s *channelSpec) Source() string { return "channel" }

func (s *channelSpec) encoding() string {
	if s.q.Base64 {
		return "base64"
	}
	return "text"
}

func (s *channelSpec) Key() string {
	kind := "channel="
	if s.q.Pattern {
		kind = "pattern="
	}
	return "channel encoding=" + s.encoding() + " " + kind + s.q.Name
}

func (s *channelSpec) Describe() map[string]any {
	d := map[string]any{"stream": "channel", "encoding": s.encoding()}
	if s.q.Pattern {
		d["pattern"] = s.q.Name
	} else {
		d["channel"] = s.q.Name
	}
	return d
}

// Open joins the shared SUBSCRIBE (or PSUBSCRIBE) of the channel. Payloads
// are handed over untouched; naming and encoding happen in the pipeline,
// off the Redis connection's reader.
func (s *channelSpec) Open(ctx context.Context) rxgo.Observable {
	p := newPump(s.c.Buffer, orUnregistered(s.c.Metrics).Dropped)
	leave := s.c.Upstreams.Join(Channel{Name: s.q.Name, Pattern: s.q.Pattern}, &Listener{
		OnMessage: func(m rueidis.PubSubMessage) {
			if !InternalChannel(m.Channel) { // a pattern such as "*" matches them too
				p.offer(Event{Raw: []byte(m.Message)})
			}
		},
		OnState: func(k Kind, reason string) { p.offer(Event{Kind: k, Reason: reason}) },
	})
	go func() {
		<-ctx.Done()
		leave()
		p.close()
	}()
	b64 := s.q.Base64
	return p.observable().Map(func(_ context.Context, i any) (any, error) {
		ev := i.(Event)
		if ev.Kind != Data {
			return ev, nil
		}
		return messageEvent(ev.Raw, b64), nil
	})
}

// messageEvent names and encodes one payload. The data is the payload
// itself: the sink writes one data line per line, so the browser rebuilds
// it exactly, unless SSE cannot carry it as text.
func messageEvent(payload []byte, b64 bool) Event {
	name := "message"
	if n, ok := payloadEventName(payload); ok {
		name = n
	}
	if !b64 && (bytes.IndexByte(payload, '\r') >= 0 || !utf8.Valid(payload)) {
		name += Base64Suffix
		b64 = true
	}
	if b64 {
		payload = []byte(base64.StdEncoding.EncodeToString(payload))
	}
	if payload == nil {
		payload = []byte{}
	}
	return Event{Name: name, Raw: payload}
}

// payloadEventName is the string field "event" of a payload that is a JSON
// object, when it is a usable event name.
func payloadEventName(payload []byte) (string, bool) {
	t := bytes.TrimLeft(payload, " \t\r\n")
	if len(t) == 0 || t[0] != '{' || !bytes.Contains(t, []byte(`"event"`)) {
		return "", false
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(payload, &fields) != nil {
		return "", false
	}
	var name string
	if json.Unmarshal(fields["event"], &name) != nil {
		return "", false
	}
	return name, CustomEventName(name)
}

// InternalChannel reports whether a channel is one Redis publishes on
// itself: keyspace notifications name keys, which --expose guards, and the
// keyspace streams trust them, so they are never relayed or published to.
func InternalChannel(name string) bool {
	return strings.HasPrefix(name, "__keyspace@") || strings.HasPrefix(name, "__keyevent@") ||
		strings.HasPrefix(name, "__redis__:")
}

// CustomEventName reports whether a name taken from Redis data may be used
// as an SSE event name: short plain text, and not one of Keyflux's own
// ("connected", "reset"), which clients trust to mean what they say.
func CustomEventName(name string) bool {
	if name == "" || len(name) > 128 || !utf8.ValidString(name) || name == "connected" || name == "reset" {
		return false
	}
	if strings.HasSuffix(name, Base64Suffix) {
		return false
	}
	return strings.IndexFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) < 0
}

// Publish sends payload to channel and returns how many Redis subscribers
// (of this and every other process) received it.
func (c *Channels) Publish(ctx context.Context, channel string, payload []byte) (int64, error) {
	cl := c.Upstreams.Client
	return cl.Do(ctx, cl.B().Publish().Channel(channel).Message(rueidis.BinaryString(payload)).Build()).AsInt64()
}
