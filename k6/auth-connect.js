// auth-connect.js: k6 version of `sseload -mode connect` with a bearer
// token, written against the xk6-sse extension (github.com/phymbert/xk6-sse);
// build k6 with it first, see README.md.
//
// KEYFLUX_CONNECTS times, KEYFLUX_VUS at a time, a VU opens a stream with
// `Authorization: Bearer $KEYFLUX_TOKEN` (xk6-sse sends params.headers; a
// browser's EventSource would send the cookie instead), times it to the
// "connected" event (Keyflux has checked the token and its scopes, and its
// Redis subscription is live) and closes it. Run it once against a server
// with --auth jwt and once, without KEYFLUX_TOKEN, against the same server
// with --auth none to see what checking a token adds per connect.
//
// Environment:
//   KEYFLUX_TOKEN     the token (a JWT whose keyflux.keys cover the pattern);
//                     empty: no Authorization header
//   KEYFLUX_URL       stream URL (default http://127.0.0.1:8080/streams/keyspace?pattern=sensor:*)
//   KEYFLUX_CONNECTS  streams to open and close (default 2000)
//   KEYFLUX_VUS       streams opening at once (default 1)
//   KEYFLUX_MAX       longest the run may take (default 5m)
//
// The token is never printed: a refusal is reported by its status and the
// server's JSON error, which does not echo it.

import sse from "k6/x/sse";
import http from "k6/http";
import { check, fail } from "k6";
import { Counter, Trend } from "k6/metrics";

const TOKEN = __ENV.KEYFLUX_TOKEN || "";
const URL = __ENV.KEYFLUX_URL || "http://127.0.0.1:8080/streams/keyspace?pattern=sensor:*";
const CONNECTS = parseInt(__ENV.KEYFLUX_CONNECTS || "2000", 10);
const VUS = parseInt(__ENV.KEYFLUX_VUS || "1", 10);
const MAX = __ENV.KEYFLUX_MAX || "5m";
const BASE = URL.match(/^https?:\/\/[^/]+/)[0];
const HEADERS = TOKEN ? { Authorization: `Bearer ${TOKEN}` } : {};

const connected = new Counter("keyflux_connected");
const refused = new Counter("keyflux_refused"); // tagged with the status
const failed = new Counter("keyflux_failed");
// From starting sse.open() to the "connected" event.
const timeToConnected = new Trend("keyflux_time_to_connected", true);

export const options = {
  scenarios: {
    connect: {
      executor: "shared-iterations",
      vus: VUS,
      iterations: CONNECTS,
      maxDuration: MAX,
    },
  },
  thresholds: {
    // Every stream must connect: a refused one was not measured.
    keyflux_refused: ["count==0"],
    keyflux_failed: ["count==0"],
  },
};

// setup checks the token before the run: GET /api/identity answers 200 with
// the identity it carries, or 401 with why not.
export function setup() {
  const ready = http.get(`${BASE}/readyz`);
  if (ready.status !== 200) {
    fail(`${BASE}/readyz answered ${ready.status}: ${ready.body}`);
  }
  const who = http.get(`${BASE}/api/identity`, { headers: HEADERS, tags: { name: "identity" } });
  if (who.status !== 200) {
    fail(`${BASE}/api/identity answered ${who.status}: ${who.body}`);
  }
  const id = who.json();
  console.log(`auth ${id.auth}${id.subject ? `, subject ${id.subject}` : ""}`);
}

export default function () {
  const started = Date.now();
  let greeted = false;
  const params = { headers: HEADERS, tags: { name: "auth-connect" } };
  const res = sse.open(URL, params, function (client) {
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
  check(res, { "connected": () => greeted });
}
