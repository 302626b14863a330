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

/**
 * valueText renders a value from Redis on one line (the log's value column).
 * type is the key's Redis type when the server sent it; the shapes are the
 * server's (README "Values").
 */
export function valueText(type, v) {
  return render(type, v, false);
}

/** prettyValue renders a value over several lines (a pinned key's card). */
export function prettyValue(type, v) {
  return render(type, v, true);
}

function render(type, v, pretty) {
  if (v === undefined) return "";
  if (v === null) return type === "none" ? "(no key)" : type === "stream" ? "empty stream" : "(nil)";
  if (isTruncated(v)) return `(too large to send: ${byteSize(v.size)})`;
  const sep = pretty ? "\n" : " · ";
  switch (type) {
    case "string":
      return scalar(v, pretty);
    case "hash": {
      // {"field": value} or, for field names that are not UTF-8, [[field, value], ...]
      const pairs = Array.isArray(v) ? v : Object.entries(v);
      return pairs.map(([f, x]) => `${scalar(f, false)}: ${scalar(x, false)}`).join(pretty ? "\n" : ", ") || "(empty)";
    }
    case "list":
    case "set":
      if (Array.isArray(v)) return v.map((x) => scalar(x, false)).join(pretty ? "\n" : ", ") || "(empty)";
      break;
    case "zset":
      if (Array.isArray(v)) return zset(v, pretty) || "(empty)";
      break;
    case "stream":
      if (typeof v === "object" && "length" in v) {
        const n = Number(v.length);
        return `${n.toLocaleString()} ${n === 1 ? "entry" : "entries"}${v.last_id ? sep + "last " + v.last_id : ""}`;
      }
      break;
  }
  if (typeof v === "string" || isBase64(v)) return scalar(v, pretty);
  return pretty ? JSON.stringify(v, null, 2) : JSON.stringify(v);
}

// scalar is one string from Redis: UTF-8 text, or {"base64": ...} for any
// other bytes. Text holding JSON is indented when pretty.
function scalar(v, pretty) {
  if (isBase64(v)) return "base64:" + v.base64;
  if (typeof v !== "string") return JSON.stringify(v);
  if (pretty) {
    const t = v.trim();
    if ((t.startsWith("{") && t.endsWith("}")) || (t.startsWith("[") && t.endsWith("]"))) {
      try {
        return JSON.stringify(JSON.parse(t), null, 2);
      } catch { /* not JSON */ }
    }
  }
  return v;
}

// zset is [[member, score], ...] by score; the score is a number, "inf" or "-inf".
function zset(pairs, pretty) {
  const rows = pairs.map(([m, s]) => [scalar(m, false), String(s)]);
  if (!pretty) return rows.map(([m, s]) => `${m} ${s}`).join(", ");
  const w = Math.min(24, Math.max(...rows.map(([, s]) => s.length)));
  return rows.map(([m, s]) => `${s.padStart(w)}  ${m}`).join("\n");
}

function isBase64(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v) && typeof v.base64 === "string" && Object.keys(v).length === 1;
}

// A value whose JSON is over --value-max-bytes: {"truncated": true, "size": N}.
// Values from Redis are strings, so a boolean true cannot be data.
function isTruncated(v) {
  return v !== null && typeof v === "object" && v.truncated === true;
}

/** byteSize formats a byte count: 900 B, 64.0 KiB, 1.2 MiB. */
export function byteSize(n) {
  if (!(n >= 1024)) return `${n} B`;
  if (n < 1024 * 1024) return (n / 1024).toFixed(1) + " KiB";
  return (n / 1024 / 1024).toFixed(1) + " MiB";
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
