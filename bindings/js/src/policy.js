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

/** How much wider each window is kept, so that the server never sees more. */
const MARGIN_MS = 500;

/**
 * Quotas in this process, in sliding windows: a request takes a slot in
 * every quota it counts against, or in none, and is refused before it is
 * sent when one is full.
 */
export class Quotas {
  #hits = new Map();
  #closed = new Map();

  /**
   * Takes a slot in each of `quotas` (`{ key, limit, periodSeconds }`).
   * Returns null when admitted, else which quota refused and for how long.
   */
  take(quotas, now = Date.now()) {
    for (const q of quotas) {
      const until = this.#closed.get(q.key) ?? 0;
      if (until > now) return { quota: q.key, retryAfterMs: until - now };
      const hits = this.#hits.get(q.key) ?? [];
      const window = q.periodSeconds * 1000 + MARGIN_MS;
      while (hits.length && hits[0] <= now - window) hits.shift();
      this.#hits.set(q.key, hits);
      if (hits.length >= q.limit) return { quota: q.key, retryAfterMs: hits[0] + window - now };
    }
    for (const q of quotas) this.#hits.get(q.key).push(now);
    return null;
  }

  /** Refuses `key` until `until` (ms since the epoch): the server said so. */
  closeUntil(key, until) {
    this.#closed.set(key, Math.max(this.#closed.get(key) ?? 0, until));
  }
}
