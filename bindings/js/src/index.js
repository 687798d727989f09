// API Entreprise for Node: the client's codec component (validation with the
// server's codes, request building, tolerant parsing), and a client that
// keeps the host's promises in JavaScript: the token only to the API's
// authority, the allow-list, the 5 s / 12 s timeouts, the quotas in process.

import { Codec } from "./codec.js";
import { QuotaExceededError, RefusedByHostError, TimeoutError, TransportError, errorFrom } from "./errors.js";
import { Quotas, policyOf, table } from "./policy.js";

export * from "./errors.js";
export { Codec, policyOf };

export const PRODUCTION_BASE_URL = "https://entreprise.api.gouv.fr";

/** The per-IP quotas of API Entreprise; either one crossed bans the IP for hours. */
export const IP_QUOTAS = table.ip_quotas.map((q) => ({ limit: q.limit, periodSeconds: q.period_seconds }));

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
  #origin;
  #codec;
  #quotas = new Quotas();
  #ipQuotas;
  #fetch;

  /**
   * @param {object} options
   * @param {string} options.token the API Entreprise token (a JWT); sent only to `baseUrl`.
   * @param {string} [options.baseUrl] the API, by default production.
   * @param {{limit: number, periodSeconds: number}[]} [options.ipQuotas] the per-IP quotas, by default {@link IP_QUOTAS}.
   * @param {typeof fetch} [options.fetch] the fetch to send with.
   * @param {Codec} [options.codec] the codec, by default this package's build; whatever it says,
   *   this client's allow-list, timeouts and quotas apply.
   */
  constructor({ token, baseUrl = PRODUCTION_BASE_URL, ipQuotas = IP_QUOTAS, fetch = globalThis.fetch, codec } = {}) {
    if (typeof token !== "string" || token.trim() === "") {
      throw new TypeError("give the API Entreprise token: new ApiEntreprise({ token: process.env.API_ENTREPRISE_TOKEN })");
    }
    this.#token = token.trim();
    this.#origin = originOf(baseUrl);
    this.#ipQuotas = ipQuotas.map((q) => ({ key: `ip ${q.limit}/${q.periodSeconds}s`, ...q }));
    this.#fetch = fetch;
    this.#codec = codec ?? new Codec();
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
    const policy = policyOf(url.pathname);
    const group = policy.group && {
      key: `group ${policy.group.name}`,
      limit: policy.group.limit,
      periodSeconds: policy.group.period_seconds,
    };
    const quotas = policy.free ? [] : [...this.#ipQuotas, ...(group ? [group] : [])];
    const refused = this.#quotas.take(quotas);
    if (refused) {
      const seconds = Math.max(1, Math.ceil(refused.retryAfterMs / 1000));
      throw new QuotaExceededError(
        `the quota ${refused.quota} is full: nothing was sent; try again in ${seconds} s`,
        refused.quota,
        seconds,
      );
    }

    const ceiling = policy.document ? table.timeouts_ms.document : table.timeouts_ms.json;
    const timeoutMs = Math.min(call.timeout_ms || ceiling, ceiling);
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
      answerHeaders = [...response.headers];
      body = await response.text();
    } catch (e) {
      if (e?.name === "TimeoutError" || e?.name === "AbortError") {
        throw new TimeoutError(`the API did not answer within ${timeoutMs} ms; try again later`, "timeout", timeoutMs);
      }
      const cause = e?.cause?.code ?? e?.cause?.message ?? e?.message;
      throw new TransportError(`the connection to ${this.#origin} failed: ${cause}`, "transport", String(cause));
    }

    const parsed = this.#codec.parse(call, status, answerHeaders, body);
    const limits = parsed.ok?.rate_limit ?? parsed.err?.val?.rate_limit;
    if (group && limits) this.#learn(group.key, status, limits, parsed.err?.val?.retry_after_seconds);
    if (parsed.err) throw errorFrom(parsed.err);
    return parsed.ok;
  }

  /** What the server said of its quota closes the group until it allows again. */
  #learn(key, status, limits, retryAfter) {
    if (status === 429) {
      this.#quotas.closeUntil(key, Date.now() + 1000 * (retryAfter ?? limits.retry_after_seconds ?? 60));
    } else if (limits.remaining === 0 && limits.reset_at) {
      this.#quotas.closeUntil(key, Date.parse(limits.reset_at));
    }
  }
}
