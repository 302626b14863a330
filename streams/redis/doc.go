// Package redis is Keyflux's Redis adapter: every rueidis call lives here.
// It connects (a single node, with the ordering rules the sources rely
// on), shares subscriptions between streams, and turns keyspace
// notifications, key watches, pub/sub channels and Redis Streams into the
// rxgo Observables of the core's specs. It knows nothing of HTTP.
package redis
