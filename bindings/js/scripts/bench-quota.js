// The cost of one quota decision in Node (a slot taken in two quotas at
// once, as a call takes the per-IP one and its group), in this process's
// memory, in the machine's SQLite file, and through Redis at $REDIS_URL,
// side by side in one run. Printed as `RESULT {json}` for scripts/quota-speed.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { MemoryStore, RedisStore, SqliteStore } from "../src/quota.js";

// Limits no run reaches, windows of a second: every decision admits.
const keys = [
  { name: "bench ip", limit: 2 ** 31, windowMs: 1000 },
  { name: "bench group", limit: 2 ** 31, windowMs: 1000 },
];

/** The median of 5 batches of `n` decisions, per decision, in µs. */
async function perDecision(store, n) {
  for (let i = 0; i < n / 10; i++) await store.acquire(keys);
  const batches = [];
  for (let b = 0; b < 5; b++) {
    const t = process.hrtime.bigint();
    for (let i = 0; i < n; i++) await store.acquire(keys);
    batches.push(Number(process.hrtime.bigint() - t) / 1000 / n);
  }
  return batches.sort((a, b) => a - b)[2];
}

const dir = mkdtempSync(join(tmpdir(), "api-entreprise-bench-"));
const result = { language: `Node ${process.versions.node}` };
result.memory_us = await perDecision(new MemoryStore(), 100000);
const sqlite = new SqliteStore(join(dir, "quotas.sqlite3"));
result.sqlite_us = await perDecision(sqlite, 500);
sqlite.close();
if (process.env.REDIS_URL) {
  const redis = new RedisStore(process.env.REDIS_URL, "bench-node:");
  result.redis_us = await perDecision(redis, 2000);
  redis.close();
}
rmSync(dir, { recursive: true });
console.log(`RESULT ${JSON.stringify(result)}`);
