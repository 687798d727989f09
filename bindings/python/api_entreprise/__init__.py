"""API Entreprise for Python: the client's WebAssembly codec component
(validation with the server's codes, request building, tolerant parsing) on
wasmtime with no capability, and a client that keeps the token, the
allow-list, the 5 s / 12 s deadlines, a 16 MiB cap on an answer, and the
quotas, counted with every host of the machine."""

from ._codec import Codec
from ._policy import IP_QUOTAS, Quota, parse_quota, policy_of
from ._quota import MemoryStore, RedisStore, SqliteStore, state_dir
from .client import MAX_RESPONSE_BYTES, PRODUCTION_BASE_URL, ApiEntreprise
from .errors import (
    ApiEntrepriseError,
    ApiError,
    CallTimeoutError,
    CodecError,
    InvalidInputError,
    ProbablyBannedError,
    QuotaExceededError,
    QuotaStoreUnavailableError,
    RefusedByHostError,
    TokenRefusedError,
    TransportError,
    UnknownEndpointError,
)

__all__ = [
    "MAX_RESPONSE_BYTES",
    "PRODUCTION_BASE_URL",
    "IP_QUOTAS",
    "MemoryStore",
    "RedisStore",
    "SqliteStore",
    "parse_quota",
    "state_dir",
    "QuotaStoreUnavailableError",
    "ApiEntreprise",
    "ApiEntrepriseError",
    "ApiError",
    "CallTimeoutError",
    "Codec",
    "CodecError",
    "InvalidInputError",
    "Quota",
    "ProbablyBannedError",
    "QuotaExceededError",
    "RefusedByHostError",
    "TokenRefusedError",
    "TransportError",
    "UnknownEndpointError",
    "policy_of",
]
