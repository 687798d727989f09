// A token the API refuses as such (00101 not valid, 00103 expired, 00105
// blacklisted, 00106 unknown) stops its calls, as the Rust host stops them:
// each next call of this process with that token fails at once with a
// TokenRefusedError that says which code and what to do, instead of
// sending requests that will fail; one call every 10 minutes goes through
// to see whether the API takes the token again. Kept by token in this
// process only, never written anywhere.

export const TOKEN_CODES = new Set(["00101", "00103", "00105", "00106"]);
const PROBE_EVERY_MS = 600 * 1000;

const faults = new Map();

/** The token-fault code and title in a 401 answer's body, if it has one. */
export function tokenFaultIn(body) {
  try {
    const item = JSON.parse(body)?.errors?.find((e) => TOKEN_CODES.has(e?.code));
    return item ? { code: item.code, title: item.title ?? "" } : null;
  } catch {
    return null;
  }
}

/** The API refused `token` with `code`. */
export function tokenRefused(token, { code, title }, now = Date.now()) {
  const since = faults.get(token)?.code === code ? faults.get(token).since : new Date(now);
  faults.set(token, { code, title, since, probeAt: now + PROBE_EVERY_MS });
}

/** The API took `token` (it answered anything but a refusal of it). */
export function tokenAccepted(token) {
  faults.delete(token);
}

/** What holds a call with `token` now; null when it may go. */
export function tokenHeld(token, now = Date.now()) {
  const fault = faults.get(token);
  if (!fault) return null;
  if (now >= fault.probeAt) {
    fault.probeAt = now + PROBE_EVERY_MS;
    return null;
  }
  return fault;
}
