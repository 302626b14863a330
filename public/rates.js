// Events per second over the last minute, one line per event name, drawn on
// a canvas once a second. The legend repeats the numbers as text, and the
// canvas's label summarises them for screen readers.
import { el, eventColor } from "./format.js";

const SECONDS = 60;
const MAX_SERIES = 8;

export class RateChart {
  constructor({ canvas, legend }) {
    Object.assign(this, { canvas, legend });
    this.series = new Map(); // name -> Float64Array of counts, index = second % SECONDS
    this.now = Math.floor(Date.now() / 1000);
    this.timer = setInterval(() => this.draw(), 1000);
    new ResizeObserver(() => this.draw()).observe(canvas);
    matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => this.draw());
  }

  record(name) {
    this.advance();
    let s = this.series.get(name);
    if (!s) {
      s = new Float64Array(SECONDS);
      this.series.set(name, s);
    }
    s[this.now % SECONDS]++;
    this.first ??= this.now;
  }

  clear() {
    this.series.clear();
    this.first = null;
    this.draw();
  }

  // advance zeroes the buckets of seconds that passed without events.
  advance() {
    const now = Math.floor(Date.now() / 1000);
    for (let t = Math.max(this.now + 1, now - SECONDS + 1); t <= now; t++) {
      for (const s of this.series.values()) s[t % SECONDS] = 0;
    }
    this.now = now;
  }

  // span is how many seconds the chart shows: the last minute, or less
  // while the page has seen events for less than that.
  span() {
    return this.first == null ? SECONDS : Math.min(SECONDS, Math.max(10, this.now - this.first + 2));
  }

  // top returns the busiest series, with per-second values oldest first
  // (the current, incomplete second is left out).
  top() {
    const rows = [];
    const span = this.span();
    for (const [name, s] of this.series) {
      const values = [];
      for (let i = span - 1; i >= 1; i--) values.push(s[(this.now - i + SECONDS) % SECONDS]);
      const total = values.reduce((a, b) => a + b, 0);
      if (total === 0 && s[this.now % SECONDS] === 0) continue;
      rows.push({ name, values, total, last: values[values.length - 1] });
    }
    rows.sort((a, b) => b.total - a.total || a.name.localeCompare(b.name));
    return rows.slice(0, MAX_SERIES);
  }

  draw() {
    this.advance();
    const rows = this.top();
    this.drawCanvas(rows);
    this.canvas.dataset.history = String(this.first == null ? 0 : this.now - this.first);
    this.legend.replaceChildren(...rows.map((r) => {
      const sw = el("span", { class: "swatch", "aria-hidden": "true" });
      sw.style.background = eventColor(r.name);
      return el("li", { "data-event": r.name }, sw,
        el("span", { class: "name", text: r.name }),
        el("span", { class: "num", text: `${r.last}/s` }),
        el("span", { class: "avg", text: `avg ${(r.total / (this.span() - 1)).toFixed(1)}` }));
    }));
    this.canvas.setAttribute("aria-label", rows.length
      ? "Events per second: " + rows.map((r) => `${r.name} ${r.last} now, ${(r.total / (this.span() - 1)).toFixed(1)} average`).join("; ")
      : "No events in the last minute");
  }

  drawCanvas(rows) {
    const c = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth, h = c.clientHeight;
    if (!w || !h) return;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(h * dpr);
    }
    const g = c.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const style = getComputedStyle(c);
    const grid = style.getPropertyValue("--grid").trim() || "#333";
    const ink = style.getPropertyValue("--ink-dim").trim() || "#888";
    const pad = { l: 34, r: 8, t: 8, b: 18 };
    const max = niceMax(Math.max(1, ...rows.flatMap((r) => r.values)));
    const span = this.span();
    const x = (i) => pad.l + (i / (span - 2)) * (w - pad.l - pad.r);
    const y = (v) => h - pad.b - (v / max) * (h - pad.t - pad.b);

    g.font = "11px system-ui, sans-serif";
    g.lineWidth = 1;
    g.strokeStyle = grid;
    g.fillStyle = ink;
    g.textAlign = "right";
    g.textBaseline = "middle";
    for (const v of [0, max / 2, max]) {
      g.beginPath();
      g.moveTo(pad.l, Math.round(y(v)) + 0.5);
      g.lineTo(w - pad.r, Math.round(y(v)) + 0.5);
      g.stroke();
      g.fillText(fmt(v), pad.l - 6, y(v));
    }
    g.textAlign = "left";
    g.textBaseline = "alphabetic";
    g.fillText(`−${span}s`, pad.l, h - 4);
    g.textAlign = "right";
    g.fillText("now", w - pad.r, h - 4);

    for (const r of [...rows].reverse()) { // busiest drawn last, on top
      const color = eventColor(r.name);
      g.beginPath();
      r.values.forEach((v, i) => (i ? g.lineTo(x(i), y(v)) : g.moveTo(x(i), y(v))));
      g.strokeStyle = color;
      g.lineWidth = 2;
      g.lineJoin = "round";
      g.stroke();
      g.lineTo(x(r.values.length - 1), y(0));
      g.lineTo(x(0), y(0));
      g.closePath();
      g.globalAlpha = 0.08;
      g.fillStyle = color;
      g.fill();
      g.globalAlpha = 1;
    }
  }
}

function niceMax(v) {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function fmt(v) {
  return v >= 10 || Number.isInteger(v) ? String(Math.round(v)) : v.toFixed(1);
}
