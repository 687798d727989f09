//! How the command shows answers and endpoints.

use std::io::Write;
use std::time::Duration;

use api_entreprise::types;
use serde_json::{Value, json};

pub fn kind_name(kind: types::EndpointKind) -> &'static str {
    match kind {
        types::EndpointKind::Json => "json",
        types::EndpointKind::Document => "document",
        types::EndpointKind::JsonWithLinks => "json+links",
        types::EndpointKind::Collection => "list",
        types::EndpointKind::Health => "health",
        types::EndpointKind::Privileges => "scopes",
    }
}

fn param_kind_name(kind: types::ParamKind) -> &'static str {
    use types::ParamKind as P;
    match kind {
        P::Siren => "siren",
        P::Siret => "siret",
        P::Rna => "rna",
        P::SiretOrRna => "siret_or_rna",
        P::SirenOrRna => "siren_or_rna",
        P::SirenOrSiretOrRna => "siren_or_siret_or_rna",
        P::SiretOrEori => "siret_or_eori",
        P::Year => "year",
        P::DgfipYear => "dgfip_year",
        P::Month => "month",
        P::Provider => "provider",
    }
}

pub fn endpoint_json(e: &types::Endpoint) -> Value {
    json!({
        "id": e.id,
        "version": e.version,
        "title": e.title,
        "provider": e.provider,
        "path": e.path,
        "params": e.params.iter().map(|p| json!({"name": p.name, "kind": param_kind_name(p.kind)})).collect::<Vec<_>>(),
        "query": e.query.iter().map(|q| json!({
            "name": q.name, "description": q.description, "values": q.values, "min": q.min, "max": q.max,
        })).collect::<Vec<_>>(),
        "kind": kind_name(e.kind),
        "timeout_ms": e.timeout_ms,
        "rate_limit": {"group": e.rate_limit.name, "limit": e.rate_limit.limit, "period_seconds": e.rate_limit.period_seconds},
        "scopes": e.scopes,
        "deprecated": e.deprecated,
        "replaced_by": e.replaced_by,
        "maintenance_window": e.maintenance_window,
        "needs_trace": e.needs_trace,
        "requires_user_id": e.requires_user_id,
    })
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::String(text.to_owned()))
}

/// The `{data, links, meta}` envelope, as the API sent it.
pub fn write_json(out: &mut impl Write, r: &types::Response) -> std::io::Result<()> {
    let envelope = json!({ "data": parse(&r.data), "links": parse(&r.links), "meta": parse(&r.meta) });
    serde_json::to_writer_pretty(&mut *out, &envelope)?;
    writeln!(out)
}

fn line(out: &mut impl Write, label: &str, value: Option<impl AsRef<str>>) -> std::io::Result<()> {
    match value {
        Some(v) if !v.as_ref().is_empty() => writeln!(out, "  {label:<22}{}", v.as_ref()),
        _ => Ok(()),
    }
}

fn coded(c: &Option<types::Coded>) -> Option<String> {
    let c = c.as_ref()?;
    match (&c.code, &c.libelle) {
        (Some(code), Some(l)) => Some(format!("{code} {l}")),
        (Some(x), None) | (None, Some(x)) => Some(x.clone()),
        (None, None) => None,
    }
}

fn write_unite_legale(out: &mut impl Write, u: &types::UniteLegale) -> std::io::Result<()> {
    line(out, "SIREN", Some(&u.siren))?;
    line(out, "dénomination", u.denomination.as_ref())?;
    line(out, "sigle", u.sigle.as_ref())?;
    line(out, "forme juridique", coded(&u.forme_juridique))?;
    line(out, "activité principale", coded(&u.activite_principale))?;
    line(out, "catégorie", u.categorie_entreprise.as_ref())?;
    line(out, "effectif", u.tranche_effectif.as_ref())?;
    line(out, "siège social", u.siret_siege_social.as_ref())?;
    line(out, "état administratif", u.etat_administratif.as_ref())?;
    line(out, "diffusion", u.status_diffusion.as_ref())?;
    line(out, "créée le", u.date_creation.as_ref())?;
    line(out, "cessée le", u.date_cessation.as_ref())
}

/// A readable summary of an answer.
pub fn write_summary(
    out: &mut impl Write,
    endpoint: Option<&types::Endpoint>,
    r: &types::Response,
    elapsed: Duration,
) -> std::io::Result<()> {
    if let Some(e) = endpoint {
        writeln!(out, "{} v{}: {}", e.id, e.version, e.title)?;
    }
    match &r.typed {
        Some(types::TypedData::UniteLegale(u)) => write_unite_legale(out, u)?,
        Some(types::TypedData::Etablissement(e)) => {
            line(out, "SIRET", Some(&e.siret))?;
            line(
                out,
                "siège social",
                e.siege_social.map(|s| if s { "oui" } else { "non" }),
            )?;
            line(out, "enseigne", e.enseigne.as_ref())?;
            line(out, "activité principale", coded(&e.activite_principale))?;
            line(out, "effectif", e.tranche_effectif.as_ref())?;
            line(out, "état administratif", e.etat_administratif.as_ref())?;
            line(out, "diffusion", e.status_diffusion.as_ref())?;
            line(out, "créé le", e.date_creation.as_ref())?;
            line(out, "fermé le", e.date_fermeture.as_ref())?;
            if let Some(a) = &e.adresse {
                line(out, "adresse", Some(a.lignes.join(", ")))?;
            }
            if let Some(u) = &e.unite_legale {
                writeln!(out, "  unité légale")?;
                write_unite_legale(out, u)?;
            }
        }
        Some(types::TypedData::Privileges(scopes)) => {
            writeln!(out, "  {} scopes", scopes.len())?;
            for scope in scopes {
                writeln!(out, "  - {scope}")?;
            }
        }
        Some(types::TypedData::Health(h)) => {
            line(out, "status", Some(&h.status))?;
            line(out, "last checked", h.last_update.as_ref())?;
            line(out, "last up", h.last_ok_status.as_ref())?;
            line(out, "until", h.until.as_ref())?;
        }
        None if r.document.is_some() => {}
        None => {
            let data = serde_json::to_string_pretty(&parse(&r.data)).unwrap_or_else(|_| r.data.clone());
            for l in data.lines() {
                writeln!(out, "  {l}")?;
            }
        }
    }
    if let Some(doc) = &r.document {
        line(
            out,
            "document",
            doc.url.as_ref().or(Some(&"refused by the provider".to_owned())),
        )?;
        line(out, "link expires in", doc.expires_in_seconds.map(|s| format!("{s} s")))?;
    }
    let mut footer = format!("HTTP {} in {} ms", r.status, elapsed.as_millis());
    if let Some(id) = &r.request_id {
        footer += &format!(", request id {id}");
    }
    if let (Some(rem), Some(lim)) = (r.rate_limit.remaining, r.rate_limit.limit) {
        footer += &format!(", quota {rem}/{lim} left");
    }
    writeln!(out, "({footer})")
}
