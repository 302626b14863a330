// Package testkit is Keyflux's one set of test helpers, shared by every
// package's tests: a private redis-server per test (redis.go), a local Redis
// Cluster with failover, kill, slot moves and new masters (cluster*.go),
// waiting for a condition (wait.go), INFO parsing (info.go), reading SSE
// with the independent go-sse parser, from frames or from real HTTP streams
// (sse.go), a hub receiver that records what it is sent (recorder.go), and
// nginx in front of test servers with the deployment's configuration
// (nginx.go).
package testkit
