// Keyflux dashboard: wires the subscribe form, the live event log, the rate
// chart and the pinned keys panel to the server's streams.
import { LiveStream, RequestError, KEYSPACE_EVENTS } from "./stream.js";
import { EventLog } from "./log.js";
import { RateChart } from "./rates.js";
import { PinPanel } from "./pins.js";
import { clockTime } from "./format.js";

const $ = (id) => document.getElementById(id);
const FIELDS = ["pattern", "events", "filter", "db"];
const STORE = "keyflux.subscription";

const log = new EventLog({
  list: $("log"), empty: $("log-empty"), count: $("log-count"), pauseButton: $("pause"),
  valuesHint: $("values-hint"), onPin: (key) => pins.add(key),
});
const rates = new RateChart({ canvas: $("rate-chart"), legend: $("rate-legend") });
const pins = new PinPanel({
  list: $("pin-list"), status: $("pins-status"), error: $("pin-error"),
  form: $("pin-form"), input: $("pin-key"),
});

let stream = null;
let countdown = null;

// --- the subscribe form -----------------------------------------------------

const form = $("subscribe");
restoreForm();
form.addEventListener("submit", (e) => {
  e.preventDefault();
  subscribe();
});
$("stop").addEventListener("click", () => {
  stream?.stop();
  stream = null;
});
for (const f of FIELDS) $(f).addEventListener("input", () => showError(f, ""));
$("pause").addEventListener("click", () => log.setPaused(!log.paused));
$("clear").addEventListener("click", () => {
  log.clear();
  rates.clear();
});
document.addEventListener("keyflux:connections", (e) => ($("connections").textContent = String(e.detail)));
$("notice-close").addEventListener("click", () => ($("notice").hidden = true));

function query() {
  const q = new URLSearchParams();
  q.set("pattern", $("pattern").value.trim() || "*");
  const events = $("events").value.split(",").map((s) => s.trim()).filter(Boolean);
  if (events.length) q.set("events", events.join(","));
  const filter = $("filter").value.trim();
  if (filter) q.set("filter", filter);
  if ($("values").checked) q.set("values", "true");
  const db = $("db").value.trim();
  if (db) q.set("db", db);
  return { q, events, db };
}

async function subscribe() {
  for (const f of FIELDS) showError(f, "");
  showError("form", "");
  const { q, events, db } = query();
  stream?.stop();
  delete $("conn").dataset.pattern;
  log.wantValues = q.has("values");
  $("log-section").dataset.values = log.wantValues ? "on" : "off";
  $("values-hint").hidden = true;
  saveForm();
  pins.setDB(db);
  const names = [...new Set([...KEYSPACE_EVENTS, ...events])];
  const path = "/streams/keyspace?" + q;
  $("stream-url").href = path;
  $("stream-url").textContent = decodeURIComponent(path);
  const s = new LiveStream({
    path,
    events: names,
    onEvent: (name, data) => {
      rates.record(name);
      log.add(name, data);
    },
    onState: (state, d) => {
      if (s !== stream) return;
      showState(state, d);
      // Also when a reconnect is refused (the server restarted with other
      // settings): the reason goes next to the field it is about.
      if (state === "error" && d.changed) showError(fieldOf(d.message), d.message);
    },
    onConnected: (info) => {
      if (s !== stream) return;
      $("conn").dataset.pattern = info?.pattern ?? "";
      // A server without filters ignores the parameter: say so rather
      // than show unfiltered events as if they were filtered.
      if (q.has("filter") && info && !("filter" in info)) {
        showError("filter", "This server ignored the filter: it does not support filter expressions yet.");
      }
    },
    onReset: (reason) => {
      const at = clockTime(Date.now());
      $("notice-text").textContent = `Stream reset at ${at} (${reason}): events in between may be missing; the view continues from here.`;
      $("notice").hidden = false;
      $("notice").dataset.reason = reason;
      log.marker(`reset · ${reason} · ${at}`);
    },
  });
  stream = s;
  try {
    await s.start();
  } catch (err) {
    if (!(err instanceof RequestError)) throw err; // refusals are shown through onState
  }
}

// fieldOf guesses which field an error message is about: the server's
// messages start with the parameter's name.
function fieldOf(message) {
  const text = message.toLowerCase();
  const word = /^(\w+)/.exec(text)?.[1] ?? "";
  if (FIELDS.includes(word)) return word;
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
};

function showState(state, d) {
  const conn = $("conn");
  conn.dataset.state = state;
  conn.title = state === "error" ? d.message : "";
  $("last-id").textContent = d.lastId || "none";
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

subscribe();
