//! `api-entreprise serve`: API Entreprise's own routes over HTTP, so that
//! any platform (Java, PHP, .NET, Python, a browser) calls the API through
//! one place that holds the tokens, the quotas and the audit trail, by
//! changing only its base URL and using an application key as its bearer
//! token.
//!
//! - [`config`]: the configuration file (profiles, applications);
//! - `server`: the routes, the application checks, the quota shares,
//!   readiness;
//! - `listener`: HTTP/1.1 connections under a cap and deadlines that hold
//!   before any key is looked at;
//! - [`audit`]: the audit trail, written off the request path;
//! - `answer`: answers in the API's own shapes;
//! - `component`: the client component's swaps and rollbacks, and the
//!   admin routes that ask for them;
//! - `metrics`: the Prometheus metrics, on a listener of their own;
//! - `tokens`: a profile's token replaced without a restart, checked with
//!   `/privileges` first;
//! - [`dashboard`]: read-only pages of what the gateway does, on the
//!   metrics listener, from its own bookkeeping and the quota store.

pub mod audit;
pub mod config;
pub mod dashboard;

mod answer;
mod component;
mod dossier;
mod listener;
mod metrics;
mod server;
mod tokens;

pub use config::{Config, ConfigError, hash_key};
pub use server::{Gateway, GatewayError, READINESS_REFRESH, Reloaded};
pub use tokens::Rotation;
