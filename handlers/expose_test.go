package handlers

import (
	"errors"
	"testing"
)

// TestCheckDB: a database Redis does not have is 400 whatever the rules;
// one it has is 403 unless exposed (by default, the URL's only).
func TestCheckDB(t *testing.T) {
	status := func(err error) int {
		var br *badRequest
		if errors.As(err, &br) {
			return br.status
		}
		if err != nil {
			return -1
		}
		return 200
	}
	h := &handler{cfg: Config{DefaultDB: 2, Databases: 4}}
	for db, want := range map[int]int{0: 403, 2: 200, 3: 403, 4: 400, 99: 400} {
		if got := status(h.checkDB(db)); got != want {
			t.Errorf("db %d: %d, want %d", db, got, want)
		}
	}
	h.cfg.ExposeDB = []int{0, 3, 9}
	for db, want := range map[int]int{0: 200, 2: 403, 3: 200, 9: 400} {
		if got := status(h.checkDB(db)); got != want {
			t.Errorf("--expose-db 0,3,9: db %d: %d, want %d", db, got, want)
		}
	}
}
