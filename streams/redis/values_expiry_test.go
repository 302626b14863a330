package redis

import (
	"context"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/keyflux/keyflux/streams/testkit"
)

// A key that expires between TYPE and the read of its value is gone, not
// an error: a watch would otherwise skip that change.
func TestReadOfAKeyExpiringMidRead(t *testing.T) {
	srv, c := testkit.Redis(t)
	cc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr()}, PipelineMultiplex: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	v := &Values{Client: cc, Cached: true}
	for i := range 3000 {
		testkit.Do(t, c, "SET", "k", "v", "PX", "600000")
		if _, err := v.Read(context.Background(), "k"); err != nil {
			t.Fatal(i, err)
		}
		testkit.Do(t, c, "PEXPIRE", "k", "1")
		if i%2 == 0 {
			time.Sleep(time.Millisecond) // now and then past the expiry, its invalidation on the way
		}
		st, err := v.Read(context.Background(), "k")
		if err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		if st.Exists && st.Type != "string" {
			t.Fatalf("read %d: %+v", i, st)
		}
	}
}
