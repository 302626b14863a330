package redis

import (
	"context"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/keyflux/keyflux/streams/testkit"
	"github.com/redis/rueidis"
)

// openSessions opens a Conn on a fresh redis-server, with a client of its own.
func openSessions(t *testing.T) (*Conn, rueidis.Client) {
	t.Helper()
	srv := testkit.StartRedis(t)
	conn, err := Open(context.Background(), Options{URL: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	return conn, testkit.NewClient(t, srv)
}

// Spring touches a session (HSET lastAccessedTime, PEXPIRE) on every
// request; reads through the cache while it does must stay correct, and
// must not trip rueidis (v1.0.79 once panicked "protocol bug, message
// handled out of order" when a key got PEXPIRE during a DoCache read).
func TestSessionReadsWhileSpringTouches(t *testing.T) {
	conn, c := openSessions(t)
	s := conn.Sessions
	const key = "spring:session:sessions:hot"
	testkit.WriteSpringSession(t, c, "spring:session", "hot", "alice", time.Hour)
	stopWatch := s.WatchSession(key, func(bool) { t.Error("a touched session ended") })
	defer stopWatch()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(2)
	for w := range 2 { // writers, as Spring's request threads
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				b := c.B()
				for _, r := range c.DoMulti(ctx,
					b.Hset().Key(key).FieldValue().FieldValue("lastAccessedTime", strconv.Itoa(w*1e9+i)).Build(),
					b.Pexpire().Key(key).Milliseconds(3900000).Build()) {
					if err := r.Error(); err != nil && ctx.Err() == nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	reads := make([]int, 4)
	for r := range reads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				exists, v, at, err := s.ReadSession(ctx, key, testkit.SpringPrincipalField)
				if ctx.Err() != nil {
					return
				}
				if err != nil || !exists || string(v) != string(testkit.JavaString("alice")) ||
					time.Until(at) < 64*time.Minute || time.Until(at) > 66*time.Minute {
					t.Errorf("read %v %q %v %v", exists, v, at, err)
					return
				}
				reads[r]++
			}
		}()
	}
	wg.Wait()
	misses := testkit.CommandCalls(t, c, "type")
	t.Logf("reads %v, %d of them (and the watch's) reached Redis, %d touches", reads, misses, testkit.CommandCalls(t, c, "pexpire"))
	if misses < 100 {
		t.Errorf("only %d reads reached Redis: the touches did not race them", misses)
	}
	for r, n := range reads {
		if n < 100 {
			t.Errorf("reader %d read only %d times", r, n)
		}
	}
	if s.Watched() != 1 {
		t.Fatalf("%d sessions watched", s.Watched())
	}
}

// Every stream of one session shares one watch, removed with the last
// stop; nothing is left behind after many sessions come and go.
func TestSessionWatchesAreSharedAndReleased(t *testing.T) {
	conn, c := openSessions(t)
	s := conn.Sessions
	testkit.WriteSpringSession(t, c, "ns", "a", "alice", time.Hour)
	const key = "ns:sessions:a"
	var ends [3]chan bool
	var stops [3]func()
	for i := range ends {
		ends[i] = make(chan bool, 2)
		stops[i] = s.WatchSession(key, func(expired bool) { ends[i] <- expired })
	}
	if s.Watched() != 1 || conn.Invalidations.Watched() != 1 {
		t.Fatalf("%d watches, %d keys routed, for one session", s.Watched(), conn.Invalidations.Watched())
	}
	stops[0]()
	stops[0]() // twice is harmless
	testkit.Do(t, c, "DEL", key)
	for i := 1; i < 3; i++ {
		select {
		case expired := <-ends[i]:
			if expired {
				t.Fatal("a deletion was told as an expiry")
			}
		case <-time.After(time.Second):
			t.Fatalf("watcher %d was not told", i)
		}
	}
	select {
	case <-ends[0]:
		t.Fatal("a stopped watcher was told")
	default:
	}
	stops[1]()
	stops[2]()
	if s.Watched() != 0 || conn.Invalidations.Watched() != 0 {
		t.Fatalf("%d watches, %d keys routed after the end", s.Watched(), conn.Invalidations.Watched())
	}

	// Many sessions, watched and stopped: nothing stays.
	before := runtime.NumGoroutine()
	for i := range 200 {
		testkit.WriteSpringSession(t, c, "ns", strconv.Itoa(i), "", time.Hour)
	}
	var all []func()
	for i := range 200 {
		for range 3 {
			all = append(all, s.WatchSession("ns:sessions:"+strconv.Itoa(i), func(bool) { t.Error("ended") }))
		}
	}
	if s.Watched() != 200 {
		t.Fatalf("%d watches for 200 sessions", s.Watched())
	}
	// Quiet sessions hold no goroutine: a stream per session is the common
	// case, and a goroutine each would cost more than the stream.
	testkit.Eventually(t, "the first reads done", func() bool {
		done := make(chan struct{})
		go func() { s.running.Wait(); close(done) }()
		select {
		case <-done:
			return true
		case <-time.After(10 * time.Millisecond):
			return false
		}
	})
	if n := runtime.NumGoroutine(); n > before+50 {
		t.Fatalf("200 quiet watched sessions hold %d goroutines (%d before)", n-before, before)
	}
	for _, stop := range all {
		stop()
	}
	if s.Watched() != 0 || conn.Invalidations.Watched() != 0 {
		t.Fatalf("%d watches, %d keys routed after every stop", s.Watched(), conn.Invalidations.Watched())
	}
	// Their read loops end too (goleak checks the rest at exit).
	done := make(chan struct{})
	go func() { s.running.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("read loops outlived their watches")
	}
}

// A lost connection forgets what Redis tracked: every watched session is
// read again, and one deleted meanwhile ends.
func TestSessionWatchRechecksAfterReconnect(t *testing.T) {
	conn, c := openSessions(t)
	s := conn.Sessions
	testkit.WriteSpringSession(t, c, "ns", "a", "alice", time.Hour)
	ends := make(chan bool, 1)
	stop := s.WatchSession("ns:sessions:a", func(expired bool) { ends <- expired })
	defer stop()
	testkit.Eventually(t, "the first read", func() bool { return testkit.CommandCalls(t, c, "type") == 1 })
	// Tracking off for the caching connection: Redis forgets the key, so
	// only the re-read after the reconnect can see the deletion.
	before := conn.Invalidations.Received()
	testkit.Do(t, c, "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
	testkit.Eventually(t, "the flush", func() bool { return conn.Invalidations.Received() > before })
	testkit.Do(t, c, "DEL", "ns:sessions:a")
	select {
	case expired := <-ends:
		if expired {
			t.Fatal("told as an expiry")
		}
	case <-time.After(3 * time.Second):
		t.Fatal("a session deleted around a reconnect was not noticed")
	}
}

// Made-up session ids (a hostile client's cookies) must not grow Redis's
// tracking table: only sessions that exist are read through the cache.
func TestSessionUnknownIDsAreNotTracked(t *testing.T) {
	conn, c := openSessions(t)
	before := testkit.InfoStat(t, c, "stats", "tracking_total_keys")
	for i := range 200 {
		exists, _, _, err := conn.Sessions.ReadSession(context.Background(),
			"spring:session:sessions:made-up-"+strconv.Itoa(i), "creationTime")
		if err != nil || exists {
			t.Fatalf("made-up session: exists %v, err %v", exists, err)
		}
	}
	if grew := testkit.InfoStat(t, c, "stats", "tracking_total_keys") - before; grew > 0 {
		t.Fatalf("200 made-up session ids left %d keys in Redis's tracking table", grew)
	}
	// A real session is tracked, and read from the cache the second time.
	testkit.WriteSpringSession(t, c, "spring:session", "real", "alice", time.Hour)
	key := "spring:session:sessions:real"
	for range 2 {
		if exists, _, _, err := conn.Sessions.ReadSession(context.Background(), key, "creationTime"); err != nil || !exists {
			t.Fatalf("real session: exists %v, err %v", exists, err)
		}
	}
	if testkit.InfoStat(t, c, "stats", "tracking_total_keys") == before {
		t.Fatal("a real session is not read through the cache")
	}
}
