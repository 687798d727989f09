//! The dossier: what a procedure needs about one company or association,
//! under one of API Entreprise's official use cases, gathered in one go,
//! checked and kept.
//!
//! - [`identifier`]: the entity (a SIREN, a SIRET or an RNA number),
//!   checked before anything is sent;
//! - [`plan`]: which of the use case's endpoints apply, and with what;
//! - [`manifest`]: `manifest.json`, item by item, with the dossier's
//!   summary;
//! - [`gather()`]: the calls, through a [`Runtime`](api_entreprise::Runtime)
//!   at its quotas' pace, the documents downloaded at once (never with the
//!   token), checked and hashed; run again on the same folder, it asks only
//!   what is missing, failed or expiring.
//!
//! The command (`api-entreprise dossier`) and the gateway
//! (`GET /dossiers/{id}`) are two callers of [`gather()`].

pub mod gather;
pub mod identifier;
pub mod manifest;
pub mod plan;

pub use gather::{DossierError, Options, Report, gather, pack, prepare, sha256_hex, signature};
pub use identifier::Identifier;
pub use manifest::{Item, Manifest, Outcome};
pub use plan::{Known, Selection};
