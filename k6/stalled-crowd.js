// stalled-crowd.js: k6 version of `sseload -mode stalled-crowd` (issue 10,
// finding 7), written against the xk6-sse extension
// (github.com/phymbert/xk6-sse); build k6 with it first, see README.md.
//
// Three scenarios on one timeline:
//   crowd   KEYFLUX_CROWD VUs each open the channel stream, read up to
//           "connected" and then stop reading until the writer is done: the
//           handler sleeps, and xk6-sse reads the next event only once the
//           handler returns, so the TCP window shuts like a frozen tab's.
//           Then each closes its stream.
//   writer  from KEYFLUX_RAMP on, KEYFLUX_RATE events a second of KEYFLUX_SIZE
//           bytes for KEYFLUX_WRITE, through Keyflux's own publish API
//           (POST /api/channels/<channel>; start Keyflux with
//           --publish-token and give the same token here).
//   rss     reads process_resident_memory_bytes from /metrics every second
//           from the start until KEYFLUX_AFTER after the crowd has gone.
//
// The summary's keyflux_server_rss_mb gives the peak (max) and the last
// reading (value); every reading is also logged with its time.
//
// Environment (all optional except the token):
//   KEYFLUX_BASE       server (default http://127.0.0.1:8080)
//   KEYFLUX_CHANNEL    channel (default crowd)
//   KEYFLUX_TOKEN      --publish-token of the server (required)
//   KEYFLUX_CROWD      stalled clients (default 2000)
//   KEYFLUX_RATE       events per second (default 1000)
//   KEYFLUX_SIZE       bytes per event (default 200)
//   KEYFLUX_RAMP       seconds for the crowd to connect before writing (default 10)
//   KEYFLUX_WRITE      seconds of writing (default 20)
//   KEYFLUX_AFTER      seconds to follow RSS after the crowd has gone (default 30)
//   KEYFLUX_MAX_RSS_MB if set, a threshold on the peak RSS

import sse from "k6/x/sse";
import http from "k6/http";
import exec from "k6/execution";
import { check, fail, sleep } from "k6";
import { Counter, Gauge, Trend } from "k6/metrics";

const BASE = __ENV.KEYFLUX_BASE || "http://127.0.0.1:8080";
const CHANNEL = __ENV.KEYFLUX_CHANNEL || "crowd";
const TOKEN = __ENV.KEYFLUX_TOKEN || "";
const CROWD = parseInt(__ENV.KEYFLUX_CROWD || "2000", 10);
const RATE = parseInt(__ENV.KEYFLUX_RATE || "1000", 10);
const SIZE = parseInt(__ENV.KEYFLUX_SIZE || "200", 10);
const RAMP = parseFloat(__ENV.KEYFLUX_RAMP || "10");
const WRITE = parseFloat(__ENV.KEYFLUX_WRITE || "20");
const AFTER = parseFloat(__ENV.KEYFLUX_AFTER || "30");
const STREAM = `${BASE}/streams/channels/${encodeURIComponent(CHANNEL)}`;

const rssMB = new Gauge("keyflux_server_rss_mb");
const rssTrend = new Trend("keyflux_server_rss_mb_readings");
const crowdConnected = new Counter("keyflux_crowd_connected");
const crowdRefused = new Counter("keyflux_crowd_refused"); // tagged with the status
const publishFailed = new Counter("keyflux_publish_failed");

const thresholds = { keyflux_publish_failed: ["count==0"] };
if (__ENV.KEYFLUX_MAX_RSS_MB) {
  thresholds.keyflux_server_rss_mb = [`value<${__ENV.KEYFLUX_MAX_RSS_MB}`];
  thresholds.keyflux_server_rss_mb_readings = [`max<${__ENV.KEYFLUX_MAX_RSS_MB}`];
}

export const options = {
  scenarios: {
    crowd: {
      executor: "per-vu-iterations",
      exec: "crowd",
      vus: CROWD,
      iterations: 1,
      maxDuration: `${RAMP + WRITE + 30}s`,
      gracefulStop: "30s", // a close() that drains waits for the server to cut the stream
    },
    writer: {
      executor: "constant-arrival-rate",
      exec: "writer",
      rate: RATE,
      timeUnit: "1s",
      duration: `${WRITE}s`,
      startTime: `${RAMP}s`,
      preAllocatedVUs: 50,
      maxVUs: 200,
    },
    rss: {
      executor: "constant-arrival-rate",
      exec: "rss",
      rate: 1,
      timeUnit: "1s",
      duration: `${RAMP + WRITE + AFTER}s`,
      preAllocatedVUs: 2,
    },
  },
  thresholds,
};

const payload = JSON.stringify({ pad: "x".repeat(Math.max(SIZE - 10, 0)) });

export function setup() {
  if (!TOKEN) {
    fail("KEYFLUX_TOKEN must be the server's --publish-token: the writer publishes through POST /api/channels");
  }
  const ready = http.get(`${BASE}/readyz`);
  if (ready.status !== 200) {
    fail(`${BASE}/readyz answered ${ready.status}: ${ready.body}`);
  }
  return { start: Date.now() };
}

// crowd: one stalled client, until the writer has finished.
export function crowd(data) {
  const leaveAt = data.start + (RAMP + WRITE) * 1000;
  let greeted = false;
  const res = sse.open(STREAM, { tags: { name: "crowd" } }, function (client) {
    client.on("event", function (event) {
      if (event.name !== "connected" || greeted) {
        return;
      }
      greeted = true;
      crowdConnected.add(1);
      sleep(Math.max(leaveAt - Date.now(), 0) / 1000); // reads nothing meanwhile
      client.close();
    });
    client.on("error", function () {}); // the server cutting a stalled client is expected
  });
  const status = res ? res.status : 0;
  if (!greeted) {
    crowdRefused.add(1, { status: String(status) });
  }
}

export function writer() {
  const res = http.post(`${BASE}/api/channels/${encodeURIComponent(CHANNEL)}`, payload, {
    headers: { Authorization: `Bearer ${TOKEN}`, "Content-Type": "application/json" },
    tags: { name: "publish" },
  });
  if (!check(res, { "publish 200": (r) => r.status === 200 })) {
    publishFailed.add(1);
  }
}

export function rss(data) {
  const res = http.get(`${BASE}/metrics`, { tags: { name: "metrics" } });
  const at = ((Date.now() - data.start) / 1000).toFixed(1);
  const m = res.status === 200 ? res.body.match(/^process_resident_memory_bytes (\S+)$/m) : null;
  if (!m) {
    console.error(`${at}s: /metrics answered ${res.status}: has the server exited?`);
    return;
  }
  const mb = parseFloat(m[1]) / 1048576;
  rssMB.add(mb);
  rssTrend.add(mb);
  const phase = exec.instance.currentTestRunDuration < (RAMP + WRITE) * 1000 ? "crowd" : "gone";
  console.log(`${at}s ${phase} RSS ${mb.toFixed(1)} MiB`);
}
