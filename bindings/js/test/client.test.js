// The client against the real sandbox (a process started by the test), and
// against small servers of the test's own for what the sandbox does not do
// (redirect elsewhere, never answer).

import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";

import {
  ApiEntreprise,
  ApiError,
  Codec,
  InvalidInputError,
  MemoryStore,
  QuotaExceededError,
  RefusedByHostError,
  TimeoutError,
  TokenRefusedError,
  TransportError,
} from "../src/index.js";
import { SANDBOX_TOKEN, startSandbox } from "./sandbox.js";

// Each client here counts alone (a fresh store of its own), and nothing
// reaches the user's state directory.
process.env.API_ENTREPRISE_STATE_DIR = mkdtempSync(join(tmpdir(), "api-entreprise-js-test-"));

const trace = { context: "aides publiques", recipient: "13002526500013", object: "dossier 42" };
let sandbox;

before(async () => {
  sandbox = await startSandbox();
});
after(() => sandbox?.stop());

function client(options = {}) {
  return new ApiEntreprise({ quotaStore: new MemoryStore(), token: SANDBOX_TOKEN, baseUrl: sandbox.baseUrl, ...options });
}

/** A server of the test's own on loopback; `handle(req, res)` answers. */
async function server(handle) {
  const s = createServer(handle);
  await new Promise((resolve) => s.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${s.address().port}`, close: () => s.closeAllConnections() || s.close() };
}

test("a unité légale comes back typed, with the token sent and the trace in the query", async () => {
  const before = (await sandbox.requests()).length;
  const r = await client().call("insee_unites_legales", ["552049447"], trace);
  assert.equal(r.status, 200);
  assert.equal(r.typed.tag, "unite-legale");
  assert.equal(r.typed.val.denomination, "SOCIETE NATIONALE SNCF");
  assert.match(r.typed.val.date_creation, /^\d{4}-\d{2}-\d{2}$/);
  assert.equal(r.data.siren, "552049447");
  assert.ok(r.request_id);
  JSON.stringify(r);
  const sent = (await sandbox.requests()).slice(before);
  assert.equal(sent.length, 1);
  assert.ok(sent[0].authorized, "the token reached the API");
  assert.deepEqual(
    sent[0].query.filter(([k]) => k !== "user_id"),
    [["context", trace.context], ["recipient", trace.recipient], ["object", trace.object]],
  );
});

test("invalid input is refused with the server's codes and nothing is sent", async () => {
  const before = (await sandbox.requests()).length;
  await assert.rejects(
    client().call("insee_unites_legales", ["552049448"], { ...trace, context: " " }),
    (e) => e instanceof InvalidInputError && e.codes.join() === "00201,00301",
  );
  assert.equal((await sandbox.requests()).length, before);
});

test("a server error comes back as an ApiError with its kind and codes", async () => {
  await assert.rejects(
    client().call("insee_etablissements", ["00000000000000"], trace),
    (e) => e instanceof ApiError && e.status === 404 && e.kind === "not-found" && e.codes.length > 0,
  );
  await assert.rejects(
    new ApiEntreprise({ quotaStore: new MemoryStore(), token: "wrong", baseUrl: sandbox.baseUrl }).call("insee_unites_legales", ["552049447"], trace),
    (e) => e instanceof ApiError && e.kind === "unauthorized" && e.codes.includes("00101"),
  );
});

test("past the per-IP quota nothing leaves, and the free routes stay free", async () => {
  const api = client({ ipQuotas: [{ limit: 3, periodSeconds: 60 }] });
  const before = (await sandbox.requests()).length;
  for (let i = 0; i < 3; i++) await api.call("insee_unites_legales", ["552049447"], trace);
  await assert.rejects(
    api.call("insee_unites_legales", ["552049447"], trace),
    (e) => e instanceof QuotaExceededError && e.quota === "ip 3/1m" && e.retryAfterSeconds > 0,
  );
  await api.call("pings");
  assert.equal((await sandbox.requests()).length, before + 4, "three calls and the free ping");
});

test("the token never follows a redirect to another host", async () => {
  let leaked = false;
  const elsewhere = await server((req, res) => {
    leaked = leaked || Boolean(req.headers.authorization);
    res.end("{}");
  });
  const api = await server((req, res) => {
    res.writeHead(302, { location: `${elsewhere.url}/v3/insee/sirene/unites_legales/552049447` }).end();
  });
  try {
    await assert.rejects(
      new ApiEntreprise({ quotaStore: new MemoryStore(), token: "secret", baseUrl: api.url }).call("insee_unites_legales", ["552049447"], trace),
      (e) => e instanceof ApiError && e.status === 302 && e.kind === "unexpected",
    );
    assert.equal(leaked, false);
  } finally {
    api.close();
    elsewhere.close();
  }
});

test("a silent API times out after 5 s for JSON", async () => {
  const silent = await server(() => {});
  try {
    const started = Date.now();
    await assert.rejects(
      new ApiEntreprise({ quotaStore: new MemoryStore(), token: "t", baseUrl: silent.url }).call("insee_unites_legales", ["552049447"], trace),
      (e) => e instanceof TimeoutError && e.detail === 5000,
    );
    assert.ok(Date.now() - started < 8000);
  } finally {
    silent.close();
  }
});

test("bad configuration says what to do, and a closed port is a transport error", async () => {
  assert.throws(() => new ApiEntreprise({ baseUrl: sandbox.baseUrl }), /give the API Entreprise token/);
  assert.throws(() => new ApiEntreprise({ quotaStore: new MemoryStore(), token: "t", baseUrl: "http://example.com" }), /must use https/);
  assert.throws(() => new ApiEntreprise({ quotaStore: new MemoryStore(), token: "t", baseUrl: "https://x.fr/v3" }), /scheme and a host only/);
  const closed = await server(() => {});
  closed.close();
  await assert.rejects(
    new ApiEntreprise({ quotaStore: new MemoryStore(), token: "t", baseUrl: closed.url }).call("pings"),
    (e) => e instanceof TransportError,
  );
});

test("a codec that builds a URL for another host, or lies about the route, is not trusted", async () => {
  // The allow-list and the quotas are this package's, decided from the URL
  // it is about to fetch, whatever the codec says.
  const sent = [];
  const fetch = async (url) => {
    sent.push(String(url));
    return new Response('{"data":{},"links":{},"meta":{}}', { status: 200 });
  };
  const real = new Codec();
  const elsewhere = {
    prepare: (base, request) => {
      const p = real.prepare(base, request);
      return { ok: { ...p.ok, url: "https://attacker.example/v3/insee/sirene/unites_legales/552049447" } };
    },
    parse: (...args) => real.parse(...args),
  };
  const api = new ApiEntreprise({ quotaStore: new MemoryStore(), token: "t", baseUrl: "https://entreprise.api.gouv.fr", fetch, codec: elsewhere });
  await assert.rejects(api.call("insee_unites_legales", ["552049447"], trace), RefusedByHostError);
  assert.deepEqual(sent, []);

  // A codec that asks for a free ping but builds the Sirene path: counted.
  const disguised = {
    prepare: (base) => real.prepare(base, { endpoint: "insee_unites_legales", params: ["552049447"], trace }),
    parse: (...args) => real.parse(...args),
  };
  const counted = new ApiEntreprise({
    quotaStore: new MemoryStore(),
    token: "t",
    baseUrl: "https://entreprise.api.gouv.fr",
    fetch,
    codec: disguised,
    ipQuotas: [{ limit: 2, periodSeconds: 60 }],
  });
  await counted.call("pings");
  await counted.call("pings");
  await assert.rejects(counted.call("pings"), QuotaExceededError);
  assert.equal(sent.length, 2);
});

test("a 429 closes the endpoint's group until its Retry-After: the next call is not sent", async () => {
  let arrivals = 0;
  const limited = await server((req, res) => {
    arrivals += 1;
    res.writeHead(429, { "content-type": "application/json", "retry-after": "30" });
    res.end('{"errors":[{"code":"00429","title":"Too many requests","detail":"wait"}]}');
  });
  try {
    const api = new ApiEntreprise({ quotaStore: new MemoryStore(), token: "t", baseUrl: limited.url });
    await assert.rejects(
      api.call("insee_unites_legales", ["552049447"], trace),
      (e) => e instanceof ApiError && e.kind === "rate-limited" && e.retryAfterSeconds === 30,
    );
    await assert.rejects(
      api.call("insee_unites_legales", ["552049447"], trace),
      (e) => e instanceof QuotaExceededError && e.quota === "group json_resources_entreprise" && e.retryAfterSeconds <= 30,
    );
    assert.equal(arrivals, 1);
  } finally {
    limited.close();
  }
});

test("clients of one process count together in the shared store, and a full quota waits for its slot", async () => {
  const ipQuotas = [{ limit: 3, periodSeconds: 2 }];
  const [a, b] = [client({ quotaStore: "shared", ipQuotas }), client({ quotaStore: "shared", ipQuotas })];
  const impatient = client({ quotaStore: "shared", ipQuotas, waitForSlot: false });
  assert.match(a.quotaStore, /quotas\.sqlite3$/);
  const before = (await sandbox.requests()).length;
  for (const api of [a, b, a]) await api.call("insee_unites_legales", ["552049447"], trace);
  await assert.rejects(
    impatient.call("insee_unites_legales", ["552049447"], trace),
    (e) => e instanceof QuotaExceededError && e.quota === "ip 3/2s",
    "three clients of one process, a quota of 3: the fourth call is refused",
  );
  // With waiting (the default), the next call goes once the oldest slot
  // frees, within the call's deadline.
  const started = performance.now();
  await b.call("insee_unites_legales", ["552049447"], trace);
  const waited = performance.now() - started;
  assert.ok(waited > 500, `the call waited ${waited} ms for its slot`);
  assert.equal((await sandbox.requests()).length, before + 4);
});

test("an answer past 16 MiB is not read whole, and a path with an encoded separator never leaves", async () => {
  const huge = await server((req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    const chunk = Buffer.alloc(1 << 20, 32);
    let sent = 0;
    const more = () => {
      while (sent < 20 && res.write(chunk)) sent += 1;
      if (sent < 20) res.once("drain", more);
      else res.end();
    };
    more();
  });
  try {
    const api = new ApiEntreprise({ quotaStore: new MemoryStore(), token: "t", baseUrl: huge.url });
    await assert.rejects(
      api.call("insee_unites_legales", ["552049447"], trace),
      (e) => e instanceof TransportError && /larger than 16 MiB/.test(e.message),
    );
  } finally {
    huge.close();
  }
  const sent = [];
  const real = new Codec();
  for (const path of ["/v3/insee/sirene/unites_legales/552049447%2F..%2Fx", "/v3/insee/%2e%2e/ping/x", "/v3/insee/./sirene"]) {
    const sneaky = {
      prepare: (base, request) => ({ ok: { ...real.prepare(base, request).ok, url: `https://entreprise.api.gouv.fr${path}` } }),
      parse: (...args) => real.parse(...args),
    };
    const api = new ApiEntreprise({
      quotaStore: new MemoryStore(),
      token: "t",
      baseUrl: "https://entreprise.api.gouv.fr",
      codec: sneaky,
      fetch: async (url) => sent.push(String(url)),
    });
    await assert.rejects(
      api.call("insee_unites_legales", ["552049447"], trace),
      (e) => e instanceof RefusedByHostError && /nothing was sent/.test(e.message),
      path,
    );
  }
  assert.deepEqual(sent, []);
});

test("a token the API refuses as such stops its calls: the next one is refused here and nothing is sent", async () => {
  const api = client({ token: "a-token-the-api-does-not-know" });
  const before = (await sandbox.requests()).length;
  await assert.rejects(
    api.call("insee_unites_legales", ["552049447"], trace),
    (e) => e instanceof ApiError && e.status === 401 && e.codes.includes("00101"),
  );
  await assert.rejects(api.call("insee_unites_legales", ["552049447"], trace), (e) => {
    assert.ok(e instanceof TokenRefusedError, String(e));
    assert.equal(e.code, "00101");
    assert.match(e.message, /refused the token with 00101 .*: it is not valid.*nothing was sent/);
    return true;
  });
  assert.equal((await sandbox.requests()).length, before + 1, "only the first call reached the API");
  // Another token of the same process is not held.
  await client().call("insee_unites_legales", ["552049447"], trace);
});
