//! Host runtime for the API Entreprise client component.
//!
//! The client (validation, request building, parsing) is a WebAssembly
//! component loaded at run time; this crate runs it and owns every policy:
//! the token (the component never sees it), the allow-list of authorities,
//! the timeouts (5 s for JSON, 12 s for documents, whatever the component
//! asks), the per-IP quota, isolation, and the audit trail.
//!
//! To embed it:
//!
//! 1. Build a [`Runtime`] with a [`RuntimeBuilder`]: the API base URL, the
//!    [`Token`], the component (the bytes of the `api-entreprise-component`
//!    crate, or a `.wasm` file an administrator gives), optionally quotas.
//! 2. Describe a call with [`types::Request`]: the endpoint id, its path
//!    values and the [`types::Trace`].
//! 3. `runtime.call(&request).await` gives a [`types::Response`] (the raw
//!    envelope plus typed records) or a [`CallError`] that says what to do.
//! 4. For many tokens (a vendor's hundreds of administrations), build one
//!    runtime and make the others with [`Runtime::for_token`]: they share
//!    the engine, the instance pool, the compiled client, the sender and
//!    the quota store, and each keeps its token, its quota groups and its
//!    circuits; a profile then costs kilobytes.
//! 5. To ship a new client version while serving, [`Runtime::swap`] checks
//!    it (contract, catalogue, a canary against the serving version) and
//!    swaps it in; [`Runtime::rollback`] and automatic rollback undo it
//!    ([`swap`] says how).
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use api_entreprise::{ComponentSource, RuntimeBuilder, Token, types};
//!
//! let runtime = RuntimeBuilder::new("https://entreprise.api.gouv.fr")
//!     .component(ComponentSource::File("api_entreprise_guest.wasm".into()))
//!     .token(Token::new(std::env::var("API_ENTREPRISE_TOKEN")?)?)
//!     .build()
//!     .await?;
//! let response = runtime
//!     .call(&types::Request {
//!         endpoint: "insee_unites_legales".into(),
//!         version: None,
//!         params: vec!["552049447".into()],
//!         query: vec![],
//!         trace: types::Trace {
//!             context: "aides publiques".into(),
//!             recipient: "13002526500013".into(),
//!             object: "dossier 42".into(),
//!             user_id: None,
//!         },
//!     })
//!     .await?;
//! println!("{}", response.data);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod atomic;
pub mod audit;
mod bindings;
mod circuit;
mod codec;
pub mod contract;
pub mod download;
mod error;
pub mod paced;
pub mod policy;
pub mod quota;
mod retry;
mod runtime;
pub mod sender;
pub mod swap;
mod token;

pub use circuit::{BAN_LENGTH, BanSuspicion, CircuitConfig, CircuitState, TOKEN_CODES, TokenFault};
pub use codec::Codec;
pub use download::{DownloadError, Downloaded};
pub use error::{CallError, ClientError, ConfigError};
pub use quota::{QuotaSpec, Quotas};
pub use retry::RetryPolicy;
pub use runtime::{
    CallPath, ComponentOrigin, ComponentSource, DOCUMENT_TIMEOUT, JSON_TIMEOUT, LoadTimings, POOL_SLOTS,
    PRODUCTION_BASE_URL, QUOTA_MARGIN, Runtime, RuntimeBuilder, VersionInfo,
};
pub use sender::Sender;
pub use swap::{SwapError, SwapEvent, SwapReport};
pub use token::{Claims, TOKEN_LIFETIME_DAYS, Token};

/// The contract's types (`api-entreprise:client/types@0.2.0`).
pub mod types {
    pub use crate::bindings::api_entreprise::client::types::*;
}

/// An instant in RFC 3339 (UTC, to the second).
pub(crate) fn rfc3339(t: std::time::SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// The current instant as the contract's `now` (RFC 3339, UTC).
pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}
