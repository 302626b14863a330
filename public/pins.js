// The pinned keys panel: each key's value, type and TTL counting down,
// flashing on change and marked when it expires or is deleted. Each pinned
// key is a watch of keyflux.js (kf.watch(key), a key watch riding the
// page's one connection): its "change" events carry the key's state, so
// the panel never polls. One watch per key, so that a key the server
// refuses (outside --expose) goes alone and the others carry on.
import { el, prettyValue, ttlText, clockTime } from "./format.js";

const STORE = "keyflux.pins";
const MAX_PINS = 50;
// Why a key went away (README "Why a key went away"), as the card says it.
const GONE = { del: "deleted", expired: "expired", evicted: "evicted", renamed: "renamed", moved: "moved", unknown: "gone" };

export class PinPanel {
  /**
   * kf        the page's Keyflux
   * onChange  (keys) whenever the pinned keys change
   */
  constructor({ kf, list, status, error, form, input, onChange }) {
    Object.assign(this, { kf, list, status, error, onChange });
    this.pins = new Map();
    this.connection = "idle";
    this.live = false; // watches open (the page may read Redis)
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

  /** watching is how many keys have an open watch. */
  get watching() {
    let n = 0;
    for (const pin of this.pins.values()) if (pin.watch) n++;
    return n;
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
    if (this.live) this.open(pin);
    this.changed(notify);
  }

  remove(key, notify = true) {
    const pin = this.pins.get(key);
    if (!pin) return;
    pin.close();
    pin.node.remove();
    this.pins.delete(key);
    this.changed(notify);
  }

  /** setLive opens a watch per pinned key (true) or closes them all (false: signed out). */
  setLive(live) {
    this.live = live;
    for (const pin of this.pins.values()) {
      if (live) this.open(pin);
      else pin.close();
    }
    this.showStatus();
  }

  // open watches pin's key. The watch's first "change" is the key's
  // snapshot (a watch added to the live connection joins it fresh, so the
  // server sends one), then every change.
  open(pin) {
    if (pin.watch) return;
    const w = this.kf.watch(pin.key);
    pin.watch = w;
    w.on("change", (_, state) => {
      if (pin.watch !== w) return;
      pin.events++;
      if (!state.exists && state.reason) pin.gone(GONE[state.reason] || state.reason);
      else pin.apply(state, pin.events > 1);
    });
    w.on("error", (err) => {
      if (pin.watch !== w || this.pins.get(pin.key) !== pin) return;
      // Refused (outside --expose, too long...): the message goes next to
      // the pin field and the key is unpinned; the other watches go on.
      this.remove(pin.key);
      this.error.textContent = err.message;
    });
  }

  changed(notify) {
    save(this.keys);
    this.showStatus();
    if (notify) this.onChange(this.keys);
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
    const words = {
      connecting: "connecting…", live: "live", offline: "offline", limited: "limit reached", error: "refused",
      closed: "stopped", idle: "waiting", "signed-out": "signed out",
    };
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
    this.events = 0; // changes the watch reported
    this.watch = null;
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

  close() {
    this.watch?.close();
    this.watch = null;
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
