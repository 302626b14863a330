// Package auth decides who a request comes from and what that identity may
// read: signed tokens (jwt.go), Spring Session cookies (spring_session.go),
// or anyone (none). An Identity carries Scopes, checked against every name
// and glob a request could ever deliver (scope.go), and says when it ends,
// so that the streams it opened can be told and closed.
//
// It knows no HTTP framework and no Redis client: requests reach it as a
// Request, and Spring Session's hashes through a SessionStore.
package auth
