// keyflux.js: the browser client of Keyflux. An ES module with no
// dependencies and no build step; types in keyflux.d.ts beside it.
//
//   import { Keyflux } from '/keyflux.js';
//   const kf = new Keyflux();
//   const done = await kf.until('job:42', s => s.value === 'done', { timeout: 30_000 });
//
// Every subscription of a page travels on ONE server connection, the
// combined stream (/streams?sub=...), and with share: 'tabs' every tab of
// the origin shares one connection: through a SharedWorker (this very file,
// loaded as a module worker), else through a leader tab chosen with Web
// Locks that relays over a BroadcastChannel, else one connection per tab.
//
// Inside, three parts speak one small message protocol:
//   Keyflux (the page's API) <-> a transport <-> Hub (the worker, the
//   leader tab, or the page itself) -> Engine (the EventSources).

const KEYSPACE_EVENTS = [
  "set", "del", "expired", "evicted", "expire", "persist", "rename_from", "rename_to",
  "move_from", "move_to", "copy_to", "restore", "new", "append", "setrange",
  "incrby", "incrbyfloat", "hset", "hdel", "hincrby", "hincrbyfloat", "hexpire",
  "hpersist", "hexpired", "lpush", "rpush", "lpop", "rpop", "linsert", "lset",
  "lrem", "ltrim", "sadd", "srem", "spop", "sinterstore", "sunionstore",
  "sdiffstore", "zadd", "zincr", "zrem", "zremrangebyscore", "zremrangebyrank",
  "zremrangebylex", "zinterstore", "zunionstore", "zdiffstore", "zrangestore",
  "zpopmin", "zpopmax", "xadd", "xtrim", "xdel", "xsetid", "xgroup-create",
  "xgroup-createconsumer", "xgroup-delconsumer", "xgroup-destroy", "xgroup-setid",
];
const KEY_EVENTS = ["snapshot", "update", "delete"];
// Every connection listens to these, whatever its subs.
const BASE_EVENTS = ["connected", "reset", "auth-expired", "batch", "message"];
// Past this many bytes a combined-stream URL becomes a named set.
const URL_MAX = 4000;
// Subscriptions of one connection before the server says otherwise.
const MAX_SUBS = 200;
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 30000;
// How long a new leader waits for the other tabs to say what they want.
const TAKEOVER_MS = 100;

const OPERATORS = ["filter", "map", "throttle", "buffer"];

// Positions: with subs that have ids of their own (Redis Streams, and
// keyspace and channel streams on a Keyflux with --journal) a combined
// stream's id is "v1.<base>.<part>...", one Redis entry id per such sub in
// the order of the subs (docs/journal.md). A page that drops a sub carries
// the others' parts over to its next connection; subs it adds go fresh.
function parse36(t) {
  if (!/^[0-9a-z]+$/.test(t)) throw new Error("bad position");
  let v = 0n;
  for (const ch of t) v = v * 36n + BigInt(parseInt(ch, 36));
  return v;
}

function decodePosition(id) {
  const parts = id.split(".");
  if (parts[0] !== "v1" || parts.length < 3) return null;
  try {
    const base = parse36(parts[1]);
    return parts.slice(2).map((p) => {
      const [ms, seq] = p.split("_");
      return { ms: base + parse36(ms), seq: seq === undefined ? 0n : parse36(seq) };
    });
  } catch {
    return null;
  }
}

function encodePosition(parts) {
  const base = parts.reduce((m, p) => (p.ms < m ? p.ms : m), parts[0].ms);
  return "v1." + base.toString(36) +
    parts.map((p) => "." + (p.ms - base).toString(36) + (p.seq ? "_" + p.seq.toString(36) : "")).join("");
}

function rand() {
  return Math.random().toString(36).slice(2, 10) + Date.now().toString(36);
}

function jitter(ms) {
  return ms / 2 + Math.random() * ms / 2;
}

function retryAfterMs(h) {
  if (!h) return 0;
  const s = Number(h);
  if (Number.isFinite(s)) return Math.max(0, s * 1000);
  const t = Date.parse(h);
  return Number.isFinite(t) ? Math.max(0, t - Date.now()) : 0;
}

function namedError(name, message) {
  try {
    return new DOMException(message, name);
  } catch {
    const e = new Error(message);
    e.name = name;
    return e;
  }
}

/** KeyfluxError: a refusal of the server (status 0: not reached). */
export class KeyfluxError extends Error {
  constructor(message, status) {
    super(message);
    this.name = "KeyfluxError";
    this.status = status;
  }
}

// addOps appends the operators of opts to q.
function addOps(q, opts) {
  for (const op of OPERATORS) {
    const v = opts[op];
    if (v === undefined || v === null || v === "") continue;
    if (Array.isArray(v)) v.forEach((x) => q.append(op, String(x)));
    else q.append(op, String(v));
  }
}

function withQuery(path, q) {
  const s = q.toString();
  return s ? path + "?" + s : path;
}

// ---------------------------------------------------------------- Engine

// Engine holds the server connections of one Hub for one Keyflux origin:
// every subscription it is given rides one combined stream (more only when
// the server says a connection may not carry them all).
class Engine {
  constructor({ base, withCredentials, getToken, onEvent, onStatus, onSubError }) {
    Object.assign(this, { base, withCredentials, getToken, onEvent, onStatus, onSubError });
    this.subs = new Map(); // name -> {query}
    this.names = new Set(BASE_EVENTS);
    this.next = 1;
    this.max = MAX_SUBS; // subs of one connection
    this.subLimit = Infinity; // subs of one ?sub= URL, once the server said
    this.sets = true; // POST /api/sets is there (until it answers 404)
    this.groups = [];
    this.resume = null; // lastIds by group index, for a takeover
    this.holdUntil = 0;
    this.pending = false;
    this.closed = false;
    this.status = "connecting";
    this.detail = {};
  }

  add(query, names, want) {
    let name = want && /^s\d+$/.test(want) && !this.subs.has(want) ? want : "";
    if (name) this.next = Math.max(this.next, Number(name.slice(1)) + 1);
    else name = "s" + this.next++;
    this.subs.set(name, { query });
    this.listen(names);
    this.schedule();
    return name;
  }

  remove(name) {
    if (this.subs.delete(name)) this.schedule();
  }

  listen(names) {
    for (const n of names) {
      if (this.names.has(n)) continue;
      this.names.add(n);
      for (const g of this.groups) g.es?.addEventListener(n, g.handler);
    }
  }

  // schedule applies the subs after this tick and a short timer, so that
  // many subscriptions made together cost one request.
  schedule() {
    if (this.pending || this.closed) return;
    this.pending = true;
    queueMicrotask(() => {
      const wait = Math.max(10, this.holdUntil - Date.now());
      setTimeout(() => {
        this.pending = false;
        this.apply();
      }, wait);
    });
  }

  apply(rebuild = false) {
    if (this.closed) return;
    const names = [...this.subs.keys()];
    const chunks = [];
    const size = this.sets ? this.max : Math.min(this.max, this.subLimit);
    for (let i = 0; i < names.length; i += size) chunks.push(names.slice(i, i + size));
    const old = this.groups;
    this.groups = chunks.map((subs, i) => {
      const g = old[i];
      const key = subs.join(",");
      if (g && !rebuild && g.key === key) return g;
      const before = new Set(g ? g.subs : []);
      // Ids are process-wide (or positions the server checks): a group
      // split off the first resumes from where the first one was.
      let lastId = g ? g.lastId : (this.resume?.[i] ?? old[0]?.lastId ?? "");
      // Subs added to a connection that was there start fresh; a new
      // leader's first connection resumes them all (a takeover).
      // (and so do those whose "connected" had not come yet: the id the
      // page holds may predate them).
      let fresh = g ? subs.filter((s) => !before.has(s) || g.pending.has(s)) : [];
      let idParts = new Map();
      if (g) ({ lastId, fresh, idParts } = carryPosition(lastId, g, subs, fresh));
      const ng = this.group(subs, key, lastId);
      ng.idParts = idParts;
      ng.fresh = new Set(fresh);
      ng.pending = new Set(fresh);
      if (g) ng.prev = this.retire(g);
      this.open(ng);
      return ng;
    });
    for (let i = chunks.length; i < old.length; i++) this.stop(old[i]);
    this.resume = null;
    this.report();
  }

  group(subs, key, lastId) {
    const g = { subs, key, lastId, es: null, setId: "", gen: 0, attempt: 0, timer: 0, stopped: false,
      state: "connecting", detail: {}, fresh: new Set(), pending: new Set(), parts: new Map(), idParts: new Map() };
    g.handler = (e) => this.message(g, e);
    return g;
  }

  stop(g) {
    g.stopped = true;
    g.gen++;
    clearTimeout(g.timer);
    g.es?.close();
    g.es = null;
    if (g.prev) this.stop(g.prev);
    g.prev = null;
  }

  // retire ends group g, replaced by a successor that resumes from g's
  // last id, and returns the connection to keep until the successor is
  // live. A live g stays open, muted (what it receives from now on the
  // successor replays): its subs stay subscribed on the server, their
  // replay buffers with them, however long the successor waits (a 429's
  // Retry-After may outlast --linger). A g that was not live hands on the
  // connection it kept itself.
  retire(g) {
    const prev = g.prev;
    g.prev = null;
    if (g.es && g.es.readyState === EventSource.OPEN && g.state === "live") {
      if (prev) this.stop(prev);
      const es = g.es;
      g.es = null;
      this.stop(g); // its events are ignored from now on
      es.onopen = null;
      es.onerror = () => es.close(); // not worth a reconnect of its own
      return { es, gen: 0, timer: 0, stopped: false, prev: null };
    }
    this.stop(g);
    return prev;
  }

  async headers() {
    const h = {};
    const token = this.getToken ? await this.getToken() : "";
    if (token) h.Authorization = "Bearer " + token;
    return { h, token };
  }

  async url(g) {
    const { h, token } = await this.headers();
    // (a sub removed meanwhile is left out; the next apply replaces g)
    const subs = g.subs.filter((n) => this.subs.has(n)).map((n) => n + ":" + this.subs.get(n).query);
    const q = new URLSearchParams();
    for (const s of subs) q.append("sub", s);
    let path = "/streams?" + q;
    if (this.sets && (path.length > URL_MAX || subs.length > this.subLimit)) {
      if (!g.setId) {
        const r = await fetch(this.base + "/api/sets", {
          method: "POST", body: JSON.stringify({ subs }), cache: "no-store",
          headers: { ...h, "Content-Type": "application/json" },
          credentials: this.withCredentials ? "include" : "same-origin",
        });
        const body = await r.json().catch(() => null);
        if (r.status === 404 || r.status === 405) { // no named sets on this server
          this.sets = false;
          throw Object.assign(new KeyfluxError("no named sets", r.status), { noSets: true });
        }
        if (!r.ok || !body?.id) {
          throw Object.assign(new KeyfluxError(body?.error || "HTTP " + r.status, r.status),
            { retryAfter: retryAfterMs(r.headers.get("Retry-After")) });
        }
        g.setId = body.id;
      }
      path = "/streams?set=" + encodeURIComponent(g.setId);
    }
    const x = new URLSearchParams();
    if (g.lastId) x.set("lastEventId", g.lastId);
    const fresh = g.subs.filter((n) => g.pending.has(n) && this.subs.has(n));
    if (g.lastId && fresh.length) x.set("fresh", fresh.join(","));
    if (token) x.set("access_token", token);
    const xs = x.toString();
    return this.base + path + (xs ? "&" + xs : "");
  }

  async open(g) {
    const gen = ++g.gen;
    g.state = "connecting";
    let url;
    try {
      url = await this.url(g);
    } catch (err) {
      if (gen !== g.gen) return;
      if (err.noSets) {
        this.apply(true);
        return;
      }
      this.refused(g, err instanceof KeyfluxError ? err.status : 0,
        err instanceof KeyfluxError ? err.message : "Keyflux unreachable", err.retryAfter || 0, true);
      return;
    }
    if (gen !== g.gen) return;
    const es = new EventSource(url, { withCredentials: this.withCredentials });
    g.es = es;
    es.onopen = () => {
      if (gen !== g.gen) return;
      g.attempt = 0;
      // Subscribed (the server flushes the head once its subs have
      // joined): the connection this one replaces may go.
      if (g.prev) this.stop(g.prev);
      g.prev = null;
      this.set(g, "live", {});
    };
    es.onerror = () => {
      if (gen !== g.gen) return;
      g.fresh.clear();
      if (es.readyState === EventSource.CLOSED) {
        es.close();
        g.es = null;
        this.check(g, url, gen);
      } else {
        // The browser reconnects by itself (with Last-Event-ID).
        this.set(g, "offline", { reason: "connection lost, reconnecting" });
      }
    };
    for (const n of this.names) es.addEventListener(n, g.handler);
  }

  // check learns why EventSource gave up: it fetches the URL once (a
  // stream that answers is aborted at once) for the status and the reason.
  async check(g, url, gen) {
    let status = 0;
    let message = "Keyflux unreachable";
    let retryAfter = 0;
    const ctl = new AbortController();
    try {
      const r = await fetch(url, {
        signal: ctl.signal, cache: "no-store", headers: { Accept: "text/event-stream" },
        credentials: this.withCredentials ? "include" : "same-origin",
      });
      status = r.status;
      if (r.ok) {
        ctl.abort();
      } else {
        retryAfter = retryAfterMs(r.headers.get("Retry-After"));
        const body = await r.json().catch(() => null);
        message = typeof body?.error === "string" ? body.error : "HTTP " + r.status;
      }
    } catch {
      status = 0;
    }
    if (gen !== g.gen) return;
    if (status >= 200 && status < 300) { // a blip: try again soon
      this.retry(g, jitter(Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** g.attempt++)));
      return;
    }
    this.refused(g, status, message, retryAfter, !!g.setId);
  }

  // refused handles a refusal of group g (status 0: not reached); viaSet:
  // of a named set or of its POST.
  refused(g, status, message, retryAfter, viaSet) {
    if (status === 404 && g.setId) { // the set expired: name it again
      g.setId = "";
      this.retry(g, 0);
      return;
    }
    if (status === 400 || status === 403 || status === 404) {
      const m = /^sub "([\w-]+)": ([\s\S]*)$/.exec(message);
      if (m && this.subs.has(m[1])) {
        this.subs.delete(m[1]);
        this.onSubError(m[1], m[2], status);
        this.apply(true);
        return;
      }
    }
    if (status === 400 && viaSet && /"set"/.test(message) && !/more than/.test(message)) {
      this.sets = false; // a server that does not know ?set=
      this.apply(true);
      return;
    }
    // "more than N subs" (a ?sub= URL or a set), "more than N subs with
    // ids of their own ... on one connection" (journaled), "more than N
    // streams ... on one connection" (keys watched count one each): a set
    // may carry what a URL cannot; else split into smaller connections.
    const m = status === 400 && g.subs.length > 1 ? /more than (\d+)/.exec(message) : null;
    if (m) {
      const n = Number(m[1]);
      if (!viaSet && this.sets && n < g.subs.length && !/on one connection/.test(message)) this.subLimit = n;
      else this.max = n < g.subs.length ? n : Math.floor(g.subs.length / 2);
      this.apply(true);
      return;
    }
    const state = status === 429 || status === 503 ? "limited" : "offline";
    const delay = Math.max(retryAfter, jitter(Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** g.attempt)));
    g.attempt++;
    this.set(g, state, { reason: message, code: status, retryAt: Date.now() + delay });
    this.retry(g, delay);
  }

  retry(g, delay) {
    clearTimeout(g.timer);
    const gen = g.gen;
    g.timer = setTimeout(() => {
      if (gen === g.gen && !g.stopped) this.open(g);
    }, delay);
  }

  message(g, e) {
    if (g.stopped) return; // a retired connection, kept open a while
    let d;
    try {
      d = JSON.parse(e.data);
    } catch {
      d = undefined;
    }
    const name = e.type;
    const sub = d && typeof d === "object" && typeof d.sub === "string" ? d.sub : "";
    if (name === "connected" && sub) {
      g.pending.delete(sub);
      if (typeof d.position === "number") g.parts.set(sub, d.position);
    }
    if (e.lastEventId && e.lastEventId !== g.lastId) {
      // The server's first id on this connection: from now on the parts of
      // a position are in the server's order, which connected gave.
      g.lastId = e.lastEventId;
      g.idParts = new Map(g.parts);
    }
    if (d === undefined) return;
    if (name === "auth-expired" && !sub) {
      // The identity ended: reconnect now, with a fresh token if there is
      // a token callback, else with whatever cookie the page holds by now.
      g.es?.close();
      g.es = null;
      this.set(g, "connecting", { reason: d?.reason || "auth-expired" });
      this.open(g);
      return;
    }
    if (!sub) {
      if (name === "reset") {
        for (const s of g.subs) if (!g.fresh.has(s)) this.onEvent(s, "reset", d, e.lastEventId, this.index(g));
      }
      return;
    }
    if (!this.subs.has(sub) || !g.subs.includes(sub)) return;
    let data;
    if (name === "connected" || !("data" in d)) {
      data = { ...d };
      delete data.sub;
    } else {
      data = d.data;
    }
    this.onEvent(sub, name, data, e.lastEventId, this.index(g));
  }

  index(g) {
    return Math.max(0, this.groups.indexOf(g));
  }

  set(g, state, detail) {
    g.state = state;
    g.detail = detail;
    this.report();
  }

  report() {
    const rank = { limited: 4, offline: 3, connecting: 2, live: 1 };
    let worst = null;
    for (const g of this.groups) if (!worst || rank[g.state] > rank[worst.state]) worst = g;
    if (!worst) return;
    const detail = worst.detail || {};
    if (worst.state === this.status && JSON.stringify(detail) === JSON.stringify(this.detail)) return;
    this.status = worst.state;
    this.detail = detail;
    this.onStatus(this.status, detail);
  }

  lastIds() {
    return this.groups.map((g) => g.lastId);
  }

  close() {
    this.closed = true;
    for (const g of this.groups) this.stop(g);
    this.groups = [];
  }
}

// ---------------------------------------------------------------- Hub

// Hub serves clients (Keyflux instances: in this page, in other tabs
// through the SharedWorker or the leader's BroadcastChannel) with one
// Engine per Keyflux origin. postTo(id, msg) reaches client id.
// carryPosition rewrites group g's id for its next subs and says which of
// them go fresh. g.idParts maps each sub with a part in g.lastId to it: the
// kept subs' parts go over in their order (idParts of the next group); a
// kept sub without a part in that id (its connected came, the server's
// first id did not) goes fresh too, like added ones. A lone sub resumes
// by its part's plain entry id: one sub is not a combined position. An id
// that is not a position (process ids) is kept as it is.
function carryPosition(lastId, g, subs, fresh) {
  const idParts = new Map();
  const parts = lastId.startsWith("v1.") ? decodePosition(lastId) : null;
  if (!parts) return { lastId, fresh, idParts };
  fresh = [...fresh];
  const kept = [];
  for (const s of subs) {
    if (fresh.includes(s) || !g.idParts.has(s) && !g.parts.has(s)) continue;
    const p = parts[g.idParts.get(s)];
    if (p === undefined) {
      fresh.push(s);
      continue;
    }
    idParts.set(s, kept.length);
    kept.push(p);
  }
  if (!kept.length) return { lastId, fresh, idParts }; // none kept: let the others reset
  const id = subs.length === 1 ? kept[0].ms + "-" + kept[0].seq : encodePosition(kept);
  return { lastId: id, fresh, idParts };
}

class Hub {
  constructor(postTo, onDrop) {
    this.postTo = postTo;
    this.onDrop = onDrop || (() => {});
    this.clients = new Map(); // id -> {id, key, subs: Map(local -> engine name), hasToken}
    this.engines = new Map(); // key -> {engine, routes: Map(name -> {client, local}), clients: Set}
    this.tokenReqs = new Map();
    this.reqSeq = 0;
  }

  handle(id, msg) {
    if (!msg || typeof msg !== "object") return;
    if (msg.t === "hello") {
      this.hello(id, msg);
      return;
    }
    const c = this.clients.get(id);
    if (!c) return;
    const e = this.engines.get(c.key);
    switch (msg.t) {
      case "sub": {
        const old = c.subs.get(msg.id);
        if (old) e.engine.remove(old);
        const name = e.engine.add(msg.query, msg.names || [], msg.name);
        c.subs.set(msg.id, name);
        e.routes.set(name, { client: c, local: msg.id });
        this.postTo(id, { t: "named", id: msg.id, name });
        break;
      }
      case "unsub": {
        const name = c.subs.get(msg.id);
        if (name) {
          c.subs.delete(msg.id);
          e.routes.delete(name);
          e.engine.remove(name);
        }
        break;
      }
      case "listen":
        e.engine.listen(msg.names || []);
        break;
      case "token": {
        const r = this.tokenReqs.get(msg.req);
        if (r) {
          this.tokenReqs.delete(msg.req);
          r(typeof msg.token === "string" ? msg.token : "");
        }
        break;
      }
      case "bye":
        this.drop(id);
        break;
    }
  }

  hello(id, msg) {
    if (this.clients.has(id)) this.drop(id, true);
    const cfg = msg.cfg;
    const key = JSON.stringify([cfg.base, !!cfg.withCredentials]);
    const c = { id, key, subs: new Map(), hasToken: !!cfg.hasToken };
    this.clients.set(id, c);
    let e = this.engines.get(key);
    if (!e) {
      e = { routes: new Map(), clients: new Set() };
      e.engine = new Engine({
        base: cfg.base,
        withCredentials: !!cfg.withCredentials,
        getToken: () => this.token(e),
        onEvent: (name, ev, data, lastId, g) => {
          const r = e.routes.get(name);
          if (r) this.postTo(r.client.id, { t: "ev", id: r.local, name: ev, data, lastId, g });
        },
        onStatus: (status, detail) => {
          for (const cl of e.clients) this.postTo(cl.id, { t: "status", status, detail });
        },
        onSubError: (name, message, code) => {
          const r = e.routes.get(name);
          if (!r) return;
          e.routes.delete(name);
          r.client.subs.delete(r.local);
          this.postTo(r.client.id, { t: "suberr", id: r.local, message, code });
        },
      });
      if (Array.isArray(msg.resume) && msg.resume.length) e.engine.resume = msg.resume;
      if (msg.takeover) e.engine.holdUntil = Date.now() + TAKEOVER_MS;
      this.engines.set(key, e);
    }
    e.clients.add(c);
    this.postTo(id, { t: "status", status: e.engine.status, detail: e.engine.detail });
    // A client whose page dies without a word: its lock is released then.
    if (msg.lock && typeof navigator !== "undefined" && navigator.locks) {
      navigator.locks.request(msg.lock, () => {
        if (this.clients.get(id) === c) this.drop(id);
      }).catch(() => {});
    }
  }

  // token asks a client that has a token callback for a fresh token.
  token(e) {
    const c = [...e.clients].find((x) => x.hasToken);
    if (!c) return Promise.resolve("");
    const req = ++this.reqSeq;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.tokenReqs.delete(req);
        resolve("");
      }, 10000);
      this.tokenReqs.set(req, (t) => {
        clearTimeout(timer);
        resolve(t);
      });
      this.postTo(c.id, { t: "token?", req });
    });
  }

  drop(id, again = false) {
    const c = this.clients.get(id);
    if (!c) return;
    this.clients.delete(id);
    const e = this.engines.get(c.key);
    if (e) {
      for (const name of c.subs.values()) {
        e.routes.delete(name);
        e.engine.remove(name);
      }
      e.clients.delete(c);
      if (!e.clients.size && !again) {
        e.engine.close();
        this.engines.delete(c.key);
      }
    }
    if (!again) this.onDrop(id);
  }

  close() {
    for (const e of this.engines.values()) e.engine.close();
    this.engines.clear();
    this.clients.clear();
  }
}

// ---------------------------------------------------------------- transports

// Each transport carries the client's messages to a Hub and calls
// client.receive with the Hub's. post may be called before it is ready.

class LocalTransport {
  constructor(client) {
    this.client = client;
    this.hub = new Hub((_, msg) => client.receive(msg));
  }

  post(msg) {
    queueMicrotask(() => this.hub?.handle(this.client.id, msg));
  }

  close() {
    this.hub?.close();
    this.hub = null;
  }
}

class WorkerTransport {
  constructor(client, onFail) {
    this.client = client;
    const w = new SharedWorker(new URL(import.meta.url), { type: "module", name: "keyflux" });
    this.port = w.port;
    this.port.onmessage = (e) => client.receive(e.data);
    w.onerror = () => onFail();
  }

  post(msg) {
    this.port?.postMessage({ from: this.client.id, msg });
  }

  close() {
    this.port?.postMessage({ from: this.client.id, msg: { t: "bye" } });
    this.port?.close();
    this.port = null;
  }
}

// LeaderTransport: the tab that holds the Web Lock runs the Hub; the others
// reach it over a BroadcastChannel. When the leader goes, the lock passes
// to another tab, which announces itself; every tab then says again what
// it wants, with the last event ids all tabs have seen (every relayed event
// reaches every tab), and the new connection resumes from there.
class LeaderTransport {
  constructor(client) {
    this.client = client;
    this.hub = null;
    this.abort = new AbortController();
    this.bc = new BroadcastChannel("keyflux:" + client.key);
    this.bc.onmessage = (e) => this.onMessage(e.data);
    navigator.locks.request("keyflux:leader:" + client.key, { signal: this.abort.signal }, () => {
      if (!this.bc) return undefined;
      this.lead();
      return new Promise((r) => { this.release = r; });
    }).catch(() => {});
  }

  lead() {
    this.hub = new Hub((id, msg) => {
      if (id === this.client.id) this.client.receive(msg);
      else this.bc?.postMessage({ to: id, msg });
    });
    this.client.resync(true);
    this.bc.postMessage({ to: "*", msg: { t: "leader" } });
  }

  onMessage(m) {
    if (!m || typeof m !== "object") return;
    if (m.to === "hub") {
      this.hub?.handle(m.from, m.msg);
      return;
    }
    if (m.msg?.t === "ev") this.client.seen(m.msg);
    if (m.to === this.client.id) this.client.receive(m.msg);
    else if (m.to === "*" && m.msg?.t === "leader" && !this.hub) this.client.resync(false);
  }

  post(msg) {
    if (this.hub) {
      const hub = this.hub;
      queueMicrotask(() => hub.handle(this.client.id, msg));
    } else {
      this.bc?.postMessage({ to: "hub", from: this.client.id, msg });
    }
  }

  close() {
    if (!this.hub) this.bc?.postMessage({ to: "hub", from: this.client.id, msg: { t: "bye" } });
    this.hub?.close();
    this.hub = null;
    this.abort.abort();
    this.release?.();
    this.bc?.close();
    this.bc = null;
  }
}

// ---------------------------------------------------------------- API

class Emitter {
  constructor() {
    this.handlers = new Map();
  }

  on(name, fn) {
    if (!this.handlers.has(name)) this.handlers.set(name, new Set());
    this.handlers.get(name).add(fn);
    return this;
  }

  off(name, fn) {
    this.handlers.get(name)?.delete(fn);
    return this;
  }

  emit(name, ...args) {
    for (const fn of [...(this.handlers.get(name) || [])]) {
      try {
        fn(...args);
      } catch (err) {
        setTimeout(() => { throw err; });
      }
    }
  }
}

/** Subscription: one stream of a Keyflux (keyspace, channel, log). */
export class Subscription extends Emitter {
  constructor(kf, query, names) {
    super();
    this.kf = kf;
    this.query = query;
    this.names = new Set(names);
    this.closed = false;
    this.queue = [];
    this.waiters = [];
    this.failure = null;
    this.iterating = false;
    this.local = kf.add(this);
  }

  /** on listens to events named name ("connected", "reset", "error" too). */
  on(name, fn) {
    super.on(name, fn);
    if (!this.names.has(name) && !["error", "change"].includes(name)) {
      this.names.add(name);
      this.kf.listen(this, [name]);
    }
    return this;
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    this.kf.remove(this);
    this.finish();
  }

  finish() {
    for (const w of this.waiters.splice(0)) {
      if (this.failure) w.reject(this.failure);
      else w.resolve({ value: undefined, done: true });
    }
  }

  deliver(name, data, id) {
    const ev = data !== null && typeof data === "object" && !Array.isArray(data)
      ? { ...data, id: id || "", name }
      : { data, id: id || "", name };
    this.emit(name, ev);
    if (name === "connected" || !this.iterating) return; // queued only for an iteration
    const w = this.waiters.shift();
    if (w) w.resolve({ value: ev, done: false });
    else this.queue.push(ev);
  }

  fail(message, status) {
    this.failure = new KeyfluxError(message, status);
    this.closed = true;
    this.emit("error", this.failure);
    this.finish();
  }

  [Symbol.asyncIterator]() {
    this.iterating = true;
    return {
      next: () => {
        if (this.queue.length) return Promise.resolve({ value: this.queue.shift(), done: false });
        if (this.failure) return Promise.reject(this.failure);
        if (this.closed) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
      },
      return: () => {
        this.close();
        return Promise.resolve({ value: undefined, done: true });
      },
      [Symbol.asyncIterator]() { return this; },
    };
  }
}

function sameState(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Watch: the live state of keys (a key watch). */
export class Watch extends Emitter {
  constructor(kf, keys) {
    super();
    this.kf = kf;
    this.keys = [...new Set(keys)];
    this.states = new Map();
    this.gen = new Map(); // key -> events seen, so a fetch never overwrites a newer event
    const q = new URLSearchParams();
    for (const k of this.keys) q.append("key", k);
    this.sub = new Subscription(kf, "keys?" + q, KEY_EVENTS);
    this.sub.deliver = (name, data) => this.event(name, data);
    this.sub.fail = (message, status) => {
      this.sub.closed = true;
      this.emit("error", new KeyfluxError(message, status));
    };
  }

  event(name, d) {
    if (name === "snapshot" || name === "update") {
      if (d && typeof d.key === "string") this.put(d.key, d);
    } else if (name === "delete") {
      if (d && typeof d.key === "string") {
        this.put(d.key, { key: d.key, exists: false, type: "none", value: null, ttl_ms: -2, reason: d.reason });
      }
    } else if (name === "reset") {
      this.emit("reset", d || {});
      this.refresh();
    }
  }

  put(key, state) {
    this.gen.set(key, (this.gen.get(key) || 0) + 1);
    const before = this.states.get(key);
    this.states.set(key, state);
    if (!before || !sameState(before, state)) this.emit("change", key, state);
  }

  // refresh reads every key again after a reset; an event that arrives
  // meanwhile is newer than the read and wins.
  refresh() {
    for (const key of this.keys) {
      const g = this.gen.get(key) || 0;
      this.kf.get(key).then((s) => {
        if (!this.sub.closed && (this.gen.get(key) || 0) === g) this.put(key, s);
      }, () => {});
    }
  }

  /** get is the latest state of key, undefined before its snapshot. */
  get(key) {
    return this.states.get(key);
  }

  close() {
    this.sub.close();
  }
}

/** Keyflux is a page's client: see keyflux.d.ts. */
export class Keyflux extends Emitter {
  constructor(opts = {}) {
    super();
    const loc = typeof location !== "undefined" ? location.href : "http://localhost/";
    this.base = new URL(opts.url || "/", loc).href.replace(/\/+$/, "");
    this.withCredentials = !!opts.withCredentials;
    this.tokenFn = typeof opts.token === "function" ? opts.token : null;
    this.key = JSON.stringify([this.base, this.withCredentials]);
    this.id = "c" + rand();
    this.subs = new Map(); // local id -> Subscription
    this.seq = 0;
    this.lastIds = [];
    this.status = "connecting";
    this.detail = {};
    this.closed = false;
    this.share = opts.share || "tabs";
    this.ready = this.lockTab();
    this.transport = this.makeTransport(this.share);
    this.resync(false, false);
    // A page that goes (or into the back-forward cache) says so at once:
    // the worker drops its subscriptions, a leader hands over now.
    this.onHide = () => {
      this.transport?.close();
      this.transport = null;
    };
    this.onShow = (e) => {
      if (!e.persisted || this.closed || this.transport) return;
      this.transport = this.makeTransport(this.share);
      this.resync(false);
    };
    if (typeof addEventListener === "function" && typeof window !== "undefined") {
      addEventListener("pagehide", this.onHide);
      addEventListener("pageshow", this.onShow);
    }
  }

  // lockTab holds a Web Lock for the life of this client, so that a
  // SharedWorker or a leader learns exactly when the page is gone.
  lockTab() {
    if (typeof navigator === "undefined" || !navigator.locks) return Promise.resolve("");
    this.lockName = "keyflux:client:" + this.id;
    return new Promise((resolve) => {
      navigator.locks.request(this.lockName, () => {
        resolve(this.lockName);
        return new Promise((r) => { this.unlock = r; });
      }).catch(() => resolve(""));
    });
  }

  makeTransport(share) {
    const fallback = () => {
      if (typeof BroadcastChannel === "function" && typeof navigator !== "undefined" && navigator.locks) {
        return new LeaderTransport(this);
      }
      return new LocalTransport(this);
    };
    if (share === "none") return new LocalTransport(this);
    if (share === "leader") return fallback();
    if (typeof SharedWorker === "function") {
      try {
        return new WorkerTransport(this, () => {
          // The worker could not run (a browser without module workers):
          // fall back, and say everything again.
          if (this.closed || !(this.transport instanceof WorkerTransport)) return;
          this.transport = fallback();
          this.resync(false);
        });
      } catch {
        /* cross-origin module or blocked: fall back */
      }
    }
    return fallback();
  }

  post(msg) {
    this.ready.then(() => {
      if (!this.closed || msg.t === "bye") this.transport?.post(msg);
    });
  }

  // resync says everything this client wants, to a new Hub.
  resync(takeover, subs = true) {
    const cfg = { base: this.base, withCredentials: this.withCredentials, hasToken: !!this.tokenFn };
    this.ready.then((lock) => {
      if (this.closed) return;
      this.transport?.post({ t: "hello", cfg, lock, resume: this.lastIds, takeover });
      if (subs) for (const [id, s] of this.subs) {
        this.transport?.post({ t: "sub", id, query: s.query, names: [...s.names], name: s.engineName });
      }
    });
  }

  add(sub) {
    if (this.closed) throw new Error("keyflux: closed");
    const id = ++this.seq;
    this.subs.set(id, sub);
    this.post({ t: "sub", id, query: sub.query, names: [...sub.names] });
    return id;
  }

  remove(sub) {
    if (!this.subs.delete(sub.local)) return;
    this.post({ t: "unsub", id: sub.local });
  }

  listen(sub, names) {
    if (this.subs.has(sub.local)) this.post({ t: "listen", id: sub.local, names });
  }

  seen(msg) {
    if (msg.lastId) this.lastIds[msg.g || 0] = msg.lastId;
  }

  receive(msg) {
    if (!msg || typeof msg !== "object" || this.closed) return;
    switch (msg.t) {
      case "ev":
        this.seen(msg);
        this.subs.get(msg.id)?.deliver(msg.name, msg.data, msg.lastId);
        break;
      case "named": {
        const s = this.subs.get(msg.id);
        if (s) s.engineName = msg.name;
        break;
      }
      case "suberr": {
        const s = this.subs.get(msg.id);
        if (s) {
          this.subs.delete(msg.id);
          s.fail(msg.message, msg.code);
        }
        break;
      }
      case "status":
        if (msg.status === this.status && sameState(msg.detail, this.detail)) break;
        this.status = msg.status;
        this.detail = msg.detail || {};
        this.emit("status", this.status, this.detail);
        break;
      case "token?":
        this.token().then((token) => this.post({ t: "token", req: msg.req, token }));
        break;
    }
  }

  async token() {
    if (!this.tokenFn) return "";
    try {
      return String(await this.tokenFn());
    } catch {
      return "";
    }
  }

  /** keyspace streams every change to keys matching pattern. */
  keyspace(pattern, opts = {}) {
    const q = new URLSearchParams({ pattern });
    if (opts.events?.length) q.set("events", opts.events.join(","));
    if (opts.values) q.set("values", "true");
    if (opts.db !== undefined) q.set("db", String(opts.db));
    addOps(q, opts);
    const names = opts.events?.length ? opts.events : KEYSPACE_EVENTS;
    return new Subscription(this, "keyspace?" + q, names);
  }

  /** watch keeps the live state of keys. */
  watch(keys) {
    return new Watch(this, typeof keys === "string" ? [keys] : keys);
  }

  /** channel relays a pub/sub channel (or, with opts.pattern, a pattern). */
  channel(name, opts = {}) {
    const q = new URLSearchParams();
    let path = "channels/" + encodeURIComponent(name);
    if (opts.pattern) {
      path = "channels";
      q.set("pattern", opts.pattern);
    }
    if (opts.sharded) q.set("sharded", "true");
    if (opts.encoding) q.set("encoding", opts.encoding);
    addOps(q, opts);
    return new Subscription(this, withQuery(path, q), ["message", "message;base64", ...(opts.events || [])]);
  }

  /** log reads a Redis Stream (entries named "entry" or by their event field). */
  log(key, opts = {}) {
    const q = new URLSearchParams();
    if (opts.from !== undefined) q.set("from", String(opts.from));
    if (opts.backlog !== undefined) q.set("backlog", String(opts.backlog));
    addOps(q, opts);
    return new Subscription(this, withQuery("log/" + encodeURIComponent(key), q), ["entry", ...(opts.events || [])]);
  }

  /** get reads the state of key now. */
  async get(key, opts = {}) {
    const headers = {};
    const token = await this.token();
    if (token) headers.Authorization = "Bearer " + token;
    let r;
    try {
      r = await fetch(this.base + "/api/keys/" + encodeURIComponent(key), {
        headers, signal: opts.signal, cache: "no-store",
        credentials: this.withCredentials ? "include" : "same-origin",
      });
    } catch (err) {
      if (err?.name === "AbortError") throw err;
      throw new KeyfluxError("Keyflux unreachable: " + (err?.message || err), 0);
    }
    const body = await r.json().catch(() => null);
    if (r.ok || (r.status === 404 && body && body.exists === false)) return body;
    throw new KeyfluxError(typeof body?.error === "string" ? body.error : "HTTP " + r.status, r.status);
  }

  /**
   * until resolves with the state of key once predicate holds (at once
   * when it already does); rejects with TimeoutError or AbortError.
   */
  until(key, predicate, opts = {}) {
    const { timeout, signal } = opts;
    return new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(namedError("AbortError", "until " + key + ": aborted"));
        return;
      }
      const w = this.watch([key]);
      let timer = 0;
      let settled = false;
      const onAbort = () => done(reject, namedError("AbortError", "until " + key + ": aborted"));
      const done = (fn, v) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        w.close();
        fn(v);
      };
      w.on("change", (_, s) => {
        let ok = false;
        try {
          ok = predicate(s);
        } catch (err) {
          done(reject, err);
          return;
        }
        if (ok) done(resolve, s);
      });
      w.on("error", (err) => done(reject, err));
      if (timeout !== undefined && timeout !== null) {
        timer = setTimeout(() => done(reject, namedError("TimeoutError", "until " + key + ": timed out after " + timeout + " ms")), timeout);
      }
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  close() {
    if (this.closed) return;
    for (const s of [...this.subs.values()]) s.closed = true;
    for (const s of this.subs.values()) s.finish();
    this.subs.clear();
    this.post({ t: "bye" });
    this.closed = true;
    this.ready.then(() => {
      this.transport?.close();
      this.transport = null;
      this.unlock?.();
    });
    if (typeof removeEventListener === "function" && typeof window !== "undefined") {
      removeEventListener("pagehide", this.onHide);
      removeEventListener("pageshow", this.onShow);
    }
  }
}

// ---------------------------------------------------------------- worker

// Loaded as a SharedWorker, this module is the Hub of every tab.
if (typeof SharedWorkerGlobalScope === "function" && self instanceof SharedWorkerGlobalScope) {
  const ports = new Map();
  const hub = new Hub((id, msg) => ports.get(id)?.postMessage(msg), (id) => ports.delete(id));
  self.onconnect = (e) => {
    const port = e.ports[0];
    port.onmessage = (ev) => {
      const { from, msg } = ev.data || {};
      if (typeof from !== "string") return;
      if (msg?.t === "hello") ports.set(from, port);
      hub.handle(from, msg);
    };
  };
}
