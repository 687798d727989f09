"""The client: the codec component for validation, request building and
parsing, and this package for everything it must not decide: the token
(sent only to the API's origin, never through a redirect), the allow-list,
the 5 s / 12 s deadlines of a whole call, a 16 MiB cap on an answer and the
quotas, counted with every host of the machine, all decided from the URL
about to be sent and the host catalogue's table."""

from __future__ import annotations

import concurrent.futures
import http.client
import os
import re
import socket
import ssl
import threading
import time
from typing import Any, Iterable, Optional, Union
from urllib.parse import urlsplit

from . import _token
from ._ban import BAN_WATCH
from ._codec import Codec
from ._policy import TABLE, Quota, ip_quotas_from_env, policy_of, quota_keys, server_words, token_id
from ._quota import open_store
from .errors import (
    CallTimeoutError,
    ProbablyBannedError,
    QuotaExceededError,
    QuotaStoreUnavailableError,
    RefusedByHostError,
    TokenRefusedError,
    TransportError,
    error_from,
)
from .types import Response

PRODUCTION_BASE_URL = "https://entreprise.api.gouv.fr"
#: The largest answer body a call reads, like the Rust host.
MAX_RESPONSE_BYTES = 16 << 20
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}

# Name resolution has no timeout of its own: it runs here, waited for
# within the call's deadline.
def _resolver() -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="api-entreprise-dns")


_RESOLVER = _resolver()


def _after_fork() -> None:
    # A forked child (a pre-forking server's worker) has none of the
    # parent's threads: it gets resolvers of its own.
    global _RESOLVER
    _RESOLVER = _resolver()


os.register_at_fork(after_in_child=_after_fork)


def _origin(base_url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of the base URL, or why it cannot be one."""
    url = urlsplit(base_url)
    loopback = url.hostname in _LOOPBACK
    if url.scheme != "https" and not (url.scheme == "http" and loopback):
        raise ValueError(f"base_url {base_url} must use https (plain http only on loopback, for the sandbox)")
    if url.username or url.password or url.query or url.fragment or url.path not in ("", "/") or not url.hostname:
        raise ValueError(f"base_url {base_url} must be a scheme and a host only, such as {PRODUCTION_BASE_URL}")
    return url.scheme, url.hostname, url.port or (443 if url.scheme == "https" else 80)


def _uncanonical(path: str) -> Optional[str]:
    """Why a path cannot leave as it is: an encoded separator or dot, a
    backslash, a ``.`` or ``..`` segment, which a server or a proxy may read
    as another path than the one this client classified."""
    if re.search(r"%(2f|2e|5c)", path, re.I):
        return "an encoded separator or dot (%2F, %2E, %5C)"
    if "\\" in path:
        return "a backslash"
    if any(s in (".", "..") for s in path.split("/")):
        return "a . or .. segment"
    return None


class _Deadline:
    """One deadline for a whole call: name resolution, connection, TLS, the
    request, the answer's head and its body. At the deadline the socket is
    shut down, whatever the read it is in."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._at = time.monotonic() + seconds
        self._sock: Optional[socket.socket] = None
        self.expired = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def left(self) -> float:
        left = self._at - time.monotonic()
        if left <= 0:
            self.expired = True
            raise socket.timeout("the deadline passed")
        return left

    def watch(self, sock: socket.socket) -> None:
        """Shuts ``sock`` down at the deadline."""
        self._sock = sock
        if self.expired:
            self._expire()

    def _expire(self) -> None:
        self.expired = True
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cancel(self) -> None:
        self._timer.cancel()


class ApiEntreprise:
    """API Entreprise, called through the codec component.

    >>> api = ApiEntreprise(token=os.environ["API_ENTREPRISE_TOKEN"])
    >>> api.call("insee_unites_legales", ["552049447"],
    ...          context="aides publiques", recipient="13002526500013", object="dossier 42")

    The quotas are counted, by default, with every host of the machine
    (``quota_store="shared"``: Redis when ``API_ENTREPRISE_REDIS_URL`` is
    set, else the state directory's SQLite file); ``quota_store="memory"``
    counts in this process only. A full quota waits for its slot within the
    call's deadline unless ``wait_for_slot=False``.
    """

    def __init__(
        self,
        token: str,
        base_url: str = PRODUCTION_BASE_URL,
        ip_quotas: Optional[Iterable[Quota]] = None,
        codec: Optional[Codec] = None,
        ssl_context: Optional[ssl.SSLContext] = None,
        quota_store: Union[str, Any] = "shared",
        wait_for_slot: bool = True,
    ) -> None:
        if not isinstance(token, str) or not token.strip():
            raise ValueError('give the API Entreprise token: ApiEntreprise(token=os.environ["API_ENTREPRISE_TOKEN"])')
        self._token = token.strip()
        self._jti = token_id(self._token)
        self._origin = _origin(base_url)
        scheme, host, port = self._origin
        self.base_url = f"{scheme}://{host if ':' not in host else f'[{host}]'}:{port}"
        self._ip_quotas = tuple(ip_quotas) if ip_quotas is not None else ip_quotas_from_env()
        self._codec = codec or Codec()
        self._store = open_store(quota_store)
        self._wait_for_slot = wait_for_slot
        self._ssl = ssl_context or ssl.create_default_context()

    @property
    def quota_store(self) -> str:
        """Where this client's quotas are counted, as a message would say it."""
        return self._store.describe()

    def endpoints(self) -> list[dict[str, Any]]:
        """Every endpoint the component can call."""
        return self._codec.endpoints()

    def call(
        self,
        endpoint: str,
        params: Iterable[str] = (),
        *,
        context: str = "",
        recipient: str = "",
        object: str = "",  # noqa: A002 - the API's own name
        user_id: Optional[str] = None,
        version: Optional[int] = None,
        query: Optional[dict[str, Any]] = None,
    ) -> Response:
        """Calls ``endpoint`` with its path ``params`` on behalf of the trace.
        Raises an ``ApiEntrepriseError`` subclass; nothing is sent when the
        input is invalid or a quota is full."""
        request = {
            "endpoint": endpoint,
            "version": version,
            "params": [str(p) for p in params],
            "query": [[k, str(v)] for k, v in (query or {}).items()],
            "trace": {"context": context, "recipient": recipient, "object": object, "user_id": user_id},
        }
        prepared = self._codec.prepare(self.base_url, request)
        if "err" in prepared:
            raise error_from(prepared["err"])
        call = prepared["ok"]

        # The allow-list: the token goes to the API's origin and nowhere else.
        url = urlsplit(call["url"])
        scheme, host, port = self._origin
        if (url.scheme, url.hostname, url.port or (443 if url.scheme == "https" else 80)) != (scheme, host, port):
            raise RefusedByHostError(
                f"the request is for {url.scheme}://{url.netloc}, not the API ({self.base_url}): nothing was sent",
                "refused-by-host",
                call["url"],
            )
        why = _uncanonical(url.path)
        if why:
            raise RefusedByHostError(
                f"the request's path has {why}, which the API could read as another path: nothing was sent",
                "refused-by-host",
                call["url"],
            )
        policy = policy_of(url.path)
        keys, group = quota_keys(url.path, self._ip_quotas, self._jti)
        ceiling = TABLE["timeouts_ms"]["document" if policy["document"] else "json"]
        timeout = min(call["timeout_ms"] or ceiling, ceiling) / 1000
        # A token the API refused as such is not sent again (but to probe).
        fault = _token.held(self._token)
        if fault is not None:
            raise TokenRefusedError(fault.code, fault.title, fault.since)
        # A probable ban holds calls that count against the per-IP quotas.
        ban = BAN_WATCH.held() if keys else None
        if ban is not None:
            raise ProbablyBannedError(
                f"the API has not answered since {ban.since.isoformat()} right after {ban.sign}: the IP is probably "
                f"banned until {ban.until.isoformat()} (a ban lasts 12 hours and cannot be lifted; nothing was sent, "
                "and calls are held meanwhile but one every 10 minutes; write to support@entreprise.api.gouv.fr if "
                "you need it lifted)",
                ban.since,
                ban.until,
                ban.sign,
            )
        self._take(keys, timeout)

        path = url.path + (f"?{url.query}" if url.query else "")
        headers = {k: v for k, v in call["headers"] if k.lower() != "authorization"}
        headers["Authorization"] = f"Bearer {self._token}"
        status, answer_headers, body = self._send(path, headers, timeout, group)
        fault = _token.fault_in(body) if status == 401 else None
        if fault is not None:
            _token.refused(self._token, *fault)
        else:
            _token.accepted(self._token)

        parsed = self._codec.parse(call, status, answer_headers, body)
        if "err" in parsed:
            raise error_from(parsed["err"])
        return parsed["ok"]

    def _take(self, keys: list[tuple[str, int, int]], budget: float) -> None:
        """Takes a slot in every quota of ``keys``, waiting while one frees
        within ``budget`` seconds (unless ``wait_for_slot`` is off); a store
        that cannot decide fails at once: nothing leaves uncounted."""
        if not keys:
            return
        deadline = time.monotonic() + budget
        while True:
            denied = self._store.acquire(keys)
            if denied is None:
                return
            if denied[0] == "unavailable":
                _, store, reason = denied
                raise QuotaStoreUnavailableError(
                    f"the quota store ({store}) is unavailable ({reason}); nothing was sent", store, reason
                )
            _, quota, ms = denied
            if quota.startswith("ip "):
                # What the API says before it bans: a silence right after is one.
                BAN_WATCH.limit_reached(f"the per-IP quota {quota[3:]} full")
            if self._wait_for_slot and time.monotonic() + ms / 1000 < deadline:
                time.sleep(ms / 1000)
                continue
            seconds = max(1, -(-ms // 1000))
            raise QuotaExceededError(
                f"the quota {quota} is full: nothing was sent; a slot frees in {seconds} s", quota, seconds
            )

    def _connect(self, deadline: _Deadline) -> socket.socket:
        """A connection to the API (TLS when https), within the deadline."""
        scheme, host, port = self._origin
        resolving = _RESOLVER.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
        try:
            addresses = resolving.result(timeout=deadline.left())
        except concurrent.futures.TimeoutError as e:
            raise socket.timeout(f"resolving {host} took too long") from e
        error: Optional[OSError] = None
        for family, kind, proto, _, address in addresses:
            sock = socket.socket(family, kind, proto)
            deadline.watch(sock)
            try:
                sock.settimeout(deadline.left())
                sock.connect(address)
                if scheme == "https":
                    sock = self._ssl.wrap_socket(sock, server_hostname=host)
                    deadline.watch(sock)
                return sock
            except OSError as e:
                sock.close()
                error = e
                if deadline.expired:
                    break
        raise error or OSError(f"no address for {host}")

    def _send(
        self, path: str, headers: dict[str, str], timeout: float, group: Optional[str]
    ) -> tuple[int, list[list[str]], str]:
        """One GET, whole within ``timeout`` (resolution, connection, head and
        body), its body capped; no redirect is followed. What the answer's
        head says of the group's quota is kept before the body is read."""
        scheme, host, port = self._origin
        deadline = _Deadline(timeout)
        # The socket is this client's own (connected within the deadline);
        # the connection class only writes the request and reads the answer,
        # and names the host as a client for its scheme would.
        conn: http.client.HTTPConnection = (
            http.client.HTTPSConnection(host, port, context=self._ssl) if scheme == "https" else http.client.HTTPConnection(host, port)
        )
        response: Optional[http.client.HTTPResponse] = None
        try:
            conn.sock = self._connect(deadline)
            conn.sock.settimeout(deadline.left())
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            BAN_WATCH.answered()
            if response.status == 429:
                BAN_WATCH.limit_reached(f"a 429 from the API on {path.split('?')[0]}")
            answer_headers = [[k, v] for k, v in response.getheaders()]
            if group:
                lower = {k.lower(): v for k, v in response.getheaders()}
                for word in server_words(response.status, lower):
                    self._store.server_said(group, word)
            too_large = TransportError(
                f"the answer is larger than {MAX_RESPONSE_BYTES >> 20} MiB, more than any of the API's: it was not read",
                "transport",
                "body too large",
            )
            length = response.getheader("content-length")
            if length and length.strip().isdigit() and int(length) > MAX_RESPONSE_BYTES:
                raise too_large
            chunks, size = [], 0
            while True:
                if conn.sock is not None:
                    conn.sock.settimeout(deadline.left())
                chunk = response.read1(65536)
                if not chunk:
                    break
                size += len(chunk)
                if size > MAX_RESPONSE_BYTES:
                    raise too_large
                chunks.append(chunk)
            if deadline.expired:
                raise socket.timeout("the deadline passed")
            body = b"".join(chunks).decode("utf-8", errors="replace")
            return response.status, answer_headers, body
        except TransportError:
            raise
        except (socket.timeout, TimeoutError) as e:
            if response is None:
                # No answer at all, as a banned IP gets.
                BAN_WATCH.silent()
            raise CallTimeoutError(
                f"the API did not answer within {timeout:g} s; try again later", "timeout", timeout
            ) from e
        except (OSError, http.client.HTTPException) as e:
            if deadline.expired:
                if response is None:
                    BAN_WATCH.silent()
                raise CallTimeoutError(
                    f"the API did not answer within {timeout:g} s; try again later", "timeout", timeout
                ) from e
            raise TransportError(f"the connection to {self.base_url} failed: {e}", "transport", str(e)) from e
        finally:
            deadline.cancel()
            conn.close()
