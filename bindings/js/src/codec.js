// The codec component (transpiled by jco into ../codec/ at build time): the
// client's validation, request building and parsing, with no capability at
// all. Every function speaks the contract's JSON form and returns
// `{ ok: value }` or `{ err: error }`, as the conformance vectors write them.

import { readFileSync } from "node:fs";
import { instantiate } from "../codec/codec.js";

const dir = new URL("../codec/", import.meta.url);
const modules = new Map();

/** The compiled core module at `path`, compiled once per process. */
function core(path) {
  let module = modules.get(path);
  if (!module) {
    module = new WebAssembly.Module(readFileSync(new URL(path, dir)));
    modules.set(path, module);
  }
  return module;
}

export class Codec {
  #root = instantiate(core, {});

  /** Runs `f` on the `json` interface; a trap costs a fresh instance. */
  #run(f) {
    let text;
    try {
      text = f(this.#root.json);
    } catch (e) {
      // jco throws a `result`'s err as a ComponentError with its payload.
      if (typeof e?.payload === "string") return { err: JSON.parse(e.payload) };
      // A trap leaves the instance unusable: start a new one.
      this.#root = instantiate(core, {});
      return { err: { tag: "other", val: `the codec component failed: ${e?.message ?? e}` } };
    }
    return { ok: JSON.parse(text) };
  }

  /** The component's catalogue: every endpoint it can call (a description). */
  endpoints() {
    return this.#run((json) => json.endpoints()).ok ?? [];
  }

  /** Validates `request` and builds the HTTP request against `baseUrl`. */
  prepare(baseUrl, request, now = new Date().toISOString()) {
    return this.#run((json) => json.prepare(baseUrl, JSON.stringify(request), now));
  }

  /** Parses the answer to `call` (what `prepare` gave). */
  parse(call, status, headers, body, now = new Date().toISOString()) {
    return this.#run((json) => json.parse(JSON.stringify(call), status, JSON.stringify(headers), body, now));
  }
}
