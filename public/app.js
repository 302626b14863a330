// Keyflux dashboard: the subscribe form, the live event log, the rate chart
// and the pinned keys, all on keyflux.js. The page has ONE Keyflux (share:
// "tabs"): its subscriptions (the form's keyspace stream, one key watch per
// pinned key) and those of every other dashboard tab of this browser ride
// one server connection, held by a SharedWorker (or a leader tab). The
// header says why the page is not live, from kf.on("status").
import { Keyflux } from "./keyflux.js";
import { EventLog } from "./log.js";
import { RateChart } from "./rates.js";
import { PinPanel } from "./pins.js";
import { IdentityPanel } from "./identity.js";
import { clockTime } from "./format.js";

const $ = (id) => document.getElementById(id);
const FIELDS = ["pattern", "events", "filter", "db"];
const STORE = "keyflux.subscription";
// auth-expired reasons (docs/streams.md, Identities): keyflux.js reconnects
// at once and reports "connecting" with the reason.
const AUTH_ENDED = new Set(["token-expired", "session-ended", "session-expired"]);

const kf = new Keyflux();

const log = new EventLog({
  list: $("log"), empty: $("log-empty"), count: $("log-count"), pauseButton: $("pause"),
  onPin: (key) => pins.add(key),
});
const rates = new RateChart({ canvas: $("rate-chart"), legend: $("rate-legend") });
const pins = new PinPanel({
  kf, list: $("pin-list"), status: $("pins-status"), error: $("pin-error"),
  form: $("pin-form"), input: $("pin-key"),
  onChange: () => render(),
});

// Under --auth the subscriptions open only once the server knows who the
// page is (the token cookie, or the application's session cookie: the
// streams send it by themselves).
let started = false;
let signedOut = false;
const identity = new IdentityPanel({
  who: $("who"), whoText: $("who-text"), whoExpires: $("who-expires"), signOut: $("sign-out"),
  signin: $("signin"), form: $("token-form"), input: $("token"), error: $("token-error"),
  notice: $("auth-notice"), noSession: $("no-session"),
}, {
  onSignedIn: () => start(),
  onSignedOut: () => suspend(),
  onMissing: () => {
    signedOut = true;
    render();
  },
});

// --- the log's subscription ----------------------------------------------------
//
// A new form replaces the applied subscription only once the server has
// confirmed it ("connected"): a refused one (a bad filter) leaves the log
// watching what it watched, with the server's message next to the field.

let logSub = null; // {sub, query, meta, live}: what the log shows
let pendingLog = null; // a replacement waiting for its "connected"
let refusal = ""; // the server's last refusal of the log, when nothing runs
let stopped = false;

function openLog({ pattern, opts, query, meta }) {
  const sub = kf.keyspace(pattern, opts);
  const entry = { sub, query, meta, live: false };
  sub.on("connected", (ev) => {
    if (entry === pendingLog) promote(entry);
    if (entry !== logSub) return;
    entry.live = true;
    $("conn").dataset.pattern = typeof ev.pattern === "string" ? ev.pattern : "";
    $("conn").dataset.log = query;
    showLastId(ev.id);
    render();
  });
  sub.on("error", (err) => refused(entry, err));
  // Async iteration gets every event of the subscription whatever its name
  // (all of Redis's event names), resets included.
  (async () => {
    try {
      for await (const ev of sub) {
        if (entry === logSub) onLogEvent(ev);
      }
    } catch { /* a refusal: "error" above shows it */ }
  })();
  return entry;
}

function onLogEvent(ev) {
  showLastId(ev.id);
  if (ev.name === "reset") {
    // Replacing the subscription can reset the old one: not worth a notice.
    if (!pendingLog) showReset(ev.reason || "reset");
    return;
  }
  rates.record(ev.name);
  log.add(ev.name, ev);
}

function promote(entry) {
  const old = logSub;
  logSub = entry;
  pendingLog = null;
  old?.sub.close();
  showApplied();
}

function refused(entry, err) {
  const message = err.message;
  if (err.status === 401) identity.refused();
  if (entry === pendingLog) {
    pendingLog = null;
    showError(fieldOf(message), message);
    if (logSub) showError("form", `Not applied: the log keeps watching ${logSub.meta.pattern}.`);
  } else if (entry === logSub) {
    logSub = null;
    showError(fieldOf(message), message);
    delete $("conn").dataset.log;
  } else {
    return;
  }
  refusal = logSub ? "" : message;
  showApplied();
  render();
}

function closeLog() {
  pendingLog?.sub.close();
  pendingLog = null;
  logSub?.sub.close();
  logSub = null;
  delete $("conn").dataset.log;
  showApplied();
}

// --- the subscribe form -----------------------------------------------------

const form = $("subscribe");
restoreForm();
form.addEventListener("submit", (e) => {
  e.preventDefault();
  subscribe();
});
$("stop").addEventListener("click", () => {
  delete form.dataset.want;
  stopped = true;
  refusal = "";
  closeLog();
  render();
});
for (const f of FIELDS) $(f).addEventListener("input", () => showError(f, ""));
$("pause").addEventListener("click", () => log.setPaused(!log.paused));
$("clear").addEventListener("click", () => {
  log.clear();
  rates.clear();
});
$("notice-close").addEventListener("click", () => ($("notice").hidden = true));

// wanted reads the form: the keyspace() arguments, and the same query as
// the stream's own URL (shown as a link, and the test's handle).
function wanted() {
  const q = new URLSearchParams();
  const opts = {};
  const pattern = $("pattern").value.trim() || "*";
  q.set("pattern", pattern);
  const events = $("events").value.split(",").map((s) => s.trim()).filter(Boolean);
  if (events.length) {
    opts.events = events;
    q.set("events", events.join(","));
  }
  if ($("values").checked) {
    opts.values = true;
    q.set("values", "true");
  }
  const db = $("db").value.trim();
  if (db) {
    opts.db = db; // as typed: the server's message says what is wrong with it
    q.set("db", db);
  }
  const filter = $("filter").value.trim();
  if (filter) {
    opts.filter = filter;
    q.set("filter", filter);
  }
  const query = "keyspace?" + q;
  return { pattern, opts, query, meta: { pattern, values: !!opts.values, path: "/streams/" + query } };
}

function subscribe() {
  for (const f of FIELDS) showError(f, "");
  showError("form", "");
  saveForm();
  const want = wanted();
  form.dataset.want = want.query;
  stopped = false;
  if (!started) return; // opens once the identity is known
  pendingLog?.sub.close();
  pendingLog = null;
  if (logSub && logSub.query === want.query) {
    if (logSub.live) $("conn").dataset.log = want.query;
    render();
    return;
  }
  const entry = openLog(want);
  if (logSub) pendingLog = entry;
  else {
    logSub = entry;
    refusal = "";
    showApplied();
  }
  render();
}

// showApplied shows what the log carries now.
function showApplied() {
  const watching = logSub?.meta;
  log.setWatching(!!watching);
  $("log-section").dataset.values = watching?.values ? "on" : "off";
  $("stream-url").hidden = !watching;
  $("not-watching").hidden = !!watching;
  if (watching) {
    $("stream-url").href = watching.path;
    $("stream-url").textContent = decodeURIComponent(watching.path);
  }
}

function showReset(reason) {
  const at = clockTime(Date.now());
  $("notice-text").textContent = `Stream reset at ${at} (${reason}): events in between may be missing; the view continues from here.`;
  $("notice").hidden = false;
  $("notice").dataset.reason = reason;
  log.marker(`reset · ${reason} · ${at}`);
}

function showLastId(id) {
  if (id) $("last-id").textContent = id;
}

// fieldOf guesses which field an error message is about: the server's
// messages start with the parameter's name.
function fieldOf(message) {
  const text = message.toLowerCase();
  const word = /^(\w+)/.exec(text)?.[1] ?? "";
  if (FIELDS.includes(word)) return word;
  if (word === "values") return "db"; // values=true reads the default database only
  if (word === "expression" || text.includes("filter")) return "filter";
  return FIELDS.find((f) => new RegExp(`\\b${f}\\b`).test(text)) ?? "form";
}

function showError(field, message) {
  const out = $(field + "-error");
  out.textContent = message;
  const input = $(field);
  if (input && input.tagName === "INPUT") {
    if (message) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }
}

function saveForm() {
  const v = Object.fromEntries(FIELDS.map((f) => [f, $(f).value]));
  v.values = $("values").checked;
  try {
    localStorage.setItem(STORE, JSON.stringify(v));
  } catch { /* private mode */ }
}

function restoreForm() {
  try {
    const v = JSON.parse(localStorage.getItem(STORE) || "null");
    if (!v) return;
    for (const f of FIELDS) if (typeof v[f] === "string") $(f).value = v[f];
    $("values").checked = !!v.values;
  } catch { /* ignore a broken entry */ }
}

// --- connection state ---------------------------------------------------------
//
// kf's status is the connection's: connecting, live, offline (with code 0:
// Keyflux unreachable; 401/403: the identity refused; no code: the browser
// is reconnecting after a drop) or limited (429/503, the server's reason
// and when it retries). The page adds its own states when it holds no
// subscription: idle, closed (stopped), error (the only one refused),
// signed-out.

let status = kf.status;
let detail = kf.detail;
let down = false; // the server does not answer while the browser reconnects
let probe = 0;
kf.on("status", (s, d) => {
  status = s;
  detail = d || {};
  if (s === "connecting" && AUTH_ENDED.has(detail.reason)) identity.expired(detail.reason);
  if (s === "offline" && (detail.code === 401 || detail.code === 403) && started) identity.refused();
  clearTimeout(probe);
  down = false;
  if (s === "offline" && detail.code === undefined) probe = setTimeout(checkDown, 1000);
  render();
});

// checkDown tells a blip from a server that is down while the browser
// reconnects by itself (it says nothing about why): /healthz answers
// whenever Keyflux runs.
async function checkDown() {
  let answered = false;
  try {
    answered = (await fetch("/healthz", { cache: "no-store" })).ok;
  } catch { /* not reachable */ }
  if (status !== "offline" || detail.code !== undefined) return;
  if (down !== !answered) {
    down = !answered;
    render();
  }
  probe = setTimeout(checkDown, 3000);
}

let countdown = 0;

// view is what the header says: [state, pill text, why (a sentence or ""),
// kind of trouble for data-why].
function view() {
  const subs = (logSub || pendingLog ? 1 : 0) + pins.watching;
  if (!subs) {
    if (signedOut) return ["signed-out", "Signed out", "", ""];
    if (refusal) return ["error", "Refused by the server", refusal, "refused"];
    if (!started) return ["idle", "Not connected", "", ""];
    return [stopped ? "closed" : "idle", stopped ? "Stopped" : "Not connected", "", ""];
  }
  const reason = detail.reason ? String(detail.reason).replace(/[.\s]+$/, "") : "";
  const code = Number(detail.code ?? -1);
  const http = code > 0 ? ` (HTTP ${code})` : "";
  switch (status) {
    case "live":
      return ["live", "Live", "", ""];
    case "limited":
      return ["limited", "Limit reached", `Keyflux is at a limit${http}: ${reason || "too many streams"}.`, "limit"];
    case "offline":
      if (code === 0) return ["offline", "Server down", `Keyflux cannot be reached (${reason || "no answer"}).`, "down"];
      if (code === 401 || code === 403) return ["offline", "Auth failed", `Keyflux refused this identity${http}: ${reason}.`, "auth"];
      if (code > 0) return ["offline", "Refused", `Keyflux refused the stream${http}: ${reason}.`, "refused"];
      if (down) return ["offline", "Server down", "Keyflux cannot be reached: reconnecting; it resumes where it stopped.", "down"];
      return ["offline", "Reconnecting…", "The connection dropped: reconnecting; it resumes where it stopped.", "lost"];
    default:
      if (AUTH_ENDED.has(reason)) return ["connecting", "Reconnecting…", "", "auth"];
      return ["connecting", "Connecting…", "", ""];
  }
}

function render() {
  const [state, text, why, kind] = view();
  const el = $("conn");
  el.dataset.state = state;
  if (kind) el.dataset.why = kind;
  else delete el.dataset.why;
  el.title = why;
  pins.setConnection(state);
  const n = (logSub ? 1 : 0) + pins.watching;
  $("subs-count").textContent = `${n} subscription${n === 1 ? "" : "s"}`;
  clearInterval(countdown);
  countdown = 0;
  const retryAt = state !== "live" && Number.isFinite(detail.retryAt) ? detail.retryAt : 0;
  const show = () => {
    const left = Math.ceil((retryAt - Date.now()) / 1000);
    const when = !retryAt ? "" : left > 0 ? `retrying in ${left}s` : "retrying now";
    $("conn-text").textContent = when ? `${text} · ${when}` : text;
    $("conn-why").textContent = why && when ? `${why} ${when[0].toUpperCase() + when.slice(1)}.` : why;
    $("conn-why").hidden = !why;
    $("conn-why").dataset.why = kind;
  };
  show();
  if (retryAt > Date.now()) countdown = setInterval(show, 250);
}

// start opens the page's subscriptions. After a new token or session the
// subscriptions are still there: keyflux.js retries the refused connection
// with backoff (the header counts down to it) and resumes from its last
// event id, with the same subscriptions, so nothing written meanwhile is
// lost.
function start() {
  signedOut = false;
  if (started) {
    render();
    return;
  }
  started = true;
  // A token limited to some keys cannot watch "*": start from its first
  // key scope unless the user chose a pattern.
  const keys = identity.identity?.scopes?.keys;
  if ($("pattern").value.trim() === "*" && Array.isArray(keys) && keys.length && !keys.includes("*") &&
      typeof keys[0] === "string") {
    $("pattern").value = keys[0];
  }
  pins.setLive(true);
  subscribe();
}

// suspend closes every subscription but keeps what the page wants
// (signed out): the connection goes once no tab needs it.
function suspend() {
  signedOut = true;
  closeLog();
  pins.setLive(false);
  started = false;
  render();
}

render();
identity.check().then((ok) => {
  if (ok) start();
});
document.body.dataset.app = "ready"; // every module loaded and ran
