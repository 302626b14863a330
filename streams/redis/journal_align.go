package redis

// A standby proves where the journal stops in what it saw itself. Redis
// hands every subscriber of a connection's channels and patterns the same
// messages in the same order, so the journal (what the old writer saw and
// appended) and a standby's own record (what it saw since it subscribed)
// are two windows of one sequence. Where they overlap they are equal, and
// the overlap is what the journal ends with and what the standby's record
// starts with. If exactly one placement of the journal's end in the record
// fits, everything after it in the record is what the journal misses.
//
// A placement counts only if at least minProof messages agree (or the whole
// journal since its start or its last reset, when it is shorter): one equal
// message proves nothing, since keyspace events repeat ("set job:42" again
// and again). A stream that repeats itself over the whole window fits in
// several places and proves nothing either: the new writer then records a
// reset instead of guessing.

// minProof is how many messages must agree for a placement to count.
const minProof = 16

// seen is one message as the journal records it: a key and its event, or a
// channel and its payload.
type seen struct{ a, b string }

func (s seen) size() int { return len(s.a) + len(s.b) }

// align finds where tail (the journal's last messages, oldest first, all
// after its start or its last reset; whole says tail reaches that start or
// reset) ends in record (the standby's own messages, oldest first). It
// returns the index in record of the journal's last message, -1 when the
// journal is empty and whole (everything in record is missing), and ok
// false when no single placement is proven.
func align(tail, record []seen, whole bool) (last int, ok bool) {
	if len(tail) == 0 {
		return -1, whole
	}
	need := minProof
	if whole && len(tail) < need {
		need = len(tail)
	}
	end := tail[len(tail)-1]
	found := -1
	for p := range record {
		if record[p] != end {
			continue
		}
		n := min(p+1, len(tail))
		if n < need || !equalRuns(tail[len(tail)-n:], record[p+1-n:p+1]) {
			continue
		}
		if found >= 0 {
			return 0, false // fits twice: the stream repeats itself
		}
		found = p
	}
	return found, found >= 0
}

func equalRuns(a, b []seen) bool {
	for i := len(a) - 1; i >= 0; i-- {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// guess is where a takeover that could not prove the journal's end
// continues after its reset: right after the earliest placement that fits
// at all (so what is appended may repeat some messages but misses none the
// record holds), or, with none, the whole record: it returns the index in
// record of the journal's last message, -1 for "before the record".
func guess(tail, record []seen) int {
	if len(tail) == 0 {
		return -1
	}
	end := tail[len(tail)-1]
	for p := range record {
		n := min(p+1, len(tail))
		if record[p] == end && equalRuns(tail[len(tail)-n:], record[p+1-n:p+1]) {
			return p
		}
	}
	return -1
}
