// check-hooks.mjs: node module hooks for check.mjs. Every k6 module ("k6",
// "k6/...") resolves to a stand-in that lets a script's init context run
// outside k6: k6/metrics records each metric's name and type, so that
// check.mjs can hold thresholds against them; the rest only has to exist
// (nothing here sends a request or opens a stream).

const STUBS = {
  "k6": `
    export function check() { return true; }
    export function fail(msg) { throw new Error("fail() in the init context: " + msg); }
    export function sleep() {}
    export function group(_, fn) { return fn(); }
    export function randomSeed() {}
    export default { check, fail, sleep, group, randomSeed };`,
  "k6/http": `
    const req = () => { throw new Error("k6/http called in the init context"); };
    const http = { get: req, post: req, put: req, del: req, patch: req, request: req, batch: req };
    export default http;
    export const get = req, post = req, put = req, del = req, patch = req, request = req, batch = req;`,
  "k6/metrics": `
    const registry = globalThis.__k6metrics;
    function metric(type) {
      return class {
        constructor(name, isTime) {
          if (typeof name !== "string" || !/^[A-Za-z_][A-Za-z0-9_]{0,127}$/.test(name)) {
            throw new Error("invalid metric name " + JSON.stringify(name));
          }
          const had = registry.get(name);
          if (had && had !== type) {
            throw new Error("metric " + name + " is a " + had + " and a " + type);
          }
          registry.set(name, type);
          this.name = name;
          this.isTime = !!isTime;
        }
        add() {}
      };
    }
    export const Counter = metric("counter");
    export const Gauge = metric("gauge");
    export const Rate = metric("rate");
    export const Trend = metric("trend");
    export default { Counter, Gauge, Rate, Trend };`,
  "k6/execution": `
    export default {
      vu: { idInTest: 1, idInInstance: 1, iterationInScenario: 0, iterationInInstance: 0 },
      scenario: { name: "", iterationInTest: 0, iterationInInstance: 0 },
      instance: { currentTestRunDuration: 0, vusActive: 0 },
      test: { abort() {} },
    };`,
  "k6/x/sse": `
    export default { open() { throw new Error("sse.open() in the init context"); } };`,
};

export async function resolve(specifier, context, next) {
  if (specifier === "k6" || specifier.startsWith("k6/")) {
    if (!(specifier in STUBS)) {
      throw new Error(`no stand-in for ${specifier}: add one to check-hooks.mjs if k6 has it`);
    }
    return { url: `k6stub:${specifier}`, shortCircuit: true };
  }
  return next(specifier, context);
}

export async function load(url, context, next) {
  if (url.startsWith("k6stub:")) {
    return { format: "module", source: STUBS[url.slice("k6stub:".length)], shortCircuit: true };
  }
  return next(url, context);
}
