//! Every end-to-end test in one binary (wasmtime is linked once), a module
//! per topic: the real component in the real host against the sandbox on
//! loopback, sharing the harness in `tests/src/`.

mod catalogue;
mod circuits;
mod conformance;
mod connections;
mod documents;
mod fair_shares;
mod hostile;
mod profiles;
mod quota_scenarios;
mod quotas;
mod retries;
mod shared_quota;
mod sirene;
mod swap;
