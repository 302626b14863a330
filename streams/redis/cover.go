package redis

import (
	"slices"

	"github.com/redis/rueidis"
)

// coverage holds the listeners of the narrower patterns a broader upstream
// covers. A message is matched once per distinct pattern, and only against
// the patterns whose literal prefix starts its channel.
type coverage struct {
	byPattern map[string][]*Listener
	byLiteral map[string][]string // literal prefix -> patterns
	longest   int                 // longest literal prefix held
}

func (c *coverage) add(pattern string, l *Listener) {
	if c.byPattern == nil {
		c.byPattern = make(map[string][]*Listener)
		c.byLiteral = make(map[string][]string)
	}
	if len(c.byPattern[pattern]) == 0 {
		lit := literalPrefix(pattern)
		c.byLiteral[lit] = append(c.byLiteral[lit], pattern)
		c.longest = max(c.longest, len(lit))
	}
	c.byPattern[pattern] = append(c.byPattern[pattern], l)
}

func (c *coverage) remove(pattern string, l *Listener) {
	ls := slices.DeleteFunc(c.byPattern[pattern], func(x *Listener) bool { return x == l })
	if len(ls) > 0 {
		c.byPattern[pattern] = ls
		return
	}
	delete(c.byPattern, pattern)
	lit := literalPrefix(pattern)
	if ps := slices.DeleteFunc(c.byLiteral[lit], func(p string) bool { return p == pattern }); len(ps) > 0 {
		c.byLiteral[lit] = ps
	} else {
		delete(c.byLiteral, lit)
	}
	if len(c.byPattern) == 0 {
		c.longest = 0
	}
}

func (c *coverage) empty() bool { return len(c.byPattern) == 0 }

func (c *coverage) each(f func(*Listener)) {
	for _, ls := range c.byPattern {
		for _, l := range ls {
			f(l)
		}
	}
}

// deliver hands m to the listeners whose own pattern matches its channel,
// as Redis would have, skipping those in waiting.
func (c *coverage) deliver(m rueidis.PubSubMessage, waiting map[*Listener]bool) {
	ch := m.Channel
	for i := 0; i <= min(len(ch), c.longest); i++ {
		for _, p := range c.byLiteral[ch[:i]] {
			if !Match(p, ch) {
				continue
			}
			for _, l := range c.byPattern[p] {
				if !waiting[l] {
					l.OnMessage(m)
				}
			}
		}
	}
}
