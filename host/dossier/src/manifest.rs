//! `manifest.json`: what the dossier holds, item by item, and what it
//! lacks. Written whole after each item (never half), so that a dossier
//! stopped at any instant resumes from what it says.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::identifier::Kind;
use crate::plan::Known;

/// The manifest's format; a reader refuses a newer one.
pub const FORMAT: u32 = 1;

/// The manifest's file name in a dossier's folder.
pub const FILE: &str = "manifest.json";

/// A dossier's manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: u32,
    /// The entity's identifier, as given.
    pub identifier: String,
    /// Its kind.
    pub identifier_kind: Kind,
    /// The use case's id (`marches_publics`).
    pub use_case: String,
    /// Its name.
    pub use_case_name: String,
    /// What is known of the entity.
    pub entity: Known,
    /// The trace the calls were made under (the user id left out).
    pub trace: Trace,
    /// When the dossier was started (RFC 3339, UTC).
    pub created_at: String,
    /// When an item last changed.
    pub updated_at: String,
    /// One item per endpoint, in the use case's order.
    pub items: Vec<Item>,
    /// Complete, or what is missing and why.
    pub summary: Summary,
}

/// The trace of a dossier's calls.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Trace {
    /// `context`.
    pub context: String,
    /// `recipient`.
    pub recipient: String,
    /// `object`.
    pub object: String,
}

/// How an item ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// A JSON answer, kept in `data_file` (with its files, if it has some).
    Data,
    /// A document, downloaded and checked.
    Document,
    /// The provider does not know the entity (404).
    NotFound,
    /// The provider refused to deliver (URSSAF's `refus_de_delivrance`):
    /// an answer, not an error.
    RefusedByProvider,
    /// Anything else: an API error, a timeout, a link that expired twice,
    /// a file that is not what it should be. Asked again on the next run.
    Failed,
    /// The endpoint is not for this kind of entity (an association's
    /// register for a company): nothing is missing.
    NotApplicable,
    /// The endpoint needs what the identifier does not give (a SIRET from
    /// a SIREN alone): missing, asked on a later run that has it.
    NeedsInput,
}

impl Outcome {
    /// Its name in the manifest and the table.
    pub fn name(self) -> &'static str {
        match self {
            Self::Data => "data",
            Self::Document => "document",
            Self::NotFound => "not found",
            Self::RefusedByProvider => "refused by the provider",
            Self::Failed => "failed",
            Self::NotApplicable => "not applicable",
            Self::NeedsInput => "needs input",
        }
    }

    /// Whether the item holds what the procedure asked for.
    pub fn holds(self) -> bool {
        matches!(self, Self::Data | Self::Document)
    }
}

/// One endpoint's part of the dossier.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Item {
    /// The endpoint's id.
    pub endpoint: String,
    /// Its version.
    pub version: u8,
    /// Its title.
    pub title: String,
    /// Its provider.
    pub provider: String,
    /// `recommended` or `optional` in the use case.
    pub stance: String,
    /// The path values it was asked with.
    #[serde(default)]
    pub params: Vec<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// When it was answered (RFC 3339, UTC).
    #[serde(default)]
    pub at: Option<String>,
    /// The HTTP status of the last answer.
    #[serde(default)]
    pub status: Option<u16>,
    /// The API's request id, to quote to its support.
    #[serde(default)]
    pub request_id: Option<String>,
    /// The answer's envelope (`data`, `links`, `meta`), relative to the
    /// dossier's folder.
    #[serde(default)]
    pub data_file: Option<String>,
    /// Its documents, downloaded and checked.
    #[serde(default)]
    pub documents: Vec<Document>,
    /// When the attested situation starts being valid, as the provider says.
    #[serde(default)]
    pub valid_from: Option<String>,
    /// When it stops being valid.
    #[serde(default)]
    pub valid_until: Option<String>,
    /// When the document was delivered.
    #[serde(default)]
    pub issued_on: Option<String>,
    /// Why it holds nothing: the error, the refusal, or why it does not apply.
    #[serde(default)]
    pub error: Option<ItemError>,
    /// Calls made for it, over every run.
    #[serde(default)]
    pub calls: u32,
}

/// A document of an item.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Document {
    /// Its file, relative to the dossier's folder.
    pub file: String,
    /// `pdf` or `zip`, from its first bytes.
    pub kind: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// Its SHA-256, in lowercase hex.
    pub sha256: String,
    /// Where its link was in the answer (a JSON pointer into `data`).
    pub pointer: String,
}

/// Why an item holds nothing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ItemError {
    /// What kind of failure (`api`, `timeout`, `download`, `not-applicable`…).
    pub kind: String,
    /// The API's codes, when it gave some.
    #[serde(default)]
    pub codes: Vec<String>,
    /// What happened, for a person.
    pub message: String,
    /// Whether asking again later may succeed.
    #[serde(default)]
    pub retryable: bool,
    /// When to ask again, when known (RFC 3339, UTC).
    #[serde(default)]
    pub retry_at: Option<String>,
}

/// The dossier at a glance.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Summary {
    /// Whether every item that applies holds its data or its document.
    pub complete: bool,
    /// Items by outcome (`data`, `document`, `not found`…).
    pub outcomes: std::collections::BTreeMap<String, u32>,
    /// What is missing, and why.
    pub missing: Vec<Missing>,
    /// The earliest end of validity among the documents, when they give one.
    pub valid_until: Option<String>,
}

/// One thing missing from a dossier.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Missing {
    /// The endpoint's id.
    pub endpoint: String,
    /// Why.
    pub why: String,
}

impl Manifest {
    /// Reads the manifest of the dossier in `dir`, if there is one.
    pub fn read(dir: &Path) -> Result<Option<Self>, String> {
        let path = dir.join(FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("reading {}: {e}", path.display())),
        };
        let manifest: Self = serde_json::from_str(&text).map_err(|e| {
            format!(
                "{} is not a dossier's manifest ({e}); give another folder, or move it away",
                path.display()
            )
        })?;
        if manifest.format > FORMAT {
            return Err(format!(
                "{} has format {}, newer than this program's {FORMAT}: use a newer api-entreprise",
                path.display(),
                manifest.format
            ));
        }
        Ok(Some(manifest))
    }

    /// Writes it in `dir`, whole or not at all.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let mut text = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        text.push(b'\n');
        api_entreprise::atomic::write(&dir.join(FILE), &text)
    }

    /// The summary of its items as they are.
    pub fn summarise(&mut self) {
        let mut summary = Summary::default();
        for item in &self.items {
            *summary.outcomes.entry(item.outcome.name().to_owned()).or_default() += 1;
            if !item.outcome.holds() && item.outcome != Outcome::NotApplicable {
                let why = match &item.error {
                    Some(e) => format!("{}: {}", item.outcome.name(), e.message),
                    None => item.outcome.name().to_owned(),
                };
                summary.missing.push(Missing {
                    endpoint: item.endpoint.clone(),
                    why,
                });
            }
            if let Some(until) = &item.valid_until
                && summary.valid_until.as_ref().is_none_or(|u| until < u)
            {
                summary.valid_until = Some(until.clone());
            }
        }
        summary.complete = summary.missing.is_empty();
        self.summary = summary;
    }
}

/// A provider's date (`2026-06-05`, or the start of an RFC 3339 instant).
pub fn date(text: &str) -> Option<time::Date> {
    let mut parts = text.get(..10)?.split('-');
    let year = parts.next()?.parse().ok()?;
    let month = time::Month::try_from(parts.next()?.parse::<u8>().ok()?).ok()?;
    time::Date::from_calendar_date(year, month, parts.next()?.parse().ok()?).ok()
}
