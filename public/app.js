// Keyflux dashboard: wires the subscribe form, the live event log, the rate
// chart and the pinned keys panel to the page's one connection, a combined
// stream with two subs: "log" (keyspace events of the form) and "pins" (a
// key watch of the pinned keys).
import { KEYSPACE_EVENTS, KEY_EVENTS } from "./stream.js";
import { CombinedStream } from "./combined.js";
import { EventLog } from "./log.js";
import { RateChart } from "./rates.js";
import { PinPanel } from "./pins.js";
import { IdentityPanel } from "./identity.js";
import { clockTime } from "./format.js";

const $ = (id) => document.getElementById(id);
const FIELDS = ["pattern", "events", "filter", "db"];
const STORE = "keyflux.subscription";

const log = new EventLog({
  list: $("log"), empty: $("log-empty"), count: $("log-count"), pauseButton: $("pause"),
  onPin: (key) => pins.add(key),
});
const rates = new RateChart({ canvas: $("rate-chart"), legend: $("rate-legend") });
const pins = new PinPanel({
  list: $("pin-list"), status: $("pins-status"), error: $("pin-error"),
  form: $("pin-form"), input: $("pin-key"),
  onChange: (keys) => setPins(keys),
});

// Under --auth the streams open only once the server knows who the page is.
let started = false;
const identity = new IdentityPanel({
  who: $("who"), whoText: $("who-text"), whoExpires: $("who-expires"), signOut: $("sign-out"),
  signin: $("signin"), form: $("token-form"), input: $("token"), error: $("token-error"),
  notice: $("auth-notice"), noSession: $("no-session"),
}, {
  onSignedIn: () => start(),
  onSignedOut: () => conn.suspend(),
  onMissing: () => showState("signed-out", {}),
});

const conn = new CombinedStream({
  routes: {
    log: {
      onEvent: (name, data) => {
        rates.record(name);
        log.add(name, data);
      },
      onConnected: (info) => {
        $("conn").dataset.pattern = info.pattern ?? "";
        $("conn").dataset.log = conn.applied.get("log")?.query ?? "";
      },
    },
    pins: { onEvent: (name, data) => pins.handle(name, data) },
  },
  onState: (state, d) => {
    showState(state, d);
    pins.setConnection(state);
  },
  onReset: (reason) => {
    const at = clockTime(Date.now());
    $("notice-text").textContent = `Stream reset at ${at} (${reason}): events in between may be missing; the view continues from here.`;
    $("notice").hidden = false;
    $("notice").dataset.reason = reason;
    log.marker(`reset · ${reason} · ${at}`);
  },
  onAuthExpired: (reason) => identity.expired(reason),
  onRefused: (name, message, status, applied) => {
    if (status === 401) {
      // No (longer a) valid identity: the identity panel asks for one; the
      // subscriptions stay as they are and reopen once it is back.
      identity.refused();
      return;
    }
    if (name === "log") {
      showError(fieldOf(message), message);
      showError("form", applied ? `Not applied: the log keeps watching ${applied.pattern}.` : "");
    } else if (name === "pins") {
      $("pin-error").textContent = message;
      pins.revert(applied ?? []);
    } else {
      showError("form", message);
    }
  },
  onApplied: (subs, before, resumed) => {
    showApplied(subs);
    // A resumed stream sends keys it already watched only when they change:
    // the panel reads the ones it did not watch before.
    if (resumed) {
      const had = new Set(before.get("pins")?.meta ?? []);
      pins.fill((subs.get("pins")?.meta ?? []).filter((k) => !had.has(k)));
    }
  },
});

// --- the subscribe form -----------------------------------------------------

const form = $("subscribe");
restoreForm();
form.addEventListener("submit", (e) => {
  e.preventDefault();
  subscribe();
});
$("stop").addEventListener("click", () => {
  delete form.dataset.want;
  conn.set("log", null);
});
for (const f of FIELDS) $(f).addEventListener("input", () => showError(f, ""));
$("pause").addEventListener("click", () => log.setPaused(!log.paused));
$("clear").addEventListener("click", () => {
  log.clear();
  rates.clear();
});
document.addEventListener("keyflux:connections", (e) => {
  const n = e.detail;
  $("connections").textContent = `${n} connection${n === 1 ? "" : "s"}`;
});
$("notice-close").addEventListener("click", () => ($("notice").hidden = true));

function query() {
  const q = new URLSearchParams();
  const pattern = $("pattern").value.trim() || "*";
  q.set("pattern", pattern);
  const events = $("events").value.split(",").map((s) => s.trim()).filter(Boolean);
  if (events.length) q.set("events", events.join(","));
  const filter = $("filter").value.trim();
  if (filter) q.set("filter", filter);
  if ($("values").checked) q.set("values", "true");
  const db = $("db").value.trim();
  if (db) q.set("db", db);
  return { q, events, pattern };
}

function subscribe() {
  for (const f of FIELDS) showError(f, "");
  showError("form", "");
  const { q, events, pattern } = query();
  saveForm();
  const sub = {
    query: "keyspace?" + q,
    // EventSource delivers named events only to listeners of that name.
    events: [...new Set([...KEYSPACE_EVENTS, ...events])],
    meta: { pattern, values: q.has("values"), path: "/streams/keyspace?" + q },
  };
  form.dataset.want = sub.query;
  conn.set("log", sub);
}

function setPins(keys) {
  $("pin-error").textContent = "";
  conn.set("pins", keys.length ? {
    query: "keys?" + new URLSearchParams(keys.map((k) => ["key", k])),
    events: KEY_EVENTS,
    heals: true, // snapshots after any gap: adding a key costs the log nothing
    meta: keys,
  } : null);
}

// showApplied shows what the connection carries now.
function showApplied(subs) {
  const sub = subs.get("log");
  const watching = sub?.meta;
  log.setWatching(!!watching);
  $("log-section").dataset.values = watching?.values ? "on" : "off";
  $("stream-url").hidden = !watching;
  $("not-watching").hidden = !!watching;
  if (watching) {
    $("stream-url").href = watching.path;
    $("stream-url").textContent = decodeURIComponent(watching.path);
  }
  if (!watching) delete $("conn").dataset.log;
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

const STATE_TEXT = {
  idle: "Not connected",
  connecting: "Connecting…",
  live: "Live",
  error: "Refused by the server",
  closed: "Stopped",
  "signed-out": "Signed out",
};

let countdown = null;

function showState(state, d) {
  const el = $("conn");
  el.dataset.state = state;
  el.title = state === "error" ? d.message : "";
  if (d.lastId !== undefined) $("last-id").textContent = d.lastId || "none";
  clearInterval(countdown);
  countdown = null;
  if (state === "reconnecting") {
    const update = () => {
      const left = Math.ceil((d.retryAt - Date.now()) / 1000);
      $("conn-text").textContent = left > 0 ? `Reconnecting in ${left}s` : "Reconnecting…";
    };
    update();
    countdown = setInterval(update, 250);
  } else {
    $("conn-text").textContent = STATE_TEXT[state] || state;
  }
}

// start opens the page's stream, or reopens it after a new token.
function start() {
  if (started) {
    conn.restart();
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
  subscribe();
  setPins(pins.keys);
}

identity.check().then((ok) => {
  if (ok) start();
});
document.body.dataset.app = "ready"; // every module loaded and ran
