// keyflux.js: what the k6 scenarios in k6/ share: environment parsing, one
// stream opened with the xk6-sse extension (github.com/phymbert/xk6-sse,
// written against v0.1.11), publishing through Keyflux's HTTP API, the
// metrics every scenario reports and the thresholds a user can keep.
//
// xk6-sse's sse.open() blocks the VU while its stream is open: JS timers do
// not run, and a stream is closed from its event handler. Keyflux sends a
// heartbeat (": ping") after each --heartbeat (15s) without traffic, which
// reaches the handler as an event with an empty name, so a reader that is
// past its deadline closes on the next event or heartbeat at the latest.

import sse from "k6/x/sse";
import http from "k6/http";
import { check, fail, sleep } from "k6";
import { Counter, Rate, Trend } from "k6/metrics";

import { SeqTracker, idAfter, parseJSON, unwrap } from "./seq.js";

export { SeqTracker, idAfter, parseJSON, unwrap };

// ---- environment -----------------------------------------------------------

export function env(name, fallback) {
  const v = __ENV[name];
  return v === undefined || v === "" ? fallback : v;
}

export function envInt(name, fallback) {
  const v = parseInt(env(name, String(fallback)), 10);
  if (!Number.isFinite(v)) {
    throw new Error(`${name} must be a whole number, not ${__ENV[name]}`);
  }
  return v;
}

// envSeconds reads a number of seconds (fractions allowed).
export function envSeconds(name, fallback) {
  const v = parseFloat(env(name, String(fallback)));
  if (!Number.isFinite(v) || v < 0) {
    throw new Error(`${name} must be a number of seconds, not ${__ENV[name]}`);
  }
  return v;
}

export function envBool(name, fallback) {
  const v = env(name, fallback ? "true" : "false").toLowerCase();
  return v === "1" || v === "true" || v === "yes";
}

// The server, without a trailing slash.
export const BASE = env("KEYFLUX_BASE", "http://127.0.0.1:8080").replace(/\/+$/, "");
// --publish-token of the server (KEYFLUX_TOKEN is accepted, as stalled-crowd.js reads it).
export const PUBLISH_TOKEN = env("KEYFLUX_PUBLISH_TOKEN", env("KEYFLUX_TOKEN", ""));
// A bearer token for the streams themselves (--auth jwt); empty: none.
export const STREAM_TOKEN = env("KEYFLUX_STREAM_TOKEN", "");

// ---- metrics ---------------------------------------------------------------
// Created here, in the init context, once per VU; a scenario reports the
// ones it feeds and sets thresholds on those only.

export const metrics = {
  // One sample per event a writer sent: true when the reader never got it.
  // Tagged at=head|live|resume|tail: where the gap opened.
  lost: new Rate("keyflux_lost"),
  // One sample per event received: true when it came after a later one or twice.
  reordered: new Rate("keyflux_reordered"),
  // Writer's send time (in the payload) to the reader's handler.
  latency: new Trend("keyflux_latency", true),
  // From starting sse.open() to the (first) "connected" event.
  timeToConnected: new Trend("keyflux_time_to_connected", true),
  events: new Counter("keyflux_events"), // data events received
  resets: new Counter("keyflux_resets"), // tagged reason
  streamErrors: new Counter("keyflux_stream_errors"),
  refused: new Counter("keyflux_refused"), // streams answered 4xx/5xx, tagged status
  failed: new Counter("keyflux_failed"), // streams neither connected nor refused
  publishFailed: new Counter("keyflux_publish_failed"), // tagged status
};

// ---- thresholds ------------------------------------------------------------

// The bounds, each overridable: KEYFLUX_P99_MS (delivery latency p99),
// KEYFLUX_CONNECT_P99_MS (time to connected p99), KEYFLUX_CHECKS (least
// rate of passed checks).
export const P99_MS = envInt("KEYFLUX_P99_MS", 250);
export const CONNECT_P99_MS = envInt("KEYFLUX_CONNECT_P99_MS", 1000);
export const CHECKS = parseFloat(env("KEYFLUX_CHECKS", "0.99"));

// thresholds returns the shared ones named in which, plus extra.
//   checks    the rate of passed checks
//   loss      no event lost, none reordered or duplicated
//   latency   delivery p99
//   connect   time to connected p99
//   clean     no stream error, no reset, no failed publish
export function thresholds(which, extra = {}) {
  const t = {};
  for (const w of which) {
    switch (w) {
      case "checks":
        t.checks = [`rate>=${CHECKS}`];
        break;
      case "loss":
        t.keyflux_lost = ["rate==0"];
        t.keyflux_reordered = ["rate==0"];
        break;
      case "latency":
        t.keyflux_latency = [`p(99)<${P99_MS}`];
        break;
      case "connect":
        t.keyflux_time_to_connected = [`p(99)<${CONNECT_P99_MS}`];
        break;
      case "clean":
        t.keyflux_stream_errors = ["count==0"];
        t.keyflux_resets = ["count==0"];
        t.keyflux_publish_failed = ["count==0"];
        break;
      default:
        throw new Error(`unknown threshold set ${w}`);
    }
  }
  return Object.assign(t, extra);
}

// ---- setup -----------------------------------------------------------------

// ready stops the run before it starts when the server is not ready (its
// Redis unreachable), which would otherwise show up as thousands of
// failed streams.
export function ready() {
  const res = http.get(`${BASE}/readyz`, { tags: { name: "readyz" } });
  if (res.status !== 200) {
    fail(`${BASE}/readyz answered ${res.status}: ${res.body}`);
  }
}

export function needPublishToken() {
  if (!PUBLISH_TOKEN) {
    fail("KEYFLUX_PUBLISH_TOKEN must be the server's --publish-token: the writer publishes through Keyflux's HTTP API");
  }
}

// schedule is setup()'s result for a scenario whose writer publishes
// through the HTTP API: it checks the token and that Keyflux is ready, then
// times the phases: readers connect for ramp seconds, the writer writes for
// write seconds, and the readers stop grace seconds after it.
export function schedule(ramp, write, grace) {
  needPublishToken();
  ready();
  const t0 = Date.now();
  return { t0, writeAt: t0 + ramp * 1000, stopAt: t0 + (ramp + write + grace) * 1000 };
}

// ---- publishing ------------------------------------------------------------

function publishParams() {
  return {
    headers: { Authorization: `Bearer ${PUBLISH_TOKEN}`, "Content-Type": "application/json" },
    tags: { name: "publish" },
  };
}

// publish sends body (an object, sent as JSON) to a channel:
// POST /api/channels/<channel>, answered 200 {"receivers": n}. A payload
// with a string field "event" arrives under that event name.
export function publish(channel, body) {
  const res = http.post(`${BASE}/api/channels/${encodeURIComponent(channel)}`, JSON.stringify(body), publishParams());
  if (!check(res, { "publish answered 200": (r) => r.status === 200 })) {
    metrics.publishFailed.add(1, { status: String(res.status) });
    console.error(`publish to ${channel}: ${res.status} ${res.body}`);
  }
  return res;
}

// appendLog adds an entry to a Redis Stream key: POST /api/log/<key>
// (XADD), answered 201 {"id": "<entry id>"}. It changes the key, so key
// watches of it get an update.
export function appendLog(key, fields) {
  const p = publishParams();
  p.tags = { name: "append" };
  const res = http.post(`${BASE}/api/log/${encodeURIComponent(key)}`, JSON.stringify(fields), p);
  if (!check(res, { "append answered 201": (r) => r.status === 201 })) {
    metrics.publishFailed.add(1, { status: String(res.status) });
    console.error(`append to ${key}: ${res.status} ${res.body}`);
  }
  return res;
}

// paced calls send(n) for n = 1, 2, ... at rate a second for seconds,
// one after another (so the numbers reach Redis in order), keeping to the
// schedule when a call is slow. Returns the last n sent.
export function paced(rate, seconds, send) {
  const total = Math.floor(rate * seconds);
  const t0 = Date.now();
  for (let n = 1; n <= total; n++) {
    const wait = t0 + ((n - 1) * 1000) / rate - Date.now();
    if (wait > 0) {
      sleep(wait / 1000);
    }
    send(n);
  }
  return total;
}

// ---- streams ---------------------------------------------------------------

// streamURL builds <BASE>/streams[/<path>] with query parameters; a value
// that is an array repeats its parameter (key=a&key=b, sub=...&sub=...).
export function streamURL(path, params = {}) {
  const q = [];
  for (const [k, v] of Object.entries(params)) {
    for (const one of Array.isArray(v) ? v : [v]) {
      q.push(`${encodeURIComponent(k)}=${encodeURIComponent(one)}`);
    }
  }
  return `${BASE}/streams${path ? `/${path}` : ""}${q.length ? `?${q.join("&")}` : ""}`;
}

// open opens one stream and blocks until it ends. o:
//   lastEventId  sent as Last-Event-ID (a resume)
//   name         the requests' name tag (one series whatever the URL)
//   onConnected(event, data, close)  every "connected" event (a combined
//                stream sends one per sub)
//   onEvent(event, data, close)      every other named event except reset
//   onReset(data, close)             a "reset" event (counted by reason)
//   onTick(event, close)             heartbeats and the retry frame
// data is the event's parsed JSON (undefined when it is not JSON). close()
// ends the stream; errors after it are not counted.
//
// Returns { status, headers, connected, lastId, refused, error }: the HTTP
// status (0: no answer) and headers, the last id seen (from the previous
// lastEventId on).
export function open(url, o = {}) {
  const started = Date.now();
  const st = { status: 0, connected: false, lastId: o.lastEventId || "", refused: false, error: "" };
  const headers = {};
  if (o.lastEventId) {
    headers["Last-Event-ID"] = o.lastEventId;
  }
  if (STREAM_TOKEN) {
    headers.Authorization = `Bearer ${STREAM_TOKEN}`;
  }
  let closing = false;
  const errors = [];

  const res = sse.open(url, { headers, tags: { name: o.name || "stream" } }, function (client) {
    const close = function () {
      if (!closing) {
        closing = true;
        client.close();
      }
    };
    client.on("event", function (ev) {
      if (closing) {
        return; // may still come after close(): not read, so not a position
      }
      if (ev.id) {
        st.lastId = ev.id;
      }
      if (!ev.name) { // the retry frame or a heartbeat comment
        if (o.onTick) {
          o.onTick(ev, close);
        }
        return;
      }
      const data = parseJSON(ev.data);
      if (ev.name === "connected") {
        if (!st.connected) {
          st.connected = true;
          metrics.timeToConnected.add(Date.now() - started);
        }
        if (o.onConnected) {
          o.onConnected(ev, data, close);
        }
        return;
      }
      if (ev.name === "reset") {
        metrics.resets.add(1, { reason: (data && data.reason) || "unknown" });
        if (o.onReset) {
          o.onReset(data, close);
        }
        return;
      }
      if (o.onEvent) {
        o.onEvent(ev, data, close);
      }
    });
    client.on("error", function (e) {
      if (!closing) { // errors after close() are the read it cut short
        errors.push(String(e && e.error ? e.error() : e));
      }
    });
  });

  st.status = res ? res.status || 0 : 0;
  st.headers = (res && res.headers) || {};
  if (st.status >= 400) {
    // A refusal's JSON body reaches some releases' parser as an "unknown
    // event" error: it is the refusal, not a stream error.
    st.refused = true;
    metrics.refused.add(1, { status: String(st.status) });
  } else if (errors.length > 0) {
    st.error = errors[0];
    metrics.streamErrors.add(errors.length);
    console.error(`stream ${url}: ${st.error}`);
  } else if (!st.connected) {
    st.error = (res && res.error) || "ended before connected";
  }
  if (!st.connected && !st.refused) {
    metrics.failed.add(1, { status: String(st.status) });
  }
  return st;
}

// reportLoss turns what a tracker counted into samples of keyflux_lost:
// call it once per reader, when it is done (received events were sampled
// as they came by received()).
export function reportLoss(tracker) {
  const { lost } = tracker.counts();
  for (const [phase, n] of Object.entries(lost)) {
    for (let i = 0; i < n; i++) {
      metrics.lost.add(true, { at: phase });
    }
  }
  return lost;
}

// received records one numbered event: its order (from the tracker's
// verdict) and, when it carries ts (Unix ms), its latency.
export function received(verdict, ts) {
  metrics.events.add(1);
  if (verdict !== "dup") {
    metrics.lost.add(false);
  }
  metrics.reordered.add(verdict !== "ok");
  if (typeof ts === "number" && ts > 0) {
    metrics.latency.add(Date.now() - ts);
  }
}

// sleepUntil sleeps until the Unix ms time t (at once when it has passed).
export function sleepUntil(t) {
  const wait = t - Date.now();
  if (wait > 0) {
    sleep(wait / 1000);
  }
}
