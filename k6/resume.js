// resume.js: every reader disconnects and resumes with Last-Event-ID, over
// and over, while a writer inside k6 publishes numbered events; written
// against k6 1.2+ and the xk6-sse extension v0.1.11
// (github.com/phymbert/xk6-sse); see README.md.
//
// Scenarios:
//   readers  KEYFLUX_VUS VUs, each one iteration that loops: open the
//            channel stream (with Last-Event-ID = the last id it saw, from
//            the second time on), read for about KEYFLUX_HOLD seconds,
//            close, stay away KEYFLUX_GAP seconds, reconnect. The hold is
//            drawn from [0.5, 1.5) x KEYFLUX_HOLD so that readers leave at
//            different moments of the writing.
//   writer   from KEYFLUX_RAMP on, KEYFLUX_RATE numbered events a second for
//            KEYFLUX_WRITE seconds through POST /api/channels/<channel>
//            (start Keyflux with --publish-token), then {"event": "end"}.
//
// Across a reconnect the numbers must go on without a gap or a repeat: the
// first event after a resume is the one after the last before it. A gap
// opened by a resume counts in keyflux_lost (tag at=resume) and fails the
// check "resumed without a gap"; a `reset` fails keyflux_resets unless
// KEYFLUX_RESET_OK=true, and then its gap is not counted as lost.
//
// Keyflux replays from a ring of --replay-size (1024) events per stream:
// KEYFLUX_RATE x KEYFLUX_GAP must stay well below it, or the resume is
// honestly answered with reset (expired-id).
//
// Environment (all optional except the token):
//   KEYFLUX_BASE, KEYFLUX_PUBLISH_TOKEN (required), KEYFLUX_CHANNEL (default k6:resume)
//   KEYFLUX_VUS     readers (default 50)
//   KEYFLUX_RATE    events a second (default 50)
//   KEYFLUX_WRITE   seconds of writing (default 60)
//   KEYFLUX_RAMP    seconds before the writing begins (default 5)
//   KEYFLUX_HOLD    seconds a reader reads before it disconnects (default 2)
//   KEYFLUX_GAP     seconds it stays away (default 1)
//   KEYFLUX_RESET_OK  true: a reset is allowed (not a failure)
//   KEYFLUX_P99_MS, KEYFLUX_CONNECT_P99_MS, KEYFLUX_CHECKS: threshold bounds

import exec from "k6/execution";
import { check, sleep } from "k6";
import { Counter } from "k6/metrics";

import {
  SeqTracker, env, envBool, envInt, envSeconds, open, paced, publish, received, reportLoss, schedule,
  streamURL, thresholds,
} from "./lib/keyflux.js";

const CHANNEL = env("KEYFLUX_CHANNEL", "k6:resume");
const VUS = envInt("KEYFLUX_VUS", 50);
const RATE = envSeconds("KEYFLUX_RATE", 50);
const WRITE = envSeconds("KEYFLUX_WRITE", 60);
const RAMP = envSeconds("KEYFLUX_RAMP", 5);
const HOLD = envSeconds("KEYFLUX_HOLD", 2);
const GAP = envSeconds("KEYFLUX_GAP", 1);
const RESET_OK = envBool("KEYFLUX_RESET_OK", false);
const GRACE = 20;

const STREAM = streamURL(`channels/${encodeURIComponent(CHANNEL)}`);
const resumes = new Counter("keyflux_resumes");

if (RATE * GAP > 512) {
  console.warn(`KEYFLUX_RATE x KEYFLUX_GAP = ${RATE * GAP} events missed per gap: near the server's --replay-size (1024 by default)`);
}

const extra = { "http_req_failed{name:publish}": ["rate==0"] };
if (RESET_OK) {
  extra.keyflux_resets = ["count>=0"]; // reported, not a failure
}

export const options = {
  scenarios: {
    readers: {
      executor: "per-vu-iterations",
      exec: "reader",
      vus: VUS,
      iterations: 1,
      maxDuration: `${RAMP + WRITE + GRACE + HOLD * 2 + GAP + 30}s`,
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
  thresholds: thresholds(["checks", "loss", "latency", "connect", "clean"], extra),
};

export function setup() {
  return schedule(RAMP, WRITE, GRACE);
}

export function writer() {
  const last = paced(RATE, WRITE, (seq) => {
    publish(CHANNEL, { w: "1", seq, ts: Date.now() });
  });
  publish(CHANNEL, { event: "end", w: "1", last });
}

export function reader(data) {
  const tracker = new SeqTracker();
  let lastId = "";
  let strict = false;
  let done = false;

  for (let round = 0; !done && Date.now() < data.stopAt; round++) {
    const resuming = round > 0;
    const leaveAt = Date.now() + HOLD * 1000 * (0.5 + Math.random());
    const openedAt = Date.now();
    let first = resuming; // the next numbered event is the first after a resume
    let gapless = true;
    let reset = false;

    const st = open(STREAM, {
      name: "resume",
      lastEventId: lastId,
      onConnected() {
        if (!resuming) {
          strict = Date.now() < data.writeAt;
        }
      },
      onReset(d) {
        reset = true;
        if (RESET_OK) {
          tracker.reset();
        } else {
          console.error(`reader ${exec.vu.idInTest}: reset ${JSON.stringify(d)} after Last-Event-ID ${lastId}`);
        }
      },
      onEvent(ev, d, close) {
        if (ev.name === "end" && d) {
          tracker.finish(d.w, d.last, strict ? 1 : 0);
          done = true;
          close();
          return;
        }
        if (ev.name !== "message" || !d || typeof d.seq !== "number") {
          return;
        }
        const phase = first ? "resume" : "live";
        if (first) {
          first = false;
          const before = tracker.last(d.w);
          if (before > 0 && d.seq !== before + 1 && !(reset && RESET_OK)) {
            gapless = false;
            console.error(`reader ${exec.vu.idInTest}: resumed at ${d.seq} after ${before} (Last-Event-ID ${lastId})`);
          }
        }
        // A replayed event waited for the reader to come back: its age is the
        // gap, not a delivery time.
        received(tracker.see(d.w, d.seq, phase, strict ? 1 : 0), d.ts >= openedAt ? d.ts : 0);
        if (Date.now() >= leaveAt) {
          close();
        }
      },
      onTick(ev, close) {
        if (Date.now() >= leaveAt || Date.now() > data.stopAt) {
          close();
        }
      },
    });

    if (resuming) {
      resumes.add(1);
      check(st, {
        "resumed": (s) => s.connected,
        "resumed without a gap": () => gapless,
      });
    } else {
      check(st, { "stream connected": (s) => s.connected });
    }
    if (!st.connected) {
      break; // refused or failed: counted by open()
    }
    lastId = st.lastId;
    if (!done) {
      sleep(GAP);
    }
  }

  const lost = reportLoss(tracker);
  if (Object.keys(lost).length > 0) {
    console.warn(`reader ${exec.vu.idInTest}: lost ${JSON.stringify(lost)}`);
  }
}
