// The pinned keys panel: each key's value, type and TTL counting down,
// flashing on change and marked when it expires or is deleted. Its data
// comes from a key watch (GET /streams/keys?key=a&key=b) carried by the
// page's one connection: snapshot, update and delete events hold each
// key's state, so the panel never reads keys itself.
import { el, prettyValue, ttlText, clockTime } from "./format.js";

const STORE = "keyflux.pins";
const MAX_PINS = 50;
// Why a key went away (README "Why a key went away"), as the card says it.
const GONE = { del: "deleted", expired: "expired", evicted: "evicted", renamed: "renamed", moved: "moved", unknown: "gone" };

export class PinPanel {
  /** onChange(keys) is called with the pinned keys whenever they change. */
  constructor({ list, status, error, form, input, onChange }) {
    Object.assign(this, { list, status, error, onChange });
    this.pins = new Map();
    this.connection = "idle";
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const key = input.value.trim();
      if (!key) return;
      this.add(key);
      input.value = "";
    });
    input.addEventListener("input", () => (this.error.textContent = ""));
    setInterval(() => this.tick(), 200);
    for (const key of load()) this.add(key, false);
  }

  get keys() {
    return [...this.pins.keys()];
  }

  add(key, notify = true) {
    if (!key) return;
    if (this.pins.has(key)) {
      this.pins.get(key).flash();
      return;
    }
    if (this.pins.size >= MAX_PINS) {
      this.error.textContent = `At most ${MAX_PINS} keys can be pinned.`;
      return;
    }
    this.error.textContent = "";
    const pin = new Pin(key, () => this.remove(key));
    this.pins.set(key, pin);
    this.list.prepend(pin.node);
    this.changed(notify);
  }

  remove(key, notify = true) {
    const pin = this.pins.get(key);
    if (!pin) return;
    pin.node.remove();
    this.pins.delete(key);
    this.changed(notify);
  }

  /** revert unpins the keys the server refused: those not in applied. */
  revert(applied) {
    const keep = new Set(applied);
    for (const key of this.keys) if (!keep.has(key)) this.remove(key, false);
    this.changed(false);
  }

  changed(notify) {
    save(this.keys);
    this.showStatus();
    if (notify) this.onChange(this.keys);
  }

  /**
   * fill reads the state of keys with GET /api/keys/<key> (the same object
   * as a snapshot), unless the stream says something about a key first.
   */
  fill(keys) {
    for (const key of keys) {
      const pin = this.pins.get(key);
      if (!pin) continue;
      const seen = pin.events;
      fetch("/api/keys/" + encodeURIComponent(key), { cache: "no-store" })
        .then((resp) => resp.json())
        .then((state) => {
          if (this.pins.get(key) === pin && pin.events === seen && typeof state?.exists === "boolean") pin.apply(state, false);
        })
        .catch(() => { /* the stream will tell when the key changes */ });
    }
  }

  /** handle applies one event of the key watch. */
  handle(name, data) {
    const pin = this.pins.get(data?.key);
    if (!pin) return;
    pin.events++;
    if (name === "delete") pin.gone(GONE[data.reason] || data.reason || "gone");
    else if (name === "snapshot" || name === "update") pin.apply(data, name === "update");
  }

  /** setConnection shows the state of the page's connection. */
  setConnection(state) {
    this.connection = state;
    this.showStatus();
  }

  showStatus() {
    const n = this.pins.size;
    if (!n) {
      this.status.textContent = "none pinned";
      return;
    }
    const words = { connecting: "connecting…", live: "live", reconnecting: "reconnecting…", error: "refused", closed: "stopped", idle: "waiting" };
    this.status.textContent = `${n} pinned · ${words[this.connection] || this.connection}`;
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
    this.type = "";
    this.events = 0; // events of the stream about this key
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
      else if (this.state !== "expired" && this.state !== "deleted") this.setState("absent", "not set");
      return;
    }
    const text = prettyValue(s.type, s.value);
    const changed = this.state !== "present" || text !== this.valueText || s.type !== this.type;
    this.type = s.type || "";
    this.valueText = text;
    this.typeEl.textContent = this.type || "?";
    this.valueEl.textContent = s.value === undefined ? "(value not available)" : text;
    this.valueEl.dataset.shape = s.value?.truncated === true ? "truncated" : this.type;
    this.expiresAt = typeof s.ttl_ms === "number" && s.ttl_ms >= 0 ? performance.now() + s.ttl_ms : null;
    this.updatedEl.textContent = "updated " + clockTime(Date.now());
    this.setState("present", "");
    this.tick(performance.now());
    if (changed && isChange) this.flash();
  }

  gone(reason) {
    this.expiresAt = null;
    this.ttlEl.textContent = "";
    this.setState(reason === "expired" ? "expired" : "deleted", `${reason} at ${clockTime(Date.now())}`);
    this.flash();
  }

  setState(state, mark) {
    this.state = state;
    this.node.dataset.state = state;
    this.markEl.textContent = mark;
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
