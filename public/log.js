// The live event list: newest first, bounded, pausable. While paused,
// events wait (bounded too) and are shown on resume.
import { el, clockTime, valueText, eventColor } from "./format.js";

const MAX_ROWS = 500;

export class EventLog {
  constructor({ list, empty, count, pauseButton, onPin }) {
    Object.assign(this, { list, empty, count, pauseButton, onPin });
    this.total = 0;
    this.paused = false;
    this.waiting = [];
    this.watching = true;
  }

  /** setWatching says whether the page subscribes to events at all. */
  setWatching(watching) {
    this.watching = watching;
    this.update();
  }

  add(name, data) {
    this.total++;
    const row = this.row(name, data);
    if (this.paused) {
      this.waiting.push(row);
      if (this.waiting.length > MAX_ROWS) this.waiting.shift();
    } else {
      this.list.prepend(row);
      this.trim();
    }
    this.update();
  }

  /** marker inserts a visible line, such as a reset, into the list. */
  marker(text, kind = "reset") {
    const row = el("li", { class: "marker " + kind, "data-kind": kind }, el("span", { text }));
    if (this.paused) this.waiting.push(row);
    else this.list.prepend(row);
    this.update();
  }

  row(name, data) {
    const key = typeof data.key === "string" ? data.key : "";
    // On a Redis Cluster each keyspace event says which master sent it.
    const node = typeof data.node === "string" ? data.node : "";
    const hasValue = Object.hasOwn(data, "value");
    const value = hasValue ? valueText(data.type, data.value) : "";
    const badge = el("span", { class: "ev", text: name, title: "event " + name });
    badge.style.setProperty("--c", eventColor(name));
    const pin = el("button", { type: "button", class: "pin-btn", "aria-label": "Pin " + key, title: "Pin this key", text: "☆" });
    pin.addEventListener("click", () => this.onPin(key));
    return el("li", { class: "event", "data-event": name, "data-key": key, "data-node": node || undefined },
      el("time", { class: "t", dateTime: new Date(data.ts || Date.now()).toISOString(), text: clockTime(data.ts || Date.now()) }),
      badge,
      el("span", { class: "k", title: node ? key + " (from node " + node + ")" : key }, el("span", { class: "key-text", text: key }),
        node ? el("span", { class: "node", text: node, title: "the cluster node this event came from" }) : null, pin),
      el("span", { class: "v", "data-type": data.type, title: value.slice(0, 500), text: value }),
    );
  }

  setPaused(paused) {
    this.paused = paused;
    this.pauseButton.setAttribute("aria-pressed", String(paused));
    if (!paused && this.waiting.length) {
      const frag = document.createDocumentFragment();
      for (let i = this.waiting.length - 1; i >= 0; i--) frag.append(this.waiting[i]);
      this.list.prepend(frag);
      this.waiting = [];
      this.trim();
    }
    this.update();
  }

  clear() {
    this.list.replaceChildren();
    this.waiting = [];
    this.total = 0;
    this.update();
  }

  trim() {
    while (this.list.childElementCount > MAX_ROWS) this.list.lastElementChild.remove();
  }

  update() {
    this.empty.hidden = this.list.childElementCount > 0 || this.waiting.length > 0;
    this.empty.dataset.watching = String(this.watching);
    const n = this.total;
    let text = `${n.toLocaleString()} event${n === 1 ? "" : "s"}`;
    if (this.paused) text += ` · paused, ${this.waiting.length} waiting`;
    else if (!this.watching) text += " · not watching";
    this.count.textContent = text;
    this.pauseButton.textContent = this.paused ? `Resume${this.waiting.length ? ` (${this.waiting.length})` : ""}` : "Pause";
  }
}
