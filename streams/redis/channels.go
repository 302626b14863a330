package redis

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"unicode/utf8"

	"github.com/keyflux/keyflux/streams"
	"github.com/reactivex/rxgo/v2"
	"github.com/redis/rueidis"
)

// Channels relays Redis pub/sub. Delivery is at most once: a message
// published while no Keyflux process is subscribed is gone, and a
// reconnecting client resumes only from the hub's bounded replay ring.
type Channels struct {
	Upstreams *Upstreams
	Metrics   *Metrics
	// Buffer is how many messages may wait for the pipeline before the
	// stream drops them and resets its subscribers.
	Buffer int
	// Journals, when set, serve channel streams (not sharded ones) from
	// their journals.
	Journals *Journals
}

// Stream returns the spec of the stream q selects.
func (c *Channels) Stream(q streams.ChannelQuery) streams.Spec {
	spec := &channelSpec{c: c, q: q}
	if c.Journals != nil && !q.Sharded {
		return c.journaled(q, spec)
	}
	return spec
}

type channelSpec struct {
	c *Channels
	q streams.ChannelQuery
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
	if s.q.Sharded { // another Redis subscription, other messages: another topic
		kind = "shard-channel="
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
	if s.q.Sharded {
		d["sharded"] = true
	}
	return d
}

// Open joins the shared SUBSCRIBE (or PSUBSCRIBE) of the channel. Payloads
// are handed over untouched; naming and encoding happen in the pipeline,
// off the Redis connection's reader.
func (s *channelSpec) Open(ctx context.Context) rxgo.Observable {
	p := newPump(s.c.Buffer, orUnregistered(s.c.Metrics).Dropped)
	leave := s.c.Upstreams.Join(Target{Name: s.q.Name, Pattern: s.q.Pattern, Sharded: s.q.Sharded}, &Listener{
		OnMessage: func(m rueidis.PubSubMessage) {
			if !streams.InternalChannel(m.Channel) { // a pattern such as "*" matches them too
				p.offer(streams.Event{Raw: []byte(m.Message)})
			}
		},
		OnState: func(k streams.Kind, reason string) { p.offer(streams.Event{Kind: k, Reason: reason}) },
	})
	go func() {
		<-ctx.Done()
		leave()
		p.close()
	}()
	b64 := s.q.Base64
	return p.observable().Map(func(_ context.Context, i any) (any, error) {
		ev := i.(streams.Event)
		if ev.Kind != streams.Data {
			return ev, nil
		}
		return messageEvent(ev.Raw, b64), nil
	})
}

// messageEvent names and encodes one payload. The data is the payload
// itself: the sink writes one data line per line, so the browser rebuilds
// it exactly, unless SSE cannot carry it as text.
func messageEvent(payload []byte, b64 bool) streams.Event {
	name := "message"
	if n, ok := payloadEventName(payload); ok {
		name = n
	}
	if !b64 && (bytes.IndexByte(payload, '\r') >= 0 || !utf8.Valid(payload)) {
		name += streams.Base64Suffix
		b64 = true
	}
	if b64 {
		payload = []byte(base64.StdEncoding.EncodeToString(payload))
	}
	if payload == nil {
		payload = []byte{}
	}
	return streams.Event{Name: name, Raw: payload}
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
	return name, streams.CustomEventName(name)
}

// Publish sends payload to channel and returns how many Redis subscribers
// (of this and every other process) received it. Sharded uses SPUBLISH,
// which a cluster routes to the channel's slot owner. On a cluster a plain
// PUBLISH is copied to every node but counts the receiving node's
// subscribers only.
func (c *Channels) Publish(ctx context.Context, channel string, sharded bool, payload []byte) (int64, error) {
	cl := c.Upstreams.Client
	msg := rueidis.BinaryString(payload)
	if sharded {
		return cl.Do(ctx, cl.B().Spublish().Channel(channel).Message(msg).Build()).AsInt64()
	}
	return cl.Do(ctx, cl.B().Publish().Channel(channel).Message(msg).Build()).AsInt64()
}
