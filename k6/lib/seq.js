// seq.js: the bookkeeping of sequence numbers a reader receives, with no
// k6 import, so that node can test it (seq_test.js) and k6 scripts can use
// it through keyflux.js.
//
// A writer numbers its events 1, 2, 3, ... and publishes them one after
// another; a reader feeds every number it receives to see(). A number
// above the highest seen so far opens a gap: the numbers in between are
// missing until they arrive (late: reordered) or the reader is done (lost).
// A number that was never missing arrived twice (dup).

// Gaps larger than this are counted, not remembered one by one, so that a
// reader that missed a million events does not hold a million entries.
const MAX_REMEMBERED = 100000;

class Source {
  constructor() {
    this.last = 0; // highest number seen; 0: none yet
    this.rebase = false; // the next number starts afresh (after a reset)
    this.received = 0;
    this.missing = new Map(); // number -> phase it went missing in
    this.remembered = 0;
    this.bulk = {}; // phase -> count of missing numbers not remembered
  }

  gap(from, to, phase) {
    const n = to - from + 1;
    if (n <= 0) {
      return;
    }
    if (this.remembered + n > MAX_REMEMBERED) {
      this.bulk[phase] = (this.bulk[phase] || 0) + n;
      return;
    }
    for (let s = from; s <= to; s++) {
      this.missing.set(s, phase);
    }
    this.remembered += n;
  }
}

export class SeqTracker {
  constructor() {
    this.sources = new Map();
  }

  source(name) {
    let s = this.sources.get(name);
    if (!s) {
      s = new Source();
      this.sources.set(name, s);
    }
    return s;
  }

  // see records number seq of source name. expectFirst > 0 says which
  // number the first event must carry (1 when the reader was subscribed
  // before the writer began); otherwise the first number seen is the start.
  // phase labels the numbers a gap opened here makes missing ("live",
  // "resume", ...). Returns "ok", "late" (a missing number arrived after a
  // higher one) or "dup" (a number already received, or below the start).
  see(name, seq, phase = "live", expectFirst = 0) {
    const s = this.source(name);
    if (s.last === 0) {
      s.gap(expectFirst > 0 ? expectFirst : seq, seq - 1, "head");
      s.last = seq;
      s.received++;
      return "ok";
    }
    if (s.rebase && seq > s.last) {
      s.rebase = false; // the numbers skipped were announced by the reset
      s.last = seq;
      s.received++;
      return "ok";
    }
    if (seq > s.last) {
      s.gap(s.last + 1, seq - 1, phase);
      s.last = seq;
      s.received++;
      return "ok";
    }
    if (s.missing.delete(seq)) {
      s.remembered--;
      s.received++;
      return "late";
    }
    return "dup";
  }

  // finish records that the writer's last number was lastSeq: what the
  // reader has not seen of it by now is missing ("tail"). expectFirst as
  // for see(), for a source the reader never heard from.
  finish(name, lastSeq, expectFirst = 0) {
    const s = this.source(name);
    if (s.last === 0) {
      if (expectFirst > 0) {
        s.gap(expectFirst, lastSeq, "tail");
        s.last = lastSeq;
      }
      return;
    }
    if (lastSeq > s.last) {
      s.gap(s.last + 1, lastSeq, "tail");
      s.last = lastSeq;
    }
  }

  // reset is an announced loss (a `reset` event the run allows): the next
  // number of every source starts afresh instead of opening a gap.
  reset() {
    for (const s of this.sources.values()) {
      s.rebase = true;
    }
  }

  last(name) {
    const s = this.sources.get(name);
    return s ? s.last : 0;
  }

  // counts: numbers received and numbers missing, by phase.
  counts() {
    let received = 0;
    const lost = {};
    for (const s of this.sources.values()) {
      received += s.received;
      for (const phase of s.missing.values()) {
        lost[phase] = (lost[phase] || 0) + 1;
      }
      for (const [phase, n] of Object.entries(s.bulk)) {
        lost[phase] = (lost[phase] || 0) + n;
      }
    }
    return { received, lost };
  }
}

// idAfter says whether event id a comes after b: ids of the form
// <epoch>-<sequence> (Keyflux's without --journal) or <ms>-<n> (Redis entry
// ids, with --journal). null when they cannot be compared (positions of
// combined streams with ids of their own, v1....; another process's epoch).
export function idAfter(a, b) {
  const pa = /^(.+)-(\d+)$/.exec(a);
  const pb = /^(.+)-(\d+)$/.exec(b);
  if (!pa || !pb) {
    return null; // positions (v1....) and other forms: no order to check
  }
  if (pa[1] !== pb[1]) {
    const na = Number(pa[1]);
    const nb = Number(pb[1]);
    // Redis entry ids: <ms>-<n>; process epochs differ after a restart.
    return Number.isFinite(na) && Number.isFinite(nb) ? na > nb : null;
  }
  return Number(pa[2]) > Number(pb[2]);
}

// unwrap reads the data of an event of a combined stream,
// {"sub": name, "data": ...}; a text payload (a channel's) is a JSON
// string there, parsed here when it holds JSON.
export function unwrap(data) {
  if (!data || typeof data !== "object" || typeof data.sub !== "string") {
    return null;
  }
  let inner = data.data;
  if (typeof inner === "string") {
    try {
      inner = JSON.parse(inner);
    } catch (_) {
      // plain text: keep the string
    }
  }
  return { sub: data.sub, data: inner };
}

// parseJSON returns the parsed text, or undefined when it is not JSON.
export function parseJSON(text) {
  try {
    return JSON.parse(text);
  } catch (_) {
    return undefined;
  }
}
