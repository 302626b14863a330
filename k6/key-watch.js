// key-watch.js: key watches (/streams/keys?key=...) under writes; written
// against k6 1.2+ and the xk6-sse extension v0.1.11
// (github.com/phymbert/xk6-sse); see README.md.
//
// KEYFLUX_VUS watchers each watch the same KEYFLUX_KEYS keys,
// <KEYFLUX_PREFIX>0 ... <KEYFLUX_PREFIX>n-1: a "snapshot" per key, then
// "update" (and "delete") on every change.
//
// k6 cannot talk to Redis, and Keyflux has no HTTP way to SET a key, but it
// can append to a Redis Stream key (POST /api/log/<key>, XADD), which is a
// change like any other. So with KEYFLUX_WRITER=log (the default) the
// writer inside k6 appends KEYFLUX_RATE entries a second for KEYFLUX_WRITE
// seconds, round-robin over the keys (start Keyflux with --publish-token;
// the keys must be free or Redis Streams). A watched Redis Stream's value
// is {"length": n, "last_id": "<ms>-<n>"}, so each watcher checks that:
//   - a key's length never goes backwards (keyflux_reordered); key watches
//     coalesce: under a burst a watcher gets the latest value, not every
//     one, so a skipped length is not a loss;
//   - the final value of every key arrives: its length at the end is the
//     one setup read plus the writer's appends (keyflux_lost: one sample
//     per watched key, true when its final value never arrived);
//   - latency (keyflux_latency) runs from the entry's id time (Redis's
//     clock at the XADD) to the handler: run Redis on this machine.
//
// KEYFLUX_WRITER=external starts no writer: change the keys yourself while
// the watchers run for KEYFLUX_RAMP + KEYFLUX_WRITE seconds, e.g.
//   for i in $(seq 1 3000); do
//     redis-cli -p <port> SET "k6:watch:$((i % 10))" "{\"seq\":$i,\"ts\":$(date +%s%3N)}" >/dev/null
//   done
// (or `go run ./k6/sseload -mode fanout ...`). A string value holding JSON
// with "seq" is checked never to go backwards per key (from the first
// update on: a previous run's snapshot may hold higher numbers), and one
// with "ts" (Unix ms) gives the latency; there is no final-value check.
//
// Environment (all optional except the token with KEYFLUX_WRITER=log):
//   KEYFLUX_BASE, KEYFLUX_PUBLISH_TOKEN
//   KEYFLUX_PREFIX  key prefix, inside --expose (default k6:watch:)
//   KEYFLUX_KEYS    keys per watch (default 10; at most --watch-max-keys)
//   KEYFLUX_VUS     watchers (default 100)
//   KEYFLUX_WRITER  log (default) or external
//   KEYFLUX_RATE    appends a second (default 50)
//   KEYFLUX_WRITE   seconds of writing (default 30)
//   KEYFLUX_RAMP    seconds for the watchers to connect first (default 10)
//   KEYFLUX_P99_MS, KEYFLUX_CONNECT_P99_MS, KEYFLUX_CHECKS: threshold bounds
//
// A watcher closes once every key has its final value, or on the first
// event or heartbeat 20 s after the writing (external: at its end).

import http from "k6/http";
import exec from "k6/execution";
import { check, fail } from "k6";
import { Counter } from "k6/metrics";

import {
  BASE, appendLog, env, envInt, envSeconds, metrics, needPublishToken, open, paced, parseJSON, ready,
  streamURL, thresholds,
} from "./lib/keyflux.js";

const PREFIX = env("KEYFLUX_PREFIX", "k6:watch:");
const KEYS = envInt("KEYFLUX_KEYS", 10);
const VUS = envInt("KEYFLUX_VUS", 100);
const WRITER = env("KEYFLUX_WRITER", "log");
const RATE = envSeconds("KEYFLUX_RATE", 50);
const WRITE = envSeconds("KEYFLUX_WRITE", 30);
const RAMP = envSeconds("KEYFLUX_RAMP", 10);
const GRACE = WRITER === "log" ? 20 : 0;

if (WRITER !== "log" && WRITER !== "external") {
  throw new Error(`KEYFLUX_WRITER must be log or external, not ${WRITER}`);
}

const keys = [];
for (let i = 0; i < KEYS; i++) {
  keys.push(`${PREFIX}${i}`);
}
const STREAM = streamURL("keys", { key: keys });
const updates = new Counter("keyflux_updates"); // tagged event: snapshot|update|delete

// appended[i]: how many entries the writer appends to keys[i] (entry n goes
// to keys[(n - 1) % KEYS]).
const TOTAL = Math.floor(RATE * WRITE);
function appended(i) {
  return Math.floor(TOTAL / KEYS) + (i < TOTAL % KEYS ? 1 : 0);
}

const scenarios = {
  watchers: {
    executor: "per-vu-iterations",
    exec: "watcher",
    vus: VUS,
    iterations: 1,
    maxDuration: `${RAMP + WRITE + GRACE + 30}s`,
  },
};
if (WRITER === "log") {
  scenarios.writer = {
    executor: "per-vu-iterations",
    exec: "writer",
    vus: 1,
    iterations: 1,
    startTime: `${RAMP}s`,
    maxDuration: `${WRITE + 60}s`,
  };
}

const which = WRITER === "log" ? ["checks", "loss", "latency", "connect", "clean"] : ["checks", "latency", "connect"];
export const options = {
  scenarios,
  thresholds: thresholds(which, WRITER === "log" ? {} : { keyflux_reordered: ["rate==0"], keyflux_stream_errors: ["count==0"] }),
};

// setup reads each key's length before the writing (GET /api/keys/<key>):
// the final length is that plus the appends.
export function setup() {
  if (WRITER === "log") {
    needPublishToken();
  }
  ready();
  const base = [];
  for (const k of keys) {
    const res = http.get(`${BASE}/api/keys/${encodeURIComponent(k)}`, { tags: { name: "api-keys" } });
    if (res.status === 404) {
      base.push(0);
      continue;
    }
    if (res.status !== 200) {
      fail(`GET /api/keys/${k} answered ${res.status}: ${res.body}`);
    }
    const s = res.json();
    if (WRITER === "log" && s.type !== "stream") {
      fail(`${k} is a ${s.type}: the writer appends to Redis Streams; choose a free KEYFLUX_PREFIX`);
    }
    base.push(s.type === "stream" && s.value ? s.value.length : 0);
  }
  const t0 = Date.now();
  return { t0, base, stopAt: t0 + (RAMP + WRITE + GRACE) * 1000 };
}

export function writer() {
  paced(RATE, WRITE, (n) => {
    appendLog(keys[(n - 1) % KEYS], { seq: String(n), ts: String(Date.now()) });
  });
}

// progress reads what a snapshot or update says: the order number (a
// stream's length, or a string value's "seq") and the time it was made.
function progress(value) {
  if (value && typeof value === "object" && typeof value.length === "number") { // a Redis Stream
    const ms = value.last_id ? parseInt(value.last_id, 10) : 0;
    return { n: value.length, ts: ms };
  }
  if (typeof value === "string") {
    const v = parseJSON(value);
    if (v && typeof v === "object") {
      return { n: typeof v.seq === "number" ? v.seq : -1, ts: typeof v.ts === "number" ? v.ts : 0 };
    }
  }
  return { n: -1, ts: 0 };
}

export function watcher(data) {
  const want = {}; // key -> final length (log writer)
  keys.forEach((k, i) => {
    want[k] = data.base[i] + appended(i);
  });
  const at = {}; // key -> latest order number seen
  let snapshots = 0;

  const done = () => WRITER === "log" && keys.every((k) => at[k] !== undefined && at[k] >= want[k]);

  const st = open(STREAM, {
    name: "key-watch",
    onConnected(ev, d) {
      check(d, { "connected describes a key watch": (x) => x !== undefined && x.stream === "keys" });
    },
    onEvent(ev, d, close) {
      updates.add(1, { event: ev.name });
      if (!d || typeof d.key !== "string") {
        return;
      }
      if (ev.name === "delete") {
        delete at[d.key];
        return;
      }
      if (ev.name !== "snapshot" && ev.name !== "update") {
        return;
      }
      if (ev.name === "snapshot") {
        snapshots++;
      }
      const p = progress(d.value);
      // An external writer's numbers may start again below a previous
      // run's: its order is checked from the first update on.
      if (p.n >= 0 && !(WRITER === "external" && ev.name === "snapshot")) {
        const before = at[d.key];
        if (before !== undefined) {
          metrics.reordered.add(p.n < before); // values never go backwards
        }
        at[d.key] = before === undefined ? p.n : Math.max(before, p.n);
      }
      if (ev.name === "update") {
        metrics.events.add(1);
        if (p.ts > 0) {
          metrics.latency.add(Date.now() - p.ts);
        }
      }
      if (done()) {
        close();
      }
    },
    onTick(ev, close) {
      if (Date.now() > data.stopAt) {
        close();
      }
    },
  });

  check(st, {
    "stream connected": (s) => s.connected,
    "a snapshot per key": () => snapshots >= KEYS,
  });
  if (WRITER === "log") {
    const short = keys.filter((k) => !(at[k] >= want[k]));
    for (const k of keys) {
      metrics.lost.add(short.includes(k), { at: "final" });
    }
    check(null, { "every key's final value arrived": () => short.length === 0 });
    if (short.length > 0) {
      console.warn(`watcher ${exec.vu.idInTest}: final value missing for ${short.map((k) => `${k} (${at[k]} of ${want[k]})`).join(", ")}`);
    }
  }
}
