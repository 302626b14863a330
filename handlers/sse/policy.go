package sse

import "fmt"

// Policy is what happens to a client that cannot keep up: its queue of
// unsent frames would pass SinkOptions.QueueBytes.
type Policy string

const (
	// SlowDisconnect cuts the client off with a final comment; it
	// reconnects and resumes with Last-Event-ID. The default.
	SlowDisconnect Policy = "disconnect"
	// SlowReset drops what the client has not read and sends "reset".
	SlowReset Policy = "reset"
)

// ParsePolicy reads a policy by name; "" is the default.
func ParsePolicy(s string) (Policy, error) {
	switch p := Policy(s); p {
	case "":
		return SlowDisconnect, nil
	case SlowDisconnect, SlowReset:
		return p, nil
	}
	return "", fmt.Errorf("slow must be %s or %s", SlowDisconnect, SlowReset)
}
