// Types of the `api-entreprise` package: the contract's JSON form
// (api-entreprise:client@0.2.0, interface `json`): records as objects with
// snake_case fields, options as `null`, variants as `{ tag, val }`, dates
// and instants as ISO 8601 strings, no BigInt.

export const PRODUCTION_BASE_URL: string;
/** The largest answer body a call reads (16 MiB, like the Rust host). */
export const MAX_RESPONSE_BYTES: number;
/** The per-IP quotas of API Entreprise; either one crossed bans the IP for hours. */
export const IP_QUOTAS: Quota[];

export interface Quota {
  limit: number;
  periodSeconds: number;
}

/** The traceability contract, and the call's options. */
export interface CallOptions {
  /** The administrative frame, such as "aides publiques". */
  context?: string;
  /** The SIRET of the public body that will use the data. */
  recipient?: string;
  /** The reason or case number (under 50 characters advised). */
  object?: string;
  /** Who is asking; required by the DGFIP endpoints. */
  userId?: string;
  /** The version to call; by default the newest non-deprecated one. */
  version?: number;
  /** Optional query parameters, by name. */
  query?: Record<string, string | number>;
}

export interface ClientOptions {
  /** The API Entreprise token (a JWT); sent only to `baseUrl`. */
  token: string;
  /** The API, by default production. https, or http on loopback (the sandbox). */
  baseUrl?: string;
  /** The per-IP quotas, by default `API_ENTREPRISE_IP_QUOTA`, else {@link IP_QUOTAS}. */
  ipQuotas?: Quota[];
  /**
   * Where the quotas are counted: `"shared"` (the default) with every host of the machine, in Redis when
   * `API_ENTREPRISE_REDIS_URL` is set, else in the state directory's SQLite file; `"memory"` in this
   * process only (every client of the process that asks for it shares it); or a store of your own making.
   */
  quotaStore?: "shared" | "memory" | QuotaStore;
  /** When a quota is full, wait for a slot within the call's deadline (the default) rather than fail at once. */
  waitForSlot?: boolean;
  /** The fetch to send with, by default the global one. */
  fetch?: typeof fetch;
  /** The codec, by default this package's build. */
  codec?: Pick<Codec, "prepare" | "parse">;
}

/** A quota a request counts against. */
export interface QuotaKey {
  name: string;
  limit: number;
  windowMs: number;
}
export type Denied = { full: { quota: string; retryAfterMs: number } } | { unavailable: { store: string; reason: string } };
/** Where quotas are counted. */
export interface QuotaStore {
  describe(): string;
  acquire(keys: QuotaKey[], now?: number): Denied | null | Promise<Denied | null>;
  serverSaid(name: string, word: object, now?: number): void | Promise<void>;
  close(): void;
}
/** In this process only. */
export class MemoryStore implements QuotaStore {
  constructor(clock?: () => number);
  describe(): string;
  acquire(keys: QuotaKey[], now?: number): Denied | null;
  serverSaid(name: string, word: object, now?: number): void;
  close(): void;
}
/** In a SQLite file shared by every host of the machine, whatever its language. */
export class SqliteStore implements QuotaStore {
  constructor(file: string, options?: { givenClock?: boolean });
  describe(): string;
  acquire(keys: QuotaKey[], now?: number): Denied | null;
  serverSaid(name: string, word: object, now?: number): void;
  close(): void;
}
/** In Redis, shared by every host behind one egress IP (the Rust host's Lua scripts). */
export class RedisStore implements QuotaStore {
  constructor(url: string, prefix?: string);
  describe(): string;
  acquire(keys: QuotaKey[]): Promise<Denied | null>;
  serverSaid(name: string, word: object): Promise<void>;
  close(): void;
}
/** The state directory every host of the machine shares. */
export function stateDir(env?: Record<string, string | undefined>): string;

export class ApiEntreprise {
  constructor(options: ClientOptions);
  readonly baseUrl: string;
  /** Where this client's quotas are counted, as a message would say it. */
  readonly quotaStore: string;
  /** Every endpoint the component can call. */
  endpoints(): Endpoint[];
  /** Calls `endpoint` with its path values; rejects with an {@link ApiEntrepriseError}. */
  call(endpoint: string, params?: (string | number)[], options?: CallOptions): Promise<Response>;
}

export type Outcome<T> = { ok: T; err?: undefined } | { ok?: undefined; err: ContractError };

/** The codec component itself, sans IO. */
export class Codec {
  endpoints(): Endpoint[];
  prepare(baseUrl: string, request: Request, now?: string): Outcome<Prepared>;
  parse(call: Prepared, status: number, headers: [string, string][], body: string, now?: string): Outcome<Response>;
}

export interface Policy {
  free: boolean;
  document: boolean;
  group: RateLimitGroup | null;
}
/** What this package's policy decides for a request's path. */
export function policyOf(path: string): Policy;

export interface Request {
  endpoint: string;
  version?: number | null;
  params?: string[];
  query?: [string, string][];
  trace?: { context: string; recipient: string; object: string; user_id?: string | null };
}

export interface Prepared {
  endpoint: string;
  version: number;
  method: "GET";
  url: string;
  headers: [string, string][];
  timeout_ms: number;
}

export interface RateLimitState {
  limit: number | null;
  remaining: number | null;
  /** ISO 8601 instant. */
  reset_at: string | null;
  retry_after_seconds: number | null;
}

export interface Coded {
  code: string | null;
  libelle: string | null;
}

export interface UniteLegale {
  siren: string;
  siret_siege_social: string | null;
  kind: string | null;
  denomination: string | null;
  sigle: string | null;
  categorie_entreprise: string | null;
  forme_juridique: Coded | null;
  activite_principale: Coded | null;
  tranche_effectif: string | null;
  etat_administratif: string | null;
  status_diffusion: string | null;
  /** ISO 8601 date. */
  date_creation: string | null;
  date_cessation: string | null;
}

export interface Adresse {
  numero_voie: string | null;
  type_voie: string | null;
  libelle_voie: string | null;
  complement: string | null;
  code_postal: string | null;
  commune: string | null;
  code_commune: string | null;
  lignes: string[];
}

export interface Etablissement {
  siret: string;
  siege_social: boolean | null;
  enseigne: string | null;
  activite_principale: Coded | null;
  tranche_effectif: string | null;
  etat_administratif: string | null;
  status_diffusion: string | null;
  date_creation: string | null;
  date_fermeture: string | null;
  adresse: Adresse | null;
  unite_legale: UniteLegale | null;
}

export interface Health {
  status: string;
  last_update: string | null;
  last_ok_status: string | null;
  until: string | null;
}

export type TypedData =
  | { tag: "unite-legale"; val: UniteLegale }
  | { tag: "etablissement"; val: Etablissement }
  | { tag: "privileges"; val: string[] }
  | { tag: "health"; val: Health };

export interface DocumentLink {
  url: string | null;
  expires_in_seconds: number | null;
  refused: boolean;
  status: string | null;
  status_label: string | null;
  valid_from: string | null;
  valid_until: string | null;
  issued_on: string | null;
}

export interface FileLink {
  pointer: string;
  url: string | null;
  expires_in_seconds: number | null;
}

/** A successful answer; `data`, `links` and `meta` are the server's JSON, whole. */
export interface Response {
  status: number;
  data: any;
  links: any;
  meta: any;
  document: DocumentLink | null;
  files: FileLink[];
  typed: TypedData | null;
  rate_limit: RateLimitState;
  request_id: string | null;
}

export interface ErrorItem {
  code: string;
  title: string;
  detail: string;
  parameter: string | null;
  meta: any;
}

export type ApiErrorKind =
  | "bad-request"
  | "unauthorized"
  | "forbidden"
  | "not-found"
  | "conflict"
  | "gone"
  | "unprocessable"
  | "rate-limited"
  | "unavailable-for-legal-reasons"
  | "server-error"
  | "bad-gateway"
  | "maintenance"
  | "gateway-timeout"
  | "unexpected";

export interface ApiErrorDetail {
  status: number;
  kind: ApiErrorKind;
  errors: ErrorItem[];
  text: string | null;
  provider: string | null;
  retryable: boolean;
  retry_after_seconds: number | null;
  rate_limit: RateLimitState;
  request_id: string | null;
}

export type ContractError =
  | { tag: "invalid-input"; val: ErrorItem[] }
  | { tag: "api"; val: ApiErrorDetail }
  | { tag: "unknown-endpoint" | "timeout" | "refused-by-host" | "quota-exceeded" | "transport" | "other"; val: string };

export interface RateLimitGroup {
  name: string;
  limit: number;
  period_seconds: number;
}

export interface Endpoint {
  id: string;
  version: number;
  title: string;
  provider: string;
  path: string;
  params: { name: string; kind: string }[];
  query: { name: string; description: string; values: string[]; min: number | null; max: number | null }[];
  kind: "json" | "document" | "json-with-links" | "collection" | "health" | "privileges";
  timeout_ms: number;
  rate_limit: RateLimitGroup;
  scopes: string[];
  deprecated: boolean;
  replaced_by: string | null;
  maintenance_window: string | null;
  needs_trace: boolean;
  requires_user_id: boolean;
}

export class ApiEntrepriseError extends Error {
  /** The contract's error case. */
  readonly tag: string;
  readonly detail: unknown;
}
export class InvalidInputError extends ApiEntrepriseError {
  readonly errors: ErrorItem[];
  readonly codes: string[];
}
export class UnknownEndpointError extends ApiEntrepriseError {}
export class ApiError extends ApiEntrepriseError {
  readonly status: number;
  readonly kind: ApiErrorKind;
  readonly errors: ErrorItem[];
  readonly codes: string[];
  readonly retryable: boolean;
  readonly retryAfterSeconds: number | null;
  readonly provider: string | null;
  readonly requestId: string | null;
  readonly rateLimit: RateLimitState;
}
export class TimeoutError extends ApiEntrepriseError {}
export class RefusedByHostError extends ApiEntrepriseError {}
/** The API refused the token as such (00101, 00103, 00105, 00106): its calls stop here, one every 10 minutes tries again. */
export class TokenRefusedError extends ApiEntrepriseError {
  readonly code: string;
  readonly since: Date;
}
/** The API stopped answering right after the IP reached its quota: probably banned until `until`. */
export class ProbablyBannedError extends ApiEntrepriseError {
  readonly since: Date;
  readonly until: Date;
  readonly sign: string;
}
/** This process's reading of the API's silences (shared by every client of the process). */
export const banWatch: {
  readonly ban: { since: Date; until: Date; sign: string } | null;
};
export class QuotaExceededError extends ApiEntrepriseError {
  readonly quota: string;
  readonly retryAfterSeconds: number;
}
export class QuotaStoreUnavailableError extends ApiEntrepriseError {
  store: string;
  reason: string;
}
export class TransportError extends ApiEntrepriseError {}
export class CodecError extends ApiEntrepriseError {}
