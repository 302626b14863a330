package streams

// Internals the external tests (package streams_test) reach for.

// ParseID is the position of one of h's ids.
func (h *Hub) ParseID(id string) (uint64, bool) { return h.ids.parse(id) }

// FutureID is an id of h that it has not issued yet.
func (h *Hub) FutureID(ahead uint64) string { return h.ids.format(h.ids.issued() + ahead) }

// Publisher returns a function that publishes ev on the topic of key, as
// its pipeline would, once that topic is ready; nil if it never is.
func (h *Hub) Publisher(key string) func(Event) {
	h.mu.Lock()
	t := h.topics[key]
	h.mu.Unlock()
	if t == nil {
		return nil
	}
	t.mu.Lock()
	ready := t.ready
	t.mu.Unlock()
	if !ready {
		return nil
	}
	return t.publish
}
