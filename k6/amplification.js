// amplification.js: k6 version of `sseload -mode amplification` (issue 10,
// finding 3), written against the xk6-sse extension
// (github.com/phymbert/xk6-sse); build k6 with it first, see README.md.
//
// KEYFLUX_OPENS times, with at most KEYFLUX_PARALLEL streams open at once,
// a VU opens a stream whose URL holds its own number ({n} in KEYFLUX_URL,
// so every stream is a topic of its own), waits for "connected" (Keyflux's
// Redis subscription is live) and closes it. On a server without limits
// each closed stream leaves a lingering topic and one PSUBSCRIBE in Redis,
// and Redis then matches every keyspace notification against all of them.
//
// Environment (all optional):
//   KEYFLUX_URL        stream URL with {n} (default http://127.0.0.1:8080/streams/keyspace?pattern=amp:{n}:*)
//   KEYFLUX_OPENS      streams to open and close (default 20000)
//   KEYFLUX_PARALLEL   streams open at once, i.e. VUs (default 2)
//   KEYFLUX_MAX        longest the opens may take (default 10m)
//
// The summary counts connected streams and refusals by status
// (keyflux_refused, tagged status); setup and teardown print the server's
// /metrics before and after: topics (keyflux_streams_active), upstream
// subscriptions, goroutines and RSS. k6 has no Redis client without another
// extension, so PUBSUB NUMPAT and SET throughput are measured around the run
// with redis-cli and redis-benchmark (README.md); sseload does all of it in
// one run.
//
// The stream is closed from its "connected" handler. Releases of xk6-sse
// whose client.close() drains the body first do not return from it on an
// endless stream: use one that closes at once (README.md).

import sse from "k6/x/sse";
import http from "k6/http";
import exec from "k6/execution";
import { check, fail } from "k6";
import { Counter, Trend } from "k6/metrics";

const URL = __ENV.KEYFLUX_URL || "http://127.0.0.1:8080/streams/keyspace?pattern=amp:{n}:*";
const OPENS = parseInt(__ENV.KEYFLUX_OPENS || "20000", 10);
const PARALLEL = parseInt(__ENV.KEYFLUX_PARALLEL || "2", 10);
const MAX = __ENV.KEYFLUX_MAX || "10m";
const BASE = URL.match(/^https?:\/\/[^/]+/)[0];

if (!URL.includes("{n}")) {
  throw new Error(`KEYFLUX_URL ${URL} must hold {n}: each open needs a topic of its own`);
}

const connected = new Counter("keyflux_connected");
const refused = new Counter("keyflux_refused"); // tagged with the status
const failed = new Counter("keyflux_failed"); // neither connected nor refused
const timeToConnected = new Trend("keyflux_time_to_connected", true);

export const options = {
  scenarios: {
    amplification: {
      executor: "shared-iterations",
      vus: PARALLEL,
      iterations: OPENS,
      maxDuration: MAX,
    },
  },
  thresholds: {
    // A refusal (429, 503) is the server protecting itself; anything else
    // (a reset, a stream that never says "connected") is a failure.
    keyflux_failed: ["count==0"],
  },
};

// The figures compared before and after the opens.
const WATCHED = [
  "keyflux_streams_active",
  "keyflux_upstream_subscriptions",
  "go_goroutines",
  "keyflux_clients_connected",
  "process_resident_memory_bytes",
];

function scrape() {
  const res = http.get(`${BASE}/metrics`, { tags: { name: "metrics" } });
  if (res.status !== 200) {
    return null;
  }
  const out = {};
  for (const line of res.body.split("\n")) {
    const [name, value] = line.split(" ");
    if (WATCHED.includes(name)) {
      out[name] = parseFloat(value);
    }
  }
  return out;
}

export function setup() {
  const ready = http.get(`${BASE}/readyz`);
  if (ready.status !== 200) {
    fail(`${BASE}/readyz answered ${ready.status}: ${ready.body}`);
  }
  return { before: scrape() };
}

export default function () {
  const n = exec.scenario.iterationInTest;
  const started = Date.now();
  let greeted = false;
  const res = sse.open(URL.replaceAll("{n}", String(n)), { tags: { name: "amplification" } }, function (client) {
    client.on("event", function (event) {
      if (event.name === "connected" && !greeted) {
        greeted = true;
        timeToConnected.add(Date.now() - started);
        client.close();
      }
    });
    client.on("error", function () {}); // counted below from the outcome
  });
  const status = res ? res.status : 0;
  if (greeted) {
    connected.add(1);
  } else if (status >= 400) {
    refused.add(1, { status: String(status) });
  } else {
    failed.add(1, { status: String(status) });
  }
  check(res, { "connected or refused": () => greeted || status >= 400 });
}

export function teardown(data) {
  const after = scrape();
  if (!after) {
    console.error(`${BASE}/metrics did not answer after the opens: has the server exited?`);
    return;
  }
  for (const name of WATCHED) {
    const b = data.before ? data.before[name] : undefined;
    const a = after[name];
    if (name === "process_resident_memory_bytes") {
      console.log(`server RSS: ${(b / 1048576).toFixed(1)} MiB -> ${(a / 1048576).toFixed(1)} MiB`);
    } else {
      console.log(`${name}: ${b} -> ${a}`);
    }
  }
}
