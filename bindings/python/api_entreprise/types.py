"""Typed dicts for the contract's JSON form (api-entreprise:client@0.2.0,
interface ``json``): records with snake_case keys, options as ``None``,
variants as ``{"tag": ..., "val": ...}``, dates and instants as ISO 8601."""

from __future__ import annotations

from typing import Any, Literal, Optional, TypedDict, Union


class RateLimitState(TypedDict):
    limit: Optional[int]
    remaining: Optional[int]
    reset_at: Optional[str]
    retry_after_seconds: Optional[int]


class Coded(TypedDict):
    code: Optional[str]
    libelle: Optional[str]


class UniteLegale(TypedDict):
    siren: str
    siret_siege_social: Optional[str]
    kind: Optional[str]
    denomination: Optional[str]
    sigle: Optional[str]
    categorie_entreprise: Optional[str]
    forme_juridique: Optional[Coded]
    activite_principale: Optional[Coded]
    tranche_effectif: Optional[str]
    etat_administratif: Optional[str]
    status_diffusion: Optional[str]
    date_creation: Optional[str]
    date_cessation: Optional[str]


class Adresse(TypedDict):
    numero_voie: Optional[str]
    type_voie: Optional[str]
    libelle_voie: Optional[str]
    complement: Optional[str]
    code_postal: Optional[str]
    commune: Optional[str]
    code_commune: Optional[str]
    lignes: list[str]


class Etablissement(TypedDict):
    siret: str
    siege_social: Optional[bool]
    enseigne: Optional[str]
    activite_principale: Optional[Coded]
    tranche_effectif: Optional[str]
    etat_administratif: Optional[str]
    status_diffusion: Optional[str]
    date_creation: Optional[str]
    date_fermeture: Optional[str]
    adresse: Optional[Adresse]
    unite_legale: Optional[UniteLegale]


class Health(TypedDict):
    status: str
    last_update: Optional[str]
    last_ok_status: Optional[str]
    until: Optional[str]


class TypedData(TypedDict):
    """``tag`` is ``unite-legale``, ``etablissement``, ``privileges`` or ``health``."""

    tag: Literal["unite-legale", "etablissement", "privileges", "health"]
    val: Union[UniteLegale, Etablissement, list[str], Health]


class DocumentLink(TypedDict):
    url: Optional[str]
    expires_in_seconds: Optional[int]
    refused: bool
    status: Optional[str]
    status_label: Optional[str]
    valid_from: Optional[str]
    valid_until: Optional[str]
    issued_on: Optional[str]


class FileLink(TypedDict):
    pointer: str
    url: Optional[str]
    expires_in_seconds: Optional[int]


class Response(TypedDict):
    """A successful answer; ``data``, ``links`` and ``meta`` are the server's JSON, whole."""

    status: int
    data: Any
    links: Any
    meta: Any
    document: Optional[DocumentLink]
    files: list[FileLink]
    typed: Optional[TypedData]
    rate_limit: RateLimitState
    request_id: Optional[str]


class Prepared(TypedDict):
    """What ``Codec.prepare`` gives: the resolved endpoint and the HTTP request."""

    endpoint: str
    version: int
    method: str
    url: str
    headers: list[list[str]]
    timeout_ms: int


class ErrorItem(TypedDict):
    code: str
    title: str
    detail: str
    parameter: Optional[str]
    meta: Any
