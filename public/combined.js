// The page's one connection: a combined stream (GET /streams?sub=...) that
// carries every panel's subscription, so the page holds one of the
// browser's six HTTP/1.1 connections per site, not one per panel.
//
// Panels say what they want with set(name, sub); a change reopens the
// stream with the new subs, once the server has accepted them (validate).
// A sub the server refuses is not applied: the panel gets the server's
// message and keeps what it had, and the other subs carry on.
import { LiveStream, RequestError, validate } from "./stream.js";

/**
 * A sub is what one panel wants:
 *   query   "<stream>?<query>", e.g. "keyspace?pattern=user%3A*"
 *   events  event names its stream sends
 *   heals   true when the stream heals itself with snapshots after any gap
 *           (key watches), so adding it never costs the others their place
 *   meta    anything the panel wants back when the sub is refused
 */
export class CombinedStream {
  /**
   * routes     name -> {onEvent(name, data), onConnected(info)}
   * onState    (state, detail) of the connection (see LiveStream)
   * onReset    (reason): events of the connection may be missing
   * onRefused  (name, message, status, applied): the server refused sub
   *            name ("" when the message names none); applied is the meta
   *            of the sub still in use, if any
   * onApplied  (subs, before, resumed): the stream now carries subs (name
   *            -> sub) instead of before; resumed when it picks up where the
   *            old one stopped (see resumeFrom)
   * onAuthExpired (reason): the identity that opened the stream ended
   */
  constructor({ routes, onState, onReset, onRefused, onApplied, onAuthExpired }) {
    Object.assign(this, { routes, onState, onReset, onRefused, onApplied, onAuthExpired });
    this.want = new Map();
    this.applied = new Map();
    this.stream = null;
    this.gen = 0;
  }

  /** set asks for a sub (null: none); the stream reopens shortly after. */
  set(name, sub) {
    if (sub) this.want.set(name, sub);
    else this.want.delete(name);
    // Debounced, so that pinning several keys at once reopens once.
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.apply(), 30);
  }

  // apply opens the stream for what is wanted, unless it already runs;
  // force reopens it all the same (new credentials).
  async apply(force = false) {
    const gen = ++this.gen;
    this.checking?.abort();
    const want = new Map(this.want);
    const path = pathOf(want);
    if (!path) {
      this.replace(null, want);
      return;
    }
    if (!force && this.stream && this.stream.path === path && this.stream.state !== "error") return;
    if (!this.stream) this.onState("connecting", {});
    const ctl = new AbortController();
    this.checking = ctl;
    let retry;
    try {
      ({ retry } = await validate(path, ctl.signal));
    } catch (err) {
      if (gen !== this.gen) return;
      if (err instanceof RequestError) {
        this.refused(want, err);
        return;
      }
      // Network trouble: open anyway; the stream retries as a browser would.
    }
    if (gen !== this.gen) return;
    const lastId = this.resumeFrom(want);
    this.replace(new LiveStream({
      path,
      events: [...new Set([...want.values()].flatMap((s) => s.events))],
      lastId,
      retry,
      onEvent: (name, data) => this.route(data.sub)?.onEvent(name, data.data),
      onConnected: (info) => this.route(info?.sub)?.onConnected?.(info),
      onReset: (reason) => this.onReset(reason),
      onAuthExpired: (reason) => this.onAuthExpired?.(reason),
      onState: (state, d) => {
        if (this.stream?.path !== path) return; // replaced meanwhile
        this.onState(state, d);
        if (state === "error" && d.changed) this.explain(d.message, d.status); // refused on a reconnect
      },
    }), want, retry === undefined, lastId !== "");
  }

  route(name) {
    return typeof name === "string" && Object.hasOwn(this.routes, name) ? this.routes[name] : null;
  }

  // resumeFrom is the current stream's last id when the new stream can pick
  // up where it stops: every sub that cannot heal is unchanged (its topic,
  // kept by the server for --linger, replays what comes in between), so
  // pinning a key costs the log no events. Otherwise the new stream starts
  // now: a new topic cannot vouch for an older id and would answer "reset".
  // A sub that heals gets no snapshot of what it newly asks for when the
  // server already had those topics (another page watches the key): they
  // vouch for the id though this page never saw them, so onApplied says
  // "resumed" and the panel reads their state itself.
  resumeFrom(want) {
    const old = this.stream;
    if (!old?.lastId) return "";
    for (const [name, sub] of want) {
      if (!sub.heals && this.applied.get(name)?.query !== sub.query) return "";
    }
    return old.lastId;
  }

  replace(stream, want, validateFirst = false, resumed = false) {
    const old = this.stream;
    this.stream = stream; // first, so the old one's last states are ignored
    old?.stop(!!stream);
    const before = this.applied;
    this.applied = want;
    this.onApplied?.(want, before, resumed);
    if (!stream) {
      if (old) this.onState("closed", {});
      return;
    }
    if (validateFirst) stream.start().catch(() => { /* shown through onState */ });
    else stream.open();
  }

  // refused puts back the refused sub as it was applied (or drops it when
  // that is what was refused) and reopens with the rest.
  refused(want, err) {
    const name = this.explain(err.message, err.status);
    if (!name || !want.has(name)) {
      if (!this.stream) this.onState("error", { message: err.message, status: err.status });
      return;
    }
    const before = this.applied.get(name);
    if (before && before.query !== want.get(name).query) this.want.set(name, before);
    else this.want.delete(name);
    if (this.stream && this.stream.path === pathOf(this.want)) return; // still running what was applied
    if (!this.want.size) {
      this.replace(null, this.want);
      this.onState("error", { message: err.message, status: err.status });
      return;
    }
    this.apply();
  }

  // explain hands the server's message to the panel it is about: a
  // combined stream's errors start with `sub "<name>": `.
  explain(message, status) {
    const m = /^sub "([\w-]+)": ([\s\S]*)$/.exec(message);
    const name = m && this.want.has(m[1]) ? m[1] : "";
    this.onRefused(name, m ? m[2] : message, status, this.applied.get(name)?.meta);
    return name;
  }

  /**
   * restart reopens the stream with what is wanted, resuming where it
   * stopped: after a new token, when the old stream was refused or ended.
   */
  restart() {
    clearTimeout(this.timer);
    if (this.stream?.state === "live") return;
    this.apply(true);
  }

  /** suspend closes the connection but keeps what is wanted (signed out). */
  suspend() {
    clearTimeout(this.timer);
    this.gen++;
    this.checking?.abort();
    const old = this.stream;
    this.stream = null;
    old?.stop(true);
    this.onState("closed", {});
  }

  stop() {
    this.want.clear();
    clearTimeout(this.timer);
    this.apply();
  }
}

// pathOf is the combined stream's URL for subs, in name order so that the
// same subs always make the same URL.
function pathOf(subs) {
  if (!subs.size) return "";
  const q = new URLSearchParams();
  for (const name of [...subs.keys()].sort()) q.append("sub", name + ":" + subs.get(name).query);
  return "/streams?" + q;
}
