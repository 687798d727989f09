//! The dashboard: read-only pages that show what the gateway does, served
//! on the metrics listener (`/dashboard`), rendered on the server from the
//! gateway's own bookkeeping (`books`) and the quota store, with SVG charts
//! and a small script that refreshes the page every few seconds; all of it
//! is in the binary, nothing is fetched from elsewhere.
//!
//! On a loopback listener the pages are open to anyone on the machine (as
//! the metrics are); on any other address they ask for the administrator's
//! key (`admin_key_sha256`), as HTTP Basic's password (a browser asks for
//! it) or a bearer token, and without one configured they are not served.
//! No page shows a key or a token; the trace's `object` only with
//! `[dashboard] show_object = true`.
//!
//! Every figure a page shows carries a `data-k` attribute naming it, so
//! that a test (or a script of the operator's) can read it from the DOM.

pub mod books;
mod chart;

use std::sync::Arc;
use std::time::Duration;

use api_entreprise::QUOTA_MARGIN;
use api_entreprise::quota::Usage;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use http::{HeaderMap, StatusCode, header};
use maud::{DOCTYPE, Markup, html};

use crate::server::Gateway;
use books::{Counts, Series, State as Books, fullest, now_ms};

/// How often the quota store is asked how full the per-IP windows are.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// How often a page refreshes itself.
const REFRESH_SECONDS: u32 = 5;

/// A token lives 18 months: the length of the days-left bar.
const TOKEN_LIFETIME_DAYS: f64 = api_entreprise::TOKEN_LIFETIME_DAYS as f64;

const VIEWS: [(&str, &str); 7] = [
    ("", "Overview"),
    ("quota", "Per-IP quota"),
    ("tokens", "Tokens"),
    ("applications", "Applications"),
    ("endpoints", "Endpoints"),
    ("health", "Circuits and client"),
    ("requests", "Last requests"),
];

impl Gateway {
    /// The dashboard's routes, for the metrics listener; `keyed`: whether
    /// each page asks for the administrator's key (a listener that is not
    /// on loopback).
    pub(crate) fn dashboard_router(self: Arc<Self>, keyed: bool) -> Router {
        Router::new()
            .route("/", get(|| async { axum::response::Redirect::to("/dashboard") }))
            .route("/dashboard", get(overview))
            .route("/dashboard/{view}", get(view))
            .with_state((self, keyed))
    }

    /// Asks the quota store how full the per-IP windows are, every
    /// [`SAMPLE_EVERY`], for the dashboard's charts (so, with Redis, as the
    /// whole fleet fills them).
    pub fn sample_quotas(self: &Arc<Self>) {
        if self.books().is_none() {
            return;
        }
        let gateway = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(SAMPLE_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let Some(gateway) = gateway.upgrade() else { return };
                let usage = gateway.ip_usage().await;
                for u in usage.iter().flatten() {
                    let ratio = f64::from(u.used) / f64::from(u.spec.limit.max(1));
                    gateway.metrics().ip_window(&configured(u).to_string(), ratio);
                }
                if let Some(books) = gateway.books() {
                    books.sampled(usage, now_ms());
                }
            }
        });
    }
}

type DashboardState = State<(Arc<Gateway>, bool)>;

async fn overview(State((gateway, keyed)): DashboardState, headers: HeaderMap) -> Response {
    page(&gateway, keyed, &headers, "").await
}

async fn view(State((gateway, keyed)): DashboardState, Path(view): Path<String>, headers: HeaderMap) -> Response {
    match view.as_str() {
        "dashboard.css" => (
            [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
            include_str!("dashboard.css"),
        )
            .into_response(),
        "dashboard.js" => (
            [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
            include_str!("dashboard.js"),
        )
            .into_response(),
        _ => page(&gateway, keyed, &headers, &view).await,
    }
}

/// Whether `headers` carry the administrator's key: as a bearer token, or
/// as HTTP Basic's password (whatever the user name), which a browser asks
/// for by itself.
fn admin_in(gateway: &Gateway, headers: &HeaderMap) -> bool {
    use base64::Engine as _;
    let authorization = headers.get(header::AUTHORIZATION);
    if gateway.is_admin(authorization) {
        return true;
    }
    let Some(basic) = authorization
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(basic.trim()) else {
        return false;
    };
    let Some((_, password)) = std::str::from_utf8(&decoded).ok().and_then(|s| s.split_once(':')) else {
        return false;
    };
    let bearer = http::HeaderValue::from_str(&format!("Bearer {password}"));
    bearer.is_ok_and(|b| gateway.is_admin(Some(&b)))
}

async fn page(gateway: &Gateway, keyed: bool, headers: &HeaderMap, view: &str) -> Response {
    let Some(books) = gateway.books() else {
        return (
            StatusCode::NOT_FOUND,
            "the dashboard is off in this gateway's configuration ([dashboard] enabled = false)\n",
        )
            .into_response();
    };
    if keyed && gateway.admin_key().is_none() {
        return (
            StatusCode::FORBIDDEN,
            "the dashboard is served without a key only on loopback: set `admin_key_sha256` in the \
             configuration (api-entreprise serve --hash-key) to open it on this address with that key\n",
        )
            .into_response();
    }
    if keyed && !admin_in(gateway, headers) {
        return (
            StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                r#"Basic realm="api-entreprise dashboard", charset="UTF-8""#,
            )],
            "the dashboard needs the administrator's key, as the password\n",
        )
            .into_response();
    }
    let Some((_, title)) = VIEWS.iter().find(|(path, _)| *path == view) else {
        return (StatusCode::NOT_FOUND, "no such view of the dashboard\n").into_response();
    };
    let state = books.snapshot();
    let now = now_ms();
    let body = match view {
        "" => overview_view(gateway, &state, now),
        "quota" => quota_view(&state, now),
        "tokens" => tokens_view(gateway, &state, now),
        "applications" => applications_view(gateway, &state).await,
        "endpoints" => endpoints_view(&state),
        "health" => health_view(gateway, &state),
        _ => requests_view(&state, books.show_object()),
    };
    let markup = layout(view, title, body, now);
    ([(header::CACHE_CONTROL, "no-store")], Html(markup.into_string())).into_response()
}

fn layout(current: &str, title: &str, body: Markup, now: u64) -> Markup {
    let href = |path: &str| {
        if path.is_empty() {
            "/dashboard".to_owned()
        } else {
            format!("/dashboard/{path}")
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · api-entreprise gateway" }
                link rel="stylesheet" href="/dashboard/dashboard.css";
                noscript { meta http-equiv="refresh" content=(REFRESH_SECONDS); }
            }
            body {
                header {
                    span.brand { "api-entreprise gateway" }
                    nav {
                        @for (path, name) in VIEWS {
                            a href=(href(path)) class=[(path == current).then_some("current")] { (name) }
                        }
                    }
                }
                main data-refresh=(REFRESH_SECONDS) {
                    h1 { (title) }
                    (body)
                    p.updated { "As of " span data-k="as-of" { (clock(now)) } " UTC; refreshed every " (REFRESH_SECONDS) " s." }
                }
                script src="/dashboard/dashboard.js" {}
            }
        }
    }
}

/// `HH:MM:SS` (UTC) of a Unix time in ms.
fn clock(ms: u64) -> String {
    let s = ms / 1000;
    format!("{:02}:{:02}:{:02}", (s / 3600) % 24, (s / 60) % 60, s % 60)
}

/// `MM-DD HH:MM` (UTC) of a Unix time in ms.
fn day_clock(ms: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp((ms / 1000) as i64)
        .map(|t| {
            format!(
                "{:02}-{:02} {:02}:{:02}",
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute()
            )
        })
        .unwrap_or_default()
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{v:.1} ms"))
}

fn seconds(d: Duration) -> String {
    format!("{:.0} s", d.as_secs_f64().ceil())
}

/// The quota as configured: its window without the host's margin.
fn configured(u: &Usage) -> api_entreprise::QuotaSpec {
    api_entreprise::QuotaSpec {
        limit: u.spec.limit,
        window: u.spec.window.saturating_sub(QUOTA_MARGIN),
    }
}

fn percent(used: u32, limit: u32) -> f64 {
    f64::from(used) * 100.0 / f64::from(limit.max(1))
}

/// A slug for a `data-k` name: `ip 2000/10m` → `2000/10m`.
fn ip_slug(u: &Usage) -> String {
    configured(u).to_string()
}

fn level_class(pct: f64) -> &'static str {
    match pct {
        p if p >= 100.0 => "bad",
        p if p >= 80.0 => "warn",
        _ => "good",
    }
}

fn ip_windows_table(state: &Books) -> Markup {
    match &state.ip_windows {
        None => html! { p.note { "The quota store has not been asked yet." } },
        Some((_, Err(why))) => html! { p.bad data-k="ip.unavailable" { "The quota store cannot say: " (why) } },
        Some((at, Ok(usage))) => html! {
            table {
                thead { tr { th { "Per-IP quota" } th.num { "In the window" } th.num { "Used" } th { "The oldest leaves in" } } }
                tbody {
                    @for u in usage.iter().filter(|u| u.name.starts_with("ip ")) {
                        @let pct = percent(u.used, u.spec.limit);
                        tr {
                            td { (configured(u)) }
                            td.num data-k=(format!("ip.{}.used", ip_slug(u))) { (u.used) }
                            td.num class=(level_class(pct)) data-k=(format!("ip.{}.percent", ip_slug(u))) { (format!("{pct:.0}%")) }
                            td { (u.frees_in.map_or_else(|| "–".to_owned(), seconds)) }
                        }
                    }
                }
            }
            p.note { "As the quota store held them at " (clock(*at)) " UTC, for every host that shares it." }
        },
    }
}

/// A banner for each profile whose calls suggest the IP is banned: the
/// first thing a page shows.
fn ban_banner(gateway: &Gateway) -> Markup {
    html! {
        @for profile in gateway.profiles() {
            @if let Some(ban) = profile.runtime.ban_suspected() {
                p.alert data-k=(format!("ban.{}", profile.name)) { "Profile " (profile.name) ": " (ban) }
            }
        }
    }
}

fn overview_view(gateway: &Gateway, state: &Books, now: u64) -> Markup {
    let fullest = match &state.ip_windows {
        Some((_, Ok(usage))) => fullest(usage).cloned(),
        _ => None,
    };
    html! {
        (ban_banner(gateway))
        section.cards {
            div.card { h2 { "Requests" } p.big data-k="total.requests" { (state.total.requests) } p.note { "since the gateway started" } }
            div.card {
                h2 { "Errors" }
                p.big data-k="total.errors" { (state.total.errors()) }
                p.note { span data-k="total.4xx" { (state.total.client_errors) } " 4xx (" span data-k="total.429" { (state.total.too_many) } " 429) · " span data-k="total.5xx" { (state.total.server_errors) } " 5xx" }
            }
            div.card {
                h2 { "Latency" }
                p.big { span data-k="latency.p50" { (ms(state.latency.quantile(0.5))) } }
                p.note { "p50; p95 " span data-k="latency.p95" { (ms(state.latency.quantile(0.95))) } }
            }
            div.card {
                h2 { "Per-IP quota headroom" }
                @match &fullest {
                    Some(u) => {
                        @let pct = percent(u.used, u.spec.limit);
                        p.big class=(level_class(pct)) data-k="ip.headroom" { (u.spec.limit.saturating_sub(u.used)) }
                        p.note {
                            "left in the fuller window (" (configured(u)) ": " (u.used) " used, " (format!("{pct:.0}%")) ")"
                            @if let Some(frees) = u.frees_in { "; its oldest request leaves in " (seconds(frees)) }
                        }
                    }
                    None => { p.big { "–" } p.note { "not sampled yet" } }
                }
            }
        }
        h2 { "Tokens" }
        (token_cards(gateway, state, now))
        h2 { "Per-IP windows now" }
        (ip_windows_table(state))
    }
}

fn quota_view(state: &Books, now: u64) -> Markup {
    let spans: [(&str, &str, &Series); 3] = [
        ("minutes", "The last 10 minutes (10 s buckets)", &state.quota.minutes),
        ("hours", "The last 30 hours (30 min buckets)", &state.quota.hours),
        ("days", "The last 8 days (3 h buckets)", &state.quota.days),
    ];
    html! {
        p.note {
            "The fullest per-IP window at its peak in each bucket, as the quota store held it (sampled every "
            (SAMPLE_EVERY.as_secs()) " s; with Redis, for the whole fleet), against its limit; then the requests this gateway answered. "
            "Kept in this process's memory: a restart starts them again."
        }
        (ip_windows_table(state))
        @for (id, title, series) in spans {
            @let recent = series.recent(now);
            @let first = recent.first().map(|(t, _)| day_clock(*t)).unwrap_or_default();
            @let last = day_clock(now);
            h2 { (title) }
            @let peaks: Vec<chart::Bar> = recent.iter().map(|(t, s)| chart::Bar {
                value: f64::from(s.peak) * 100.0,
                label: format!("{}: {:.0}% ({} in the window)", day_clock(*t), s.peak * 100.0, s.peak_used),
            }).collect();
            @let calls: Vec<chart::Bar> = recent.iter().map(|(t, s)| chart::Bar {
                value: f64::from(s.calls),
                label: format!("{}: {} request(s)", day_clock(*t), s.calls),
            }).collect();
            @let total: u64 = recent.iter().map(|(_, s)| u64::from(s.calls)).sum();
            p.note { "The fullest per-IP window at its peak in each bucket, in % of its limit:" }
            (chart::bars(&format!("quota-{id}"), &peaks, Some((100.0, "the limit")), "%", &first, &last))
            p.note { "Requests answered in each bucket: " span data-k=(format!("calls.{id}")) { (total) } " in all" }
            (chart::bars(&format!("calls-{id}"), &calls, None, "", &first, &last))
        }
    }
}

/// A token's status, and the class its card is drawn with.
fn token_status(profile: &crate::server::ProfileState, now_s: i64) -> (String, &'static str, Option<i64>) {
    let exp = match profile.runtime.token_claims() {
        Some(Ok(claims)) => claims.exp,
        _ => None,
    };
    let days = exp.map(|exp| (exp - now_s).div_euclid(86_400));
    if let Some(fault) = profile.runtime.token_fault() {
        let status = match fault.code.as_str() {
            "00105" => "blacklisted",
            "00103" => "expired",
            _ => "refused",
        };
        return (
            format!("{status} (the API answered {} {})", fault.code, fault.title),
            "bad",
            days,
        );
    }
    match (profile.runtime.token_claims(), exp) {
        (None, _) => ("no token".to_owned(), "bad", None),
        (Some(_), Some(exp)) if exp <= now_s => ("expired".to_owned(), "bad", days),
        (Some(Err(_)), _) => ("active (not a JWT: its expiry is not known)".to_owned(), "good", None),
        (Some(Ok(_)), None) => ("active (no expiry in the token)".to_owned(), "good", None),
        (Some(Ok(_)), Some(_)) => ("active".to_owned(), "good", days),
    }
}

fn token_cards(gateway: &Gateway, state: &Books, now: u64) -> Markup {
    let now_s = (now / 1000) as i64;
    html! {
        section.cards {
            @for profile in gateway.profiles() {
                @let (status, class, days) = token_status(&profile, now_s);
                @let name = &profile.name;
                @let week = state.profile_calls.get(name).map_or(0, |s| s.calls_within(now, Duration::from_secs(7 * 86_400)));
                div.card.token {
                    h2 { "Profile " (name) }
                    p class=(class) data-k=(format!("token.{name}.status")) { (status) }
                    @if let Some(days) = days {
                        @let colour = match days { d if d < 7 => "bad", d if d <= 30 => "warn", _ => "good" };
                        p { span.big data-k=(format!("token.{name}.days")) { (days.max(0)) } " day(s) left" }
                        div.meter { div class=(format!("fill {colour}")) style=(format!("width: {:.1}%", (days.max(0) as f64 / TOKEN_LIFETIME_DAYS * 100.0).min(100.0))) {} }
                    } @else {
                        p.note { "Days left: not known" }
                    }
                    p { "Calls in the last 7 days: " strong data-k=(format!("token.{name}.calls7d")) { (week) } }
                    @match profile.scopes() {
                        Some(scopes) => details {
                            summary { span data-k=(format!("token.{name}.scopes")) { (scopes.len()) } " scope(s)" }
                            p.note.scopes { (scopes.into_iter().collect::<Vec<_>>().join(", ")) }
                        },
                        None => p.note { "Scopes: /privileges has not answered" },
                    }
                }
            }
        }
    }
}

fn tokens_view(gateway: &Gateway, state: &Books, now: u64) -> Markup {
    html! {
        p.note {
            "A token lives 18 months; its expiry is read from the token itself. From 30 days before, the gateway says so in its log once a day. "
            "Renew it through DataPass, then replace the profile's token: the gateway takes the new one without a restart."
        }
        (token_cards(gateway, state, now))
    }
}

fn counts_cells(prefix: &str, c: &Counts) -> Markup {
    html! {
        td.num data-k=(format!("{prefix}.requests")) { (c.requests) }
        td.num data-k=(format!("{prefix}.4xx")) { (c.client_errors) }
        td.num data-k=(format!("{prefix}.5xx")) { (c.server_errors) }
        td.num data-k=(format!("{prefix}.429")) { (c.too_many) }
    }
}

async fn applications_view(gateway: &Gateway, state: &Books) -> Markup {
    let apps = gateway.apps();
    let rows: Vec<_> = match gateway.share_usage(&apps).await {
        Ok(usage) => apps.iter().cloned().zip(usage.into_iter().map(Ok)).collect(),
        Err(why) => apps.iter().map(|app| (app.clone(), Err(why.clone()))).collect(),
    };
    let zero = Counts::default();
    html! {
        table {
            thead { tr { th { "Application" } th { "Profile" } th.num { "Requests" } th.num { "4xx" } th.num { "5xx" } th.num { "429" } th { "Its share now" } } }
            tbody {
                @for (app, share) in &rows {
                    @let name = app.name.as_str();
                    tr {
                        td { (name) }
                        td { (app.profile.name) }
                        (counts_cells(&format!("app.{name}"), state.applications.get(name).unwrap_or(&zero)))
                        td {
                            @match share {
                                Ok(usage) => {
                                    @for (u, fair) in usage.iter().zip(&app.share) {
                                        // Named after the per-IP quota it is a share of.
                                        @let of = u.name.rsplit(' ').next().unwrap_or_default();
                                        @let guaranteed = (f64::from(u.spec.limit) * fair.weight).floor();
                                        div.share title=(format!("what it holds of the per-IP quota {of}: at least {guaranteed} whenever it asks, more while others are idle")) {
                                            span data-k=(format!("app.{name}.share.{of}")) { (u.used) " of " (u.spec.limit) }
                                            " (" (of) ", at least "
                                            span data-k=(format!("app.{name}.guaranteed.{of}")) { (guaranteed) }
                                            ")"
                                        }
                                    }
                                }
                                Err(why) => span.bad { (why) },
                            }
                        }
                    }
                }
                @if let Some(c) = state.applications.get("-") {
                    tr { td { em { "no valid key" } } td { "–" } (counts_cells("app.-", c)) td { "–" } }
                }
            }
        }
    }
}

fn endpoints_view(state: &Books) -> Markup {
    html! {
        @if state.endpoints.is_empty() {
            p.note { "No request yet." }
        } @else {
            table {
                thead { tr { th { "Endpoint" } th.num { "Calls" } th.num { "Errors" } th { "Codes" } th.num { "p50" } th.num { "p95" } } }
                tbody {
                    @for (id, e) in &state.endpoints {
                        tr {
                            td { code { (id) } }
                            td.num data-k=(format!("endpoint.{id}.calls")) { (e.counts.requests) }
                            td.num data-k=(format!("endpoint.{id}.errors")) { (e.counts.errors()) }
                            td {
                                @for (code, n) in &e.codes {
                                    span.code { code { (code) } " ×" span data-k=(format!("endpoint.{id}.code.{code}")) { (n) } } " "
                                }
                            }
                            td.num { (ms(e.latency.quantile(0.5))) }
                            td.num { (ms(e.latency.quantile(0.95))) }
                        }
                    }
                }
            }
        }
    }
}

fn health_view(gateway: &Gateway, state: &Books) -> Markup {
    html! {
        (ban_banner(gateway))
        h2 { "The API" }
        @match gateway.pings_fault() {
            None => p.good data-k="api.pings" { "/pings answered 200 when last asked" },
            Some(why) => p.bad data-k="api.pings" { (why) },
        }
        h2 { "Circuits" }
        table {
            thead { tr { th { "Profile" } th { "Circuit" } th { "State" } } }
            tbody {
                @for profile in gateway.profiles() {
                    @for circuit in profile.runtime.circuit_states() {
                        tr {
                            td { (profile.name) }
                            td { (circuit.name) }
                            @match circuit.open_for {
                                Some(open) if !open.is_zero() => td.bad data-k=(format!("circuit.{}.{}", profile.name, circuit.name)) { "open for " (seconds(open)) " more" },
                                Some(_) => td.warn data-k=(format!("circuit.{}.{}", profile.name, circuit.name)) { "half-open: the next request probes" },
                                None => td.good data-k=(format!("circuit.{}.{}", profile.name, circuit.name)) { "closed" },
                            }
                        }
                    }
                }
            }
        }
        h2 { "Client component" }
        table {
            thead { tr { th { "Profile" } th { "Version (digest)" } th { "Contract" } } }
            tbody {
                @for profile in gateway.profiles() {
                    tr {
                        td { (profile.name) }
                        td data-k=(format!("client.{}", profile.name)) { (profile.runtime.component()) }
                        td { (api_entreprise::contract::VERSION) }
                    }
                }
            }
        }
        h2 { "Swaps and rollbacks" }
        @if state.swaps.is_empty() {
            p.note data-k="swaps" { "None since the gateway started." }
        } @else {
            table {
                thead { tr { th { "When" } th { "Profile" } th { "What" } th { "Detail" } } }
                tbody {
                    @for swap in state.swaps.iter().rev() {
                        tr { td { (swap.time) } td { (swap.profile) } td data-k="swap.outcome" { (swap.outcome) } td { (swap.detail) } }
                    }
                }
            }
        }
    }
}

fn requests_view(state: &Books, show_object: bool) -> Markup {
    html! {
        p.note { "The last " (books::RECENT) " requests, the newest first (keys and tokens are never shown; the trace's object only when the configuration says so)." }
        table {
            thead {
                tr {
                    th { "Time (UTC)" } th { "Application" } th { "Endpoint" } th.num { "Status" } th { "Codes" } th { "X-Request-ID" } th.num { "Latency" }
                    @if show_object { th { "Object" } }
                    th { "Client" }
                }
            }
            tbody {
                @for r in state.recent.iter().rev() {
                    tr data-k="request" {
                        td title=(r.time) { (r.time.get(11..23).unwrap_or(&r.time)) }
                        td data-k="request.application" { (r.application.as_deref().unwrap_or("–")) }
                        td data-k="request.endpoint" { (r.endpoint.unwrap_or("–")) }
                        td.num data-k="request.status" class=(if r.status >= 400 { "bad" } else { "" }) { (r.status) }
                        td { (r.codes.join(", ")) }
                        td data-k="request.id" { (r.request_id.as_deref().unwrap_or("–")) }
                        td.num { (format!("{:.1} ms", r.latency_ms)) }
                        @if show_object { td { (r.object.as_deref().unwrap_or("")) } }
                        td { (r.client.as_deref().unwrap_or("–")) }
                    }
                }
            }
        }
    }
}
