//go:build unix

package limit

import "syscall"

// FileLimit is the process's soft RLIMIT_NOFILE (Go raises it to the hard
// limit at start).
func FileLimit() (int, error) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, err
	}
	if r.Cur > 1<<30 {
		return 1 << 30, nil // "unlimited": any large number does
	}
	return int(r.Cur), nil
}
