package redis

import (
	"context"
	"log/slog"
	"strconv"

	"github.com/redis/rueidis"
)

// defaultDatabases is Redis's default for the databases setting.
const defaultDatabases = 16

// databases is how many databases Redis has, so that a stream of one it
// does not have is refused instead of staying silent. It asks CONFIG GET
// databases unless config is false (--keyspace-config none: managed Redis,
// which refuses CONFIG, gets none); otherwise, or where CONFIG is refused,
// it finds the highest database SELECT accepts, by bisection on a dedicated
// connection that is switched back to db before it returns to the pool;
// failing that too, it assumes Redis's default, 16. A cluster has database
// 0 only.
func databases(ctx context.Context, client rueidis.Client, db int, config bool, logger *slog.Logger) int {
	if client.Mode() == rueidis.ClientModeCluster {
		return 1
	}
	var err error
	if config {
		var m map[string]string
		m, err = client.Do(ctx, client.B().ConfigGet().Parameter("databases").Build()).AsStrMap()
		if n, aerr := strconv.Atoi(m["databases"]); err == nil && aerr == nil && n > 0 {
			return n
		}
	}
	n, perr := probeDatabases(ctx, client, db)
	if perr != nil {
		logger.Warn("cannot tell how many databases Redis has; assuming 16", "config", err, "select", perr)
		return defaultDatabases
	}
	return n
}

// probeDatabases finds the number of databases with SELECT.
func probeDatabases(ctx context.Context, client rueidis.Client, db int) (n int, err error) {
	dc, release := client.Dedicate()
	defer func() {
		if dc.Do(ctx, dc.B().Select().Index(int64(db)).Build()).Error() != nil {
			dc.Close() // not back to the pool in another database
		}
		release()
	}()
	selects := func(n int) (bool, error) {
		err := dc.Do(ctx, dc.B().Select().Index(int64(n)).Build()).Error()
		if _, ok := rueidis.IsRedisErr(err); ok {
			return false, nil // "ERR DB index is out of range"
		}
		return err == nil, err
	}
	// Database lo exists, database hi does not. Keyflux's db parameter
	// stays below 2^16, so more is as good as 2^16.
	lo, hi := db, 1<<16
	if ok, err := selects(hi); err != nil || ok {
		return hi, err
	}
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		ok, err := selects(mid)
		if err != nil {
			return 0, err
		}
		if ok {
			lo = mid
		} else {
			hi = mid
		}
	}
	return hi, nil
}
