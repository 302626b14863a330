// check.mjs: keeps the k6 scripts honest where k6 cannot run (CI, these
// machines). For each k6/*.js script, in a node process of its own:
//   - parse it as an ES module (package.json says "type": "module");
//   - run its init context with stand-ins for the k6 modules
//     (check-hooks.mjs), under each environment listed in VARIANTS: this
//     catches a missing export of lib/keyflux.js, a typo in top-level code,
//     two metrics of one name and different types;
//   - hold its options to what k6 accepts: known executors, exec functions
//     that the script exports, durations k6 parses, thresholds on metrics
//     that exist, with aggregations their type has.
// Usage: node k6/lib/check.mjs [dir]   (default: the folder above this one)
// Exit status 1 names each script and what is wrong with it.

import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { register } from "node:module";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));

// Environments each script's init context runs under besides the empty one:
// the branches its options take.
const VARIANTS = {
  "key-watch.js": [{ KEYFLUX_WRITER: "external" }],
  "resume.js": [{ KEYFLUX_RESET_OK: "true" }],
  "reconnect-storm.js": [{ KEYFLUX_MAX_REFUSED: "10", KEYFLUX_HOLD: "2" }],
  "stalled-crowd.js": [{ KEYFLUX_MAX_RSS_MB: "300" }],
  "combined-stream.js": [{ KEYFLUX_KEYSPACE: "load:*", KEYFLUX_SUBS: "5" }],
  "fanout-latency.js": [{ KEYFLUX_WRITERS: "3", KEYFLUX_SIZE: "100" }],
};

const BUILTIN = {
  checks: "rate", data_received: "counter", data_sent: "counter", dropped_iterations: "counter",
  group_duration: "trend", http_req_blocked: "trend", http_req_connecting: "trend",
  http_req_duration: "trend", http_req_failed: "rate", http_req_receiving: "trend",
  http_req_sending: "trend", http_req_tls_handshaking: "trend", http_req_waiting: "trend",
  http_reqs: "counter", iteration_duration: "trend", iterations: "counter", vus: "gauge",
  vus_max: "gauge",
  sse_event: "counter", // xk6-sse's
};

const AGGREGATIONS = {
  counter: ["count", "rate"],
  gauge: ["value"],
  rate: ["rate"],
  trend: ["avg", "min", "max", "med", "p"],
};

const EXECUTORS = new Set([
  "shared-iterations", "per-vu-iterations", "constant-vus", "ramping-vus",
  "constant-arrival-rate", "ramping-arrival-rate", "externally-controlled",
]);

const DURATION = /^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/;
const EXPRESSION = /^\s*(avg|min|max|med|count|rate|value|p\(\d+(\.\d+)?\))\s*(<=|>=|===|==|!=|<|>)\s*-?\d+(\.\d+)?\s*$/;

function checkDuration(where, v, problems) {
  if (v === undefined || typeof v === "number") {
    return;
  }
  if (typeof v !== "string" || !DURATION.test(v)) {
    problems.push(`${where}: ${JSON.stringify(v)} is not a duration k6 parses`);
  }
}

function checkOptions(mod, metrics, problems) {
  const opts = mod.options;
  if (opts === undefined) {
    return;
  }
  for (const [name, sc] of Object.entries(opts.scenarios || {})) {
    const where = `scenario ${name}`;
    if (!EXECUTORS.has(sc.executor)) {
      problems.push(`${where}: unknown executor ${JSON.stringify(sc.executor)}`);
    }
    const exec = sc.exec || "default";
    if (typeof mod[exec] !== "function") {
      problems.push(`${where}: exec ${exec} is not an exported function`);
    }
    for (const k of ["startTime", "duration", "maxDuration", "gracefulStop", "gracefulRampDown", "timeUnit"]) {
      checkDuration(`${where}.${k}`, sc[k], problems);
    }
    for (const k of ["vus", "iterations", "rate", "preAllocatedVUs", "maxVUs", "startVUs"]) {
      if (sc[k] !== undefined && !(Number.isInteger(sc[k]) && sc[k] >= 0)) {
        problems.push(`${where}.${k}: ${sc[k]} is not a whole number`);
      }
    }
    if (sc.executor === "per-vu-iterations" || sc.executor === "shared-iterations") {
      if (!(sc.vus > 0) || !(sc.iterations > 0)) {
        problems.push(`${where}: ${sc.executor} needs vus and iterations above 0`);
      }
    }
    for (const stage of sc.stages || []) {
      checkDuration(`${where}.stages`, stage.duration, problems);
    }
  }
  for (const [key, list] of Object.entries(opts.thresholds || {})) {
    const name = key.replace(/\{.*\}$/, "");
    const type = metrics.get(name) || BUILTIN[name];
    if (!type) {
      problems.push(`threshold on ${key}: no such metric (k6 refuses to start)`);
      continue;
    }
    if (!Array.isArray(list)) {
      problems.push(`threshold on ${key}: want an array of expressions`);
      continue;
    }
    for (const t of list) {
      const expr = typeof t === "string" ? t : t && t.threshold;
      const m = typeof expr === "string" ? EXPRESSION.exec(expr) : null;
      if (!m) {
        problems.push(`threshold on ${key}: ${JSON.stringify(expr)} is not a threshold expression`);
        continue;
      }
      const agg = m[1].startsWith("p(") ? "p" : m[1];
      if (!AGGREGATIONS[type].includes(agg)) {
        problems.push(`threshold on ${key}: a ${type} has no ${m[1]}`);
      }
    }
  }
  for (const f of ["setup", "teardown", "handleSummary"]) {
    if (mod[f] !== undefined && typeof mod[f] !== "function") {
      problems.push(`${f} is exported but not a function`);
    }
  }
}

// one runs in the child: the init context of one script under one environment.
async function one(file, envJSON) {
  globalThis.__ENV = JSON.parse(envJSON);
  globalThis.__VU = 0;
  globalThis.__ITER = 0;
  globalThis.__k6metrics = new Map();
  register("./check-hooks.mjs", import.meta.url);
  const problems = [];
  let mod;
  try {
    mod = await import(pathToFileURL(resolve(file)).href);
  } catch (e) {
    problems.push(`init context: ${e && e.stack ? e.stack.split("\n").slice(0, 3).join(" | ") : e}`);
  }
  if (mod) {
    checkOptions(mod, globalThis.__k6metrics, problems);
  }
  for (const p of problems) {
    console.log(p);
  }
  process.exit(problems.length ? 1 : 0);
}

function all(dir) {
  const scripts = readdirSync(dir).filter((f) => f.endsWith(".js")).sort();
  if (scripts.length === 0) {
    console.error(`no k6 scripts in ${dir}`);
    process.exit(1);
  }
  let failed = 0;
  for (const f of scripts) {
    const file = join(dir, f);
    const parse = spawnSync(process.execPath, ["--check", file], { encoding: "utf8" });
    if (parse.status !== 0) {
      failed++;
      console.error(`FAIL ${file}: does not parse as an ES module\n${parse.stderr.trim()}`);
      continue;
    }
    for (const env of [{}, ...(VARIANTS[f] || [])]) {
      const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), "--one", file, JSON.stringify(env)], { encoding: "utf8" });
      if (r.status !== 0) {
        failed++;
        console.error(`FAIL ${file} with ${JSON.stringify(env)}:\n${(r.stdout + r.stderr).trim()}`);
      }
    }
  }
  for (const f of readdirSync(here).filter((f) => f.endsWith(".js"))) {
    const parse = spawnSync(process.execPath, ["--check", join(here, f)], { encoding: "utf8" });
    if (parse.status !== 0) {
      failed++;
      console.error(`FAIL ${join(here, f)}: does not parse as an ES module\n${parse.stderr.trim()}`);
    }
  }
  if (failed) {
    process.exit(1);
  }
  console.log(`ok: ${scripts.length} k6 scripts in ${dir}`);
}

if (process.argv[2] === "--one") {
  await one(process.argv[3], process.argv[4]);
} else {
  all(process.argv[2] || join(here, ".."));
}
