"""The host's own policy, decided from the request's path and the host
catalogue's table (catalogue/routes.json, copied into codec/ at build time),
never from what the component says: which quotas a request counts against,
whether it is free, which timeout it gets."""

from __future__ import annotations

import base64
import json
import os
import re
import time
from dataclasses import dataclass
from typing import Any, Iterable, Optional

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
        """Its name in every shared store, as the Rust host writes it (``ip 2000/10m``)."""
        return f"ip {quota_label(self)}"


IP_QUOTAS = tuple(Quota(q["limit"], q["period_seconds"]) for q in TABLE["ip_quotas"])

#: How much wider than its period each window is kept (ms), so that the
#: server, counting on arrival, never sees more (the Rust host's QUOTA_MARGIN).
QUOTA_MARGIN_MS = 500

_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}


def parse_quota(text: str) -> Quota:
    """A quota written ``N/DURATION`` (``2000/10m``, ``1000/min``, ``5/30s``),
    read as the Rust host reads ``API_ENTREPRISE_IP_QUOTA``."""
    found = re.fullmatch(r"([0-9]+)\s*/\s*([0-9]*)(s|sec|m|min|h)", str(text).strip())
    bad = ValueError(f"the quota {text!r} is not N/DURATION, such as 2000/10m or 1000/1m")
    if not found:
        raise bad
    limit, count, unit = found.groups()
    seconds = (int(count) if count else 1) * _UNITS[unit]
    if int(limit) == 0 or seconds == 0 or int(limit) > 0xFFFFFFFF:
        raise bad
    return Quota(int(limit), seconds)


def quota_label(q: Quota) -> str:
    """A quota as the Rust host writes it: ``2000/10m``."""
    s = q.period_seconds
    if s % 3600 == 0:
        return f"{q.limit}/{s // 3600}h"
    if s % 60 == 0:
        return f"{q.limit}/{s // 60}m"
    return f"{q.limit}/{s}s"


def ip_quotas_from_env(env: Optional[dict[str, str]] = None) -> tuple[Quota, ...]:
    """The per-IP quotas: ``API_ENTREPRISE_IP_QUOTA`` (comma-separated), else the API's two."""
    text = (os.environ if env is None else env).get("API_ENTREPRISE_IP_QUOTA", "").strip()
    return tuple(parse_quota(q) for q in text.split(",")) if text else IP_QUOTAS


def token_id(token: str) -> Optional[str]:
    """The token's ``jti`` (its id, not a secret), read without verifying the JWT, or None."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = parts[1].rstrip("=")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, UnicodeDecodeError):
        return None
    jti = claims.get("jti") if isinstance(claims, dict) else None
    return jti if isinstance(jti, str) else None


def quota_keys(path: str, ip_quotas: Iterable[Quota], jti: Optional[str] = None) -> tuple[list[tuple[str, int, int]], Optional[str]]:
    """Every quota a request to ``path`` counts against, as (name, limit,
    window in ms), and its group's name: none for the health routes;
    otherwise every per-IP quota, and the per-token group of the path's
    route (named after the token's ``jti``), each window kept
    ``QUOTA_MARGIN_MS`` wider."""
    policy = policy_of(path)
    if policy["free"]:
        return [], None
    keys = [(q.key, q.limit, q.period_seconds * 1000 + QUOTA_MARGIN_MS) for q in ip_quotas]
    group = None
    if policy["group"]:
        g = policy["group"]
        group = f"group {g['name']}" + (f" (token {jti})" if jti else "")
        keys.append((group, g["limit"], g["period_seconds"] * 1000 + QUOTA_MARGIN_MS))
    return keys, group


def _header_number(headers: dict[str, str], name: str) -> Optional[int]:
    value = headers.get(name)
    value = value.strip() if value is not None else None
    return int(value) if value is not None and re.fullmatch(r"\+?[0-9]+", value) else None


def server_words(status: int, headers: dict[str, str], wall_now: Optional[int] = None) -> list[dict[str, int]]:
    """What an answer of ``status`` with ``headers`` (lowercase names) tells
    of its group at ``wall_now`` (ms): ``RateLimit-Remaining`` until
    ``RateLimit-Reset`` tightens it; a 429 closes it for ``Retry-After``,
    else until the reset, else 60 s, at least 1 s."""
    now = int(time.time() * 1000) if wall_now is None else wall_now
    words: list[dict[str, int]] = []
    remaining = _header_number(headers, "ratelimit-remaining")
    reset = _header_number(headers, "ratelimit-reset")
    if remaining is not None and reset is not None:
        words.append({"remaining": min(remaining, 0xFFFFFFFF), "reset_in_ms": max(0, reset * 1000 - now)})
    if status == 429:
        wait = _header_number(headers, "retry-after")
        if wait is None:
            wait = max(0, reset - now // 1000) if reset is not None else 60
        words.append({"closed_for_ms": max(1, wait) * 1000})
    return words
