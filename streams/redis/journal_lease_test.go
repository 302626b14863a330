package redis_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"

	kfredis "github.com/keyflux/keyflux/streams/redis"
	"github.com/keyflux/keyflux/streams/testkit"
)

// leaseTTL is for tests where a lease must run out or be renewed; others
// use newLease's long TTL so a slow machine never expires a lease early.
const leaseTTL = 300 * time.Millisecond

func newLease(c rueidis.Client, journal, owner string) *kfredis.Lease {
	return &kfredis.Lease{Client: c, Journal: journal, TTL: 10 * time.Second, Owner: owner}
}

func shortLease(c rueidis.Client, journal, owner string) *kfredis.Lease {
	l := newLease(c, journal, owner)
	l.TTL = leaseTTL
	return l
}

func mustAcquire(t *testing.T, l *kfredis.Lease) kfredis.Token {
	t.Helper()
	tok, ok, err := l.Acquire(context.Background())
	if err != nil || !ok {
		t.Fatalf("acquire %s: ok=%v err=%v", l.Owner, ok, err)
	}
	return tok
}

// awaitAcquire retries until the lease is free (the holder's TTL ran out),
// failing after a few TTLs.
func awaitAcquire(t *testing.T, l *kfredis.Lease) kfredis.Token {
	t.Helper()
	deadline := time.Now().Add(20 * leaseTTL)
	for {
		tok, ok, err := l.Acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			return tok
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never acquired the lease", l.Owner)
		}
		time.Sleep(10 * time.Millisecond) // waiting for a TTL: no event to await
	}
}

func xlen(t *testing.T, c rueidis.Client, key string) int {
	t.Helper()
	n, err := testkit.Do(t, c, "XLEN", key).AsInt64()
	if err != nil {
		t.Fatal(err)
	}
	return int(n)
}

func TestJournalLeaseKeysShareTheJournalSlot(t *testing.T) {
	for journal, want := range map[string]string{
		"kf:journal:ks:0": "{kf:journal:ks:0}:lease",
		"{kf}:journal:a":  "{kf}:journal:a:lease",
		"a{b":             "{a{b}:lease",
	} {
		got, err := kfredis.LeaseKey(journal)
		if err != nil || got != want {
			t.Errorf("LeaseKey(%q) = %q, %v; want %q", journal, got, err, want)
			continue
		}
		if testkit.KeySlot(got) != testkit.KeySlot(journal) || testkit.KeySlot(got+":epoch") != testkit.KeySlot(journal) {
			t.Errorf("%q and its lease %q are in different slots", journal, got)
		}
	}
	for _, bad := range []string{"", "a}b", "}{", "a{}b" /* an empty tag is no tag, and wrapping would make "a{" the tag */} {
		if k, err := kfredis.LeaseKey(bad); err == nil {
			t.Errorf("LeaseKey(%q) = %q; want an error", bad, k)
		}
	}
}

func TestJournalLeaseOneWinnerAndRisingEpochs(t *testing.T) {
	_, c := testkit.Redis(t)
	ctx := context.Background()
	// Many contenders at once: exactly one wins.
	const n = 8
	var wg sync.WaitGroup
	wins := make(chan kfredis.Token, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, ok, err := newLease(c, "j", "c"+strconv.Itoa(i)).Acquire(ctx)
			if err != nil {
				t.Error(err)
			}
			if ok {
				wins <- tok
			}
		}()
	}
	wg.Wait()
	close(wins)
	var winner kfredis.Token
	count := 0
	for tok := range wins {
		winner, count = tok, count+1
	}
	if count != 1 {
		t.Fatalf("%d contenders won the lease; want 1", count)
	}
	if v, _ := testkit.Do(t, c, "GET", "{j}:lease").ToString(); v != winner.String() {
		t.Fatalf("lease holds %q; want the winner's %q", v, winner.String())
	}
	// Each later acquisition gets a strictly larger epoch.
	l := newLease(c, "j", "a")
	last := winner
	if err := newLease(c, "j", "x").Release(ctx, winner); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		tok := mustAcquire(t, l)
		if tok.Epoch <= last.Epoch || tok.Owner == last.Owner {
			t.Fatalf("acquisition %v after %v: want a larger epoch and a new owner", tok, last)
		}
		if err := l.Release(ctx, tok); err != nil {
			t.Fatal(err)
		}
		last = tok
	}
}

func TestJournalLeaseRenewReleaseAndStaleTokens(t *testing.T) {
	_, c := testkit.Redis(t)
	ctx := context.Background()
	a, b := newLease(c, "j", "a"), newLease(c, "j", "b")
	ta := mustAcquire(t, a)
	if _, ok, _ := b.Acquire(ctx); ok {
		t.Fatal("b acquired a held lease")
	}
	testkit.Do(t, c, "PEXPIRE", "{j}:lease", "1000")
	if ok, err := a.Renew(ctx, ta); err != nil || !ok {
		t.Fatalf("holder's renew: %v %v", ok, err)
	}
	if ms, _ := testkit.Do(t, c, "PTTL", "{j}:lease").AsInt64(); ms <= 1000 || ms > a.TTL.Milliseconds() {
		t.Fatalf("PTTL after renew = %d ms; want (1000, %d]", ms, a.TTL.Milliseconds())
	}
	stale := kfredis.Token{Owner: ta.Owner, Epoch: ta.Epoch - 1}
	if ok, err := a.Renew(ctx, stale); err != nil || ok {
		t.Fatalf("renew with a stale token: %v %v; want refused", ok, err)
	}
	if err := a.Release(ctx, stale); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := b.Acquire(ctx); ok {
		t.Fatal("a stale token's release freed the lease")
	}
	// A release by the holder frees it at once.
	if err := a.Release(ctx, ta); err != nil {
		t.Fatal(err)
	}
	tb := mustAcquire(t, b)
	if ok, _ := a.Renew(ctx, ta); ok {
		t.Fatal("a renewed a lease it released")
	}
	if err := a.Release(ctx, ta); err != nil {
		t.Fatal(err)
	}
	if v, _ := testkit.Do(t, c, "GET", "{j}:lease").ToString(); v != tb.String() {
		t.Fatalf("a's second release touched b's lease: %q", v)
	}
}

func TestJournalFencedAfterTakeover(t *testing.T) {
	_, c := testkit.Redis(t)
	ctx := context.Background()
	a, b := shortLease(c, "j", "a"), newLease(c, "j", "b")
	ta := mustAcquire(t, a)
	id1, err := a.Append(ctx, ta, []string{"event", "set", "key", "k1"}, kfredis.AppendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// a stops renewing (a pause, a GC, a partition): b takes over after the TTL.
	tb := awaitAcquire(t, b)
	if tb.Epoch <= ta.Epoch {
		t.Fatalf("takeover epoch %d not above %d", tb.Epoch, ta.Epoch)
	}
	if _, err := a.Append(ctx, ta, []string{"event", "late"}, kfredis.AppendOptions{}); !errors.Is(err, kfredis.ErrFenced) {
		t.Fatalf("old holder's append: %v; want ErrFenced", err)
	}
	if _, err := a.AppendBatch(ctx, ta, [][]string{{"a", "1"}, {"b", "2"}}, kfredis.AppendOptions{ExpectTail: id1}); !errors.Is(err, kfredis.ErrFenced) {
		t.Fatalf("old holder's batch: %v; want ErrFenced", err)
	}
	id2, err := b.Append(ctx, tb, []string{"event", "del"}, kfredis.AppendOptions{ExpectTail: id1})
	if err != nil {
		t.Fatal(err)
	}
	entries, err := testkit.Do(t, c, "XRANGE", "j", "-", "+").ToArray()
	if err != nil || len(entries) != 2 {
		t.Fatalf("journal has %d entries (%v); want a's first and b's", len(entries), err)
	}
	if got, _ := entries[1].ToArray(); len(got) != 2 {
		t.Fatalf("entry shape %v", got)
	} else if id, _ := got[0].ToString(); id != id2 {
		t.Fatalf("last entry %s; want b's %s", id, id2)
	}
	// An expired lease with no successor fences too.
	testkit.Do(t, c, "DEL", "{j}:lease")
	if _, err := b.Append(ctx, tb, []string{"x", "y"}, kfredis.AppendOptions{}); !errors.Is(err, kfredis.ErrFenced) {
		t.Fatalf("append after the lease vanished: %v; want ErrFenced", err)
	}
	if n := xlen(t, c, "j"); n != 2 {
		t.Fatalf("refused appends wrote: XLEN %d", n)
	}
}

func TestJournalAppendExpectTailAndBatch(t *testing.T) {
	_, c := testkit.Redis(t)
	ctx := context.Background()
	l := newLease(c, "j", "w")
	tok := mustAcquire(t, l)
	if _, err := l.Append(ctx, tok, []string{"n", "0"}, kfredis.AppendOptions{ExpectTail: "1-0"}); !errors.Is(err, kfredis.ErrTailMoved) {
		t.Fatalf("append expecting a tail on an empty journal: %v; want ErrTailMoved", err)
	}
	ids, err := l.AppendBatch(ctx, tok, [][]string{{"n", "1"}, {"n", "2", "extra", "x"}}, kfredis.AppendOptions{ExpectTail: "0-0"})
	if err != nil || len(ids) != 2 || ids[0] == ids[1] {
		t.Fatalf("batch on an empty journal: %v %v", ids, err)
	}
	// Another append moves the tail: a writer that saw ids[1] is refused.
	if _, err := l.Append(ctx, tok, []string{"n", "3"}, kfredis.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = l.AppendBatch(ctx, tok, [][]string{{"n", "gap1"}, {"n", "gap2"}}, kfredis.AppendOptions{ExpectTail: ids[1]})
	if !errors.Is(err, kfredis.ErrTailMoved) {
		t.Fatalf("append on a moved tail: %v; want ErrTailMoved", err)
	}
	if n := xlen(t, c, "j"); n != 3 {
		t.Fatalf("XLEN %d after a refused batch; want 3", n)
	}
	// Bad input is refused before Redis and writes nothing.
	for _, bad := range []struct {
		entries [][]string
		opt     kfredis.AppendOptions
	}{
		{[][]string{{"odd"}}, kfredis.AppendOptions{}},
		{[][]string{{}}, kfredis.AppendOptions{}},
		{nil, kfredis.AppendOptions{}},
		{[][]string{{"a", "b"}}, kfredis.AppendOptions{MaxLen: -1}},
		{[][]string{{"a", "b"}}, kfredis.AppendOptions{MinID: "1-x"}},
		{[][]string{{"a", "b"}}, kfredis.AppendOptions{ExpectTail: "'; redis.call('FLUSHALL')"}},
		{make([][]string, 1001), kfredis.AppendOptions{}},
		{[][]string{make([]string, 514)}, kfredis.AppendOptions{}},
	} {
		if _, err := l.AppendBatch(ctx, tok, bad.entries, bad.opt); err == nil {
			t.Errorf("append %d entries %+v: no error", len(bad.entries), bad.opt)
		}
	}
	if _, err := l.Append(ctx, kfredis.Token{}, []string{"a", "b"}, kfredis.AppendOptions{}); err == nil {
		t.Error("append with a zero token: no error")
	}
	if n := xlen(t, c, "j"); n != 3 {
		t.Fatalf("XLEN %d after bad input; want 3", n)
	}
}

func TestJournalAppendTrims(t *testing.T) {
	// Small stream nodes, so MAXLEN ~ / MINID ~ (which drop whole nodes)
	// trim at this scale.
	_, c := testkit.Redis(t, "--stream-node-max-entries", "2")
	ctx := context.Background()
	l := newLease(c, "j", "w")
	tok := mustAcquire(t, l)
	var ids []string
	for i := range 20 {
		id, err := l.Append(ctx, tok, []string{"i", strconv.Itoa(i)}, kfredis.AppendOptions{MaxLen: 5})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if n := xlen(t, c, "j"); n < 5 || n > 7 {
		t.Fatalf("XLEN %d with MAXLEN ~ 5; want 5 to 7", n)
	}
	// MINID ~ drops entries older than the given id (whole nodes only).
	if _, err := l.Append(ctx, tok, []string{"i", "last"}, kfredis.AppendOptions{MinID: ids[19]}); err != nil {
		t.Fatal(err)
	}
	first, err := testkit.Do(t, c, "XRANGE", "j", "-", "+", "COUNT", "1").ToArray()
	if err != nil || len(first) != 1 {
		t.Fatal(first, err)
	}
	if n := xlen(t, c, "j"); n < 2 || n > 3 {
		t.Fatalf("XLEN %d after MINID ~ the last id; want 2 or 3 (that id and the new one, plus at most one older in their node)", n)
	}
	if got, _ := testkit.Do(t, c, "XRANGE", "j", ids[19], ids[19]).ToArray(); len(got) != 1 {
		t.Fatalf("MINID %s dropped that entry itself", ids[19])
	}
	if s := kfredis.MinIDBefore(time.UnixMilli(1234)); s != "1234-0" {
		t.Fatalf("MinIDBefore = %q", s)
	}
}

// holding runs Hold in the background and reports how it ended.
func holding(l *kfredis.Lease, tok kfredis.Token) (cancel func(), lost <-chan struct{}, done <-chan error) {
	ctx, cancel := context.WithCancel(context.Background())
	lostc, donec := make(chan struct{}), make(chan error, 1)
	go func() { donec <- l.Hold(ctx, tok, func() { close(lostc) }) }()
	return cancel, lostc, donec
}

func awaitLost(t *testing.T, lost <-chan struct{}, done <-chan error) {
	t.Helper()
	select {
	case <-lost:
	case <-time.After(5 * time.Second):
		t.Fatal("Hold never reported the loss")
	}
	select {
	case err := <-done:
		if !errors.Is(err, kfredis.ErrLeaseLost) {
			t.Fatalf("Hold returned %v; want ErrLeaseLost", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Hold did not return after the loss")
	}
}

func TestJournalLeaseHold(t *testing.T) {
	srv, c := testkit.Redis(t)
	admin := testkit.NewClient(t, srv) // a connection Hold's pause cannot block

	t.Run("renews until cancelled", func(t *testing.T) {
		// A TTL a loaded machine cannot miss a renewal by (renewals come
		// every third of it).
		l := newLease(c, "held", "a")
		l.TTL = 1200 * time.Millisecond
		tok := mustAcquire(t, l)
		cancel, lost, done := holding(l, tok)
		defer cancel()
		// Three TTLs pass and the lease is still ours: only renewals explain it.
		for end := time.Now().Add(3 * l.TTL); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			if v, _ := testkit.Do(t, admin, "GET", "{held}:lease").ToString(); v != tok.String() {
				t.Fatalf("lease holds %q while Hold runs; want %q", v, tok.String())
			}
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Hold returned %v after cancel", err)
		}
		select {
		case <-lost:
			t.Fatal("onLost called on cancel")
		default:
		}
	})
	t.Run("lost when deleted", func(t *testing.T) {
		l := shortLease(c, "deleted", "a")
		cancel, lost, done := holding(l, mustAcquire(t, l))
		defer cancel()
		testkit.Do(t, admin, "DEL", "{deleted}:lease")
		awaitLost(t, lost, done)
	})
	t.Run("lost when taken over", func(t *testing.T) {
		l := shortLease(c, "taken", "a")
		cancel, lost, done := holding(l, mustAcquire(t, l))
		defer cancel()
		testkit.Do(t, admin, "SET", "{taken}:lease", "other:999", "PX", "10000")
		awaitLost(t, lost, done)
	})
	t.Run("lost when renewals stall past the TTL", func(t *testing.T) {
		l := shortLease(c, "paused", "a")
		tok := mustAcquire(t, l)
		cancel, lost, done := holding(l, tok)
		defer cancel()
		// Scripts block while writes are paused: the renewal hangs, and the
		// holder's own deadline (one TTL after its last good renewal) ends it.
		testkit.Do(t, admin, "CLIENT", "PAUSE", "10000", "WRITE")
		t.Cleanup(func() { testkit.Do(t, admin, "CLIENT", "UNPAUSE") })
		start := time.Now()
		awaitLost(t, lost, done)
		if d := time.Since(start); d > leaseTTL+time.Second {
			t.Fatalf("loss reported %v after renewals stalled; want about one TTL (%v)", d, leaseTTL)
		}
		testkit.Do(t, admin, "CLIENT", "UNPAUSE")
	})
}

func TestJournalLeaseOnCluster(t *testing.T) {
	cl := testkit.StartCluster(t, 3, 0)
	c := cl.Client(t)
	ctx := context.Background()
	for _, journal := range []string{"kf:journal:ks:0", "{kf}:journal:chan:news"} {
		a, b := newLease(c, journal, "a"), newLease(c, journal, "b")
		ta := mustAcquire(t, a)
		if _, ok, err := b.Acquire(ctx); ok || err != nil {
			t.Fatalf("%s: b acquired a held lease (%v)", journal, err)
		}
		if ok, err := a.Renew(ctx, ta); !ok || err != nil {
			t.Fatalf("%s: renew: %v %v", journal, ok, err)
		}
		id, err := a.Append(ctx, ta, []string{"e", "1"}, kfredis.AppendOptions{ExpectTail: "0-0", MaxLen: 100, MinID: "1-0"})
		if err != nil {
			t.Fatalf("%s: append: %v", journal, err)
		}
		if err := a.Release(ctx, ta); err != nil {
			t.Fatal(err)
		}
		tb := mustAcquire(t, b)
		if tb.Epoch <= ta.Epoch {
			t.Fatalf("%s: epoch %d after %d", journal, tb.Epoch, ta.Epoch)
		}
		if _, err := a.Append(ctx, ta, []string{"e", "stale"}, kfredis.AppendOptions{}); !errors.Is(err, kfredis.ErrFenced) {
			t.Fatalf("%s: stale append: %v; want ErrFenced", journal, err)
		}
		if _, err := b.Append(ctx, tb, []string{"e", "2"}, kfredis.AppendOptions{ExpectTail: "0-0"}); !errors.Is(err, kfredis.ErrTailMoved) {
			t.Fatalf("%s: append on a moved tail: %v; want ErrTailMoved", journal, err)
		}
		if _, err := b.Append(ctx, tb, []string{"e", "2"}, kfredis.AppendOptions{ExpectTail: id}); err != nil {
			t.Fatalf("%s: new holder's append: %v", journal, err)
		}
		if n := xlen(t, c, journal); n != 2 {
			t.Fatalf("%s: XLEN %d; want 2", journal, n)
		}
	}
}
