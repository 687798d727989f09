// The quotas, decided as the Rust host decides them (the conformance
// scenarios of tests/conformance/quotas.json hold every host to it), in a
// store every host of the machine shares by default: the SQLite file of the
// state directory, read and written with the statements of
// catalogue/quota/sqlite.sql; or Redis, with the Lua scripts of
// catalogue/quota/; or, on request, this process's memory only.

import { readFileSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { homedir, hostname } from "node:os";
import { dirname, join, resolve } from "node:path";
import { randomBytes } from "node:crypto";
import { once } from "node:events";

const require = createRequire(import.meta.url);
const scripts = new URL("../codec/quota/", import.meta.url);
const script = (name) => readFileSync(new URL(name, scripts), "utf8");

/** The SQLite store's statements, by the name each carries in sqlite.sql. */
const SQL = Object.fromEntries(
  script("sqlite.sql")
    .split(/^-- name: /m)
    .slice(1)
    .map((part) => {
      const newline = part.indexOf("\n");
      return [part.slice(0, newline).trim(), part.slice(newline + 1).trim()];
    }),
);

/** The store's file in the state directory, as the Rust host names it. */
export const STATE_FILE = "quotas.sqlite3";

/** Where every key of the quotas lives in a shared Redis. */
export const REDIS_PREFIX = "api-entreprise:quota:";

/**
 * The state directory every host of this machine shares:
 * `$API_ENTREPRISE_STATE_DIR`, else `$XDG_STATE_HOME/api-entreprise`, else
 * `~/.local/state/api-entreprise`.
 */
export function stateDir(env = process.env) {
  if (env.API_ENTREPRISE_STATE_DIR) return resolve(env.API_ENTREPRISE_STATE_DIR);
  const base = env.XDG_STATE_HOME?.startsWith("/") ? env.XDG_STATE_HOME : join(homedir(), ".local/state");
  return join(base, "api-entreprise");
}

// The decision, step by step as in the Rust host's quota/windows.rs.

/** How long a request waits for a slot in one quota, or null. */
export function waitIn(limit, lengthMs, count, oldest, hint, now) {
  let wait = null;
  if (count >= limit) wait = oldest === null ? lengthMs : Math.max(0, oldest + lengthMs + 1 - now);
  if (hint && now < hint.reset && hint.remaining === 0) wait = Math.max(wait ?? 0, hint.reset - now);
  return wait;
}

/** The longest of the waits (`[quota, ms]`), first one on a tie. */
export function longest(waits) {
  let best = null;
  for (const [quota, ms] of waits) if (best === null || best.retryAfterMs < ms) best = { quota, retryAfterMs: ms };
  return best;
}

/**
 * The server's hint on a quota after its `word` (`{ remaining, resetInMs }`
 * from `RateLimit-*`, or `{ closedForMs }` from a 429) at `now`: it
 * tightens within the same reset (to the second), never loosens; null when
 * it changes nothing.
 */
export function hintAfter(current, word, now) {
  const live = current && now < current.reset ? current : null;
  if (word.closedForMs !== undefined) {
    const until = now + word.closedForMs;
    return { remaining: 0, reset: live ? Math.max(live.reset, until) : until };
  }
  if (word.resetInMs === 0) return null;
  const reset = now + word.resetInMs;
  if (live && Math.abs(live.reset - reset) < 1000) {
    return { remaining: Math.min(live.remaining, word.remaining), reset: live.reset };
  }
  return { remaining: word.remaining, reset };
}

/**
 * The decision every local store takes, whatever holds its windows:
 * `window(key)` expires the quota's old requests and gives `[count, oldest,
 * hint]`; `admit(key)` takes its slot. A slot in every quota, or in none.
 */
function decide(keys, now, window, admit) {
  const waits = [];
  for (const key of keys) {
    const [count, oldest, hint] = window(key);
    const wait = waitIn(key.limit, key.windowMs, count, oldest, hint, now);
    if (wait !== null) waits.push([key.name, wait]);
  }
  const refused = longest(waits);
  if (refused) return { full: refused };
  for (const key of keys) admit(key);
  return null;
}

/** The wall clock at creation, then the monotonic clock: a jump of the wall clock moves no window. */
function monotonicClock() {
  const wall = Date.now();
  const since = process.hrtime.bigint();
  return () => wall + Number((process.hrtime.bigint() - since) / 1_000_000n);
}

/** Quotas in this process only: what one process alone needs. */
export class MemoryStore {
  #windows = new Map();
  #clock;

  /** @param {() => number} [clock] what the store decides on, by default monotonic. */
  constructor(clock = monotonicClock()) {
    this.#clock = clock;
  }

  describe() {
    return "this process's memory";
  }

  #window(name) {
    let w = this.#windows.get(name);
    if (!w) this.#windows.set(name, (w = { admitted: [], server: null }));
    return w;
  }

  acquire(keys, now = this.#clock()) {
    const window = (key) => {
      const w = this.#window(key.name);
      while (w.admitted.length && now - w.admitted[0] > key.windowMs) w.admitted.shift();
      return [w.admitted.length, w.admitted[0] ?? null, w.server];
    };
    const admit = (key) => {
      const w = this.#window(key.name);
      w.admitted.push(now);
      if (w.server && now < w.server.reset) w.server.remaining = Math.max(0, w.server.remaining - 1);
    };
    return decide(keys, now, window, admit);
  }

  serverSaid(name, word, now = this.#clock()) {
    const w = this.#window(name);
    const hint = hintAfter(w.server, word, now);
    if (hint) w.server = hint;
  }

  close() {}
}

/** This boot's id (Linux), or null where the OS does not say. */
function bootId() {
  try {
    return readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim() || null;
  } catch {
    return null;
  }
}

/**
 * Quotas in the SQLite file every host of this machine shares, whatever its
 * language: one `BEGIN IMMEDIATE` transaction per decision, in WAL mode with
 * `synchronous = FULL`, on the file's clock (anchored to the wall clock once
 * a boot, then `CLOCK_MONOTONIC`, which every process of the machine reads
 * alike).
 */
export class SqliteStore {
  #db;
  #file;
  #given;
  #boot = bootId();
  #statements;
  #acquire;
  #said;

  /**
   * @param {string} file the SQLite file, created if missing.
   * @param {{ givenClock?: boolean }} [options] decide at the instant each call is given (tests).
   */
  constructor(file, { givenClock = false } = {}) {
    const Database = require("better-sqlite3");
    this.#file = file;
    this.#given = givenClock;
    try {
      mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    } catch (e) {
      throw new Error(`the quota state ${file}: creating its folder ${dirname(file)} failed (${e.message}); give a directory to API_ENTREPRISE_STATE_DIR`);
    }
    try {
      this.#db = new Database(file, { timeout: 2000 });
      this.#db.pragma("journal_mode = WAL");
      this.#db.pragma("synchronous = FULL");
      this.#db.exec(SQL.schema);
    } catch (e) {
      const why = e.code === "SQLITE_NOTADB" ? `it is not a quota state (${e.message}); move it away to start afresh` : e.message;
      throw new Error(`the quota state ${file}: ${why}`);
    }
    const s = (name) => this.#db.prepare(SQL[name]);
    this.#statements = Object.fromEntries(
      ["anchor", "latest", "forget_anchors", "set_anchor", "expire", "count", "hint", "admit", "spend", "set_hint"].map(
        (n) => [n, s(n)],
      ),
    );
    this.#acquire = this.#db.transaction((keys, given) => this.#decide(keys, this.#now(given)));
    this.#said = this.#db.transaction((name, word, given) => {
      const now = this.#now(given);
      const hint = hintAfter(this.#hint(name), word, now);
      if (hint) this.#statements.set_hint.run(name, hint.remaining, hint.reset);
    });
  }

  describe() {
    return `the state file ${this.#file}`;
  }

  #now(given) {
    if (this.#given) return given;
    const wall = Date.now();
    if (!this.#boot) return wall;
    const mono = Number(process.hrtime.bigint() / 1_000_000n);
    const st = this.#statements;
    const anchor = st.anchor.raw().get(this.#boot);
    if (anchor && mono >= anchor[1]) return anchor[0] + (mono - anchor[1]);
    const at = Math.max(wall, st.latest.raw().get()[0]);
    st.forget_anchors.run();
    st.set_anchor.run(this.#boot, at, mono);
    return at;
  }

  #hint(name) {
    const row = this.#statements.hint.raw().get(name);
    return row ? { remaining: Math.max(0, row[0]), reset: row[1] } : null;
  }

  #decide(keys, now) {
    const st = this.#statements;
    const window = (key) => {
      st.expire.run(key.name, now - key.windowMs);
      const [count, oldest] = st.count.raw().get(key.name);
      return [count, oldest, this.#hint(key.name)];
    };
    const admit = (key) => {
      st.admit.run(key.name, now, key.windowMs);
      st.spend.run(key.name, now);
    };
    return decide(keys, now, window, admit);
  }

  acquire(keys, now = 0) {
    try {
      return this.#acquire.immediate(keys, now);
    } catch (e) {
      return { unavailable: { store: this.describe(), reason: e.message } };
    }
  }

  serverSaid(name, word, now = 0) {
    try {
      this.#said.immediate(name, word, now);
    } catch (e) {
      process.emitWarning(`the server's word on ${name} was not saved in ${this.describe()}: ${e.message}`);
    }
  }

  close() {
    this.#db.close();
  }
}

/** A Redis URL without its password, for messages. */
export function redactUrl(url) {
  return url.replace(/^([a-z+]+:\/\/)([^@/]*):([^@/]*)@/, (_, scheme, user) => `${scheme}${user}:***@`);
}

/** ioredis options for `redis://…` or `redis+sentinel://[:PW@]H:P[,H:P…]/MASTER[/DB]`. */
function redisOptions(url) {
  const deadlines = {
    connectTimeout: 1000,
    commandTimeout: 500,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => 250,
  };
  const sentinel = url.match(/^redis\+sentinel:\/\/(?:(?:[^:@/]*):([^@/]*)@)?([^/]+)\/([^/]+)(?:\/(\d+))?$/);
  if (url.startsWith("redis+sentinel://")) {
    if (!sentinel) throw new Error(`${redactUrl(url)} is not redis+sentinel://[:PASSWORD@]HOST:PORT[,HOST:PORT…]/MASTER[/DB]`);
    const [, password, hosts, name, db] = sentinel;
    const sentinels = hosts.split(",").map((h) => {
      const [host, port = "26379"] = h.split(":");
      return { host, port: Number(port) };
    });
    return [{ sentinels, name, password: password && decodeURIComponent(password), db: Number(db ?? 0), ...deadlines }];
  }
  if (!/^rediss?:\/\//.test(url)) throw new Error(`${redactUrl(url)} is not a Redis URL: give redis://[:PASSWORD@]HOST:PORT/DB`);
  return [url, deadlines];
}

let unique = 0;

/**
 * Quotas in Redis, shared by every host behind one egress IP: the very Lua
 * scripts the Rust host runs (catalogue/quota/*.lua), on Redis's clock.
 * Every wait has a deadline (1 s to connect, 0.5 s an answer); while Redis
 * is away, every decision fails at once and nothing leaves.
 */
export class RedisStore {
  #client;
  #url;
  #prefix;

  constructor(url, prefix = REDIS_PREFIX) {
    const Redis = require("ioredis");
    this.#url = redactUrl(url);
    this.#prefix = prefix;
    this.#client = new Redis(...redisOptions(url));
    // Failures are the decisions' to report; the socket keeps no process
    // alive (a pending command's own deadline does, while it runs).
    this.#client.on("error", () => {});
    this.#client.on("connect", () => this.#client.stream?.unref?.());
    this.#client.defineCommand("apiEntrepriseAcquire", { lua: script("acquire.lua") });
    this.#client.defineCommand("apiEntrepriseServerSaid", { lua: script("server_said.lua"), numberOfKeys: 1 });
  }

  describe() {
    return `Redis at ${this.#url}`;
  }

  /** Waits up to the connection's deadline for Redis, when it is not connected. */
  async #ready() {
    if (this.#client.status === "ready") return;
    await once(this.#client, "ready", { signal: AbortSignal.timeout(1000) }).catch(() => {
      throw new Error(`no connection within 1 s (${this.#client.status})`);
    });
  }

  async acquire(keys) {
    const args = [];
    for (const key of keys) args.push(key.windowMs, key.limit);
    args.push(`${hostname()}:${process.pid}:${(unique += 1)}:${randomBytes(6).toString("hex")}`);
    try {
      await this.#ready();
      const [which, ms] = await this.#client.apiEntrepriseAcquire(
        keys.length,
        ...keys.map((k) => this.#prefix + k.name),
        ...args,
      );
      return which === 0 ? null : { full: { quota: keys[which - 1]?.name ?? "shared in Redis", retryAfterMs: ms } };
    } catch (e) {
      return { unavailable: { store: this.describe(), reason: e.message } };
    }
  }

  async serverSaid(name, word) {
    const [remaining, ms, close] =
      word.closedForMs !== undefined ? [0, word.closedForMs, 1] : [word.remaining, word.resetInMs, 0];
    try {
      await this.#ready();
      await this.#client.apiEntrepriseServerSaid(this.#prefix + name, remaining, ms, close);
    } catch (e) {
      process.emitWarning(`the server's word on ${name} was not kept in ${this.describe()}: ${e.message}`);
    }
  }

  close() {
    this.#client.disconnect();
  }
}

/** The stores this process opened, by where they are: every client shares them. */
const opened = new Map();

/**
 * The store for `quotaStore` (`"shared"`, the default: Redis when
 * `API_ENTREPRISE_REDIS_URL` is set, else the state directory's SQLite file;
 * `"memory"`: this process only; or a store object), one per process for
 * the same place, so that every client of the process counts together.
 */
export function openStore(quotaStore = "shared", env = process.env) {
  if (typeof quotaStore === "object" && quotaStore !== null) return quotaStore;
  let key;
  let make;
  if (quotaStore === "memory") {
    [key, make] = ["memory", () => new MemoryStore()];
  } else if (quotaStore === "shared" && env.API_ENTREPRISE_REDIS_URL) {
    const url = env.API_ENTREPRISE_REDIS_URL;
    [key, make] = [`redis ${url}`, () => new RedisStore(url)];
  } else if (quotaStore === "shared") {
    const file = join(stateDir(env), STATE_FILE);
    [key, make] = [`sqlite ${file}`, () => new SqliteStore(file)];
  } else {
    throw new TypeError(`quotaStore ${JSON.stringify(quotaStore)} is not "shared", "memory" or a store`);
  }
  if (!opened.has(key)) opened.set(key, make());
  return opened.get(key);
}
