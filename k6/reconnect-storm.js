// reconnect-storm.js: many clients reconnecting at the same moment, round
// after round, as after a deploy or a network blip; written against k6
// 1.2+ and the xk6-sse extension v0.1.11 (github.com/phymbert/xk6-sse);
// see README.md.
//
// KEYFLUX_VUS VUs each run KEYFLUX_ROUNDS iterations. Round r starts for
// every VU at the same wall-clock moment (the run's start + r x
// KEYFLUX_PERIOD, plus up to KEYFLUX_SPREAD ms of random delay, a client's
// reconnect jitter): each VU opens the stream, waits for "connected" and
// closes it at once (or after KEYFLUX_HOLD seconds, on the next event or
// heartbeat).
//
// A refusal is a result, not a crash: Keyflux answers 429 past its
// per-address limits (--max-clients-per-ip, --stream-rate-per-ip,
// --stream-burst-per-ip; from one load machine every VU is one address),
// and 503 with Retry-After past --max-topics, past --max-clients, or when
// too many connections of one address are still sending their request at
// the same moment (its listener keeps an eighth of the descriptors kept
// for requests per address, at least 8: seen here with 40 VUs at once).
// Refusals are counted in keyflux_refused{status} and their Retry-After in
// keyflux_retry_after_seconds; KEYFLUX_MAX_REFUSED adds a threshold on
// them. A stream that neither connects nor is refused (a reset, a timeout,
// 200 without "connected", a refusal without Retry-After) fails the checks
// and counts in keyflux_failed.
//
// Environment (all optional):
//   KEYFLUX_BASE      server (default http://127.0.0.1:8080)
//   KEYFLUX_PATH      stream below /streams/ (default channels/k6:storm)
//   KEYFLUX_VUS       clients (default 500)
//   KEYFLUX_ROUNDS    reconnects per client (default 5)
//   KEYFLUX_PERIOD    seconds between rounds (default 10)
//   KEYFLUX_SPREAD    ms of random delay per connect (default 0: all at once)
//   KEYFLUX_HOLD      seconds to keep each stream (default 0)
//   KEYFLUX_MAX_REFUSED  at most this many refusals (default: no bound)
//   KEYFLUX_CONNECT_P99_MS, KEYFLUX_CHECKS: threshold bounds

import exec from "k6/execution";
import { check } from "k6";
import { Rate, Trend } from "k6/metrics";

import { BASE, env, envInt, envSeconds, open, ready, sleepUntil, thresholds } from "./lib/keyflux.js";

const PATH = env("KEYFLUX_PATH", "channels/k6:storm").replace(/^\/+/, "");
const VUS = envInt("KEYFLUX_VUS", 500);
const ROUNDS = envInt("KEYFLUX_ROUNDS", 5);
const PERIOD = envSeconds("KEYFLUX_PERIOD", 10);
const SPREAD = envInt("KEYFLUX_SPREAD", 0);
const HOLD = envSeconds("KEYFLUX_HOLD", 0);
const MAX_REFUSED = env("KEYFLUX_MAX_REFUSED", "");

const URL = `${BASE}/streams/${PATH}`;
const admitted = new Rate("keyflux_admitted"); // per connect: true when it got 200
const retryAfter = new Trend("keyflux_retry_after_seconds");
const START = 2; // seconds from the run's start to round 0: every VU is running by then

const extra = { keyflux_failed: ["count==0"] };
if (MAX_REFUSED !== "") {
  extra.keyflux_refused = [`count<=${parseInt(MAX_REFUSED, 10)}`];
}

export const options = {
  scenarios: {
    storm: {
      executor: "per-vu-iterations",
      vus: VUS,
      iterations: ROUNDS,
      maxDuration: `${START + ROUNDS * PERIOD + HOLD + 60}s`,
    },
  },
  thresholds: thresholds(["checks", "connect"], extra),
};

export function setup() {
  ready();
  return { t0: Date.now() };
}

export default function (data) {
  const round = exec.vu.iterationInScenario;
  sleepUntil(data.t0 + (START + round * PERIOD) * 1000 + Math.random() * SPREAD);

  let leaveAt = 0;
  const st = open(URL, {
    name: "storm",
    onConnected(ev, d, close) {
      leaveAt = Date.now() + HOLD * 1000;
      if (HOLD <= 0) {
        close();
      }
    },
    onEvent(ev, d, close) {
      if (leaveAt > 0 && Date.now() >= leaveAt) {
        close();
      }
    },
    onTick(ev, close) {
      if (leaveAt > 0 && Date.now() >= leaveAt) {
        close();
      }
    },
  });

  admitted.add(st.status === 200);
  // xk6-sse keeps the response's headers, one string per name.
  const ra = parseFloat(st.headers["Retry-After"] || st.headers["retry-after"] || "");
  if (st.refused && Number.isFinite(ra)) {
    retryAfter.add(ra);
  }
  const ok = check(st, {
    "answered 200, 429 or 503": (s) => s.status === 200 || s.status === 429 || s.status === 503,
    "200 means connected": (s) => s.status !== 200 || s.connected,
    "a refusal says when to retry": (s) => !s.refused || Number.isFinite(ra),
  });
  if (!ok) {
    console.warn(`round ${round}: ${st.status} ${st.error} ${JSON.stringify(st.headers)}`);
  }
}
