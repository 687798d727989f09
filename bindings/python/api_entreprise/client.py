"""The client: the codec component for validation, request building and
parsing, and this package for everything it must not decide: the token
(sent only to the API's origin, never through a redirect), the allow-list,
the 5 s / 12 s timeouts and the quotas, all decided from the URL about to be
sent and the host catalogue's table."""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from datetime import datetime
from typing import Any, Iterable, Optional
from urllib.parse import urlsplit

from ._codec import Codec
from ._policy import IP_QUOTAS, TABLE, Quota, Quotas, policy_of
from .errors import (
    CallTimeoutError,
    QuotaExceededError,
    RefusedByHostError,
    TransportError,
    error_from,
)
from .types import Response

PRODUCTION_BASE_URL = "https://entreprise.api.gouv.fr"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _origin(base_url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of the base URL, or why it cannot be one."""
    url = urlsplit(base_url)
    loopback = url.hostname in _LOOPBACK
    if url.scheme != "https" and not (url.scheme == "http" and loopback):
        raise ValueError(f"base_url {base_url} must use https (plain http only on loopback, for the sandbox)")
    if url.username or url.password or url.query or url.fragment or url.path not in ("", "/") or not url.hostname:
        raise ValueError(f"base_url {base_url} must be a scheme and a host only, such as {PRODUCTION_BASE_URL}")
    return url.scheme, url.hostname, url.port or (443 if url.scheme == "https" else 80)


class ApiEntreprise:
    """API Entreprise, called through the codec component.

    >>> api = ApiEntreprise(token=os.environ["API_ENTREPRISE_TOKEN"])
    >>> api.call("insee_unites_legales", ["552049447"],
    ...          context="aides publiques", recipient="13002526500013", object="dossier 42")
    """

    def __init__(
        self,
        token: str,
        base_url: str = PRODUCTION_BASE_URL,
        ip_quotas: Iterable[Quota] = IP_QUOTAS,
        codec: Optional[Codec] = None,
        ssl_context: Optional[ssl.SSLContext] = None,
    ) -> None:
        if not isinstance(token, str) or not token.strip():
            raise ValueError('give the API Entreprise token: ApiEntreprise(token=os.environ["API_ENTREPRISE_TOKEN"])')
        self._token = token.strip()
        self._origin = _origin(base_url)
        scheme, host, port = self._origin
        self.base_url = f"{scheme}://{host if ':' not in host else f'[{host}]'}:{port}"
        self._ip_quotas = [(q.key, q.limit, q.period_seconds) for q in ip_quotas]
        self._codec = codec or Codec()
        self._quotas = Quotas()
        self._ssl = ssl_context or ssl.create_default_context()

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
        policy = policy_of(url.path)
        group = policy["group"]
        group_quota = (f"group {group['name']}", group["limit"], group["period_seconds"]) if group else None
        quotas = [] if policy["free"] else self._ip_quotas + ([group_quota] if group_quota else [])
        refused = self._quotas.take(quotas)
        if refused:
            key, wait = refused
            seconds = max(1, int(wait + 0.999))
            raise QuotaExceededError(
                f"the quota {key} is full: nothing was sent; try again in {seconds} s", key, seconds
            )

        ceiling = TABLE["timeouts_ms"]["document" if policy["document"] else "json"]
        timeout = min(call["timeout_ms"] or ceiling, ceiling) / 1000
        path = url.path + (f"?{url.query}" if url.query else "")
        headers = {k: v for k, v in call["headers"] if k.lower() != "authorization"}
        headers["Authorization"] = f"Bearer {self._token}"
        status, answer_headers, body = self._send(path, headers, timeout)

        parsed = self._codec.parse(call, status, answer_headers, body)
        api = parsed["err"]["val"] if parsed.get("err", {}).get("tag") == "api" else None
        rate_limit = parsed["ok"]["rate_limit"] if "ok" in parsed else api and api["rate_limit"]
        if group_quota and rate_limit:
            self._learn(group_quota[0], status, rate_limit, api and api["retry_after_seconds"])
        if "err" in parsed:
            raise error_from(parsed["err"])
        return parsed["ok"]

    def _send(self, path: str, headers: dict[str, str], timeout: float) -> tuple[int, list[list[str]], str]:
        """One GET, whole within ``timeout`` (connect, head and body); no
        redirect is followed."""
        scheme, host, port = self._origin
        deadline = time.monotonic() + timeout
        if scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                host, port, timeout=timeout, context=self._ssl
            )
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            chunks = []
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise socket.timeout("the body took too long")
                if conn.sock is not None:
                    conn.sock.settimeout(left)
                chunk = response.read1(65536)
                if not chunk:
                    break
                chunks.append(chunk)
            body = b"".join(chunks).decode("utf-8", errors="replace")
            return response.status, [[k, v] for k, v in response.getheaders()], body
        except (socket.timeout, TimeoutError) as e:
            raise CallTimeoutError(
                f"the API did not answer within {timeout:g} s; try again later", "timeout", timeout
            ) from e
        except (OSError, http.client.HTTPException) as e:
            raise TransportError(f"the connection to {self.base_url} failed: {e}", "transport", str(e)) from e
        finally:
            conn.close()

    def _learn(self, key: str, status: int, limits: dict[str, Any], retry_after: Optional[int]) -> None:
        """What the server said of its quota closes the group until it allows again."""
        if status == 429:
            self._quotas.close_until(key, time.time() + (retry_after or limits.get("retry_after_seconds") or 60))
        elif limits.get("remaining") == 0 and limits.get("reset_at"):
            reset = datetime.fromisoformat(limits["reset_at"].replace("Z", "+00:00"))
            self._quotas.close_until(key, reset.timestamp())
