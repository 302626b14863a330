package handlers

import (
	"encoding/json"
	"errors"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

// fasthttp v1.51.0 is lenient where a server facing the internet should not
// be: it takes a bare LF as a line end, serves control bytes in the target
// and requests without Host, and a header line without a colon, when no
// colon follows it in the buffer, makes it wait for more bytes until the
// read timeout although the head has ended. Fiber answers unknown
// methods with text/plain before any middleware, and fasthttp's parse
// errors carry the request's bytes. So heads are checked twice: on the wire,
// byte by byte as they are read (StrictHeads), for what fasthttp cannot
// parse; and once parsed, before Fiber routes them (Guard), for what it
// accepts but should not.

// MalformedHead is a request head that breaks HTTP/1.1's syntax.
type MalformedHead struct{ Reason string }

func (e *MalformedHead) Error() string { return "malformed request head: " + e.Reason }

// StrictHeads wraps ln so that each connection's request heads are checked
// as they are read. It must be the outermost wrapper: Guard finds its
// connections by type. A hijacked stream keeps the socket underneath (see
// socket), so an open stream costs nothing here: no memory, no goroutine.
func StrictHeads(ln net.Listener) net.Listener { return &strictListener{ln} }

type strictListener struct{ net.Listener }

func (l *strictListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &headConn{Conn: c}, nil
}

// socket is the connection under fasthttp's hijack wrapper and the
// listener's (StrictHeads): what a stream keeps, with nothing on top.
func socket(conn net.Conn) net.Conn {
	for {
		u, ok := conn.(interface{ UnsafeConn() net.Conn })
		if !ok {
			return conn
		}
		conn = u.UnsafeConn()
	}
}

// headState is where headConn is in a request head.
type headState uint8

const (
	atRequest   headState = iota // before the request line; empty lines may come first
	afterCR0                     // a CR before the request line
	requestLine                  // in the request line
	afterCR                      // a CR ending a line
	lineStart                    // at the start of a header line, or of the empty line
	headerName                   // in a header's name
	headerValue                  // in a header's value
	finalCR                      // the CR of the empty line ending the head
	inBody                       // after the head: bytes pass, counted
	unchecked                    // bytes pass, uncounted: the next head could not be found
)

// headConn checks heads on the wire, one byte at a time, with no buffer:
// a byte that breaks the syntax ends the connection's reading with a
// MalformedHead, which fasthttp hands to its ErrorHandler (serverError).
// Bytes before that byte are delivered first, so that fasthttp, which has
// not seen the head's end, asks again and gets the error. Only the reading
// goroutine of fasthttp touches it.
type headConn struct {
	net.Conn
	state headState
	body  int64 // bytes delivered since the head ended
	err   error // returned by every Read once the head is found malformed
}

// UnsafeConn is the connection underneath, for the hijacked streams.
func (c *headConn) UnsafeConn() net.Conn { return c.Conn }

func (c *headConn) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.Conn.Read(p)
	for i := 0; i < n; i++ {
		if c.state >= inBody {
			if c.state == inBody {
				c.body += int64(n - i)
			}
			return n, err
		}
		first := c.state == atRequest
		if reason := c.step(p[i]); reason != "" {
			c.err = &MalformedHead{Reason: reason}
			switch {
			case i > 0:
				return i, nil
			case first:
				// A request's first byte cannot end a head: delivered, it
				// lets fasthttp read on to the error instead of taking it
				// for a connection closed before a request.
				return 1, nil
			}
			return 0, c.err
		}
	}
	return n, err
}

// step advances the state by one byte; it returns why the byte is wrong.
func (c *headConn) step(b byte) string {
	switch c.state {
	case atRequest:
		switch {
		case b == '\r':
			c.state = afterCR0
		case b == '\n':
			return "bare LF (lines end with CRLF)"
		case isControl(b) || b == ' ':
			return "control byte before the request line"
		default:
			c.state = requestLine
		}
	case afterCR0:
		if b != '\n' {
			return "CR without LF"
		}
		c.state = atRequest
	case requestLine:
		switch {
		case b == '\r':
			c.state = afterCR
		case b == '\n':
			return "bare LF (lines end with CRLF)"
		case isControl(b):
			return "control byte in the request line"
		}
	case afterCR:
		if b != '\n' {
			return "CR without LF"
		}
		c.state = lineStart
	case lineStart:
		switch {
		case b == '\r':
			c.state = finalCR
		case b == '\n':
			return "bare LF (lines end with CRLF)"
		case b == ' ' || b == '\t':
			return "folded header line"
		case isToken(b):
			c.state = headerName
		default:
			return "header line without a name"
		}
	case headerName:
		switch {
		case b == ':':
			c.state = headerValue
		case b == '\r' || b == '\n':
			return "header line without a colon"
		case !isToken(b):
			return "invalid byte in a header name"
		}
	case headerValue:
		switch {
		case b == '\r':
			c.state = afterCR
		case b == '\n':
			return "bare LF (lines end with CRLF)"
		case isControl(b) && b != '\t':
			return "control byte in a header value"
		}
	case finalCR:
		if b != '\n' {
			return "CR without LF"
		}
		c.state, c.body = inBody, 0
	}
	return ""
}

// nextRequest is called once a request is read in full (its body too, as
// fasthttp reads it before the handler): if exactly that much was
// delivered, nothing of a pipelined request sits in fasthttp's buffer and
// the next bytes start a head. Otherwise (a chunked body, pipelining) the
// position of the next head is unknown, and the connection goes unchecked.
func (c *headConn) nextRequest(contentLength int) {
	if contentLength == -2 { // neither Content-Length nor Transfer-Encoding: no body
		contentLength = 0
	}
	if c.state == inBody && contentLength >= 0 && c.body == int64(contentLength) {
		c.state = atRequest
		return
	}
	c.state = unchecked
}

func isControl(b byte) bool { return b < 0x20 || b == 0x7f }

// isToken reports whether b may be in a header name (RFC 9110's tchar).
func isToken(b byte) bool {
	return b < 0x80 && (b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' ||
		strings.IndexByte("!#$%&'*+-.^_`|~", b) >= 0)
}

// Guard installs the parsed-head checks in front of app's routes and makes
// fasthttp's own errors (unparsable heads, heads or bodies too large, read
// timeouts) JSON. It does what no Fiber middleware can: Fiber answers an
// unknown method before its middleware runs.
func Guard(app *fiber.App) {
	srv := app.Server()
	next := srv.Handler
	srv.Handler = func(ctx *fasthttp.RequestCtx) {
		if reason := checkHead(&ctx.Request.Header); reason != "" {
			writeError(ctx, fiber.StatusBadRequest, reason)
			ctx.SetConnectionClose() // what follows on the connection is not to be trusted either
			return
		}
		if hc, ok := ctx.Conn().(*headConn); ok {
			hc.nextRequest(ctx.Request.Header.ContentLength())
		}
		next(ctx)
	}
	srv.ErrorHandler = serverError
}

// checkHead says what is wrong with a parsed head that fasthttp accepted.
func checkHead(h *fasthttp.RequestHeader) string {
	if !slices.Contains(fiber.DefaultMethods, string(h.Method())) {
		return "unknown method " + strconv.Quote(string(h.Method()))
	}
	if slices.ContainsFunc(h.RequestURI(), func(b byte) bool { return isControl(b) || b == ' ' }) {
		return "control byte or space in the request target"
	}
	if h.IsHTTP11() && len(h.Host()) == 0 {
		return "missing Host header (HTTP/1.1 requires it)"
	}
	return ""
}

// serverError is fasthttp's ErrorHandler: the answer to a request that
// could not be read. fasthttp closes the connection after it.
func serverError(ctx *fasthttp.RequestCtx, err error) {
	status, msg := fiber.StatusBadRequest, "malformed request"
	var mh *MalformedHead
	var ne net.Error
	switch {
	case errors.As(err, &mh):
		msg = mh.Error()
	case errors.As(err, new(*fasthttp.ErrSmallBuffer)):
		status, msg = fiber.StatusRequestHeaderFieldsTooLarge, "request head too large"
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		status, msg = fiber.StatusRequestEntityTooLarge, "request body too large"
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, fasthttp.ErrTimeout):
		status, msg = fiber.StatusRequestTimeout, "request not read in time"
	}
	writeError(ctx, status, msg)
}

// writeError is apiError for the places below Fiber.
func writeError(ctx *fasthttp.RequestCtx, status int, msg string) {
	body, _ := json.Marshal(fiber.Map{"error": msg})
	ctx.SetStatusCode(status)
	ctx.SetContentType(fiber.MIMEApplicationJSON)
	ctx.SetBody(body)
}
