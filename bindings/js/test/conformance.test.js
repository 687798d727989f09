// The conformance vectors (tests/conformance/, written by `cargo xtask
// vectors` from the client's Rust code): this package's codec and policy
// must answer every case exactly as the vectors say, like the Rust host's.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { Codec, policyOf } from "../src/index.js";

function vectors(name) {
  return JSON.parse(readFileSync(new URL(`../../../tests/conformance/${name}`, import.meta.url), "utf8"));
}

/** The names of the cases whose answer is not `expect`. */
function disagreements(file, answer) {
  const v = vectors(file);
  const differ = v.cases.filter((c) => {
    try {
      assert.deepStrictEqual(answer(v, c), c.expect);
      return false;
    } catch {
      return true;
    }
  });
  return { count: v.cases.length, differ: differ.map((c) => c.name) };
}

const codec = new Codec();

test("the codec prepares every request as the vectors say", () => {
  const { count, differ } = disagreements("prepare.json", (v, c) => codec.prepare(v.base_url, c.request, v.now));
  assert.ok(count > 150, `${count} cases`);
  assert.deepStrictEqual(differ, []);
});

test("the codec parses every answer as the vectors say", () => {
  const { count, differ } = disagreements("parse.json", (v, c) =>
    codec.parse(c.call, c.status, c.headers, c.body, v.now),
  );
  assert.ok(count > 150, `${count} cases`);
  assert.deepStrictEqual(differ, []);
});

test("the policy decides every path as the vectors say", () => {
  const { count, differ } = disagreements("policy.json", (_, c) => policyOf(c.path));
  assert.ok(count > 50, `${count} cases`);
  assert.deepStrictEqual(differ, []);
});

test("a vector that lies is caught", () => {
  const v = vectors("parse.json");
  const c = structuredClone(v.cases[0]);
  c.expect.ok.status = 201;
  assert.notDeepStrictEqual(codec.parse(c.call, c.status, c.headers, c.body, v.now), c.expect);
});

test("answers hold no BigInt, so JSON.stringify works on them", () => {
  const v = vectors("parse.json");
  for (const c of v.cases) {
    JSON.stringify(codec.parse(c.call, c.status, c.headers, c.body, v.now));
  }
});
