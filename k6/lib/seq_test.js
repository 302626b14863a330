// seq_test.js: node --test k6/lib/ (no k6 needed): the bookkeeping the
// scenarios' loss and order thresholds rest on.

import { test } from "node:test";
import assert from "node:assert/strict";

import { SeqTracker, idAfter, unwrap } from "./seq.js";

test("contiguous numbers lose nothing", () => {
  const t = new SeqTracker();
  for (let n = 1; n <= 5; n++) {
    assert.equal(t.see("w", n, "live", 1), "ok");
  }
  t.finish("w", 5, 1);
  assert.deepEqual(t.counts(), { received: 5, lost: {} });
});

test("a gap is lost, a late arrival is reordered, a repeat is a dup", () => {
  const t = new SeqTracker();
  assert.equal(t.see("w", 1), "ok");
  assert.equal(t.see("w", 4), "ok"); // 2 and 3 missing
  assert.equal(t.see("w", 3), "late");
  assert.equal(t.see("w", 3), "dup");
  assert.equal(t.see("w", 4), "dup");
  assert.deepEqual(t.counts(), { received: 3, lost: { live: 1 } });
});

test("head and tail: a reader subscribed before the writer must see 1 to the last", () => {
  const t = new SeqTracker();
  t.see("w", 3, "live", 1); // 1, 2 never came
  t.finish("w", 6, 1); // 4, 5, 6 neither
  assert.deepEqual(t.counts(), { received: 1, lost: { head: 2, tail: 3 } });
  const silent = new SeqTracker();
  silent.finish("w", 4, 1); // a writer never heard from
  assert.deepEqual(silent.counts(), { received: 0, lost: { tail: 4 } });
  const late = new SeqTracker();
  late.see("w", 10); // joined late: starts where it joined
  late.finish("w", 10);
  assert.deepEqual(late.counts(), { received: 1, lost: {} });
});

test("sources are counted apart; phases label where a gap opened", () => {
  const t = new SeqTracker();
  t.see("a", 1);
  t.see("b", 1);
  t.see("a", 2);
  t.see("b", 3, "resume");
  assert.equal(t.last("a"), 2);
  assert.equal(t.last("b"), 3);
  assert.deepEqual(t.counts(), { received: 4, lost: { resume: 1 } });
});

test("an allowed reset re-bases instead of opening a gap", () => {
  const t = new SeqTracker();
  t.see("w", 1);
  t.see("w", 2);
  t.reset();
  assert.equal(t.see("w", 2), "dup");
  assert.equal(t.see("w", 40), "ok");
  assert.equal(t.see("w", 42), "ok"); // after the re-base, gaps count again
  assert.deepEqual(t.counts(), { received: 4, lost: { live: 1 } });
});

test("huge gaps are counted without remembering each number", () => {
  const t = new SeqTracker();
  t.see("w", 1);
  t.see("w", 1000002);
  assert.deepEqual(t.counts(), { received: 2, lost: { live: 1000000 } });
});

test("idAfter compares Keyflux ids and Redis entry ids, not positions", () => {
  assert.equal(idAfter("dn41v3k2mjq8-10", "dn41v3k2mjq8-9"), true);
  assert.equal(idAfter("dn41v3k2mjq8-9", "dn41v3k2mjq8-10"), false);
  assert.equal(idAfter("1732500000001-0", "1732500000000-5"), true);
  assert.equal(idAfter("other-1", "dn41v3k2mjq8-9"), null);
  assert.equal(idAfter("v1.abc.def", "v1.abc.deg"), null);
});

test("unwrap reads a combined stream's data", () => {
  assert.deepEqual(unwrap({ sub: "c0", data: '{"seq":1}' }), { sub: "c0", data: { seq: 1 } });
  assert.deepEqual(unwrap({ sub: "k", data: { key: "a" } }), { sub: "k", data: { key: "a" } });
  assert.deepEqual(unwrap({ sub: "t", data: "plain" }), { sub: "t", data: "plain" });
  assert.equal(unwrap({ data: 1 }), null);
  assert.equal(unwrap(undefined), null);
});
