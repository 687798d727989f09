"""The host's own policy, decided from the request's path and the host
catalogue's table (catalogue/routes.json, copied into codec/ at build time),
never from what the component says: which quotas a request counts against,
whether it is free, which timeout it gets."""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from ._codec import CODEC_DIR


def _table() -> dict[str, Any]:
    path = CODEC_DIR / "routes.json"
    if not path.is_file():
        raise FileNotFoundError(f"no policy table at {path}: run `python bindings/python/build.py`")
    return json.loads(path.read_text(encoding="utf-8"))


TABLE = _table()
def _template(path: str) -> tuple[list[str], bool]:
    """A route's segments, and whether its last, ``{provider}``, takes the
    rest of the path (``/ping/insee/sirene``)."""
    segments = path.split("/")
    if segments[-1] == "{provider}":
        return segments[:-1], True
    return segments, False


_TEMPLATES = [(route, *_template(route["path"])) for route in TABLE["routes"]]
_PROVIDER_SEGMENT = re.compile(r"[a-z0-9_]+")


def policy_of(path: str) -> dict[str, Any]:
    """The policy of a request to ``path`` (no query string): the route whose
    template matches (a literal segment beats a placeholder; a trailing slash
    is ignored; a ``{provider}`` last takes the rest of the path, segments of
    lowercase letters, digits and ``_``), else the unknown route's."""
    segments = (path[:-1] if path.endswith("/") else path).split("/")
    best, best_literals = None, -1
    for route, template, takes_rest in _TEMPLATES:
        n = len(template)
        if len(segments) <= n if takes_rest else len(segments) != n:
            continue
        if takes_rest and not all(_PROVIDER_SEGMENT.fullmatch(s) for s in segments[n:]):
            continue
        literals, matches = 0, True
        for t, s in zip(template, segments):
            if t.startswith("{") and t.endswith("}"):
                matches = s != ""
            elif t == s:
                literals += 1
            else:
                matches = False
            if not matches:
                break
        # Ties go to the last, as the Rust host's `max_by_key` does.
        if matches and literals >= best_literals:
            best, best_literals = route, literals
    if best is None:
        return {"free": False, "document": False, "group": TABLE["unknown_route"]}
    return {"free": best["free"], "document": best["document"], "group": best["group"]}


@dataclass(frozen=True)
class Quota:
    """``limit`` requests in any ``period_seconds``."""

    limit: int
    period_seconds: int

    @property
    def key(self) -> str:
        return f"ip {self.limit}/{self.period_seconds}s"


IP_QUOTAS = tuple(Quota(q["limit"], q["period_seconds"]) for q in TABLE["ip_quotas"])

# How much wider each window is kept, so that the server never sees more.
MARGIN_SECONDS = 0.5


class Quotas:
    """Quotas in this process, in sliding windows: a request takes a slot in
    every quota it counts against, or in none, and is refused before it is
    sent when one is full. Thread-safe."""

    def __init__(self) -> None:
        self._hits: dict[str, deque[float]] = {}
        self._closed: dict[str, float] = {}
        self._lock = threading.Lock()

    def take(self, quotas: list[tuple[str, int, int]], now: float | None = None) -> tuple[str, float] | None:
        """Takes a slot in each of ``quotas`` (key, limit, period in seconds).
        Returns None when admitted, else the quota that refused and the
        seconds until it has room."""
        now = time.time() if now is None else now
        with self._lock:
            for key, limit, period in quotas:
                until = self._closed.get(key, 0.0)
                if until > now:
                    return key, until - now
                hits = self._hits.setdefault(key, deque())
                window = period + MARGIN_SECONDS
                while hits and hits[0] <= now - window:
                    hits.popleft()
                if len(hits) >= limit:
                    return key, hits[0] + window - now
            for key, _, _ in quotas:
                self._hits[key].append(now)
            return None

    def close_until(self, key: str, until: float) -> None:
        """Refuses ``key`` until ``until`` (seconds since the epoch): the server said so."""
        with self._lock:
            self._closed[key] = max(self._closed.get(key, 0.0), until)
