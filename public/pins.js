// The pinned keys panel: each key's value, type and TTL counting down,
// flashing on change and marked when it expires or is deleted.
//
// It needs one stream for all pinned keys, whichever the server offers:
//   1. the key watch stream, GET /streams/keys?key=a&key=b (snapshot, update
//      and delete events carry the key's state);
//   2. otherwise keyspace events on exactly the pinned keys (one glob over
//      their common prefix, filtered here), each change read back with
//      GET /api/keys/<key>.
import { LiveStream, RequestError, KEYSPACE_EVENTS } from "./stream.js";
import { el, prettyValue, ttlText, clockTime, escapeGlob } from "./format.js";

const STORE = "keyflux.pins";
const MAX_PINS = 50;
const GONE = { expired: "expired", del: "deleted", evicted: "evicted", rename_from: "renamed", move_from: "moved" };

export class PinPanel {
  constructor({ list, status, error, form, input, onState }) {
    Object.assign(this, { list, status, error, onState });
    this.pins = new Map();
    this.db = "";
    this.mode = "keys"; // or "keyspace" once /streams/keys turns out to be missing
    this.readable = true; // false when /api/keys is missing too
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const key = input.value.trim();
      if (!key) return;
      this.add(key);
      input.value = "";
    });
    setInterval(() => this.tick(), 200);
    for (const key of load()) this.add(key, false);
    this.restart();
  }

  add(key, restart = true) {
    if (!key || this.pins.has(key)) return;
    if (this.pins.size >= MAX_PINS) {
      this.error.textContent = `At most ${MAX_PINS} keys can be pinned.`;
      return;
    }
    const pin = new Pin(key, () => this.remove(key));
    this.pins.set(key, pin);
    this.list.prepend(pin.node);
    save([...this.pins.keys()]);
    if (restart) this.restart();
  }

  remove(key) {
    const pin = this.pins.get(key);
    if (!pin) return;
    pin.node.remove();
    this.pins.delete(key);
    save([...this.pins.keys()]);
    this.restart();
  }

  setDB(db) {
    if (db === this.db) return;
    this.db = db;
    this.restart();
  }

  // restart replaces the stream after the pinned set changed (debounced,
  // so pinning several keys quickly opens one connection).
  restart() {
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => this.connect(), 50);
  }

  async connect() {
    this.stream?.stop();
    this.stream = null;
    this.error.textContent = "";
    const keys = [...this.pins.keys()];
    if (!keys.length) {
      this.showStatus("none pinned");
      return;
    }
    const stream = this.mode === "keys" ? this.keyWatch(keys) : this.keyspaceWatch(keys);
    this.stream = stream;
    try {
      await stream.start();
    } catch (err) {
      if (stream !== this.stream) return;
      if (err instanceof RequestError && err.status === 404 && this.mode === "keys") {
        this.mode = "keyspace"; // this server has no key watch stream yet
        this.error.textContent = "";
        return this.connect();
      }
    }
  }

  keyWatch(keys) {
    const q = new URLSearchParams(keys.map((k) => ["key", k]));
    if (this.db) q.set("db", this.db);
    return new LiveStream({
      path: "/streams/keys?" + q,
      events: ["snapshot", "update", "delete"],
      onEvent: (name, data) => {
        const pin = this.pins.get(data.key);
        if (!pin) return;
        if (name === "delete") pin.gone(data.reason || "deleted");
        else pin.apply(data, name === "update");
      },
      onState: (state, d) => this.streamState(state, d),
      onReset: () => this.showStatus("resynchronised", true),
    });
  }

  keyspaceWatch(keys) {
    const q = new URLSearchParams({ pattern: globFor(keys) });
    if (this.db) q.set("db", this.db);
    return new LiveStream({
      path: "/streams/keyspace?" + q,
      events: KEYSPACE_EVENTS,
      onEvent: (name, data) => {
        const pin = this.pins.get(data.key);
        if (!pin) return; // the glob may match more than the pinned keys
        if (GONE[name]) pin.gone(GONE[name]);
        else this.read(pin, name);
      },
      onConnected: () => this.readAll(),
      onReset: () => {
        this.showStatus("resynchronised", true);
        this.readAll();
      },
      onState: (state, d) => this.streamState(state, d),
    });
  }

  readAll() {
    for (const pin of this.pins.values()) this.read(pin, null);
  }

  // read fetches a key's state; overlapping reads of one key coalesce.
  async read(pin, event) {
    if (!this.readable) {
      if (event) pin.touched(event);
      return;
    }
    if (pin.reading) {
      pin.again = event || pin.again || "changed";
      return;
    }
    pin.reading = true;
    const started = performance.now();
    try {
      const q = this.db ? "?db=" + encodeURIComponent(this.db) : "";
      const resp = await fetch("/api/keys/" + encodeURIComponent(pin.key) + q, { cache: "no-store" });
      const body = await resp.json().catch(() => ({}));
      if (resp.status === 404 && !("exists" in body)) {
        this.readable = false; // no key reads on this server: show events only
        if (event) pin.touched(event);
      } else if (!resp.ok) {
        pin.problem(body.error || `HTTP ${resp.status}`);
      } else if (!(body.exists && pin.goneAt > started)) { // a newer expiry wins over an older read
        pin.apply(body, event !== null);
      }
    } catch (err) {
      pin.problem(String(err.message || err));
    } finally {
      pin.reading = false;
      if (pin.again) {
        const ev = pin.again;
        pin.again = null;
        if (this.pins.get(pin.key) === pin) this.read(pin, ev);
      }
    }
  }

  streamState(state, d) {
    const via = this.mode === "keys" ? "key watch stream" : "keyspace events";
    const words = { connecting: "connecting…", live: "live", reconnecting: "reconnecting…", error: "refused", closed: "stopped" };
    this.showStatus(`${this.pins.size} pinned · ${words[state] || state} · ${via}`);
    if (state === "error" && d.changed && !(this.mode === "keys" && d.status === 404)) this.error.textContent = d.message;
    this.onState?.(state, d);
  }

  showStatus(text, flash = false) {
    if (flash) {
      this.status.textContent = text + " · " + clockTime(Date.now());
      return;
    }
    this.status.textContent = text;
  }

  tick() {
    const now = performance.now();
    for (const pin of this.pins.values()) pin.tick(now);
  }
}

/** Pin is one key's card. */
class Pin {
  constructor(key, onRemove) {
    this.key = key;
    this.expiresAt = null;
    this.goneAt = 0;
    this.value = undefined;
    this.type = "";
    this.keyEl = el("span", { class: "pin-key", text: key, title: key });
    this.typeEl = el("span", { class: "type", text: "…" });
    this.ttlEl = el("span", { class: "ttl", text: "" });
    this.valueEl = el("pre", { class: "pin-value", tabIndex: 0, "aria-label": "value of " + key, text: "reading…" });
    this.markEl = el("span", { class: "mark", text: "" });
    this.updatedEl = el("span", { class: "updated", text: "" });
    const unpin = el("button", { type: "button", class: "unpin", "aria-label": "Unpin " + key, title: "Unpin", text: "×" });
    unpin.addEventListener("click", onRemove);
    this.node = el("li", { class: "pin", "data-key": key, "data-state": "pending" },
      el("div", { class: "pin-head" }, this.keyEl, unpin),
      el("div", { class: "pin-meta" }, this.typeEl, this.ttlEl),
      this.valueEl,
      el("div", { class: "pin-foot" }, this.markEl, this.updatedEl));
    this.node.addEventListener("animationend", () => this.node.classList.remove("flash"));
  }

  apply(s, isChange) {
    if (!s.exists) {
      if (this.state === "present") this.gone("deleted");
      else this.setState("absent", "not set");
      return;
    }
    const text = prettyValue(s.value);
    const changed = this.state !== "present" || text !== this.valueText || s.type !== this.type;
    this.type = s.type || "";
    this.valueText = text;
    this.typeEl.textContent = this.type || "?";
    this.valueEl.textContent = s.value === undefined ? "(value not available)" : text + (s.truncated ? "\n… (truncated)" : "");
    this.expiresAt = typeof s.ttl_ms === "number" && s.ttl_ms >= 0 ? performance.now() + s.ttl_ms : null;
    this.updatedEl.textContent = "updated " + clockTime(Date.now());
    this.setState("present", "");
    this.tick(performance.now());
    if (changed && isChange) this.flash();
  }

  // touched is all the panel can show without a way to read values.
  touched(event) {
    this.typeEl.textContent = this.type || "?";
    this.valueEl.textContent = "(this server cannot read values; last event: " + event + ")";
    this.updatedEl.textContent = event + " " + clockTime(Date.now());
    this.setState("present", "");
    this.flash();
  }

  gone(reason) {
    this.goneAt = performance.now();
    this.expiresAt = null;
    this.ttlEl.textContent = "";
    this.setState(reason === "expired" ? "expired" : "deleted", `${reason} at ${clockTime(Date.now())}`);
    this.flash();
  }

  problem(message) {
    this.markEl.textContent = message;
    this.node.dataset.problem = "true";
  }

  setState(state, mark) {
    this.state = state;
    this.node.dataset.state = state;
    this.markEl.textContent = mark;
    delete this.node.dataset.problem;
  }

  flash() {
    this.node.classList.remove("flash");
    void this.node.offsetWidth; // restart the animation
    this.node.classList.add("flash");
  }

  tick(now) {
    if (this.state !== "present") return;
    if (this.expiresAt === null) {
      this.ttlEl.textContent = "no TTL";
      this.ttlEl.dataset.ttl = "none";
      return;
    }
    const left = this.expiresAt - now;
    this.ttlEl.dataset.ttl = left > 0 ? "counting" : "due";
    this.ttlEl.textContent = left > 0 ? "TTL " + ttlText(left) : "expiring…";
  }
}

// globFor is one Redis glob covering every pinned key: the key itself when
// there is one, else their common prefix and a star.
function globFor(keys) {
  if (keys.length === 1) return escapeGlob(keys[0]);
  let prefix = keys[0];
  for (const k of keys) {
    while (!k.startsWith(prefix)) prefix = prefix.slice(0, -1);
  }
  return escapeGlob(prefix) + "*";
}

function load() {
  try {
    const v = JSON.parse(localStorage.getItem(STORE) || "[]");
    return Array.isArray(v) ? v.filter((k) => typeof k === "string").slice(0, MAX_PINS) : [];
  } catch {
    return [];
  }
}

function save(keys) {
  try {
    localStorage.setItem(STORE, JSON.stringify(keys));
  } catch { /* private mode: pins last for this page only */ }
}
