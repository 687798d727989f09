"""API Entreprise for Python: the client's WebAssembly codec component
(validation with the server's codes, request building, tolerant parsing) on
wasmtime with no capability, and a client that keeps the token, the
allow-list, the 5 s / 12 s timeouts and the quotas."""

from ._codec import Codec
from ._policy import IP_QUOTAS, Quota, policy_of
from .client import PRODUCTION_BASE_URL, ApiEntreprise
from .errors import (
    ApiEntrepriseError,
    ApiError,
    CallTimeoutError,
    CodecError,
    InvalidInputError,
    QuotaExceededError,
    RefusedByHostError,
    TransportError,
    UnknownEndpointError,
)

__all__ = [
    "PRODUCTION_BASE_URL",
    "IP_QUOTAS",
    "ApiEntreprise",
    "ApiEntrepriseError",
    "ApiError",
    "CallTimeoutError",
    "Codec",
    "CodecError",
    "InvalidInputError",
    "Quota",
    "QuotaExceededError",
    "RefusedByHostError",
    "TransportError",
    "UnknownEndpointError",
    "policy_of",
]
