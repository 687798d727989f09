// The host's own policy, decided from the request's path and the host
// catalogue's table (catalogue/routes.json, copied into ../codec/ at build
// time), never from what the component says: which quotas a request counts
// against, whether it is free, which timeout it gets.

import { readFileSync } from "node:fs";

export const table = JSON.parse(readFileSync(new URL("../codec/routes.json", import.meta.url), "utf8"));

const templates = table.routes.map((route) => {
  const segments = route.path.split("/");
  // A `{provider}` last takes the rest of the path (`/ping/insee/sirene`).
  const takesRest = segments[segments.length - 1] === "{provider}";
  return { ...route, segments: takesRest ? segments.slice(0, -1) : segments, takesRest };
});

const PROVIDER_SEGMENT = /^[a-z0-9_]+$/;

/**
 * The policy of a request to `path` (no query string): the route whose
 * template matches (a literal segment beats a placeholder; a trailing slash
 * is ignored; a `{provider}` last takes the rest of the path, segments of
 * lowercase letters, digits and `_`), else the unknown route's.
 */
export function policyOf(path) {
  const segments = (path.endsWith("/") ? path.slice(0, -1) : path).split("/");
  let best = null;
  let bestLiterals = -1;
  for (const route of templates) {
    const n = route.segments.length;
    if (route.takesRest ? segments.length <= n : segments.length !== n) continue;
    if (route.takesRest && !segments.slice(n).every((s) => PROVIDER_SEGMENT.test(s))) continue;
    let literals = 0;
    const matches = route.segments.every((t, i) => {
      if (t.startsWith("{") && t.endsWith("}")) return segments[i] !== "";
      if (t === segments[i]) literals += 1;
      return t === segments[i];
    });
    // Ties go to the last, as the Rust host's `max_by_key` does.
    if (matches && literals >= bestLiterals) {
      best = route;
      bestLiterals = literals;
    }
  }
  if (!best) return { free: false, document: false, group: table.unknown_route };
  return { free: best.free, document: best.document, group: best.group };
}

/** How much wider than its period each window is kept, so that the server, counting on arrival, never sees more (the Rust host's `QUOTA_MARGIN`). */
export const QUOTA_MARGIN_MS = 500;

/**
 * A quota written `N/DURATION` (`2000/10m`, `1000/min`, `5/30s`), read as the
 * Rust host reads `API_ENTREPRISE_IP_QUOTA`: `{ limit, periodSeconds }`.
 */
export function parseQuota(text) {
  const bad = () => new TypeError(`the quota ${JSON.stringify(text)} is not N/DURATION, such as 2000/10m or 1000/1m`);
  const found = String(text).trim().match(/^(\d+)\s*\/\s*(\d*)(s|sec|m|min|h)$/);
  if (!found) throw bad();
  const [, limit, count, unit] = found;
  const seconds = (count === "" ? 1 : Number(count)) * { s: 1, sec: 1, m: 60, min: 60, h: 3600 }[unit];
  if (Number(limit) === 0 || seconds === 0 || Number(limit) > 0xffffffff) throw bad();
  return { limit: Number(limit), periodSeconds: seconds };
}

/** A quota as the Rust host writes it (`2000/10m`): its name in every shared store. */
export function quotaLabel({ limit, periodSeconds: s }) {
  if (s % 3600 === 0) return `${limit}/${s / 3600}h`;
  if (s % 60 === 0) return `${limit}/${s / 60}m`;
  return `${limit}/${s}s`;
}

/** The per-IP quotas: `API_ENTREPRISE_IP_QUOTA` (comma-separated), else the API's two. */
export function ipQuotasFromEnv(env = process.env) {
  const text = env.API_ENTREPRISE_IP_QUOTA?.trim();
  if (!text) return table.ip_quotas.map((q) => ({ limit: q.limit, periodSeconds: q.period_seconds }));
  return text.split(",").map(parseQuota);
}

/** The token's `jti` (its id, not a secret), read without verifying the JWT, or null. */
export function tokenId(token) {
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  try {
    const claims = JSON.parse(Buffer.from(parts[1].replace(/=+$/, ""), "base64url").toString("utf8"));
    return typeof claims?.jti === "string" ? claims.jti : null;
  } catch {
    return null;
  }
}

/**
 * Every quota a request to `path` counts against (`{ name, limit, windowMs }`),
 * and its group's name: none for the health routes; otherwise every
 * per-IP quota, and the per-token group of the path's route (named after the
 * token's `jti`), each window kept `QUOTA_MARGIN_MS` wider.
 */
export function quotaKeys(path, ipQuotas, jti = null) {
  const policy = policyOf(path);
  if (policy.free) return { keys: [], group: null };
  const keys = ipQuotas.map((q) => ({
    name: `ip ${quotaLabel(q)}`,
    limit: q.limit,
    windowMs: q.periodSeconds * 1000 + QUOTA_MARGIN_MS,
  }));
  let group = null;
  if (policy.group) {
    group = `group ${policy.group.name}${jti ? ` (token ${jti})` : ""}`;
    keys.push({ name: group, limit: policy.group.limit, windowMs: policy.group.period_seconds * 1000 + QUOTA_MARGIN_MS });
  }
  return { keys, group };
}

/** A header holding a whole number, else null (as the Rust host reads them). */
function headerNumber(headers, name) {
  const value = headers.get(name)?.trim();
  return value !== undefined && /^\+?\d+$/.test(value) ? Number(value) : null;
}

/**
 * What an answer of `status` with `headers` (a `Headers`) tells of its
 * group, at `wallNow` (ms): `RateLimit-Remaining` until `RateLimit-Reset`
 * tightens it; a 429 closes it for `Retry-After`, else until the reset,
 * else 60 s, at least 1 s.
 */
export function serverWords(status, headers, wallNow = Date.now()) {
  const words = [];
  const remaining = headerNumber(headers, "ratelimit-remaining");
  const reset = headerNumber(headers, "ratelimit-reset");
  if (remaining !== null && reset !== null) {
    words.push({ remaining: Math.min(remaining, 0xffffffff), resetInMs: Math.max(0, reset * 1000 - wallNow) });
  }
  if (status === 429) {
    const nowS = Math.floor(wallNow / 1000);
    const wait = headerNumber(headers, "retry-after") ?? (reset !== null ? Math.max(0, reset - nowS) : null) ?? 60;
    words.push({ closedForMs: Math.max(1, wait) * 1000 });
  }
  return words;
}
