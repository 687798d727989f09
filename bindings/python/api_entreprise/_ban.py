"""A ban is seen, not guessed, as the Rust host sees it: a banned IP gets no
HTTP answer at all, for 12 hours. When the API stops answering (3 calls in
a row get no answer) right after a sign that the IP reached its quota
(within 10 minutes of a per-IP window found full, or of a 429), the silence
is a probable ban: calls are held (one goes through every 10 minutes to see
whether it is over) and fail at once with a ``ProbablyBannedError`` that
says until when. Any answer ends it. One watch per process: every client of
the process sends from the same IP (a forked worker inherits it)."""

from __future__ import annotations

import datetime
import os
import threading
import time
from typing import Optional

BAN_LENGTH = 12 * 3600.0
_SIGN_WITHIN = 600.0
_SILENCES = 3
_HOLD = 600.0


class Ban:
    """A probable ban: since when (the first call that got no answer), until
    when, and the sign that came before the silence."""

    def __init__(self, since: float, sign: str) -> None:
        self.since = datetime.datetime.fromtimestamp(since, datetime.timezone.utc)
        self.until = datetime.datetime.fromtimestamp(since + BAN_LENGTH, datetime.timezone.utc)
        self.sign = sign


class BanWatch:
    """What the API's silences mean, for this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sign: Optional[tuple[float, str]] = None
        self._silences = 0
        self._first_silence: Optional[float] = None
        self.ban: Optional[Ban] = None
        self._try_at = 0.0

    def _after_fork(self) -> None:
        # The lock may have been held by a thread that the fork left behind.
        self._lock = threading.Lock()

    def limit_reached(self, what: str) -> None:
        """A sign that the IP reached its quota: a per-IP window full, a 429."""
        with self._lock:
            self._sign = (time.monotonic(), what)

    def answered(self) -> None:
        """The API answered (any status): it is not banning this IP."""
        with self._lock:
            self._silences = 0
            self._first_silence = None
            self.ban = None

    def silent(self) -> None:
        """A call got no answer in time."""
        now = time.monotonic()
        with self._lock:
            self._silences += 1
            if self._first_silence is None:
                self._first_silence = time.time()
            if (
                self.ban is None
                and self._silences >= _SILENCES
                and self._sign is not None
                and now - self._sign[0] <= _SIGN_WITHIN
            ):
                self.ban = Ban(self._first_silence, self._sign[1])
            if self.ban is not None:
                self._try_at = now + _HOLD

    def held(self) -> Optional[Ban]:
        """The probable ban when a call must be held now; None when it may go
        (one every 10 minutes, to see whether the API answers again)."""
        now = time.monotonic()
        with self._lock:
            if self.ban is None:
                return None
            if now >= self._try_at:
                self._try_at = now + _HOLD
                return None
            return self.ban


BAN_WATCH = BanWatch()
os.register_at_fork(after_in_child=BAN_WATCH._after_fork)
