package streams

import (
	"bytes"
	"context"
	"strings"
	"sync"
)

// Position mode: a receiver that joins several topics at once (a combined
// stream), at least one of them Durable, resumes by one Last-Event-ID
// holding a Position: one entry id per Durable join, in join order. Each
// Durable topic has ids of its own source (a journal), which no single one
// of them could carry for the others.
//
// Every frame the client gets goes through a positions: it drops the
// frame's own id line, and a frame of a Durable topic that carries an
// entry id moves that join's component and goes out as a new frame whose id
// is the whole position. Sends happen under its lock, so the id on each
// frame is exactly what the client has received so far, in every journal,
// however the replays of several topics interleave. Ordinary topics in the
// same stream keep their own resume (a key watch heals with a snapshot; a
// ring topic, whose process ids the position does not carry, answers a
// resume with "reset").
type positions struct {
	r       Receiver
	metrics *Metrics

	mu      sync.Mutex
	pos     Position // private: never handed out, so updated in place
	known   []bool
	missing int // components not known yet: until then frames go id-less
}

// positionSub is one join's receiver in position mode.
type positionSub struct {
	p *positions
	i int // its component, -1 for a topic that is not Durable
}

// positionReceivers returns the receivers and Last-Event-IDs of joins when
// they call for position mode (more than one join, at least one of them
// Durable), and nil otherwise. A lastID that decodes as a Position of as many
// components as there are Durable joins that are not fresh (Join.Fresh)
// gives each of them its component, in order, and fresh ones start now;
// any other is handed to every join as it is, and a Durable one's replay
// answers it with "reset".
func positionReceivers(joins []Join, r Receiver, lastID string, m *Metrics) ([]Receiver, []string) {
	if len(joins) < 2 {
		return nil, nil
	}
	n, resumed := 0, 0 // Durable joins, and those the position covers (not fresh)
	for _, j := range joins {
		if _, ok := j.Spec.(Durable); ok {
			n++
			if !j.Fresh {
				resumed++
			}
		}
	}
	if n == 0 {
		return nil, nil
	}
	p := &positions{r: r, metrics: m, pos: make(Position, n), known: make([]bool, n), missing: n}
	var given Position
	if lastID != "" {
		if q, err := DecodePosition(lastID); err == nil && len(q) == resumed {
			given = q
		}
	}
	receivers := make([]Receiver, len(joins))
	lastIDs := make([]string, len(joins))
	c, g := 0, 0
	for k, j := range joins {
		lastIDs[k] = lastID
		if _, ok := j.Spec.(Durable); !ok {
			receivers[k] = &positionSub{p: p, i: -1}
			continue
		}
		if given != nil && !j.Fresh {
			lastIDs[k] = given[g].String()
			p.set(c, given[g])
			g++
		}
		receivers[k] = &positionSub{p: p, i: c}
		c++
	}
	return receivers, lastIDs
}

// lonePosition is the Last-Event-ID of a lone Durable join given a Position
// of one component: its entry id. A page that closes all subs but one
// carries that sub's part over, and one join is not in position mode.
func lonePosition(joins []Join, lastID string) string {
	if len(joins) != 1 || !strings.HasPrefix(lastID, positionVersion) {
		return lastID
	}
	if _, ok := joins[0].Spec.(Durable); !ok {
		return lastID
	}
	if q, err := DecodePosition(lastID); err == nil && len(q) == 1 {
		return q[0].String()
	}
	return lastID
}

// Send implements Receiver.
func (s *positionSub) Send(f *Frame) bool { return s.p.send(s.i, f) }

// WaitRoom implements Paced, for a client that is (a replay waits on it).
func (s *positionSub) WaitRoom(ctx context.Context) bool {
	if pr, ok := s.p.r.(Paced); ok {
		return pr.WaitRoom(ctx)
	}
	return ctx.Err() == nil
}

// caughtUp records where a Durable join's replay ended: the client has
// everything of that topic up to id, even when the replay sent no frame
// with an id (a backlog, entries a filter dropped).
func (s *positionSub) caughtUp(id string) {
	if s.i < 0 {
		return
	}
	e, ok := ParseEntryID(id)
	if !ok {
		return
	}
	p := s.p
	p.mu.Lock()
	defer p.mu.Unlock()
	p.set(s.i, e)
}

// caughtUpReceiver is a receiver told where a Durable subscriber's replay
// ended (position mode's).
type caughtUpReceiver interface {
	caughtUp(id string)
}

// set moves component i. Called with p.mu held.
func (p *positions) set(i int, id EntryID) {
	p.pos[i] = id
	if !p.known[i] {
		p.known[i] = true
		p.missing--
	}
}

func (p *positions) send(i int, f *Frame) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	rest := stripID(f.Bytes)
	if i >= 0 && f.ID != "" {
		id, ok := ParseEntryID(f.ID)
		if ok {
			p.set(i, id)
		}
		switch {
		case !ok: // not a Redis entry id: nothing a position can hold
			p.metrics.PositionsUnencodable.Inc()
		case p.missing == 0:
			enc, err := p.pos.Encode()
			if err == nil {
				b := make([]byte, 0, len("id: \n")+len(enc)+len(rest))
				b = append(b, "id: "...)
				b = append(b, enc...)
				b = append(b, '\n')
				b = append(b, rest...)
				return p.r.Send(&Frame{ID: enc, Bytes: b})
			}
			p.metrics.PositionsUnencodable.Inc()
		}
	}
	if len(rest) == len(f.Bytes) {
		return p.r.Send(f) // no id of its own: shared as it is
	}
	return p.r.Send(&Frame{Bytes: rest})
}

var idPrefix = []byte("id: ")

// stripID returns b without its leading id line (EncodeFrame writes the id
// first). The result shares b's bytes but cannot grow into them.
func stripID(b []byte) []byte {
	if !bytes.HasPrefix(b, idPrefix) {
		return b
	}
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return b
	}
	return b[i+1 : len(b) : len(b)]
}
