// The Node side of `scripts/speed`: prepare + parse of the 1.7 KB Sirene
// answer through this package's codec (the answer decoded), and the whole
// call against the sandbox at $SANDBOX_URL, printed as `RESULT {json}`.

import { readFileSync, statSync } from "node:fs";

const CASE = "v4/insee_unites_legales/personne_morale";
const started = performance.now();
const { ApiEntreprise, Codec } = await import("../src/index.js");
const codec = new Codec();
const loadMs = performance.now() - started;

function find(file) {
  const v = JSON.parse(readFileSync(new URL(`../../../tests/conformance/${file}`, import.meta.url), "utf8"));
  return [v, v.cases.find((c) => c.name === CASE)];
}

/** The median and the fastest of 10 batches, per call, in µs. */
function perCall(calls, f) {
  for (let i = 0; i < calls / 10; i++) f();
  const batches = [];
  for (let b = 0; b < 10; b++) {
    const t = process.hrtime.bigint();
    for (let i = 0; i < calls / 10; i++) f();
    batches.push(Number(process.hrtime.bigint() - t) / 1000 / (calls / 10));
  }
  batches.sort((a, b) => a - b);
  const us = (x) => Math.round(x * 10) / 10;
  return { median_us: us(batches[5]), min_us: us(batches[0]) };
}

const [pv, prepare] = find("prepare.json");
const [, parse] = find("parse.json");
const prepareParse = perCall(20000, () => {
  const call = codec.prepare(pv.base_url, prepare.request, pv.now).ok;
  codec.parse(call, 200, parse.headers, parse.body, pv.now);
});

let callUs = null;
if (process.env.SANDBOX_URL) {
  const api = new ApiEntreprise({ token: "sandbox-token-not-a-secret", baseUrl: process.env.SANDBOX_URL });
  const trace = { context: "aides publiques", recipient: "13002526500013", object: "dossier 42" };
  for (let i = 0; i < 20; i++) await api.call("insee_unites_legales", ["552049447"], trace);
  const calls = 200;
  const t = process.hrtime.bigint();
  for (let i = 0; i < calls; i++) await api.call("insee_unites_legales", ["552049447"], trace);
  callUs = Math.round(Number(process.hrtime.bigint() - t) / 1000 / calls);
}

const size = (f) => statSync(new URL(`../codec/${f}`, import.meta.url)).size;
console.log(
  `RESULT ${JSON.stringify({
    language: `Node ${process.versions.node} (jco 1.35)`,
    load_ms: Math.round(loadMs * 10) / 10,
    prepare_parse: prepareParse,
    call_us: callUs,
    artifact: { "codec.core.wasm": size("codec.core.wasm"), "codec.js": size("codec.js") },
  })}`,
);
