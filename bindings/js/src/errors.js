// The errors a call throws: one class per case of the contract's `error`,
// each with a message that says what was wrong and what to do.

/** What the API's error kinds mean, and what to do. */
const KINDS = {
  "bad-request": ["the API found the request malformed", "report it with the request id"],
  unauthorized: ["the API refused the token", "check it: it may be wrong, expired (tokens last 18 months) or revoked"],
  forbidden: ["the token may not call this endpoint", "list its rights with `privileges`; ask for the scope on DataPass"],
  "not-found": ["not found, or outside the endpoint's scope", "check the identifier"],
  conflict: ["the same request is still running at the API", "wait for the first one to finish"],
  gone: ["this link or route no longer exists", "call the endpoint again for a fresh link"],
  unprocessable: ["the API refused a parameter", "fix the parameter named in `errors`"],
  "rate-limited": ["the token's quota for this endpoint is spent", "wait `retryAfterSeconds`: ignoring 429s bans the IP"],
  "unavailable-for-legal-reasons": ["this entity is not diffusible", "use the non-diffusible endpoint if allowed"],
  "server-error": ["API Entreprise failed", "try again later"],
  "bad-gateway": ["the data provider failed", "try again later"],
  maintenance: ["the data provider is in maintenance", "try again after `retryAfterSeconds`"],
  "gateway-timeout": ["the data provider did not answer in time", "try again later"],
  unexpected: ["the API answered an unexpected status", "report it with the request id"],
};

/** The base class: `tag` is the contract's case, `detail` its payload. */
export class ApiEntrepriseError extends Error {
  constructor(message, tag, detail) {
    super(message);
    this.name = new.target.name;
    this.tag = tag;
    this.detail = detail;
  }
}

/** Refused locally, nothing sent: `errors` lists every fault with the server's code. */
export class InvalidInputError extends ApiEntrepriseError {
  constructor(items) {
    const lines = items.map((i) => `\n  - ${i.code}${i.parameter ? ` (${i.parameter})` : ""}: ${i.detail || i.title}`);
    super(`invalid request, nothing was sent:${lines.join("")}`, "invalid-input", items);
    this.errors = items;
    this.codes = items.map((i) => i.code);
  }
}

/** The endpoint id, or its version, is not in the catalogue (`00402`). */
export class UnknownEndpointError extends ApiEntrepriseError {}

/** The server answered an error status. */
export class ApiError extends ApiEntrepriseError {
  constructor(api) {
    const [what, todo] = KINDS[api.kind] ?? KINDS.unexpected;
    const id = api.request_id ? `, request id ${api.request_id}` : "";
    const retry = api.retry_after_seconds ? `; retry in ${api.retry_after_seconds} s` : "";
    const codes = api.errors.map((e) => `\n  - ${e.code}: ${e.detail || e.title}`).join("");
    super(`${what} (HTTP ${api.status}${id}): ${todo}${retry}${api.text ? `\n  ${api.text}` : ""}${codes}`, "api", api);
    this.status = api.status;
    this.kind = api.kind;
    this.errors = api.errors;
    this.codes = api.errors.map((e) => e.code);
    this.retryable = api.retryable;
    this.retryAfterSeconds = api.retry_after_seconds;
    this.provider = api.provider;
    this.requestId = api.request_id;
    this.rateLimit = api.rate_limit;
  }
}

/** No answer in time (5 s for JSON, 12 s for documents). */
export class TimeoutError extends ApiEntrepriseError {}

/** This package's policy refused the request before any connection. */
export class RefusedByHostError extends ApiEntrepriseError {}

/**
 * The API stopped answering right after the IP reached its quota: it is
 * probably banned until `until` (12 hours after the first call that got no
 * answer). Nothing was sent.
 */
export class ProbablyBannedError extends ApiEntrepriseError {
  constructor(ban) {
    super(
      `the API has not answered since ${ban.since.toISOString()} right after ${ban.sign}: the IP is probably banned ` +
        `until ${ban.until.toISOString()} (a ban lasts 12 hours and cannot be lifted; nothing was sent, and calls are ` +
        `held meanwhile but one every 10 minutes; write to support@entreprise.api.gouv.fr if you need it lifted)`,
      "refused-by-host",
      ban,
    );
    this.since = ban.since;
    this.until = ban.until;
    this.sign = ban.sign;
  }
}

/** What to do about a token the API refused, by its code. */
const TOKEN_TODO = {
  "00103":
    "it has expired (a token lives 18 months): renew it through DataPass (https://datapass.api.gouv.fr), then replace it",
  "00105":
    "it is blacklisted, most likely because it leaked: take the new one from your account (https://entreprise.api.gouv.fr/compte), replace it, and find where it leaked",
  "00106": "the API does not know it (a token without an authorisation): ask for access through DataPass",
};

/**
 * The API refused this client's token as such (`code`: 00101 not valid,
 * 00103 expired, 00105 blacklisted, 00106 unknown): its calls stop here,
 * nothing was sent; one call every 10 minutes tries again.
 */
export class TokenRefusedError extends ApiEntrepriseError {
  constructor(fault) {
    const todo = TOKEN_TODO[fault.code] ?? "it is not valid: check that the whole token was given, else ask for one through DataPass";
    super(
      `API Entreprise refused the token with ${fault.code} (${fault.title}) at ${fault.since.toISOString()}: ${todo}; ` +
        `nothing was sent, and the token is tried again in at most 10 minutes`,
      "refused-by-host",
      fault,
    );
    this.code = fault.code;
    this.since = fault.since;
  }
}

/** A quota has no slot for this request: nothing was sent. */
export class QuotaExceededError extends ApiEntrepriseError {
  constructor(message, quota, retryAfterSeconds) {
    super(message, "quota-exceeded", quota);
    this.quota = quota;
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/**
 * The quota store cannot decide (the state file unusable, Redis away):
 * nothing was sent, since nothing may leave uncounted. Not a full quota:
 * the store must come back.
 */
export class QuotaStoreUnavailableError extends ApiEntrepriseError {
  constructor(message, store, reason) {
    super(message, "quota-store-unavailable", store);
    this.store = store;
    this.reason = reason;
  }
}

/** The connection failed (refused, reset, DNS, TLS). */
export class TransportError extends ApiEntrepriseError {}

/** Anything else, such as an answer that is not the API's envelope. */
export class CodecError extends ApiEntrepriseError {}

/** The exception for a contract `error` in its JSON form. */
export function errorFrom(error) {
  switch (error.tag) {
    case "invalid-input":
      return new InvalidInputError(error.val);
    case "unknown-endpoint":
      return new UnknownEndpointError(error.val, error.tag, error.val);
    case "api":
      return new ApiError(error.val);
    case "timeout":
      return new TimeoutError(error.val, error.tag, error.val);
    case "refused-by-host":
      return new RefusedByHostError(error.val, error.tag, error.val);
    case "transport":
      return new TransportError(error.val, error.tag, error.val);
    default:
      return new CodecError(String(error.val), error.tag, error.val);
  }
}
