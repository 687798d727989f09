// A ban is seen, not guessed, as the Rust host sees it: a banned IP gets no
// HTTP answer at all, for 12 hours. When the API stops answering (3 calls
// in a row get no answer) right after a sign that the IP reached its quota
// (within 10 minutes of a per-IP window found full, or of a 429), the
// silence is a probable ban: calls are held (one goes through every 10
// minutes to see whether it is over) and fail at once with a
// ProbablyBannedError that says until when. Any answer ends it. One watch
// per process: every client of the process sends from the same IP.

export const BAN_LENGTH_MS = 12 * 3600 * 1000;
const SIGN_WITHIN_MS = 600 * 1000;
const SILENCES = 3;
const HOLD_MS = 600 * 1000;

export class BanWatch {
  #sign = null;
  #silences = 0;
  #firstSilence = null;
  #ban = null;
  #tryAt = 0;

  /** A sign that the IP reached its quota: a per-IP window full, a 429. */
  limitReached(what, now = Date.now()) {
    this.#sign = { at: now, what };
  }

  /** The API answered (any status): it is not banning this IP. */
  answered() {
    this.#silences = 0;
    this.#firstSilence = null;
    this.#ban = null;
  }

  /** A call got no answer in time (or no connection). */
  silent(now = Date.now()) {
    this.#silences += 1;
    this.#firstSilence ??= now;
    const sign = this.#sign;
    if (!this.#ban && this.#silences >= SILENCES && sign && now - sign.at <= SIGN_WITHIN_MS) {
      this.#ban = {
        since: new Date(this.#firstSilence),
        until: new Date(this.#firstSilence + BAN_LENGTH_MS),
        sign: sign.what,
      };
    }
    if (this.#ban) this.#tryAt = now + HOLD_MS;
  }

  /** The probable ban, when a call must be held now; null when it may go. */
  held(now = Date.now()) {
    if (!this.#ban) return null;
    if (now >= this.#tryAt) {
      // One call goes, to see whether the API answers again.
      this.#tryAt = now + HOLD_MS;
      return null;
    }
    return this.#ban;
  }

  /** The probable ban, if there is one. */
  get ban() {
    return this.#ban;
  }
}

/** This process's watch. */
export const banWatch = new BanWatch();
