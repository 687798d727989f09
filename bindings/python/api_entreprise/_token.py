"""A token the API refuses as such (00101 not valid, 00103 expired, 00105
blacklisted, 00106 unknown) stops its calls, as the Rust host stops them:
each next call of this process with that token fails at once with a
``TokenRefusedError`` that says which code and what to do, instead of
sending requests that will fail; one call every 10 minutes goes through to
see whether the API takes the token again. Kept by token in this process
only, never written anywhere."""

from __future__ import annotations

import datetime
import json
import os
import threading
import time
from typing import Optional

TOKEN_CODES = frozenset({"00101", "00103", "00105", "00106"})
_PROBE_EVERY = 600.0


class TokenFault:
    """What the API said of a token: its code and title, and since when."""

    def __init__(self, code: str, title: str) -> None:
        self.code = code
        self.title = title
        self.since = datetime.datetime.now(datetime.timezone.utc)
        self.probe_at = time.monotonic() + _PROBE_EVERY


_faults: dict[str, TokenFault] = {}
_lock = threading.Lock()


def _after_fork() -> None:
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork)


def fault_in(body: str) -> Optional[tuple[str, str]]:
    """The token-fault code and title in a 401 answer's body, if any."""
    try:
        errors = json.loads(body).get("errors") or []
    except (ValueError, AttributeError):
        return None
    for item in errors:
        if isinstance(item, dict) and item.get("code") in TOKEN_CODES:
            return item["code"], str(item.get("title") or "")
    return None


def refused(token: str, code: str, title: str) -> None:
    """The API refused ``token`` with ``code``."""
    with _lock:
        known = _faults.get(token)
        fault = TokenFault(code, title)
        if known is not None and known.code == code:
            fault.since = known.since
        _faults[token] = fault


def accepted(token: str) -> None:
    """The API took ``token`` (it answered anything but a refusal of it)."""
    with _lock:
        _faults.pop(token, None)


def held(token: str) -> Optional[TokenFault]:
    """What holds a call with ``token`` now; None when it may go."""
    now = time.monotonic()
    with _lock:
        fault = _faults.get(token)
        if fault is None:
            return None
        if now >= fault.probe_at:
            fault.probe_at = now + _PROBE_EVERY
            return None
        return fault
