package redis

import (
	"fmt"
	"testing"
)

func TestBcastOptions(t *testing.T) {
	for _, c := range []struct {
		prefixes []string
		want     string
	}{
		{nil, "[BCAST]"},
		{[]string{"user:", "order:"}, "[BCAST PREFIX order: PREFIX user:]"},
		{[]string{"user:admin:", "user:", "user:"}, "[BCAST PREFIX user:]"}, // Redis refuses overlaps
		{[]string{"ab", "abc", "ac"}, "[BCAST PREFIX ab PREFIX ac]"},
	} {
		if got := fmt.Sprint(bcastOptions(c.prefixes)); got != c.want {
			t.Errorf("bcastOptions(%q) = %s, want %s", c.prefixes, got, c.want)
		}
	}
}
