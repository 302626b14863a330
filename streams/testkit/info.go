package testkit

import (
	"strconv"
	"strings"
	"testing"

	"github.com/redis/rueidis"
)

// InfoField reads a number from INFO text: the value of the line starting
// with line ("total_commands_processed:"), or, when field is set, of that
// field inside it ("cmdstat_get:" and "calls="). 0 when absent.
func InfoField(info, line, field string) int {
	for _, l := range strings.Split(info, "\r\n") {
		rest, ok := strings.CutPrefix(l, line)
		if !ok {
			continue
		}
		if field != "" {
			_, rest, _ = strings.Cut(rest, field)
			rest, _, _ = strings.Cut(rest, ",")
		}
		n, _ := strconv.Atoi(rest)
		return n
	}
	return 0
}

// InfoStat is one numeric field of an INFO section ("stats",
// "total_commands_processed").
func InfoStat(t testing.TB, c rueidis.Client, section, name string) int {
	t.Helper()
	info, _ := Do(t, c, "INFO", section).ToString()
	return InfoField(info, name+":", "")
}

// CommandCalls is how many times Redis ran a command, from INFO
// commandstats ("get", "type", "client|kill").
func CommandCalls(t testing.TB, c rueidis.Client, cmd string) int {
	t.Helper()
	info, _ := Do(t, c, "INFO", "commandstats").ToString()
	return InfoField(info, "cmdstat_"+cmd+":", "calls=")
}
