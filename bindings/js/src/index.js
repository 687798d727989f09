// API Entreprise for Node: the client's codec component (validation with the
// server's codes, request building, tolerant parsing), and a client that
// keeps the host's promises in JavaScript: the token only to the API's
// authority, the allow-list, the 5 s / 12 s timeouts, a 16 MiB cap on an
// answer, and the quotas counted with every host of the machine.

import { banWatch } from "./ban.js";
import { Codec } from "./codec.js";
import {
  ProbablyBannedError,
  QuotaExceededError,
  QuotaStoreUnavailableError,
  RefusedByHostError,
  TimeoutError,
  TokenRefusedError,
  TransportError,
  errorFrom,
} from "./errors.js";
import { ipQuotasFromEnv, policyOf, quotaKeys, serverWords, table, tokenId } from "./policy.js";
import { MemoryStore, RedisStore, SqliteStore, openStore, stateDir } from "./quota.js";
import { tokenAccepted, tokenFaultIn, tokenHeld, tokenRefused } from "./token.js";

export * from "./errors.js";
export { Codec, MemoryStore, RedisStore, SqliteStore, policyOf, stateDir };
export { banWatch };

/** The largest answer body this client reads, like the Rust host. */
export const MAX_RESPONSE_BYTES = 16 << 20;

export const PRODUCTION_BASE_URL = "https://entreprise.api.gouv.fr";

/** The per-IP quotas of API Entreprise; either one crossed bans the IP for hours. */
export const IP_QUOTAS = table.ip_quotas.map((q) => ({ limit: q.limit, periodSeconds: q.period_seconds }));

/**
 * Why a path cannot leave as it is: an encoded separator or dot (`%2F`,
 * `%2E`, `%5C`), a backslash, or a `.` or `..` segment, which a server or a
 * proxy may read as another path than the one this client classified.
 */
function uncanonical(url) {
  const path = url.slice(url.indexOf("/", url.indexOf("//") + 2)).split(/[?#]/)[0];
  if (/%(2f|2e|5c)/i.test(path)) return "an encoded separator or dot (%2F, %2E, %5C)";
  if (path.includes("\\")) return "a backslash";
  if (path.split("/").some((s) => s === "." || s === "..")) return "a . or .. segment";
  return null;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]"]);

/** The base URL's origin, or why it cannot be one. */
function originOf(baseUrl) {
  let url;
  try {
    url = new URL(baseUrl);
  } catch {
    throw new TypeError(`baseUrl ${JSON.stringify(baseUrl)} is not a URL: give one such as ${PRODUCTION_BASE_URL}`);
  }
  const loopback = LOOPBACK.has(url.hostname);
  if (url.protocol !== "https:" && !(url.protocol === "http:" && loopback)) {
    throw new TypeError(`baseUrl ${baseUrl} must use https (plain http only on loopback, for the sandbox)`);
  }
  if (url.username || url.password || url.search || url.hash || url.pathname !== "/") {
    throw new TypeError(`baseUrl ${baseUrl} must be a scheme and a host only, such as ${PRODUCTION_BASE_URL}`);
  }
  return url.origin;
}

export class ApiEntreprise {
  #token;
  #jti;
  #origin;
  #codec;
  #store;
  #ipQuotas;
  #waitForSlot;
  #fetch;

  /**
   * @param {object} options
   * @param {string} options.token the API Entreprise token (a JWT); sent only to `baseUrl`.
   * @param {string} [options.baseUrl] the API, by default production.
   * @param {{limit: number, periodSeconds: number}[]} [options.ipQuotas] the per-IP quotas, by default
   *   `API_ENTREPRISE_IP_QUOTA`, else {@link IP_QUOTAS}.
   * @param {"shared" | "memory" | object} [options.quotaStore] where the quotas are counted: `"shared"` (the
   *   default) with every host of the machine, in Redis when `API_ENTREPRISE_REDIS_URL` is set, else in the
   *   state directory's SQLite file; `"memory"` in this process only; or a store.
   * @param {boolean} [options.waitForSlot] when a quota is full, wait for a slot within the call's deadline
   *   (the default) rather than fail at once.
   * @param {typeof fetch} [options.fetch] the fetch to send with.
   * @param {Codec} [options.codec] the codec, by default this package's build; whatever it says,
   *   this client's allow-list, timeouts and quotas apply.
   */
  constructor({
    token,
    baseUrl = PRODUCTION_BASE_URL,
    ipQuotas,
    quotaStore = "shared",
    waitForSlot = true,
    fetch = globalThis.fetch,
    codec,
  } = {}) {
    if (typeof token !== "string" || token.trim() === "") {
      throw new TypeError("give the API Entreprise token: new ApiEntreprise({ token: process.env.API_ENTREPRISE_TOKEN })");
    }
    this.#token = token.trim();
    this.#jti = tokenId(this.#token);
    this.#origin = originOf(baseUrl);
    this.#ipQuotas = ipQuotas ?? ipQuotasFromEnv();
    this.#store = openStore(quotaStore);
    this.#waitForSlot = waitForSlot;
    this.#fetch = fetch;
    this.#codec = codec ?? new Codec();
  }

  /** Where this client's quotas are counted, as a message would say it. */
  get quotaStore() {
    return this.#store.describe();
  }

  /** The API this client sends to. */
  get baseUrl() {
    return this.#origin;
  }

  /** Every endpoint the component can call, as the contract's `endpoint` records. */
  endpoints() {
    return this.#codec.endpoints();
  }

  /**
   * Calls `endpoint` with its path `params`, on behalf of the trace.
   * Resolves to the contract's `response`; rejects with an
   * {@link ApiEntrepriseError} subclass. Nothing is sent when the input is
   * invalid or a quota is full.
   */
  async call(endpoint, params = [], { context, recipient, object, userId, version, query = {} } = {}) {
    const request = {
      endpoint,
      version: version ?? null,
      params: params.map(String),
      query: Object.entries(query).map(([k, v]) => [k, String(v)]),
      trace: { context: context ?? "", recipient: recipient ?? "", object: object ?? "", user_id: userId ?? null },
    };
    const prepared = this.#codec.prepare(this.#origin, request);
    if (prepared.err) throw errorFrom(prepared.err);
    const call = prepared.ok;

    // The allow-list: the token goes to the API's authority and nowhere else.
    const url = new URL(call.url);
    if (url.origin !== this.#origin) {
      throw new RefusedByHostError(
        `the request is for ${url.origin}, not the API (${this.#origin}): nothing was sent`,
        "refused-by-host",
        call.url,
      );
    }
    const why = uncanonical(call.url);
    if (why) {
      throw new RefusedByHostError(
        `the request's path has ${why}, which the API could read as another path: nothing was sent`,
        "refused-by-host",
        call.url,
      );
    }
    const policy = policyOf(url.pathname);
    const { keys, group } = quotaKeys(url.pathname, this.#ipQuotas, this.#jti);
    const ceiling = policy.document ? table.timeouts_ms.document : table.timeouts_ms.json;
    const timeoutMs = Math.min(call.timeout_ms || ceiling, ceiling);
    // A token the API refused as such is not sent again (but to probe).
    const refused = tokenHeld(this.#token);
    if (refused) throw new TokenRefusedError(refused);
    // A probable ban holds calls that count against the per-IP quotas.
    const held = keys.length > 0 ? banWatch.held() : null;
    if (held) throw new ProbablyBannedError(held);
    await this.#take(keys, timeoutMs);

    const headers = new Headers(call.headers.filter(([name]) => name.toLowerCase() !== "authorization"));
    headers.set("authorization", `Bearer ${this.#token}`);
    let status;
    let answerHeaders;
    let body;
    try {
      // No redirect is followed: the token never leaves for another host.
      const response = await this.#fetch(url, {
        method: "GET",
        headers,
        redirect: "manual",
        signal: AbortSignal.timeout(timeoutMs),
      });
      status = response.status;
      banWatch.answered();
      if (status === 429) banWatch.limitReached(`a 429 from the API on ${url.pathname}`);
      answerHeaders = [...response.headers];
      if (group) {
        for (const word of serverWords(status, response.headers)) await this.#store.serverSaid(group, word);
      }
      body = await readCapped(response);
    } catch (e) {
      if (e instanceof TransportError) throw e;
      if (e?.name === "TimeoutError" || e?.name === "AbortError") {
        // No answer at all, as a banned IP gets.
        if (status === undefined) banWatch.silent();
        throw new TimeoutError(`the API did not answer within ${timeoutMs} ms; try again later`, "timeout", timeoutMs);
      }
      const cause = e?.cause?.code ?? e?.cause?.message ?? e?.message;
      throw new TransportError(`the connection to ${this.#origin} failed: ${cause}`, "transport", String(cause));
    }

    const fault = status === 401 ? tokenFaultIn(body) : null;
    if (fault) tokenRefused(this.#token, fault);
    else tokenAccepted(this.#token);

    const parsed = this.#codec.parse(call, status, answerHeaders, body);
    if (parsed.err) throw errorFrom(parsed.err);
    return parsed.ok;
  }

  /**
   * Takes a slot in every quota of `keys`, waiting for one while it frees
   * within `budgetMs` (unless `waitForSlot` is false); a store that cannot
   * decide fails at once: nothing leaves uncounted.
   */
  async #take(keys, budgetMs) {
    if (keys.length === 0) return;
    const deadline = performance.now() + budgetMs;
    for (;;) {
      const denied = await this.#store.acquire(keys);
      if (!denied) return;
      if (denied.unavailable) {
        const { store, reason } = denied.unavailable;
        throw new QuotaStoreUnavailableError(
          `the quota store (${store}) is unavailable (${reason}); nothing was sent`,
          store,
          reason,
        );
      }
      const { quota, retryAfterMs } = denied.full;
      // What the API says before it bans: a silence right after is one.
      if (quota.startsWith("ip ")) banWatch.limitReached(`the per-IP quota ${quota.slice(3)} full`);
      if (this.#waitForSlot && performance.now() + retryAfterMs < deadline) {
        await sleep(retryAfterMs);
        continue;
      }
      const seconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
      throw new QuotaExceededError(
        `the quota ${quota} is full: nothing was sent; a slot frees in ${seconds} s`,
        quota,
        seconds,
      );
    }
  }
}

/** The answer's body as text, refused past {@link MAX_RESPONSE_BYTES}. */
async function readCapped(response) {
  const tooLarge = () =>
    new TransportError(
      `the answer is larger than ${MAX_RESPONSE_BYTES >> 20} MiB, more than any of the API's: it was not read`,
      "transport",
      "body too large",
    );
  if (Number(response.headers.get("content-length") ?? 0) > MAX_RESPONSE_BYTES) {
    await response.body?.cancel();
    throw tooLarge();
  }
  if (!response.body) return "";
  const chunks = [];
  let size = 0;
  for await (const chunk of response.body) {
    size += chunk.byteLength;
    if (size > MAX_RESPONSE_BYTES) throw tooLarge();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}
