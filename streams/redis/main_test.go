package redis

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/keyflux/keyflux/streams/testkit"
)

// A rueidis cluster client closes a replaced node connection 5 s later,
// even after Close (see testkit.RueidisLateCloser).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction(testkit.RueidisLateCloser))
}
