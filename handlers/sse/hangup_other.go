//go:build !linux

package sse

// hangups is Linux-only; elsewhere the heartbeat finds vanished clients.
type hangups struct{}

func newHangups() *hangups                { return nil }
func (w *hangups) watch(*client) uint32   { return 0 }
func (w *hangups) forget(*client, uint32) {}
func (w *hangups) close()                 {}
