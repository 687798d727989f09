//! `api-entreprise habilitation`: step 0 of the getting-started page, what
//! to prepare before the access request on DataPass, as a Markdown
//! checklist a person pastes (in French, as the form is); and, with a
//! token, what it already opens against what the use case needs.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::bail;
use api_entreprise::types;
use api_entreprise_catalogue::UseCase;
use api_entreprise_dossier::plan::{Planned, Selection, plan};

use crate::settings::{HostArgs, connect};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The official use case of the request (`endpoints --use-case` lists
    /// its endpoints).
    #[arg(long, value_name = "ID")]
    use_case: String,
    /// The use case's optional endpoints too.
    #[arg(long)]
    with_optional: bool,
    /// The SIRET of the organisation that asks (left blank to fill in).
    #[arg(long)]
    siret: Option<String>,
}

/// The endpoints of `use_case` (one version each), recommended first.
pub fn endpoints(use_case: &'static UseCase, with_optional: bool) -> Vec<Planned> {
    plan(
        use_case,
        &Selection {
            with_optional,
            ..Selection::default()
        },
    )
    .unwrap_or_default()
}

/// Those of `planned` that none of `scopes` opens.
pub fn closed<'a>(planned: &'a [Planned], scopes: &[String]) -> Vec<&'a Planned> {
    planned
        .iter()
        .filter(|p| !p.endpoint.scopes.is_empty() && !p.endpoint.scopes.iter().any(|s| scopes.iter().any(|t| t == s)))
        .collect()
}

/// `endpoint (needs scope a or b)`, for a list of closed endpoints.
pub fn describe(closed: &[&Planned]) -> String {
    closed
        .iter()
        .map(|p| format!("{} (scope {})", p.endpoint.id, p.endpoint.scopes.join(" or ")))
        .collect::<Vec<_>>()
        .join(", ")
}

pub async fn exec(settings: &HostArgs, args: Args) -> anyhow::Result<ExitCode> {
    let use_case = crate::settings::use_case(&args.use_case)?;
    if let Some(siret) = &args.siret {
        let id: api_entreprise_dossier::Identifier = siret.parse().map_err(anyhow::Error::msg)?;
        if id.kind != api_entreprise_dossier::identifier::Kind::Siret {
            bail!("--siret {siret}: the organisation's SIRET has 14 digits");
        }
    }
    let planned = endpoints(use_case, args.with_optional);
    // With a token (or a profile), what it opens today.
    let scopes = if settings.token().is_some() || settings.profile()?.is_some() {
        let (runtime, _) = connect(settings, true).await?;
        let request = types::Request {
            endpoint: "privileges".into(),
            version: None,
            params: vec![],
            query: vec![],
            trace: types::Trace {
                context: String::new(),
                recipient: String::new(),
                object: String::new(),
                user_id: None,
            },
        };
        match runtime.call(&request).await?.typed {
            Some(types::TypedData::Privileges(scopes)) => Some(scopes),
            _ => bail!("/privileges gave no list of scopes"),
        }
    } else {
        None
    };
    print!(
        "{}",
        checklist(use_case, &planned, args.siret.as_deref(), scopes.as_deref())
    );
    Ok(ExitCode::SUCCESS)
}

/// The checklist, in Markdown.
pub fn checklist(use_case: &UseCase, planned: &[Planned], siret: Option<&str>, scopes: Option<&[String]>) -> String {
    let mut md = String::new();
    let w = &mut md;
    let _ = writeln!(
        w,
        "# Demande d'habilitation API Entreprise : {} (`{}`)\n",
        use_case.name, use_case.id
    );
    let _ = writeln!(
        w,
        "Une demande par contexte métier : cette liste prépare celle du cas d'usage « {} ». \
         Un autre usage (pré-remplir un formulaire, instruire un autre type de dossier) fait l'objet d'une autre demande, \
         sur https://datapass.api.gouv.fr.\n",
        use_case.name
    );
    let _ = writeln!(w, "## 1. L'organisation\n");
    let _ = writeln!(
        w,
        "- [ ] Numéro SIRET de l'organisation demandeuse : {}\n",
        siret.map_or("__________________".to_owned(), |s| format!("`{s}`"))
    );
    let _ = writeln!(w, "## 2. Le cadre juridique\n");
    let _ = writeln!(
        w,
        "- [ ] Le texte (loi, décret, délibération ou décision) qui légitime l'organisation à recevoir ces données, \
         en lien ou en pièce jointe, ou la description du contexte : ______________\n"
    );
    let _ = writeln!(w, "## 3. Les données à cocher\n");
    let _ = writeln!(
        w,
        "| | Donnée | Fournisseur | Endpoint | Dans le cas d'usage | Scopes (un suffit) |"
    );
    let _ = writeln!(w, "|---|---|---|---|---|---|");
    for p in planned {
        let e = p.endpoint;
        let stance = if p.stance == "recommended" {
            "recommandé"
        } else {
            "optionnel"
        };
        let _ = writeln!(
            w,
            "| [ ] | {} | {} | `{}` v{} | {stance} | {} |",
            e.title,
            e.provider,
            e.id,
            e.version,
            e.scopes.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
        );
    }
    if !use_case.forbidden.is_empty() {
        let mut forbidden: Vec<&str> = use_case.forbidden.iter().map(|(id, _)| *id).collect();
        forbidden.dedup();
        let _ = writeln!(
            w,
            "\nÀ ne pas demander (le cas d'usage les exclut) : {}.",
            forbidden
                .iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let _ = writeln!(w, "\n## 4. Les contacts\n");
    for (who, what) in [
        (
            "Responsable de traitement",
            "personne appartenant à l'organisme, qui détermine les finalités et les moyens du traitement",
        ),
        (
            "Délégué·e à la protection des données (DPD)",
            "obligatoire pour un organisme public ; sans DPD, l'habilitation est peu probable",
        ),
        (
            "Contact métier",
            "la personne qui utilisera les données dans la procédure",
        ),
        (
            "Contact technique",
            "la personne ou l'équipe qui développe l'interconnexion avec API Entreprise",
        ),
    ] {
        let _ = writeln!(w, "- [ ] {who} ({what}) : nom, fonction, courriel, téléphone");
    }
    if let Some(scopes) = scopes {
        let closed = closed(planned, scopes);
        let _ = writeln!(w, "\n## 5. Ce que le jeton ouvre déjà\n");
        let _ = writeln!(
            w,
            "Le jeton ouvre {} des {} données ci-dessus ({} scopes).",
            planned.len() - closed.len(),
            planned.len(),
            scopes.len()
        );
        if closed.is_empty() {
            let _ = writeln!(w, "\nRien ne manque : ce jeton suffit pour ce cas d'usage.");
        } else {
            let _ = writeln!(w, "\nÀ demander en plus :\n");
            for p in closed {
                let _ = writeln!(
                    w,
                    "- [ ] {} (`{}`) : scope {}",
                    p.endpoint.title,
                    p.endpoint.id,
                    p.endpoint
                        .scopes
                        .iter()
                        .map(|s| format!("`{s}`"))
                        .collect::<Vec<_>>()
                        .join(" ou ")
                );
            }
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use api_entreprise_catalogue as catalogue;

    #[test]
    fn the_checklist_names_every_endpoint_and_what_a_token_lacks() {
        let mp = catalogue::use_case("marches_publics").unwrap();
        let planned = endpoints(mp, false);
        let scopes = vec!["entreprises".to_owned(), "etablissements".to_owned()];
        let md = checklist(mp, &planned, Some("13002526500013"), Some(&scopes));
        for p in &planned {
            assert!(
                md.contains(&format!("`{}` v{}", p.endpoint.id, p.endpoint.version)),
                "{}",
                p.endpoint.id
            );
        }
        assert!(md.contains("`13002526500013`") && md.contains("Délégué·e à la protection des données"));
        let lacking = closed(&planned, &scopes);
        assert!(lacking.iter().any(|p| p.endpoint.id == "acoss_attestations_sociales"));
        assert!(!lacking.iter().any(|p| p.endpoint.id == "insee_etablissements"));
        assert!(
            md.contains("- [ ] Attestation de vigilance (`acoss_attestations_sociales`)"),
            "{md}"
        );
    }
}
