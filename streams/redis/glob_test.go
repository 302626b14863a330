package redis

import (
	"context"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/redis/rueidis"

	"github.com/keyflux/keyflux/streams/testkit"
)

// globEdges are patterns whose answers depend on stringmatchlen's corners.
var globEdges = []string{
	"[", "[^", "a[", "a[^", "[a", "[^a", "[a-", "[a-]", "[z-a]", "[a-c", "[]", "[]]", "[]a]", "[^]]",
	`\`, `a\`, `\\`, `\*`, `\?`, `\[`, `[\`, `[\]`, `[\]]`, `[a\`, `[\-]`, `[a\-c]`, `[^\a]`,
	"*", "**", "***a", "?", "??", "*?", "?*", "a*b*", "*a*", "[-]", "[a-b-c]", "[^-a]",
	"[\x00-a]", "[a-\xff]", "[\xff-a]", "[\x80-\xff]", "\xff*", "[^\xff]", "a\x00*", "-", "^", "]",
	strings.Repeat("a*", 1001), strings.Repeat("a*", 1002), // Redis stops recursing at 1000
	strings.Repeat("*a", 30) + "b",
}

// globStrings are channels for the edges: the corners of their answers.
var globStrings = []string{
	"", "a", "b", "z", "-", "]", "[", "^", `\`, "*", "?", "\x00", "\xff", "\x80", "ab", "a]", "]a", "aa",
	"a\x00", "a\x00b", strings.Repeat("a", 1200), strings.Repeat("a", 60),
}

// globCorpus generates n random patterns and m random strings over a small
// alphabet full of special characters, so that many pairs match.
func globCorpus(n, m int) (patterns, strs []string) {
	r := rand.New(rand.NewPCG(10, 3))
	gen := func(alphabet string, maxLen int) string {
		b := make([]byte, r.IntN(maxLen+1))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		return string(b)
	}
	seen := map[string]bool{}
	for _, p := range globEdges {
		seen[p] = true
		patterns = append(patterns, p)
	}
	for len(patterns) < n {
		p := gen(`ab*?*[]^-\`+"\xff", 8)
		if p != "" && !seen[p] {
			seen[p] = true
			patterns = append(patterns, p)
		}
	}
	strs = append(strs, globStrings...)
	for len(strs) < m {
		strs = append(strs, gen(`abc[]^-\*?`+"\xff\x00", 6))
	}
	return patterns, strs
}

// TestMatchAgreesWithRedis subscribes a real redis-server to every pattern of
// a generated corpus, publishes every string of it and compares each
// (pattern, channel) pair Redis delivers, and each it does not, with Match.
func TestMatchAgreesWithRedis(t *testing.T) {
	_, c := testkit.Redis(t)
	patterns, strs := globCorpus(2000, 600)

	var mu sync.Mutex
	got := map[[2]string]int{}
	received := 0
	subscribed := make(chan struct{})
	var confirmed int
	ctx, cancel := context.WithCancel(context.Background())
	hooked := rueidis.WithOnSubscriptionHook(ctx, func(s rueidis.PubSubSubscription) {
		if s.Kind == "psubscribe" {
			if confirmed++; confirmed == len(patterns) {
				close(subscribed)
			}
		}
	})
	done := make(chan error, 1)
	go func() {
		done <- c.Receive(hooked, c.B().Psubscribe().Pattern(patterns...).Build(), func(m rueidis.PubSubMessage) {
			mu.Lock()
			got[[2]string{m.Pattern, m.Channel}]++
			received++
			mu.Unlock()
		})
	}()
	defer func() { cancel(); <-done }()
	<-subscribed

	want := 0 // PUBLISH answers how many pattern deliveries it made
	for _, s := range strs {
		n, err := c.Do(ctx, c.B().Publish().Channel(s).Message("x").Build()).AsInt64()
		if err != nil {
			t.Fatal(err)
		}
		want += int(n)
	}
	testkit.Eventually(t, "every delivery", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return received >= want
	})
	mu.Lock()
	defer mu.Unlock()
	matches, mismatches := 0, 0
	for _, s := range strs {
		for _, p := range patterns {
			redis := got[[2]string{p, s}] > 0
			if redis {
				matches++
			}
			if Match(p, s) != redis {
				if mismatches++; mismatches <= 20 {
					t.Errorf("Match(%q, %q) = %v, Redis says %v", p, s, !redis, redis)
				}
			}
		}
	}
	if mismatches > 0 {
		t.Fatalf("%d of %d pairs disagree with Redis", mismatches, len(patterns)*len(strs))
	}
	if matches < 10000 {
		t.Fatalf("only %d matching pairs: the corpus tests too little", matches)
	}
	t.Logf("%d patterns x %d channels agree with Redis (%d matching pairs)", len(patterns), len(strs), matches)
}

// escape makes a pattern matching exactly s.
func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(`*?[\`, s[i]) >= 0 {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// FuzzMatch checks what covering relies on: Match never fails, a literal
// pattern matches its own text, and "<literal prefix>*" matches whatever
// a non-empty pattern matches.
func FuzzMatch(f *testing.F) {
	for i, p := range globEdges {
		f.Add(p, globStrings[i%len(globStrings)])
	}
	f.Fuzz(func(t *testing.T, p, s string) {
		if !Match(escape(s), s) {
			t.Fatalf("escaped %q does not match itself", s)
		}
		if p == "" { // the empty pattern is never covered: it is SUBSCRIBEd as a channel
			return
		}
		cover := literalPrefix(p) + "*"
		if Match(p, s) && (!covers(cover, p) || !Match(cover, s)) {
			t.Fatalf("%q matches %q but its cover %q does not", p, s, cover)
		}
	})
}

func TestCovers(t *testing.T) {
	for _, c := range []struct {
		cover, name string
		want        bool
	}{
		{"*", "a", true},
		{"*", "*", true},
		{"*", "", false}, // only the empty pattern matches the empty channel
		{"__keyspace@0__:*", "__keyspace@0__:user:[ab]*", true},
		{"__keyspace@0__:*", "__keyspace@1__:user:*", false},
		{"__keyspace@0__:*", "__keyspace@0_?:user:*", false},
		{"news.*", "news.sport", true},
		{"news.*", "news\\.sport", false}, // the escape ends the literal prefix early
		{"news.", "news.sport", false},
		{"new?*", "news.sport", false},
		{`a\*`, "a*b", false},
	} {
		if got := covers(c.cover, c.name); got != c.want {
			t.Errorf("covers(%q, %q) = %v, want %v", c.cover, c.name, got, c.want)
		}
	}
}
