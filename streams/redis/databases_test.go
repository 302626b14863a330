package redis

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"testing"

	"github.com/keyflux/keyflux/streams/testkit"
)

// TestDatabases counts a server's databases by CONFIG, and by SELECT where
// CONFIG is refused (as on managed Redis), leaving the pooled connections
// in their own database.
func TestDatabases(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		config bool
	}{
		{"config", []string{"--databases", "5"}, true},
		{"config refused", []string{"--databases", "5", "--rename-command", "CONFIG", ""}, true},
		{"no config", []string{"--databases", "1000"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, c := testkit.Redis(t, tc.args...)
			want, _ := strconv.Atoi(tc.args[1])
			if got := databases(context.Background(), c, 0, tc.config, slog.Default()); got != want {
				t.Fatalf("databases = %d, want %d", got, want)
			}
			if calls := testkit.CommandCalls(t, c, "config|get"); !tc.config && calls != 0 {
				t.Fatalf("CONFIG GET sent %d times in none mode", calls)
			}
			// The dedicated connection the probe used is back in database 0.
			dc, release := c.Dedicate()
			defer release()
			info, err := dc.Do(context.Background(), dc.B().ClientInfo().Build()).ToString()
			if err != nil || !strings.Contains(info, " db=0 ") {
				t.Fatalf("a dedicated connection is left in another database: %q %v", info, err)
			}
		})
	}
}
