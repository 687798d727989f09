"""The errors a call raises: one class per case of the contract's ``error``,
each with a message that says what was wrong and what to do."""

from __future__ import annotations

from typing import Any

_KINDS = {
    "bad-request": ("the API found the request malformed", "report it with the request id"),
    "unauthorized": ("the API refused the token", "check it: it may be wrong, expired (tokens last 18 months) or revoked"),
    "forbidden": ("the token may not call this endpoint", "list its rights with `privileges`; ask for the scope on DataPass"),
    "not-found": ("not found, or outside the endpoint's scope", "check the identifier"),
    "conflict": ("the same request is still running at the API", "wait for the first one to finish"),
    "gone": ("this link or route no longer exists", "call the endpoint again for a fresh link"),
    "unprocessable": ("the API refused a parameter", "fix the parameter named in `errors`"),
    "rate-limited": ("the token's quota for this endpoint is spent", "wait `retry_after_seconds`: ignoring 429s bans the IP"),
    "unavailable-for-legal-reasons": ("this entity is not diffusible", "use the non-diffusible endpoint if allowed"),
    "server-error": ("API Entreprise failed", "try again later"),
    "bad-gateway": ("the data provider failed", "try again later"),
    "maintenance": ("the data provider is in maintenance", "try again after `retry_after_seconds`"),
    "gateway-timeout": ("the data provider did not answer in time", "try again later"),
    "unexpected": ("the API answered an unexpected status", "report it with the request id"),
}


def _rebuild(cls: type, args: tuple[Any, ...], state: dict[str, Any]) -> "ApiEntrepriseError":
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class ApiEntrepriseError(Exception):
    """The base class: ``tag`` is the contract's error case, ``detail`` its payload."""

    def __init__(self, message: str, tag: str, detail: Any = None) -> None:
        super().__init__(message)
        self.tag = tag
        self.detail = detail

    def __reduce__(self) -> tuple[Any, ...]:
        # Picklable whatever the subclass's arguments: an error crosses a
        # process boundary whole (multiprocessing, a task queue).
        return _rebuild, (type(self), self.args, self.__dict__)


class InvalidInputError(ApiEntrepriseError, ValueError):
    """Refused locally, nothing sent: ``errors`` lists every fault with the server's code."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        lines = "".join(
            f"\n  - {i['code']}{' (' + i['parameter'] + ')' if i.get('parameter') else ''}: {i['detail'] or i['title']}"
            for i in items
        )
        super().__init__(f"invalid request, nothing was sent:{lines}", "invalid-input", items)
        self.errors = items
        self.codes = [i["code"] for i in items]


class UnknownEndpointError(ApiEntrepriseError, LookupError):
    """The endpoint id, or its version, is not in the catalogue (``00402``)."""


class ApiError(ApiEntrepriseError):
    """The server answered an error status."""

    def __init__(self, api: dict[str, Any]) -> None:
        what, todo = _KINDS.get(api["kind"], _KINDS["unexpected"])
        rid = f", request id {api['request_id']}" if api.get("request_id") else ""
        retry = f"; retry in {api['retry_after_seconds']} s" if api.get("retry_after_seconds") else ""
        text = f"\n  {api['text']}" if api.get("text") else ""
        codes = "".join(f"\n  - {e['code']}: {e['detail'] or e['title']}" for e in api["errors"])
        super().__init__(f"{what} (HTTP {api['status']}{rid}): {todo}{retry}{text}{codes}", "api", api)
        self.status: int = api["status"]
        self.kind: str = api["kind"]
        self.errors: list[dict[str, Any]] = api["errors"]
        self.codes = [e["code"] for e in api["errors"]]
        self.retryable: bool = api["retryable"]
        self.retry_after_seconds: int | None = api["retry_after_seconds"]
        self.provider: str | None = api["provider"]
        self.request_id: str | None = api["request_id"]
        self.rate_limit: dict[str, Any] = api["rate_limit"]


class CallTimeoutError(ApiEntrepriseError, TimeoutError):
    """No answer in time (5 s for JSON, 12 s for documents)."""


class RefusedByHostError(ApiEntrepriseError, PermissionError):
    """This package's policy refused the request before any connection."""


_TOKEN_TODO = {
    "00103": "it has expired (a token lives 18 months): renew it through DataPass (https://datapass.api.gouv.fr), "
    "then replace it",
    "00105": "it is blacklisted, most likely because it leaked: take the new one from your account "
    "(https://entreprise.api.gouv.fr/compte), replace it, and find where it leaked",
    "00106": "the API does not know it (a token without an authorisation): ask for access through DataPass",
}


class TokenRefusedError(ApiEntrepriseError, PermissionError):
    """The API refused this client's token as such (``code``: 00101 not
    valid, 00103 expired, 00105 blacklisted, 00106 unknown): its calls stop
    here, nothing was sent; one call every 10 minutes tries again."""

    def __init__(self, code: str, title: str, since: Any) -> None:
        todo = _TOKEN_TODO.get(
            code, "it is not valid: check that the whole token was given, else ask for one through DataPass"
        )
        super().__init__(
            f"API Entreprise refused the token with {code} ({title}) at {since.isoformat()}: {todo}; nothing was "
            "sent, and the token is tried again in at most 10 minutes",
            "refused-by-host",
            code,
        )
        self.code = code
        self.since = since


class ProbablyBannedError(ApiEntrepriseError):
    """The API stopped answering right after the IP reached its quota: it is
    probably banned until ``until`` (12 hours after the first call that got
    no answer). Nothing was sent."""

    def __init__(self, message: str, since: Any, until: Any, sign: str) -> None:
        super().__init__(message, "refused-by-host", sign)
        self.since = since
        self.until = until
        self.sign = sign


class QuotaExceededError(ApiEntrepriseError):
    """A quota has no slot for this request: nothing was sent."""

    def __init__(self, message: str, quota: str, retry_after_seconds: int) -> None:
        super().__init__(message, "quota-exceeded", quota)
        self.quota = quota
        self.retry_after_seconds = retry_after_seconds


class QuotaStoreUnavailableError(ApiEntrepriseError):
    """The quota store cannot decide (the state file unusable, Redis away):
    nothing was sent, since nothing may leave uncounted. Not a full quota:
    the store must come back."""

    def __init__(self, message: str, store: str, reason: str) -> None:
        super().__init__(message, "quota-store-unavailable", store)
        self.store = store
        self.reason = reason


class TransportError(ApiEntrepriseError, ConnectionError):
    """The connection failed (refused, reset, DNS, TLS)."""


class CodecError(ApiEntrepriseError):
    """Anything else, such as an answer that is not the API's envelope."""


def error_from(error: dict[str, Any]) -> ApiEntrepriseError:
    """The exception for a contract ``error`` in its JSON form."""
    tag, val = error["tag"], error["val"]
    if tag == "invalid-input":
        return InvalidInputError(val)
    if tag == "api":
        return ApiError(val)
    cls = {
        "unknown-endpoint": UnknownEndpointError,
        "timeout": CallTimeoutError,
        "refused-by-host": RefusedByHostError,
        "transport": TransportError,
    }.get(tag, CodecError)
    return cls(str(val), tag, val)
