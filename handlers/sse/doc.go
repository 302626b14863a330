// Package sse is Keyflux's sink: it owns the SSE connections, taken over
// (hijacked) from fasthttp once their request is validated, and writes the
// hub's shared frames to them through bounded per-client queues, with one
// writev per batch, heartbeats, and hang-up detection. It knows nothing of
// Redis or of routes.
package sse
