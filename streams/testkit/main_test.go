package testkit

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction(RueidisLateCloser), goleak.IgnoreAnyFunction(RueidisLateRefresh))
}
