// A ban seen, not guessed, against the sandbox's own ban (a process of its
// own, `api-entreprise sandbox --ban`): alone in its file, since the watch
// is the process's.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { ApiEntreprise, MemoryStore, ProbablyBannedError, QuotaExceededError, banWatch } from "../src/index.js";
import { SANDBOX_TOKEN, startSandbox } from "./sandbox.js";

const trace = { context: "aides publiques", recipient: "13002526500013", object: "dossier 42" };
let sandbox;

before(async () => {
  // The API's own count: past 3 requests a minute, no answer for an hour.
  sandbox = await startSandbox(["--ban", "3/1m", "--ban-seconds", "3600"]);
});
after(() => sandbox?.stop());

test("calls unanswered right after the per-IP window filled are a probable ban, and the next ones are held", async () => {
  // This client's quota (6 a minute) is above the API's: a misconfiguration,
  // or another machine behind the same IP.
  const api = new ApiEntreprise({
    quotaStore: new MemoryStore(),
    token: SANDBOX_TOKEN,
    baseUrl: sandbox.baseUrl,
    ipQuotas: [{ limit: 6, periodSeconds: 60 }],
  });
  const outcomes = await Promise.allSettled(
    Array.from({ length: 7 }, () => api.call("insee_unites_legales", ["552049447"], trace)),
  );
  const answered = outcomes.filter((o) => o.status === "fulfilled").length;
  const full = outcomes.filter((o) => o.reason instanceof QuotaExceededError).length;
  assert.equal(answered, 3, outcomes.map((o) => o.reason?.message ?? "ok").join("\n"));
  assert.equal(full, 1, "the 7th found the window full");
  assert.ok(banWatch.ban, "a probable ban after 3 silences right after the full window");
  const hours = (banWatch.ban.until - banWatch.ban.since) / 3600e3;
  assert.equal(hours, 12);

  const sent = (await sandbox.requests()).length;
  await assert.rejects(api.call("insee_unites_legales", ["552049447"], trace), (e) => {
    assert.ok(e instanceof ProbablyBannedError, String(e));
    assert.match(e.message, /right after the per-IP quota 6\/1m full: the IP is probably banned until/);
    return true;
  });
  assert.equal((await sandbox.requests()).length, sent, "held: nothing more was sent");
  // The sandbox logged the unanswered ones with no status.
  assert.equal((await sandbox.requests()).filter((r) => r.status === 0).length, 3);
});
