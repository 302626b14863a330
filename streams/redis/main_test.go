package redis

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/keyflux/keyflux/streams/testkit"
)

// A rueidis cluster client closes a replaced node connection 5 s later, and
// refreshes its slot map after a delay, even after Close (see
// testkit.RueidisLateCloser and RueidisLateRefresh): both end by themselves.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction(testkit.RueidisLateCloser),
		goleak.IgnoreAnyFunction(testkit.RueidisLateRefresh))
}
