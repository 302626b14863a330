package limit

// Descriptors splits the process's open-file limit between streams, other
// HTTP connections and a reserve for everything else (Redis connections,
// the listeners, the hang-up watcher, log files), so that running short of
// streams never leaves /healthz, /metrics or Redis without a descriptor.
type Descriptors struct {
	Limit    int // RLIMIT_NOFILE, the soft limit
	Streams  int // open streams at most: the default of --max-clients
	Requests int // connections not (yet) streams: fasthttp's Concurrency
}

// PlanDescriptors divides limit: 64 plus a sixty-fourth is kept from
// streams (1,024: 80; 20,000: 376; 1,048,576: 16,448); half of that may be
// request connections (health checks, the API, stream requests before they
// are streams, idle keep-alives), the other half is for Redis and the rest.
func PlanDescriptors(limit int) Descriptors {
	reserve := 64 + limit/64
	return Descriptors{Limit: limit, Streams: max(1, limit-reserve), Requests: max(16, reserve/2)}
}
