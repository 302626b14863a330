// One live SSE subscription: validated with fetch, then an EventSource that
// the browser resumes with Last-Event-ID after a blip. States:
//   connecting   -> validating or opening
//   live         -> the server confirmed the subscription ("connected")
//   reconnecting -> lost; retrying after the server's retry delay (countdown)
//   error        -> the server refused the request (message from its JSON)
//   closed       -> stopped by the page
//
// Browsers allow six HTTP/1.1 connections per site, so the page opens one
// of these, on the combined stream (see combined.js).

// Keyspace event names Redis can send; EventSource only delivers named
// events to listeners registered by name, so each gets one.
export const KEYSPACE_EVENTS = [
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

/** Events of a key watch (/streams/keys). */
export const KEY_EVENTS = ["snapshot", "update", "delete"];

const DEFAULT_RETRY_MS = 2000;

// open holds the page's EventSources, so the page can show how many of the
// browser's six connections it uses.
const open = new Set();

function track(es, add) {
  if (add) open.add(es);
  else open.delete(es);
  document.dispatchEvent(new CustomEvent("keyflux:connections", { detail: open.size }));
}
const MAX_RETRY_MS = 30000;

/** Thrown by validate when the server refuses a request. */
export class RequestError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/**
 * validate checks a stream URL the way an EventSource cannot: it fetches it,
 * and on 4xx/5xx returns the server's JSON {"error"} message. A valid stream
 * starts streaming at once; the first bytes carry the retry field, which is
 * read and then the request is aborted.
 * @returns {Promise<{retry:number}>}
 */
export async function validate(url, signal) {
  const ctl = new AbortController();
  const onAbort = () => ctl.abort();
  signal?.addEventListener("abort", onAbort);
  try {
    const resp = await fetch(url, { signal: ctl.signal, headers: { Accept: "text/event-stream" }, cache: "no-store" });
    if (!resp.ok) {
      let message = `HTTP ${resp.status}`;
      try {
        const body = await resp.json();
        if (body && typeof body.error === "string") message = body.error;
      } catch { /* not JSON: keep the status */ }
      throw new RequestError(resp.status, message);
    }
    let retry = DEFAULT_RETRY_MS;
    const reader = resp.body?.getReader();
    if (reader) {
      const { value } = await Promise.race([
        reader.read(),
        new Promise((r) => setTimeout(() => r({}), 1500)),
      ]);
      const m = value && /(?:^|\n)retry: ?(\d+)/.exec(new TextDecoder().decode(value));
      if (m) retry = Number(m[1]);
    }
    return { retry };
  } finally {
    signal?.removeEventListener("abort", onAbort);
    ctl.abort(); // headers (and the retry field) are all we wanted
  }
}

/**
 * LiveStream keeps one EventSource alive.
 *   path      stream URL without lastEventId
 *   events    event names to listen to (plus connected and reset)
 *   lastId    where to resume from on the first connect ("" for now)
 *   retry     the server's retry delay, when validate already read it
 *   onEvent   (name, data, id) for every data event
 *   onState   (state, detail) on every state change; detail has message,
 *             retryAt (ms epoch) and lastId
 *   onReset   (reason) when the server says events may have been missed
 *   onConnected (info) for each "connected" event
 *   onAuthExpired (reason) when the identity that opened the stream ended
 *             (token expired, session ended); the server closes it next
 */
export class LiveStream {
  constructor({ path, events, lastId = "", retry, onEvent, onState, onReset, onConnected, onAuthExpired }) {
    Object.assign(this, { path, events, onEvent, onState, onReset, onConnected, onAuthExpired });
    this.lastId = lastId;
    this.retry = retry ?? DEFAULT_RETRY_MS;
    this.backoff = 0;
    this.state = "closed";
    this.stopped = false;
    this.abort = new AbortController();
  }

  /** start validates and opens; it rejects with RequestError if refused. */
  async start() {
    this.setState("connecting");
    try {
      ({ retry: this.retry } = await validate(this.url(), this.abort.signal));
    } catch (err) {
      if (this.stopped) return;
      if (err instanceof RequestError) {
        this.setState("error", { message: err.message, status: err.status });
        throw err;
      }
      this.scheduleRetry(); // network trouble: try again like a browser would
      return;
    }
    if (!this.stopped) this.open();
  }

  url() {
    if (!this.lastId) return this.path;
    return this.path + (this.path.includes("?") ? "&" : "?") + "lastEventId=" + encodeURIComponent(this.lastId);
  }

  /** open connects at once, for a path validate has just accepted. */
  open() {
    this.setState("connecting");
    const es = new EventSource(this.url());
    this.es = es;
    track(es, true);
    const seen = (ev) => {
      if (ev.lastEventId) {
        this.lastId = ev.lastEventId;
      }
    };
    es.addEventListener("connected", (ev) => {
      seen(ev);
      this.backoff = 0;
      this.setState("live");
      this.onConnected?.(parse(ev.data));
    });
    es.addEventListener("reset", (ev) => {
      seen(ev);
      this.onReset?.(parse(ev.data)?.reason || "reset");
      this.setState(this.state);
    });
    es.addEventListener("auth-expired", (ev) => {
      // No id: the event is about the connection, not the data.
      this.onAuthExpired?.(parse(ev.data)?.reason ?? "");
    });
    for (const name of this.events) {
      es.addEventListener(name, (ev) => {
        seen(ev);
        const data = parse(ev.data);
        if (data) this.onEvent?.(name, data, ev.lastEventId);
        this.setState(this.state);
      });
    }
    es.onerror = () => {
      if (this.stopped || es !== this.es) return;
      if (es.readyState === EventSource.CONNECTING) {
        // The browser retries by itself after the retry delay, sending
        // Last-Event-ID, so nothing is lost while the server keeps the events.
        this.setState("reconnecting", { retryAt: Date.now() + this.retry });
      } else {
        // The browser gave up (a refused or odd response): revalidate, which
        // also shows the server's reason if it now refuses the request.
        es.close();
        track(es, false);
        this.scheduleRetry();
      }
    };
  }

  scheduleRetry() {
    const wait = retryDelay(this.retry, this.backoff++);
    this.setState("reconnecting", { retryAt: Date.now() + wait });
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.start().catch(() => { /* shown through onState */ });
    }, wait);
  }

  /** stop closes the stream; quiet when another one replaces it. */
  stop(quiet = false) {
    this.stopped = true;
    this.abort.abort();
    clearTimeout(this.timer);
    if (this.es) {
      this.es.close();
      track(this.es, false);
    }
    if (quiet) this.state = "closed";
    else this.setState("closed");
  }

  setState(state, detail = {}) {
    const changed = state !== this.state;
    this.state = state;
    if (detail.retryAt) this.retryAt = detail.retryAt;
    this.onState?.(state, { ...detail, retryAt: this.retryAt, lastId: this.lastId, changed });
  }
}

/**
 * retryDelay is the wait before reconnecting after the attempt-th error in
 * a row: the server's retry doubled per attempt (at most MAX_RETRY_MS / 2),
 * then drawn from [d, 2 x d), so that pages cut off together (a restart)
 * do not all come back at the same moment.
 */
export function retryDelay(retry, attempt) {
  const d = Math.min(MAX_RETRY_MS / 2, retry * 2 ** attempt);
  return Math.floor(d * (1 + Math.random()));
}

function parse(text) {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
