// Types of keyflux.js, the browser client of Keyflux (served at /keyflux.js).
// Checked against types/example.ts with `tsc --noEmit` in CI.

/** The state of a key, as GET /api/keys/<key> and key watches give it. */
export interface KeyState {
  key: string;
  exists: boolean;
  /** "string", "hash", "list", "set", "zset", "stream", "none", or a module type's name. */
  type: string;
  /** Shaped by type (see docs/streams.md, Values); null when the key does not exist. */
  value: KeyValue;
  /** PTTL at the time of the read: -1 without expiry, -2 for a missing key. */
  ttl_ms: number;
  /** Why the key went away, on a delete: "del", "expired", "evicted", "renamed", "moved", "unknown", ... */
  reason?: string;
}

export type KeyValue =
  | string
  | { base64: string }
  | { truncated: true; size: number }
  | { [field: string]: string | { base64: string } }
  | Array<string | { base64: string }>
  | Array<[string | { base64: string }, number | "inf" | "-inf"]>
  | Array<[string | { base64: string }, string | { base64: string }]>
  | { length: number; last_id: string }
  | null;

/** The connection's state. */
export type Status = "connecting" | "live" | "offline" | "limited";

/** Why the connection is not live, when it is not. */
export interface StatusDetail {
  /** The server's reason ({"error"} of its refusal) or what went wrong. */
  reason?: string;
  /** The HTTP status of the refusal; 0 when Keyflux could not be reached. */
  code?: number;
  /** When the next attempt is made (Unix ms). */
  retryAt?: number;
}

/** A refusal of the server; status is 0 when Keyflux could not be reached. */
export declare class KeyfluxError extends Error {
  readonly name: "KeyfluxError";
  readonly status: number;
  constructor(message: string, status: number);
}

/** Where this page's connection comes from. */
export type Share =
  /** Every tab of the origin shares one connection (SharedWorker, else a leader tab). */
  | "tabs"
  /** A leader tab chosen with Web Locks relays over a BroadcastChannel (no SharedWorker). */
  | "leader"
  /** One connection for this page. */
  | "none";

export interface KeyfluxOptions {
  /** Keyflux's origin (and path prefix); "" or absent: this page's origin. */
  url?: string;
  /** How connections are shared between tabs; default "tabs". */
  share?: Share;
  /**
   * A fresh token, asked for before each connection and when the server says
   * the identity expired: sent as ?access_token= on streams and as
   * Authorization: Bearer on requests. Without it the cookie is used.
   */
  token?: () => string | Promise<string>;
  /** Send cookies to a Keyflux on another origin (EventSource withCredentials, fetch credentials "include"). */
  withCredentials?: boolean;
}

/** Operators applied by the server, once per distinct stream. */
export interface Operators {
  /** An expr boolean expression over the event: keep the events for which it holds. */
  filter?: string;
  /** An expr expression: the event's data becomes its value. */
  map?: string;
  /** At most one event per key per interval, e.g. "500ms". */
  throttle?: string;
  /** Gather events into "batch" events: a duration, a count, or both. */
  buffer?: string | number | Array<string | number>;
}

export interface KeyspaceOptions extends Operators {
  /** Redis event names to keep (set, del, expired, hset, ...); default all. */
  events?: string[];
  /** Add each key's type and value to its events. */
  values?: boolean;
  /** The database number. */
  db?: number;
}

export interface ChannelOptions extends Operators {
  /** Relay the channels matching this glob instead of the named channel. */
  pattern?: string;
  /** Sharded pub/sub (SSUBSCRIBE). */
  sharded?: boolean;
  encoding?: "text" | "base64";
  /** Event names taken from payloads ({"event": "..."}) to listen to from the start. */
  events?: string[];
}

export interface LogOptions extends Operators {
  /** Every entry from this id on (inclusive), then live. */
  from?: string;
  /** The last n entries (1..10000), then live. */
  backlog?: number;
  /** Event names taken from entries' event field to listen to from the start. */
  events?: string[];
}

export interface UntilOptions {
  /** Reject with a TimeoutError after this many ms. */
  timeout?: number;
  /** Reject with an AbortError when it aborts. */
  signal?: AbortSignal;
}

export interface GetOptions {
  signal?: AbortSignal;
}

/** Fields every delivered event has. */
export interface EventMeta {
  /** The SSE id (opaque), "" when the event has none. */
  id: string;
  /** The event's name. */
  name: string;
}

/** A keyspace event: {"key","event","db","ts"} and, with values, type and value. */
export interface KeyspaceEvent extends EventMeta {
  key: string;
  event: string;
  db: number;
  ts: number;
  type?: string;
  value?: KeyValue;
  node?: string;
}

/** A pub/sub message: data is the payload, as published. */
export interface ChannelMessage extends EventMeta {
  data: string;
}

/** A Redis Stream entry: its fields, every value a string. */
export type LogEntry = EventMeta & { [field: string]: string };

export interface ResetEvent extends EventMeta {
  reason: string;
  detail?: string;
}

export interface ConnectedEvent extends EventMeta {
  stream: string;
  [field: string]: unknown;
}

/** An event of a batch (the buffer operator). */
export interface BatchEvent<E> extends EventMeta {
  data: Array<{ event: string; data: unknown }>;
}

/** Events of a subscription by name; other names carry E. */
export interface SubscriptionEvents<E> {
  connected: ConnectedEvent;
  reset: ResetEvent;
  batch: BatchEvent<E>;
}

/** One stream of a Keyflux: a keyspace, a channel or a Redis Stream. */
export declare class Subscription<E extends EventMeta = EventMeta> implements AsyncIterable<E | ResetEvent> {
  /** Listen to events named name; returns this subscription. */
  on<K extends keyof SubscriptionEvents<E>>(name: K, fn: (ev: SubscriptionEvents<E>[K]) => void): this;
  /** "error": the server refused this subscription; it is closed. */
  on(name: "error", fn: (err: KeyfluxError) => void): this;
  on(name: string, fn: (ev: E) => void): this;
  off(name: string, fn: (...args: any[]) => void): this;
  /** Every event but "connected", until close(); a refusal is thrown. */
  [Symbol.asyncIterator](): AsyncIterator<E | ResetEvent>;
  /** Stop; async iteration ends. */
  close(): void;
}

/** The live state of keys. */
export declare class Watch {
  /** state is as GET /api/keys gives it (exists: false once deleted). */
  on(name: "change", fn: (key: string, state: KeyState) => void): this;
  /** Events may have been missed; the watch reads its keys again by itself. */
  on(name: "reset", fn: (ev: { reason: string; detail?: string }) => void): this;
  on(name: "error", fn: (err: KeyfluxError) => void): this;
  off(name: string, fn: (...args: any[]) => void): this;
  /** The latest state of key; undefined before its snapshot. */
  get(key: string): KeyState | undefined;
  close(): void;
}

export declare class Keyflux {
  constructor(options?: KeyfluxOptions);
  /** The connection's state now. */
  readonly status: Status;
  /** Why it is not live. */
  readonly detail: StatusDetail;
  /** Every change to keys matching a Redis glob pattern. */
  keyspace(pattern: string, options?: KeyspaceOptions): Subscription<KeyspaceEvent>;
  /** The live state of keys. */
  watch(keys: string | string[]): Watch;
  /** The state of key now; rejects with the server's message (KeyfluxError). */
  get(key: string, options?: GetOptions): Promise<KeyState>;
  /**
   * Resolves with key's state once predicate holds for it (at once when it
   * already does); rejects with an Error named "TimeoutError" or "AbortError".
   */
  until(key: string, predicate: (state: KeyState) => boolean, options?: UntilOptions): Promise<KeyState>;
  /** A pub/sub channel ("message" events, or the payloads' own event names). */
  channel(name: string, options?: ChannelOptions): Subscription<ChannelMessage>;
  /** A Redis Stream ("entry" events, or the entries' event field). */
  log(key: string, options?: LogOptions): Subscription<LogEntry>;
  on(name: "status", fn: (status: Status, detail: StatusDetail) => void): this;
  off(name: "status", fn: (status: Status, detail: StatusDetail) => void): this;
  /** Close every subscription and this client's share of the connection. */
  close(): void;
}
