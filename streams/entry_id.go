package streams

import (
	"strconv"
	"strings"
)

// EntryID is a Redis Stream entry id, <milliseconds>-<sequence>.
type EntryID struct{ MS, Seq uint64 }

// ParseEntryID reads "<ms>-<seq>" or "<ms>" (sequence 0).
func ParseEntryID(s string) (EntryID, bool) {
	ms, seq, hasSeq := strings.Cut(s, "-")
	var id EntryID
	var err error
	if id.MS, err = strconv.ParseUint(ms, 10, 64); err != nil || ms[0] == '+' {
		return EntryID{}, false
	}
	if hasSeq {
		if id.Seq, err = strconv.ParseUint(seq, 10, 64); err != nil || seq[0] == '+' {
			return EntryID{}, false
		}
	}
	return id, true
}

func (a EntryID) String() string {
	return strconv.FormatUint(a.MS, 10) + "-" + strconv.FormatUint(a.Seq, 10)
}

// Compare orders ids like strings.Compare.
func (a EntryID) Compare(b EntryID) int {
	switch {
	case a.MS != b.MS:
		if a.MS < b.MS {
			return -1
		}
		return 1
	case a.Seq != b.Seq:
		if a.Seq < b.Seq {
			return -1
		}
		return 1
	}
	return 0
}

// Prev is the id just before a, so that reading after it starts at a.
func (a EntryID) Prev() EntryID {
	switch {
	case a.Seq > 0:
		return EntryID{a.MS, a.Seq - 1}
	case a.MS > 0:
		return EntryID{a.MS - 1, ^uint64(0)}
	}
	return a
}
