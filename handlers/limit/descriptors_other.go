//go:build !unix

package limit

import "errors"

// FileLimit is unknown here: --max-clients must be given.
func FileLimit() (int, error) { return 0, errors.New("no open-file limit on this system") }
