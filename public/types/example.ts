// Exercises every API of keyflux.d.ts; `tsc --noEmit -p public/types`
// checks it (nothing runs it). The @ts-expect-error lines must stay errors.
import {
  Keyflux, KeyfluxError, Subscription, Watch,
  type KeyState, type KeyspaceEvent, type ChannelMessage, type LogEntry,
  type Status, type StatusDetail, type ResetEvent,
} from "../keyflux.js";

export async function example(signal: AbortSignal): Promise<void> {
  const kf = new Keyflux({ url: "", share: "tabs" });
  new Keyflux({ share: "none" }).close();
  new Keyflux({ share: "leader", withCredentials: true, token: async () => "jwt" }).close();
  new Keyflux({ url: "https://keyflux.example.com", token: () => "jwt" }).close();
  new Keyflux().close();
  // @ts-expect-error: not a share mode
  new Keyflux({ share: "workers" });

  const sub: Subscription<KeyspaceEvent> = kf.keyspace("job:*", {
    events: ["set", "del"], filter: 'key != "job:0"', values: true, db: 0, throttle: "100ms", buffer: ["2s", 50],
  });
  sub.on("set", (ev) => {
    const key: string = ev.key;
    const ts: number = ev.ts;
    const id: string = ev.id;
    const name: string = ev.name;
    console.log(key, ts, id, name, ev.value);
  });
  sub.on("reset", (r) => {
    const reason: string = r.reason;
    console.log(reason, r.detail);
  });
  sub.on("connected", (c) => console.log(c.stream));
  sub.on("batch", (b) => console.log(b.data.length));
  sub.on("error", (err) => {
    const e: KeyfluxError = err;
    console.log(e.status, e.message);
  });
  for await (const ev of sub) {
    if (ev.name === "reset") console.log((ev as ResetEvent).reason);
    else console.log((ev as KeyspaceEvent).key);
    break;
  }
  sub.close();
  // @ts-expect-error: events is a list
  kf.keyspace("job:*", { events: "set" });

  const w: Watch = kf.watch(["order:42", "order:43"]);
  kf.watch("order:44").close();
  w.on("change", (key: string, state: KeyState) => {
    if (state.exists && state.type === "string") console.log(key, state.value, state.ttl_ms);
    else console.log(key, state.reason);
  });
  w.on("reset", (r) => console.log(r.reason));
  const latest: KeyState | undefined = w.get("order:42");
  console.log(latest?.value);
  w.close();

  const state: KeyState = await kf.get("order:42");
  await kf.get("order:42", { signal });
  console.log(state.exists);
  const done: KeyState = await kf.until("job:42", (s) => s.value === "done", { timeout: 30_000, signal });
  await kf.until("job:43", (s) => s.exists);
  console.log(done.value);
  try {
    await kf.until("job:44", (s) => s.exists, { timeout: 10 });
  } catch (err) {
    if (err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError")) console.log(err.name);
    if (err instanceof KeyfluxError) console.log(err.status);
  }
  // @ts-expect-error: the predicate gets a state
  kf.until("job:45", (s: number) => s > 1);

  const news: Subscription<ChannelMessage> = kf.channel("news").on("message", (m) => {
    const payload: string = m.data;
    console.log(payload);
  });
  kf.channel("", { pattern: "news:*", sharded: false, encoding: "base64", events: ["order-paid"] })
    .on("order-paid", (m) => console.log(m.data)).close();
  news.close();

  const audit: Subscription<LogEntry> = kf.log("audit:42", { from: "0" }).on("entry", (e) => {
    const field: string | undefined = e["user"];
    console.log(field, e.id);
  });
  kf.log("audit:43", { backlog: 10, events: ["order-paid"] }).close();
  audit.close();

  const onStatus = (s: Status, d: StatusDetail) => {
    if (s === "limited" || s === "offline") console.log(d.reason, d.code, d.retryAt);
  };
  kf.on("status", onStatus).off("status", onStatus);
  const now: Status = kf.status;
  console.log(now, kf.detail.reason);
  // @ts-expect-error: not a status
  const bad: Status = "closed";
  console.log(bad);
  kf.close();
}
