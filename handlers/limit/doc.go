// Package limit decides what one client address, and all clients together,
// may hold: how many streams are open (in all and per address), how fast an
// address may open new ones, and what a descriptor shortage does to the
// listener. It knows which address a request comes from, trusting
// X-Forwarded-For only from configured proxies.
package limit
