// The quota policy's conformance scenarios (tests/conformance/quotas.json,
// written from the Rust host's decisions): this package must decide every
// step alike, in memory and in the machine's SQLite file.

import assert from "node:assert/strict";
import { readFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { parseQuota, quotaKeys, serverWords, tokenId } from "../src/policy.js";
import { MemoryStore, SqliteStore } from "../src/quota.js";

const scenarios = JSON.parse(readFileSync(new URL("../../../tests/conformance/quotas.json", import.meta.url), "utf8"));

/** This package's decisions for every step of `scenario` in `store`. */
function decide(scenario, store) {
  const ipQuotas = scenario.ip_quotas.map(parseQuota);
  const jti = scenario.token ? tokenId(scenario.token) : null;
  return scenario.steps.map((step) => {
    if (step.acquire !== undefined) {
      const { keys } = quotaKeys(step.acquire, ipQuotas, jti);
      const names = keys.map((k) => k.name);
      const denied = store.acquire(keys, step.at);
      if (!denied) return { keys: names, admitted: true };
      assert.ok(denied.full, JSON.stringify(denied));
      return { keys: names, admitted: false, refused_by: denied.full.quota, retry_after_ms: denied.full.retryAfterMs };
    }
    const { path, status, headers } = step.answer;
    const { group } = quotaKeys(path, ipQuotas, jti);
    if (group) for (const word of serverWords(status, new Headers(headers), step.at)) store.serverSaid(group, word, step.at);
    return undefined;
  });
}

/**
 * What `kind` of store must decide: the SQLite store counts in buckets, and
 * where it decides otherwise the step says it in `in_buckets`.
 */
function expected(expect, kind) {
  if (!expect) return expect;
  const { in_buckets: inBuckets, ...exact } = expect;
  return kind === "sqlite" && inBuckets ? inBuckets : exact;
}

const stores = {
  memory: () => [new MemoryStore(), () => {}],
  sqlite: () => {
    const dir = mkdtempSync(join(tmpdir(), "api-entreprise-scenario-"));
    const store = new SqliteStore(join(dir, "quotas.sqlite3"), { givenClock: true });
    return [store, () => { store.close(); rmSync(dir, { recursive: true }); }];
  },
};

for (const [kind, open] of Object.entries(stores)) {
  test(`every quota scenario is decided as the Rust host decides it, ${kind}`, () => {
    let steps = 0;
    for (const scenario of scenarios.scenarios) {
      const [store, done] = open();
      try {
        const ours = decide(scenario, store);
        scenario.steps.forEach((step, i) => {
          steps += 1;
          assert.deepStrictEqual(ours[i], expected(step.expect, kind), `${scenario.name}, step ${i} (at +${step.at - scenario.steps[0].at} ms)`);
        });
      } finally {
        done();
      }
    }
    assert.ok(steps >= 60, `${steps} steps`);
  });
}

test("API_ENTREPRISE_IP_QUOTA is read as the Rust host reads it, and a bad one says the form", () => {
  assert.deepStrictEqual(parseQuota(" 2000/10m "), { limit: 2000, periodSeconds: 600 });
  assert.deepStrictEqual(parseQuota("1000/min"), { limit: 1000, periodSeconds: 60 });
  assert.deepStrictEqual(parseQuota("5/s"), { limit: 5, periodSeconds: 1 });
  for (const bad of ["", "2000", "0/1m", "x/1m", "10/0m", "10/1d", "-1/1m"]) {
    assert.throws(() => parseQuota(bad), /N\/DURATION/, bad);
  }
});

test("a state file that is not a quota state is refused with what to do, never reset", async () => {
  const { writeFileSync } = await import("node:fs");
  const dir = mkdtempSync(join(tmpdir(), "api-entreprise-bad-state-"));
  const file = join(dir, "quotas.sqlite3");
  writeFileSync(file, "not a database, but long enough to have a header of one\n".repeat(20));
  assert.throws(() => new SqliteStore(file), /not a quota state.*move it away/);
  rmSync(dir, { recursive: true });
});
