// Small helpers shared by the panels. Data from Redis only ever reaches the
// page through el() and textContent: never as HTML.

/** el creates an element with attributes and text or child nodes. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else if (k.startsWith("aria-") || k === "role" || k === "title" || k === "type") node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) {
    if (c !== null && c !== undefined) node.append(c); // strings become text nodes
  }
  return node;
}

/** clockTime formats a Unix-ms timestamp as HH:MM:SS.mmm local time. */
export function clockTime(ms) {
  const d = new Date(ms);
  const p = (n, w = 2) => String(n).padStart(w, "0");
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

/** valueText renders any value from Redis as one string. */
export function valueText(v) {
  if (v === undefined) return "";
  if (v === null) return "(nil)";
  if (typeof v === "string") return v;
  return JSON.stringify(v);
}

/** prettyValue is valueText with JSON strings and structures indented. */
export function prettyValue(v) {
  if (typeof v === "string") {
    const t = v.trim();
    if ((t.startsWith("{") && t.endsWith("}")) || (t.startsWith("[") && t.endsWith("]"))) {
      try {
        return JSON.stringify(JSON.parse(t), null, 2);
      } catch { /* not JSON */ }
    }
    return v;
  }
  if (v === null || v === undefined) return valueText(v);
  return JSON.stringify(v, null, 2);
}

/** ttlText formats milliseconds left as 1h 02m, 4m 05s or 3.2s. */
export function ttlText(ms) {
  if (ms <= 0) return "0s";
  const s = ms / 1000;
  if (s < 10) return s.toFixed(1) + "s";
  if (s < 60) return Math.floor(s) + "s";
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(Math.floor(s % 60)).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, "0")}m`;
}

const PALETTE = ["#7aa2f7", "#f7768e", "#e0af68", "#9ece6a", "#bb9af7", "#7dcfff", "#ff9e64", "#73daca", "#c0caf5", "#db4b4b"];
const FIXED = { set: 0, del: 1, expired: 2, hset: 3, expire: 4, incrby: 5, evicted: 9 };

/** eventColor gives each event name a stable colour. */
export function eventColor(name) {
  if (name in FIXED) return PALETTE[FIXED[name]];
  let h = 0;
  for (const ch of name) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return PALETTE[h % PALETTE.length];
}

/** escapeGlob makes a key match only itself as a Redis glob. */
export function escapeGlob(s) {
  return s.replace(/[*?[\]\\]/g, (c) => "\\" + c);
}
