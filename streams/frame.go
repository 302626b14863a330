package streams

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
)

// Frame is the exact SSE bytes of one event. It is encoded once and shared,
// read-only, by every subscriber of its topic.
type Frame struct {
	// ID is the event id ("" for frames without one, such as comments).
	ID string
	// Bytes is the wire form, ending with the blank line that dispatches it.
	Bytes []byte
}

// EncodeFrame writes one SSE event. Fields that must stay on one line (id,
// event) have line breaks removed; data is JSON (which escapes every control
// character) or raw text split into one data line per line, so nothing that
// comes from Redis can inject fields or events.
func EncodeFrame(id, name string, data any, raw []byte) (*Frame, error) {
	var b bytes.Buffer
	if id != "" {
		b.WriteString("id: ")
		b.WriteString(oneLine(id))
		b.WriteByte('\n')
	}
	if name != "" {
		b.WriteString("event: ")
		b.WriteString(oneLine(name))
		b.WriteByte('\n')
	}
	if raw != nil {
		writeDataLines(&b, raw)
	} else {
		js, err := json.Marshal(data)
		if err != nil {
			return nil, err
		}
		b.WriteString("data: ")
		b.Write(js)
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	return &Frame{ID: id, Bytes: b.Bytes()}, nil
}

// Comment returns a frame holding one SSE comment line, which clients ignore
// and proxies see as traffic.
func Comment(text string) *Frame {
	return &Frame{Bytes: []byte(": " + oneLine(text) + "\n\n")}
}

// RetryFrame tells the browser how long to wait before reconnecting; the sink
// sends it first on every stream.
func RetryFrame(ms int64) *Frame {
	return &Frame{Bytes: []byte("retry: " + strconv.FormatInt(ms, 10) + "\n\n")}
}

// writeDataLines splits on CRLF, CR and LF, as the SSE parser does, so the
// browser rebuilds the text with LF between the lines.
func writeDataLines(b *bytes.Buffer, raw []byte) {
	for {
		i := bytes.IndexAny(raw, "\r\n")
		b.WriteString("data: ")
		if i < 0 {
			b.Write(raw)
			b.WriteByte('\n')
			return
		}
		b.Write(raw[:i])
		b.WriteByte('\n')
		if raw[i] == '\r' && i+1 < len(raw) && raw[i+1] == '\n' {
			i++
		}
		raw = raw[i+1:]
	}
}

var lineBreaks = strings.NewReplacer("\r\n", " ", "\r", " ", "\n", " ", "\x00", "")

func oneLine(s string) string {
	if strings.ContainsAny(s, "\r\n\x00") {
		return lineBreaks.Replace(s)
	}
	return s
}
