// keyspace-stream.js: k6 load test of Keyflux's keyspace streams, written
// against the xk6-sse extension (github.com/phymbert/xk6-sse). Build k6 with
// it first; see README.md in this folder.
//
// Each VU opens one stream, checks that its first event is "connected",
// holds it for KEYFLUX_HOLD seconds while timing every keyspace event it
// receives, then closes it and reconnects (new iteration), so a run also
// exercises connect/disconnect churn. Write keys matching the pattern
// (for example with `sseload -mode fanout`) to give the streams traffic.
//
// Environment (all optional):
//   KEYFLUX_URL       stream URL (default http://127.0.0.1:8080/streams/keyspace?pattern=load:*)
//   KEYFLUX_VUS       concurrent streams (default 100)
//   KEYFLUX_RAMP      ramp-up time to KEYFLUX_VUS (default 30s)
//   KEYFLUX_DURATION  time at full load after the ramp (default 1m)
//   KEYFLUX_HOLD      seconds each stream stays open before reconnecting (default 60)
//
// xk6-sse's sse.open() blocks the VU while the stream is open, so JS timers
// do not run meanwhile: a stream is closed from its event handler, on the
// first event or heartbeat comment after its hold time. Keyflux sends a
// heartbeat (": ping") every --heartbeat (15s by default), so a stream ends
// at most one heartbeat interval after KEYFLUX_HOLD. The extension passes
// the "retry:" frame and heartbeat comments to the handler as events with
// an empty name; they are not counted as the first event.

import sse from "k6/x/sse";
import http from "k6/http";
import { check, fail } from "k6";
import { Counter, Rate, Trend } from "k6/metrics";

const URL = __ENV.KEYFLUX_URL || "http://127.0.0.1:8080/streams/keyspace?pattern=load:*";
const VUS = parseInt(__ENV.KEYFLUX_VUS || "100", 10);
const RAMP = __ENV.KEYFLUX_RAMP || "30s";
const DURATION = __ENV.KEYFLUX_DURATION || "1m";
const HOLD_MS = parseFloat(__ENV.KEYFLUX_HOLD || "60") * 1000;
const BASE = URL.match(/^https?:\/\/[^/]+/)[0];

// Time from starting sse.open() to the "connected" event: the server's
// Redis subscription is live from then on.
const timeToConnected = new Trend("keyflux_time_to_connected", true);
// Keyflux's receipt of the notification (the event's ts) to this VU. Both
// clocks must be the same machine's for this to mean anything.
const deliveryMs = new Trend("keyflux_delivery_ms", true);
const firstIsConnected = new Rate("keyflux_first_event_connected");
const keyspaceEvents = new Counter("keyflux_keyspace_events");
const resets = new Counter("keyflux_resets");
const streamErrors = new Counter("keyflux_stream_errors");

export const options = {
  scenarios: {
    streams: {
      executor: "ramping-vus",
      startVUs: 0,
      stages: [
        { duration: RAMP, target: VUS },
        { duration: DURATION, target: VUS },
      ],
      // Streams still open at the end are cut off after these: neither
      // ramp-down nor stop waits for a whole hold.
      gracefulRampDown: "20s",
      gracefulStop: "20s",
    },
  },
  thresholds: {
    checks: ["rate>0.99"],
    keyflux_first_event_connected: ["rate>0.99"],
    keyflux_time_to_connected: ["p(95)<1000"],
    keyflux_delivery_ms: ["p(99)<250"],
    keyflux_resets: ["count==0"],
    keyflux_stream_errors: ["count==0"],
  },
};

// setup refuses to start against a server that is not ready (its Redis
// unreachable), which would otherwise show up as thousands of failed streams.
export function setup() {
  const res = http.get(`${BASE}/readyz`);
  if (res.status !== 200) {
    fail(`${BASE}/readyz answered ${res.status}: ${res.body}`);
  }
}

export default function () {
  const started = Date.now();
  const deadline = started + HOLD_MS;
  let greeted = false;
  let closing = false;

  const params = { tags: { name: "keyspace-stream" } }; // one series whatever the query
  const res = sse.open(URL, params, function (client) {
    const closeWhenDue = function () {
      if (greeted && !closing && Date.now() >= deadline) {
        closing = true;
        client.close();
      }
    };

    client.on("event", function (event) {
      if (!event.name) { // the retry frame or a heartbeat comment
        closeWhenDue();
        return;
      }
      if (!greeted) {
        greeted = true;
        const ok = check(event, {
          "first event is connected": (e) => e.name === "connected",
          "connected describes a keyspace stream": (e) => {
            try {
              return JSON.parse(e.data).stream === "keyspace";
            } catch (_) {
              return false;
            }
          },
        });
        firstIsConnected.add(event.name === "connected");
        if (ok) {
          timeToConnected.add(Date.now() - started);
        } else {
          console.error(`first event is ${event.name}: ${event.data}`);
          closing = true;
          client.close();
        }
        return;
      }
      if (event.name === "reset") {
        resets.add(1);
      } else {
        keyspaceEvents.add(1);
        try {
          const data = JSON.parse(event.data);
          if (data.ts) {
            deliveryMs.add(Date.now() - data.ts);
          }
        } catch (_) {
          check(event, { "event data is JSON": () => false });
        }
      }
      closeWhenDue();
    });

    client.on("error", function (e) {
      if (closing) {
        return; // the read we cut short by closing
      }
      streamErrors.add(1);
      console.error(`stream error: ${e.error()}`);
    });
  });

  const opened = check(res, { "status is 200": (r) => r && r.status === 200 });
  if (opened && !greeted) { // a stream that ended before any event
    firstIsConnected.add(false);
  }
}
