package streams

// healResume is the resume strategy of state streams (Healer): like the
// replay ring, but a subscriber the ring cannot vouch for (a new one, or
// one resuming from an unknown or expired id) gets the current state as a
// "snapshot" instead of a "reset", and needs nothing else to be up to date.
type healResume struct {
	ringResume
	h Healer
}

func (r *healResume) rejoin(s *Subscription, at position) catchUp {
	if c := r.ringResume.rejoin(s, at); !c.lost {
		return c
	}
	if ev, ok := r.h.Heal(); ok {
		if f, err := EncodeFrame("", ev.Name, ev.Data, ev.Raw); err == nil {
			return catchUp{heal: f}
		}
	}
	return catchUp{} // no state yet: the first read will be an event
}
