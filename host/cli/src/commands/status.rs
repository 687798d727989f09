//! `api-entreprise status`: "am I close to a ban?" from a terminal. How
//! full each per-IP quota and each of the token's groups is, as the state
//! directory (or Redis) holds them for every host of the machine or the
//! fleet, and when the token expires. Sends nothing.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use api_entreprise::policy::QuotaPolicy;
use api_entreprise::quota::Usage;
use api_entreprise::{QUOTA_MARGIN, Token};

use crate::settings::HostArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print it as JSON.
    #[arg(long)]
    json: bool,
    /// List every group of the catalogue, even those with nothing in their window.
    #[arg(long)]
    all: bool,
    /// How many of the last requests to list from the audit file (`--audit`).
    #[arg(long, default_value_t = 10, value_name = "N")]
    last: usize,
}

pub async fn exec(settings: &HostArgs, args: Args) -> anyhow::Result<ExitCode> {
    let token = settings.token().map(Token::new).transpose()?;
    let quotas = crate::settings::quota_store(settings, false).await?;
    let policy = QuotaPolicy::new(&settings.ip_quotas()?, QUOTA_MARGIN, token.as_ref(), None);
    let keys = policy.all_keys();
    let usage = quotas.usage(&keys).await.map_err(|down| anyhow::anyhow!("{down}"))?;
    let store = quotas.describe();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (_, token_line) = super::doctor::token_line(token.as_ref().map(Token::claims), now);
    let mut out = std::io::stdout().lock();
    // The trail's tail, for the last requests and for the signs of a ban.
    let trail = match settings.audit() {
        Some(path) => Some((path, last_lines(path, args.last.max(JUDGED))?)),
        None => None,
    };
    let ban = trail.as_ref().and_then(|(_, lines)| ban_from(lines, &usage));
    let last = trail.map(|(path, lines)| {
        let shown = lines.len().saturating_sub(args.last);
        (path, lines[shown..].to_vec())
    });
    if args.json {
        let list: Vec<_> = usage.iter().filter(|u| args.all || shown(u)).map(usage_json).collect();
        let last_requests = last.as_ref().map(|(_, lines)| lines);
        let body = serde_json::json!({
            "store": store,
            "quotas": list,
            "token": token_line,
            "ban": ban,
            "last_requests": last_requests,
        });
        serde_json::to_writer_pretty(&mut out, &body)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(out, "quotas as {store} holds them:")?;
    let mut hidden = 0;
    for u in &usage {
        if !args.all && !shown(u) {
            hidden += 1;
            continue;
        }
        writeln!(out, "  {}", line(u))?;
    }
    if hidden > 0 {
        writeln!(
            out,
            "  ({hidden} other group(s) with nothing in their window: --all lists them)"
        )?;
    }
    writeln!(out, "{token_line}")?;
    if let Some(ban) = &ban {
        writeln!(out, "ban: {ban}")?;
    }
    match &last {
        Some((path, lines)) if lines.is_empty() => writeln!(out, "no request in {} yet", path.display())?,
        Some((path, lines)) => {
            writeln!(out, "the last {} request(s), from {}:", lines.len(), path.display())?;
            for line in lines {
                writeln!(out, "  {}", request_line(line))?;
            }
        }
        None => writeln!(
            out,
            "last requests: give --audit FILE (or API_ENTREPRISE_AUDIT), the file `call` and `batch` append to"
        )?,
    }
    Ok(ExitCode::SUCCESS)
}

/// How many of the trail's last lines the signs of a ban are looked for in.
const JUDGED: usize = 50;

/// A probable ban, from the audit trail's last lines and the store: the
/// last request that left got no answer at all right after (within 10 minutes) a
/// sign that the IP reached its quota: a request the quota refused, a 429,
/// or a per-IP window the store holds full now.
fn ban_from(lines: &[serde_json::Value], usage: &[Usage]) -> Option<String> {
    let parse = |line: &serde_json::Value| {
        time::OffsetDateTime::parse(line["time"].as_str()?, &time::format_description::well_known::Rfc3339).ok()
    };
    let silent = |line: &serde_json::Value| {
        line["status"].as_u64() == Some(0) && matches!(line["outcome"].as_str(), Some("timeout" | "deadline"))
    };
    // The last request that left (those the host refused never did).
    let sent = |line: &serde_json::Value| {
        line["status"].as_u64().is_some_and(|s| s > 0)
            || matches!(line["outcome"].as_str(), Some("timeout" | "deadline" | "transport"))
    };
    let position = lines.iter().rposition(sent)?;
    let last = &lines[position];
    if !silent(last) {
        return None;
    }
    let at = parse(last)?;
    let full = usage
        .iter()
        .find(|u| u.name.starts_with("ip ") && u.used >= u.spec.limit)
        .map(|u| format!("the per-IP quota {} full", &u.name[3..]));
    let earlier = lines[..position].iter().rev().find_map(|line| {
        let when = parse(line)?;
        if at - when > time::Duration::minutes(10) {
            return None;
        }
        let codes = line["codes"].to_string();
        match (line["outcome"].as_str(), line["status"].as_u64()) {
            (Some("quota"), _) => Some(format!("a request the quota refused at {}", line["time"].as_str()?)),
            (_, Some(429)) => Some(format!("a 429 at {}", line["time"].as_str()?)),
            _ if codes.contains("\"00429\"") => Some(format!("a 429 at {}", line["time"].as_str()?)),
            _ => None,
        }
    });
    let sign = full.or(earlier)?;
    let until = at + time::Duration::hours(12);
    let until = until
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    Some(format!(
        "the last request sent ({}) got no answer at all right after {sign}: the IP is probably banned until {until} \
         (a ban lasts 12 hours and cannot be lifted; send nothing more meanwhile, or write to \
         support@entreprise.api.gouv.fr)",
        last["time"].as_str().unwrap_or_default()
    ))
}

/// The last `n` audit lines of `path` (a file that does not exist yet
/// holds none), read from its end.
fn last_lines(path: &std::path::Path, n: usize) -> anyhow::Result<Vec<serde_json::Value>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => anyhow::bail!("reading the audit file {}: {e}", path.display()),
    };
    // A line is under 1 KiB: the tail holds the last ones whole.
    let tail = (n as u64 + 1) * 4096;
    let length = file.metadata()?.len();
    file.seek(SeekFrom::Start(length.saturating_sub(tail)))?;
    let mut bytes = Vec::new();
    file.take(tail).read_to_end(&mut bytes)?;
    // The first line may be cut (even inside a character): it does not
    // parse, and is left out.
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<serde_json::Value> = text
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str(l).ok())
        .take(n)
        .collect();
    lines.reverse();
    Ok(lines)
}

/// One audit line as a line of the listing: when, what, how it ended.
fn request_line(line: &serde_json::Value) -> String {
    let text = |key: &str| line[key].as_str().unwrap_or("-").to_owned();
    let status = match line["status"].as_u64() {
        Some(0) | None => "---".to_owned(),
        Some(status) => status.to_string(),
    };
    let codes: Vec<&str> = line["codes"]
        .as_array()
        .map(|c| c.iter().filter_map(|c| c.as_str()).collect())
        .unwrap_or_default();
    let ended = match (codes.is_empty(), line["outcome"].as_str()) {
        (false, _) => codes.join(","),
        (true, Some(outcome)) => outcome.to_owned(),
        (true, None) => String::new(),
    };
    format!(
        "{} {:<40} {status} {ended:<12} {} {:.0} ms",
        text("time"),
        text("endpoint"),
        text("request_id"),
        line["latency_ms"].as_f64().unwrap_or_default()
    )
}

/// Whether a quota is worth a line: every per-IP one, and a group that
/// holds something or that the server closed.
fn shown(u: &Usage) -> bool {
    u.name.starts_with("ip ") || u.used > 0 || u.server.is_some()
}

fn seconds(d: Duration) -> String {
    format!("{:.0} s", d.as_secs_f64().ceil())
}

/// One quota as a line: how full, how close to its limit, when it frees.
fn line(u: &Usage) -> String {
    let percent = f64::from(u.used) * 100.0 / f64::from(u.spec.limit.max(1));
    // The quota as configured: its window without the host's margin.
    let configured = api_entreprise::QuotaSpec {
        limit: u.spec.limit,
        window: u.spec.window.saturating_sub(QUOTA_MARGIN),
    };
    let mut text = format!("{:<72} {:>5} of {configured:<9} ({percent:.0}%)", u.name, u.used);
    if u.used >= u.spec.limit {
        text.push_str(": FULL");
    }
    if let Some(frees) = u.frees_in {
        text.push_str(&format!("; the oldest leaves in {}", seconds(frees)));
    }
    match u.server {
        Some((0, for_)) => text.push_str(&format!("; closed by the server for {}", seconds(for_))),
        Some((remaining, for_)) => {
            text.push_str(&format!("; the server allows {remaining} more for {}", seconds(for_)))
        }
        None => {}
    }
    text
}

fn usage_json(u: &Usage) -> serde_json::Value {
    serde_json::json!({
        "name": u.name,
        "limit": u.spec.limit,
        "window_ms": u.spec.window.as_millis() as u64,
        "used": u.used,
        "frees_in_ms": u.frees_in.map(|d| d.as_millis() as u64),
        "server_remaining": u.server.map(|s| s.0),
        "server_for_ms": u.server.map(|s| s.1.as_millis() as u64),
    })
}
