// fanout-latency.js: fan-out of one channel with the writer inside k6,
// written against k6 1.2+ and the xk6-sse extension v0.1.11
// (github.com/phymbert/xk6-sse); see README.md.
//
// Two scenarios on one timeline:
//   readers  KEYFLUX_READERS VUs each open /streams/channels/<channel> at
//            once and read until every writer has said it is done.
//   writer   from KEYFLUX_RAMP on, KEYFLUX_WRITERS VUs each publish
//            KEYFLUX_RATE events a second for KEYFLUX_WRITE seconds through
//            POST /api/channels/<channel> (start Keyflux with
//            --publish-token), one after another, numbered 1, 2, 3, ...
//            with the send time: {"w": <writer>, "seq": n, "ts": <ms>}.
//            Then one {"event": "end", "w": <writer>, "last": n}.
//
// Each reader counts, per writer, the numbers it never got (keyflux_lost:
// gaps, and numbers after its last one once "end" says how many there
// were; a reader connected before the writer began must also get number 1)
// and those that came out of order or twice (keyflux_reordered), and
// times every delivery from the send time to its handler
// (keyflux_latency: both clocks are this machine's).
//
// Environment (all optional except the token):
//   KEYFLUX_BASE           server (default http://127.0.0.1:8080)
//   KEYFLUX_PUBLISH_TOKEN  --publish-token of the server (required)
//   KEYFLUX_CHANNEL        channel (default k6:fanout)
//   KEYFLUX_READERS        streams (default 100)
//   KEYFLUX_WRITERS        publishers, each numbering its own events (default 1)
//   KEYFLUX_RATE           events a second per writer (default 100)
//   KEYFLUX_WRITE          seconds of writing (default 30)
//   KEYFLUX_RAMP           seconds for the readers to connect first (default 10)
//   KEYFLUX_SIZE           bytes of padding per event (default 0)
//   KEYFLUX_P99_MS, KEYFLUX_CONNECT_P99_MS, KEYFLUX_CHECKS: threshold bounds
//
// A reader closes on the writers' "end", or on the first event or heartbeat
// 20 s after the writing should have ended (a lost "end").

import exec from "k6/execution";
import { check } from "k6";

import {
  BASE, SeqTracker, env, envInt, envSeconds, metrics, open, paced, publish, received, reportLoss,
  schedule, streamURL, thresholds,
} from "./lib/keyflux.js";

const CHANNEL = env("KEYFLUX_CHANNEL", "k6:fanout");
const READERS = envInt("KEYFLUX_READERS", 100);
const WRITERS = envInt("KEYFLUX_WRITERS", 1);
const RATE = envSeconds("KEYFLUX_RATE", 100);
const WRITE = envSeconds("KEYFLUX_WRITE", 30);
const RAMP = envSeconds("KEYFLUX_RAMP", 10);
const SIZE = envInt("KEYFLUX_SIZE", 0);
const GRACE = 20; // seconds after the writing a reader waits for the "end"

const STREAM = streamURL(`channels/${encodeURIComponent(CHANNEL)}`);
const PAD = "x".repeat(SIZE);

export const options = {
  scenarios: {
    readers: {
      executor: "per-vu-iterations",
      exec: "reader",
      vus: READERS,
      iterations: 1,
      maxDuration: `${RAMP + WRITE + GRACE + 30}s`,
    },
    writer: {
      executor: "per-vu-iterations",
      exec: "writer",
      vus: WRITERS,
      iterations: 1,
      startTime: `${RAMP}s`,
      maxDuration: `${WRITE + 60}s`,
    },
  },
  thresholds: thresholds(["checks", "loss", "latency", "connect", "clean"], {
    "http_req_failed{name:publish}": ["rate==0"],
  }),
};

export function setup() {
  return schedule(RAMP, WRITE, GRACE);
}

export function writer() {
  const w = String(exec.vu.idInTest);
  const last = paced(RATE, WRITE, (seq) => {
    publish(CHANNEL, { w, seq, ts: Date.now(), pad: PAD });
  });
  publish(CHANNEL, { event: "end", w, last });
}

export function reader(data) {
  const tracker = new SeqTracker();
  const ended = new Set();
  let strict = false; // subscribed before the writing began: number 1 is due

  const st = open(STREAM, {
    name: "fanout",
    onConnected(ev, d) {
      strict = Date.now() < data.writeAt;
      check(d, { "connected describes a channel stream": (x) => x !== undefined && x.stream === "channel" });
    },
    onEvent(ev, d, close) {
      if (ev.name === "end" && d) {
        tracker.finish(d.w, d.last, strict ? 1 : 0);
        ended.add(d.w);
        if (ended.size >= WRITERS) {
          close();
        }
        return;
      }
      if (ev.name !== "message" || !d || typeof d.seq !== "number") {
        return; // not ours
      }
      received(tracker.see(d.w, d.seq, "live", strict ? 1 : 0), d.ts);
    },
    onTick(ev, close) {
      if (Date.now() > data.stopAt) {
        close();
      }
    },
  });

  const lost = reportLoss(tracker);
  check(st, {
    "stream connected": (s) => s.connected,
    "every writer's end arrived": () => ended.size >= WRITERS,
  });
  if (Object.keys(lost).length > 0) {
    console.warn(`reader ${exec.vu.idInTest}: lost ${JSON.stringify(lost)} (${BASE})`);
  }
}
