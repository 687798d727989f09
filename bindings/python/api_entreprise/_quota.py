"""The quotas, decided as the Rust host decides them (the conformance
scenarios of tests/conformance/quotas.json hold every host to it), in a
store every host of the machine shares by default: the SQLite file of the
state directory, read and written with the statements of
catalogue/quota/sqlite.sql; or Redis, with the Lua scripts of
catalogue/quota/; or, on request, this process's memory only."""

from __future__ import annotations

import itertools
import os
import re
import secrets
import socket
import sqlite3
import threading
import time
import weakref
from collections import deque
from pathlib import Path
from typing import Any, Optional, Protocol, Union
from urllib.parse import unquote

from ._codec import CODEC_DIR

_SCRIPTS = CODEC_DIR / "quota"

#: The store's file in the state directory, as the Rust host names it.
STATE_FILE = "quotas.sqlite3"
#: Where every key of the quotas lives in a shared Redis.
REDIS_PREFIX = "api-entreprise:quota:"


def _script(name: str) -> str:
    path = _SCRIPTS / name
    if not path.is_file():
        raise FileNotFoundError(f"no quota script at {path}: run `python bindings/python/build.py`")
    return path.read_text(encoding="utf-8")


def _statements() -> dict[str, str]:
    parts = re.split(r"^-- name: ", _script("sqlite.sql"), flags=re.M)[1:]
    return {p.split("\n", 1)[0].strip(): p.split("\n", 1)[1].strip() for p in parts}


SQL = _statements()


def state_dir(env: Optional[dict[str, str]] = None) -> Path:
    """The state directory every host of this machine shares:
    ``$API_ENTREPRISE_STATE_DIR``, else ``$XDG_STATE_HOME/api-entreprise``,
    else ``~/.local/state/api-entreprise``."""
    env = os.environ if env is None else env
    if env.get("API_ENTREPRISE_STATE_DIR"):
        return Path(env["API_ENTREPRISE_STATE_DIR"]).resolve()
    xdg = env.get("XDG_STATE_HOME", "")
    base = Path(xdg) if xdg.startswith("/") else Path.home() / ".local" / "state"
    return base / "api-entreprise"


# A quota a request counts against: (name, limit, window in ms).
Key = tuple[str, int, int]
# Why a request has no slot: ("full", quota, ms) or ("unavailable", store, reason).
Denied = tuple[str, Any, Any]


# The decision, step by step as in the Rust host's quota/windows.rs.


def wait_in(limit: int, length: int, count: int, oldest: Optional[int], hint: Optional[tuple[int, int]], now: int) -> Optional[int]:
    """How long (ms) a request waits for a slot in one quota, or None.
    ``hint`` is the server's (remaining, reset)."""
    wait = None
    if count >= limit:
        wait = length if oldest is None else max(0, oldest + length + 1 - now)
    if hint is not None and now < hint[1] and hint[0] == 0:
        wait = max(wait or 0, hint[1] - now)
    return wait


def longest(waits: list[tuple[str, int]]) -> Optional[tuple[str, int]]:
    """The longest of the waits, the first one on a tie."""
    best = None
    for quota, ms in waits:
        if best is None or best[1] < ms:
            best = (quota, ms)
    return best


def hint_after(current: Optional[tuple[int, int]], word: dict[str, int], now: int) -> Optional[tuple[int, int]]:
    """The server's hint (remaining, reset) after its ``word``
    (``{"remaining", "reset_in_ms"}`` from ``RateLimit-*``, or
    ``{"closed_for_ms"}`` from a 429) at ``now``: it tightens within the
    same reset (to the second), never loosens; None when it changes nothing."""
    live = current if current is not None and now < current[1] else None
    if "closed_for_ms" in word:
        until = now + word["closed_for_ms"]
        return 0, max(live[1], until) if live else until
    if word["reset_in_ms"] == 0:
        return None
    reset = now + word["reset_in_ms"]
    if live is not None and abs(live[1] - reset) < 1000:
        return min(live[0], word["remaining"]), live[1]
    return word["remaining"], reset


def decide(keys: list[Key], now: int, window: Any, admit: Any) -> Optional[Denied]:
    """The decision every local store takes, whatever holds its windows:
    ``window(name, length)`` expires the quota's old requests and gives
    (count, oldest, hint); ``admit(name, length)`` takes its slot. A slot in every
    quota of ``keys``, or in none."""
    waits = []
    for name, limit, length in keys:
        count, oldest, hint = window(name, length)
        wait = wait_in(limit, length, count, oldest, hint, now)
        if wait is not None:
            waits.append((name, wait))
    refused = longest(waits)
    if refused:
        return ("full", *refused)
    for name, _, length in keys:
        admit(name, length)
    return None


def _monotonic_ms() -> int:
    """``CLOCK_MONOTONIC`` in ms: the same for every process of the machine
    (the Rust host's, Node's ``process.hrtime``)."""
    return time.monotonic_ns() // 1_000_000


class QuotaStore(Protocol):
    def describe(self) -> str: ...
    def acquire(self, keys: list[Key], now: Optional[int] = None) -> Optional[Denied]: ...
    def server_said(self, name: str, word: dict[str, int], now: Optional[int] = None) -> None: ...
    def close(self) -> None: ...


class MemoryStore:
    """Quotas in this process only, under a lock, on the wall clock at
    creation then the monotonic clock."""

    def __init__(self) -> None:
        self._windows: dict[str, tuple[deque[int], list[Optional[tuple[int, int]]]]] = {}
        self._lock = threading.Lock()
        self._wall, self._since = int(time.time() * 1000), _monotonic_ms()

    def describe(self) -> str:
        return "this process's memory"

    def _now(self) -> int:
        return self._wall + (_monotonic_ms() - self._since)

    def _window(self, name: str) -> tuple[deque[int], list[Optional[tuple[int, int]]]]:
        return self._windows.setdefault(name, (deque(), [None]))

    def acquire(self, keys: list[Key], now: Optional[int] = None) -> Optional[Denied]:
        with self._lock:
            at = self._now() if now is None else now

            def window(name: str, length: int) -> tuple[int, Optional[int], Optional[tuple[int, int]]]:
                admitted, server = self._window(name)
                while admitted and at - admitted[0] > length:
                    admitted.popleft()
                return len(admitted), admitted[0] if admitted else None, server[0]

            def admit(name: str, _length: int) -> None:
                admitted, server = self._window(name)
                admitted.append(at)
                if server[0] is not None and at < server[0][1]:
                    server[0] = (max(0, server[0][0] - 1), server[0][1])

            return decide(keys, at, window, admit)

    def server_said(self, name: str, word: dict[str, int], now: Optional[int] = None) -> None:
        with self._lock:
            now = self._now() if now is None else now
            server = self._window(name)[1]
            hint = hint_after(server[0], word, now)
            if hint is not None:
                server[0] = hint

    def close(self) -> None:
        pass


def _boot_id() -> Optional[str]:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


class SqliteStore:
    """Quotas in the SQLite file every host of this machine shares, whatever
    its language: one ``BEGIN IMMEDIATE`` transaction per decision, in WAL
    mode with ``synchronous = FULL``, on the file's clock (anchored to the
    wall clock once a boot, then ``CLOCK_MONOTONIC``). Thread-safe, and safe
    across ``fork`` (a child opens its own connection)."""

    def __init__(self, file: Union[str, Path], given_clock: bool = False) -> None:
        self._file = Path(file)
        self._given = given_clock
        self._boot = _boot_id()
        self._lock = threading.Lock()
        self._pid = -1
        self._db: Optional[sqlite3.Connection] = None
        # A forked child opens a connection of its own (see _connection), and
        # never waits on a lock another thread of the parent held at the fork.
        me = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: (s := me()) and setattr(s, "_lock", threading.Lock()))
        try:
            self._file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as e:
            raise OSError(
                f"the quota state {self._file}: creating its folder {self._file.parent} failed ({e}); "
                "give a directory to API_ENTREPRISE_STATE_DIR"
            ) from e
        self._connection()

    def describe(self) -> str:
        return f"the state file {self._file}"

    def _connection(self) -> sqlite3.Connection:
        if self._db is not None and self._pid == os.getpid():
            return self._db
        try:
            db = sqlite3.connect(self._file, timeout=2.0, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = FULL")
            db.executescript(SQL["schema"])
        except sqlite3.DatabaseError as e:
            why = "it is not a quota state ({}); move it away to start afresh" if "not a database" in str(e) else "{}"
            raise OSError(f"the quota state {self._file}: {why.format(e)}") from e
        self._db, self._pid = db, os.getpid()
        return db

    def _now(self, db: sqlite3.Connection, given: Optional[int]) -> int:
        if self._given:
            return int(given or 0)
        wall = int(time.time() * 1000)
        if self._boot is None:
            return wall
        mono = _monotonic_ms()
        anchor = db.execute(SQL["anchor"], (self._boot,)).fetchone()
        if anchor is not None and mono >= anchor[1]:
            return anchor[0] + (mono - anchor[1])
        at = max(wall, db.execute(SQL["latest"]).fetchone()[0])
        db.execute(SQL["forget_anchors"])
        db.execute(SQL["set_anchor"], (self._boot, at, mono))
        return at

    def _hint(self, db: sqlite3.Connection, name: str) -> Optional[tuple[int, int]]:
        row = db.execute(SQL["hint"], (name,)).fetchone()
        return (max(0, row[0]), row[1]) if row else None

    def _transaction(self, decide: Any) -> Any:
        with self._lock:
            db = self._connection()
            db.execute("BEGIN IMMEDIATE")
            try:
                result = decide(db)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return result

    def acquire(self, keys: list[Key], now: Optional[int] = None) -> Optional[Denied]:
        def decision(db: sqlite3.Connection) -> Optional[Denied]:
            at = self._now(db, now)

            def window(name: str, length: int) -> tuple[int, Optional[int], Optional[tuple[int, int]]]:
                db.execute(SQL["expire"], (name, at - length))
                count, oldest = db.execute(SQL["count"], (name,)).fetchone()
                return count, oldest, self._hint(db, name)

            def admit(name: str, length: int) -> None:
                db.execute(SQL["admit"], (name, at, length))
                db.execute(SQL["spend"], (name, at))

            return decide(keys, at, window, admit)

        try:
            return self._transaction(decision)
        except (sqlite3.Error, OSError) as e:
            return ("unavailable", self.describe(), str(e))

    def server_said(self, name: str, word: dict[str, int], now: Optional[int] = None) -> None:
        def said(db: sqlite3.Connection) -> None:
            at = self._now(db, now)
            hint = hint_after(self._hint(db, name), word, at)
            if hint is not None:
                db.execute(SQL["set_hint"], (name, hint[0], hint[1]))

        try:
            self._transaction(said)
        except (sqlite3.Error, OSError) as e:
            import warnings

            warnings.warn(f"the server's word on {name} was not saved in {self.describe()}: {e}", stacklevel=2)

    def close(self) -> None:
        with self._lock:
            if self._db is not None and self._pid == os.getpid():
                self._db.close()
            self._db = None


def redact_url(url: str) -> str:
    """A Redis URL without its password, for messages."""
    return re.sub(r"^([a-z+]+://)([^@/]*):([^@/]*)@", lambda m: f"{m.group(1)}{m.group(2)}:***@", url)


_unique = itertools.count(1)


class RedisStore:
    """Quotas in Redis, shared by every host behind one egress IP: the very
    Lua scripts the Rust host runs (catalogue/quota/*.lua), on Redis's clock.
    Every wait has a deadline (1 s to connect, 0.5 s an answer); while Redis
    is away, every decision fails at once and nothing leaves. Needs redis-py
    (``pip install 'api-entreprise[redis]'``)."""

    def __init__(self, url: str, prefix: str = REDIS_PREFIX) -> None:
        try:
            import redis
        except ImportError as e:
            raise ImportError("API_ENTREPRISE_REDIS_URL needs redis-py: pip install 'api-entreprise[redis]'") from e
        self._url, self._prefix = redact_url(url), prefix
        deadlines = {"socket_connect_timeout": 1.0, "socket_timeout": 0.5, "retry_on_timeout": False}
        sentinel = re.fullmatch(r"redis\+sentinel://(?:[^:@/]*:([^@/]*)@)?([^/]+)/([^/]+)(?:/(\d+))?", url)
        if url.startswith("redis+sentinel://"):
            if not sentinel:
                raise ValueError(f"{self._url} is not redis+sentinel://[:PASSWORD@]HOST:PORT[,HOST:PORT…]/MASTER[/DB]")
            from redis.sentinel import Sentinel

            password, hosts, master, db = sentinel.groups()
            nodes = [(h.split(":")[0], int(h.split(":")[1]) if ":" in h else 26379) for h in hosts.split(",")]
            self._client = Sentinel(nodes, **deadlines).master_for(
                master, password=password and unquote(password), db=int(db or 0), **deadlines
            )
        elif re.match(r"rediss?://", url):
            self._client = redis.Redis.from_url(url, **deadlines)
        else:
            raise ValueError(f"{self._url} is not a Redis URL: give redis://[:PASSWORD@]HOST:PORT/DB")
        self._acquire = self._client.register_script(_script("acquire.lua"))
        self._said = self._client.register_script(_script("server_said.lua"))

    def describe(self) -> str:
        return f"Redis at {self._url}"

    def acquire(self, keys: list[Key], now: Optional[int] = None) -> Optional[Denied]:
        args: list[Any] = []
        for _, limit, length in keys:
            args += [length, limit]
        args.append(f"{socket.gethostname()}:{os.getpid()}:{next(_unique)}:{secrets.token_hex(6)}")
        try:
            which, ms = self._acquire(keys=[self._prefix + k[0] for k in keys], args=args)
        except Exception as e:  # redis-py's errors, and the socket's
            return ("unavailable", self.describe(), str(e))
        if which == 0:
            return None
        name = keys[which - 1][0] if 0 < which <= len(keys) else "shared in Redis"
        return ("full", name, int(ms))

    def server_said(self, name: str, word: dict[str, int], now: Optional[int] = None) -> None:
        if "closed_for_ms" in word:
            args = [0, word["closed_for_ms"], 1]
        else:
            args = [word["remaining"], word["reset_in_ms"], 0]
        try:
            self._said(keys=[self._prefix + name], args=args)
        except Exception as e:  # redis-py's errors, and the socket's
            import warnings

            warnings.warn(f"the server's word on {name} was not kept in {self.describe()}: {e}", stacklevel=2)

    def close(self) -> None:
        self._client.close()


_opened: dict[str, Any] = {}
_opened_lock = threading.Lock()


def open_store(quota_store: Union[str, Any] = "shared", env: Optional[dict[str, str]] = None) -> Any:
    """The store for ``quota_store`` (``"shared"``, the default: Redis when
    ``API_ENTREPRISE_REDIS_URL`` is set, else the state directory's SQLite
    file; ``"memory"``: this process only; or a store object), one per
    process for the same place, so that every client of the process counts
    together."""
    if not isinstance(quota_store, str):
        return quota_store
    env = os.environ if env is None else env
    if quota_store == "memory":
        key, make = "memory", MemoryStore
    elif quota_store == "shared" and env.get("API_ENTREPRISE_REDIS_URL"):
        url = env["API_ENTREPRISE_REDIS_URL"]
        key, make = f"redis {url}", lambda: RedisStore(url)
    elif quota_store == "shared":
        file = state_dir(env) / STATE_FILE
        key, make = f"sqlite {file}", lambda: SqliteStore(file)
    else:
        raise ValueError(f'quota_store {quota_store!r} is not "shared", "memory" or a store')
    with _opened_lock:
        if key not in _opened:
            _opened[key] = make()
        return _opened[key]
