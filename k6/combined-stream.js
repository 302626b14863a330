// combined-stream.js: several subscriptions on one connection
// (/streams?sub=...), with the writer inside k6; written against k6 1.2+
// and the xk6-sse extension v0.1.11 (github.com/phymbert/xk6-sse); see
// README.md.
//
// Each of KEYFLUX_VUS readers opens one combined stream of KEYFLUX_SUBS
// channel subs, c0:channels/<channel>:0 ... (plus, with KEYFLUX_KEYSPACE
// set, a keyspace sub ks:keyspace?pattern=<it>, which is only counted).
// From KEYFLUX_RAMP on, one writer publishes KEYFLUX_RATE events a second
// for KEYFLUX_WRITE seconds through POST /api/channels/<channel>:<i> (start
// Keyflux with --publish-token), round-robin over the channels, each
// channel's events numbered 1, 2, 3, ... with the send time; then one
// {"event": "end"} per channel saying its last number.
//
// An event of a combined stream keeps its name and its data becomes
// {"sub": <name>, "data": <the event's data>} (a channel's payload as a
// JSON string). Each reader checks:
//   - every sub sent its own "connected";
//   - per sub, no number lost (keyflux_lost) and none out of order or twice
//     (keyflux_reordered): order holds within a sub;
//   - across subs, ids only grow (keyflux_id_order; ids of the form
//     <epoch>-<n>, or Redis entry ids with --journal; positions are not
//     compared);
//   - latency (keyflux_latency) from the send time.
//
// Environment (all optional except the token):
//   KEYFLUX_BASE, KEYFLUX_PUBLISH_TOKEN (required)
//   KEYFLUX_CHANNEL   channel prefix (default k6:combined)
//   KEYFLUX_SUBS      channel subs per stream (default 3)
//   KEYFLUX_KEYSPACE  a key pattern for one more sub (default none)
//   KEYFLUX_VUS       readers (default 50)
//   KEYFLUX_RATE      events a second, all channels together (default 150)
//   KEYFLUX_WRITE     seconds of writing (default 30)
//   KEYFLUX_RAMP      seconds for the readers to connect first (default 10)
//   KEYFLUX_P99_MS, KEYFLUX_CONNECT_P99_MS, KEYFLUX_CHECKS: threshold bounds

import exec from "k6/execution";
import { check } from "k6";
import { Counter, Rate } from "k6/metrics";

import {
  SeqTracker, env, envInt, envSeconds, idAfter, open, paced, publish, received, reportLoss, schedule,
  streamURL, thresholds, unwrap,
} from "./lib/keyflux.js";

const CHANNEL = env("KEYFLUX_CHANNEL", "k6:combined");
const SUBS = envInt("KEYFLUX_SUBS", 3);
const KEYSPACE = env("KEYFLUX_KEYSPACE", "");
const VUS = envInt("KEYFLUX_VUS", 50);
const RATE = envSeconds("KEYFLUX_RATE", 150);
const WRITE = envSeconds("KEYFLUX_WRITE", 30);
const RAMP = envSeconds("KEYFLUX_RAMP", 10);
const GRACE = 20;

const channels = [];
const subs = [];
for (let i = 0; i < SUBS; i++) {
  channels.push(`${CHANNEL}:${i}`);
  subs.push(`c${i}:channels/${encodeURIComponent(`${CHANNEL}:${i}`)}`);
}
if (KEYSPACE) {
  subs.push(`ks:keyspace?pattern=${encodeURIComponent(KEYSPACE)}`);
}
const STREAM = streamURL("", { sub: subs });

const idOrder = new Rate("keyflux_id_order"); // per event with an id: true when it is after the previous one
const keyspaceEvents = new Counter("keyflux_keyspace_events");

export const options = {
  scenarios: {
    readers: {
      executor: "per-vu-iterations",
      exec: "reader",
      vus: VUS,
      iterations: 1,
      maxDuration: `${RAMP + WRITE + GRACE + 30}s`,
    },
    writer: {
      executor: "per-vu-iterations",
      exec: "writer",
      vus: 1,
      iterations: 1,
      startTime: `${RAMP}s`,
      maxDuration: `${WRITE + 60}s`,
    },
  },
  thresholds: thresholds(["checks", "loss", "latency", "connect", "clean"], {
    keyflux_id_order: ["rate==1"],
    "http_req_failed{name:publish}": ["rate==0"],
  }),
};

export function setup() {
  return schedule(RAMP, WRITE, GRACE);
}

export function writer() {
  const seq = channels.map(() => 0);
  paced(RATE, WRITE, (n) => {
    const i = (n - 1) % SUBS;
    seq[i]++;
    publish(channels[i], { w: "1", seq: seq[i], ts: Date.now() });
  });
  channels.forEach((ch, i) => publish(ch, { event: "end", w: "1", last: seq[i] }));
}

export function reader(data) {
  const tracker = new SeqTracker(); // sources: the sub names
  const greeted = new Set();
  const ended = new Set();
  let strict = false;
  let prevId = "";

  const st = open(STREAM, {
    name: "combined",
    onConnected(ev, d) {
      if (greeted.size === 0) {
        strict = Date.now() < data.writeAt;
      }
      if (d && typeof d.sub === "string") {
        greeted.add(d.sub);
      }
    },
    onEvent(ev, d, close) {
      if (ev.id) {
        const after = prevId === "" ? true : idAfter(ev.id, prevId);
        if (after !== null) {
          idOrder.add(after);
        }
        prevId = ev.id;
      }
      const u = unwrap(d);
      if (!u) {
        return;
      }
      if (u.sub === "ks") {
        keyspaceEvents.add(1);
        return;
      }
      if (ev.name === "end" && u.data) {
        tracker.finish(u.sub, u.data.last, strict ? 1 : 0);
        ended.add(u.sub);
        if (ended.size >= SUBS) {
          close();
        }
        return;
      }
      if (ev.name !== "message" || !u.data || typeof u.data.seq !== "number") {
        return;
      }
      received(tracker.see(u.sub, u.data.seq, "live", strict ? 1 : 0), u.data.ts);
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
    "every sub sent connected": () => greeted.size === subs.length,
    "every channel's end arrived": () => ended.size >= SUBS,
  });
  if (Object.keys(lost).length > 0) {
    console.warn(`reader ${exec.vu.idInTest}: lost ${JSON.stringify(lost)}`);
  }
}
