//! `api-entreprise doctor`: the source document's first end-to-end test, as
//! a checklist in which each failed line says what to do.

use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::bail;
use api_entreprise::{CallError, Runtime, TOKEN_LIFETIME_DAYS, types};

use crate::settings::{HostArgs, connect};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The trace's context for the test call.
    #[arg(long, default_value = "test de bout en bout")]
    context: String,
    /// The SIRET of the public body the test call is for [default in the
    /// sandbox: 13002526500013].
    #[arg(long)]
    recipient: Option<String>,
    /// The trace's object for the test call.
    #[arg(long, default_value = "api-entreprise doctor")]
    object: String,
    /// The endpoint of the test call.
    #[arg(long, default_value = "insee_unites_legales")]
    endpoint: String,
    /// The path values of the test call.
    #[arg(long = "value", default_value = "552049447")]
    values: Vec<String>,
    /// Also say which endpoints of this official use case the token cannot
    /// call, and the scopes they need (`habilitation` prepares the request).
    #[arg(long, value_name = "ID")]
    use_case: Option<String>,
}

pub async fn exec(settings: &HostArgs, args: Args) -> anyhow::Result<ExitCode> {
    let use_case = args.use_case.as_deref().map(crate::settings::use_case).transpose()?;
    let (runtime, sandbox) = connect(settings, false).await?;
    let recipient = match (args.recipient, &sandbox) {
        (Some(r), _) => r,
        (None, Some(_)) => "13002526500013".to_owned(),
        (None, None) => bail!("give --recipient: the SIRET of the public body the test call is for"),
    };
    let trace = types::Trace {
        context: args.context,
        recipient,
        object: args.object,
        user_id: None,
    };
    let ok = run(
        &runtime,
        &trace,
        &args.endpoint,
        args.values,
        use_case,
        &mut std::io::stdout().lock(),
    )
    .await?;
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

const DAY: i64 = 86_400;

/// How one line of the checklist ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mark {
    Ok,
    Info,
    Warn,
    Fail,
}

impl Mark {
    fn label(self) -> &'static str {
        match self {
            Mark::Ok => "[ok]  ",
            Mark::Info => "[--]  ",
            Mark::Warn => "[warn]",
            Mark::Fail => "[FAIL]",
        }
    }
}

fn date(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .map(|d| d.date().to_string())
        .unwrap_or_else(|_| unix.to_string())
}

/// The token line, from its claims at `now`.
pub fn token_line(claims: Option<Result<api_entreprise::Claims, String>>, now: i64) -> (Mark, String) {
    let claims = match claims {
        None => return (Mark::Fail, "token: none configured; set API_ENTREPRISE_TOKEN".into()),
        Some(Err(why)) => {
            return (
                Mark::Info,
                format!("token: {why}; only the API can judge it (the sandbox's token is no JWT)"),
            );
        }
        Some(Ok(claims)) => claims,
    };
    let Some(exp) = claims.exp else {
        return (
            Mark::Warn,
            "token: it carries no expiry (`exp`), like the oldest tokens; ask for a new one on DataPass".into(),
        );
    };
    let days = (exp - now).div_euclid(DAY);
    if exp <= now {
        return (
            Mark::Fail,
            format!(
                "token: expired on {}; the original requester must ask for a prolongation on DataPass",
                date(exp)
            ),
        );
    }
    if let Some(iat) = claims.iat
        && exp - iat > (TOKEN_LIFETIME_DAYS + 31) * DAY
    {
        return (
            Mark::Warn,
            format!(
                "token: issued {} and expiring {}, longer than the 18 months tokens get; check it is the one from the dashboard",
                date(iat),
                date(exp)
            ),
        );
    }
    let when = format!("expires on {} (in {days} days)", date(exp));
    match days {
        0..=7 => (
            Mark::Warn,
            format!("token: {when}: ask for the prolongation on DataPass today"),
        ),
        8..=30 => (
            Mark::Warn,
            format!("token: {when}: ask for the prolongation on DataPass this week"),
        ),
        31..=90 => (Mark::Warn, format!("token: {when}: plan its prolongation on DataPass")),
        _ => (Mark::Ok, format!("token: {when}")),
    }
}

fn request(endpoint: &str, params: Vec<String>, trace: &types::Trace) -> types::Request {
    types::Request {
        endpoint: endpoint.into(),
        version: None,
        params,
        query: vec![],
        trace: trace.clone(),
    }
}

/// What the token lacks of `use_case`: a warning for its recommended
/// endpoints, a note for its optional ones.
fn use_case_lines(use_case: &'static api_entreprise_catalogue::UseCase, scopes: &[String]) -> Vec<(Mark, String)> {
    use super::habilitation::{closed, describe, endpoints};
    let all = endpoints(use_case, true);
    let (recommended, optional): (Vec<_>, Vec<_>) = all.into_iter().partition(|p| p.stance == "recommended");
    let mut lines = Vec::new();
    let lacking = closed(&recommended, scopes);
    let name = format!("use case {} ({})", use_case.name, use_case.id);
    if lacking.is_empty() {
        lines.push((
            Mark::Ok,
            format!(
                "{name}: the token opens all {} recommended endpoints",
                recommended.len()
            ),
        ));
    } else {
        lines.push((
            Mark::Warn,
            format!(
                "{name}: the token cannot call {} of its {} recommended endpoints: {}; \
                 `api-entreprise habilitation --use-case {}` prepares the request",
                lacking.len(),
                recommended.len(),
                describe(&lacking),
                use_case.id
            ),
        ));
    }
    let lacking = closed(&optional, scopes);
    if !lacking.is_empty() {
        lines.push((
            Mark::Info,
            format!("{name}: optional endpoints it cannot call: {}", describe(&lacking)),
        ));
    }
    lines
}

/// Runs every check, prints the checklist, and says whether none failed.
async fn run(
    runtime: &Runtime,
    trace: &types::Trace,
    test_endpoint: &str,
    test_values: Vec<String>,
    use_case: Option<&'static api_entreprise_catalogue::UseCase>,
    out: &mut impl Write,
) -> std::io::Result<bool> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut lines = vec![
        (Mark::Info, format!("API: {}", runtime.base_url())),
        (
            Mark::Info,
            format!(
                "client component: version {} (contract {})",
                runtime.component_version().as_deref().unwrap_or("unknown"),
                api_entreprise::contract::VERSION
            ),
        ),
    ];
    lines.push(token_line(runtime.token_claims(), now));

    match runtime.call(&request("privileges", vec![], trace)).await {
        Ok(types::Response {
            typed: Some(types::TypedData::Privileges(scopes)),
            ..
        }) => {
            let endpoints = runtime.endpoints();
            let data: Vec<_> = endpoints.iter().filter(|e| e.needs_trace).collect();
            let callable: Vec<_> = data
                .iter()
                .filter(|e| e.scopes.is_empty() || e.scopes.iter().any(|s| scopes.contains(s)))
                .collect();
            let mark = if callable.is_empty() { Mark::Fail } else { Mark::Ok };
            lines.push((
                mark,
                format!(
                    "privileges: {} scopes; {} of {} endpoint versions callable",
                    scopes.len(),
                    callable.len(),
                    data.len()
                ),
            ));
            let mut ids: Vec<&str> = callable.iter().map(|e| e.id.as_str()).collect();
            ids.dedup();
            lines.push((Mark::Info, format!("callable: {}", ids.join(", "))));
            if let Some(use_case) = use_case {
                lines.extend(use_case_lines(use_case, &scopes));
            }
        }
        Ok(other) => lines.push((Mark::Fail, format!("privileges: unexpected answer {}", other.data))),
        Err(e) => lines.push((Mark::Fail, format!("privileges: {e}"))),
    }

    match runtime.call(&request("pings", vec![], trace)).await {
        Ok(r) => {
            let list: Vec<serde_json::Value> = serde_json::from_str(&r.data).unwrap_or_default();
            let mut down = Vec::new();
            for p in &list {
                let status = p["status"].as_str().unwrap_or("unknown");
                if status != "ok" {
                    down.push(format!("{} ({status})", p["provider"].as_str().unwrap_or("?")));
                }
            }
            if down.is_empty() {
                lines.push((Mark::Ok, format!("providers: all {} up", list.len())));
            } else {
                lines.push((
                    Mark::Warn,
                    format!(
                        "providers: {} of {} not ok: {}; calls to them will fail until they are back",
                        down.len(),
                        list.len(),
                        down.join(", ")
                    ),
                ));
            }
        }
        Err(e) => {
            lines.push((Mark::Warn, format!("providers: the health routes did not answer: {e}")));
            // The free health route gets no answer right after the IP
            // reached its quota (as every host of the machine counts it).
            let silent = match &e {
                CallError::Deadline(_) => true,
                CallError::Client(c) => matches!(c.0, types::Error::Timeout(_) | types::Error::Transport(_)),
                _ => false,
            };
            if silent
                && runtime.ban_suspected().is_none()
                && let Some(sign) = runtime.limit_sign().await
            {
                lines.push((
                    Mark::Fail,
                    format!(
                        "ban: the API's /pings gets no answer right after {sign}: the IP is probably banned, \
                         for 12 hours from the first request that got none (it cannot be lifted; send nothing \
                         more meanwhile, or write to support@entreprise.api.gouv.fr)"
                    ),
                ));
            }
        }
    }

    let started = Instant::now();
    let label = format!("test call {test_endpoint} {}", test_values.join(" "));
    match runtime.call(&request(test_endpoint, test_values, trace)).await {
        Ok(r) => lines.push((
            Mark::Ok,
            format!(
                "{label}: HTTP {} in {} ms, request id {}; the call shows in the dashboard's traces",
                r.status,
                started.elapsed().as_millis(),
                r.request_id.as_deref().unwrap_or("none")
            ),
        )),
        Err(e) => lines.push((Mark::Fail, format!("{label}: {e}"))),
    }

    if let Some(ban) = runtime.ban_suspected() {
        lines.push((Mark::Fail, format!("ban: {ban}")));
    }

    for (mark, text) in &lines {
        writeln!(out, "{} {text}", mark.label())?;
    }
    Ok(lines.iter().all(|(mark, _)| *mark != Mark::Fail))
}

#[cfg(test)]
mod tests {
    use super::*;
    use api_entreprise::Claims;

    fn line(exp: Option<i64>, iat: Option<i64>, now: i64) -> (Mark, String) {
        token_line(
            Some(Ok(Claims {
                exp,
                iat,
                ..Claims::default()
            })),
            now,
        )
    }

    #[test]
    fn expiry_warnings_come_90_30_and_7_days_ahead() {
        let now = 1_800_000_000;
        assert_eq!(line(Some(now + 200 * DAY), None, now).0, Mark::Ok);
        let (mark, text) = line(Some(now + 80 * DAY), None, now);
        assert!(mark == Mark::Warn && text.contains("plan its prolongation"), "{text}");
        assert!(line(Some(now + 20 * DAY), None, now).1.contains("this week"));
        assert!(line(Some(now + 3 * DAY), None, now).1.contains("today"));
        let (mark, text) = line(Some(now - DAY), None, now);
        assert!(mark == Mark::Fail && text.contains("expired"), "{text}");
        assert_eq!(line(None, None, now).0, Mark::Warn);
        let (mark, text) = line(Some(now + 900 * DAY), Some(now - 10 * DAY), now);
        assert!(mark == Mark::Warn && text.contains("18 months"), "{text}");
        assert_eq!(token_line(Some(Err("not a JWT".into())), now).0, Mark::Info);
    }
}
