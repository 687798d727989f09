//! What the dashboard's bookkeeping costs a request, side by side with
//! what every request already pays for its audit line (writing it as
//! JSON), in one run: `Books::record` for a million requests spread over
//! 4 applications, 20 endpoints and 3 profiles, then with 200 applications
//! (a vendor's gateway), and the JSON of the same lines.
//!
//! `cargo bench -p api-entreprise-gateway --bench bookkeeping`

use std::time::Instant;

use api_entreprise_gateway::audit::AuditLine;
use api_entreprise_gateway::dashboard::books::{Books, now_ms};

const REQUESTS: usize = 1_000_000;

fn lines(applications: usize) -> Vec<AuditLine> {
    let endpoints: Vec<&'static str> = api_entreprise_catalogue::DATA_ENDPOINTS
        .iter()
        .map(|e| e.id)
        .take(20)
        .collect();
    (0..1024)
        .map(|i| AuditLine {
            time: "2026-12-05T10:00:00.123456789Z".into(),
            application: Some(format!("application-{}", i % applications)),
            profile: Some(format!("profile-{}", i % 3)),
            endpoint: Some(endpoints[i % endpoints.len()]),
            version: Some(3),
            context: Some("aides publiques".into()),
            recipient: Some("13002526500013".into()),
            object: Some("dossier 42".into()),
            status: if i % 10 == 0 { 404 } else { 200 },
            codes: if i % 10 == 0 { vec!["00404".into()] } else { vec![] },
            request_id: Some(format!("sandbox-{i:08}")),
            latency_ms: 1.0 + (i % 50) as f64,
            client: Some("0.1.0 (df7b9446fdfe)".into()),
            sent: true,
            ..AuditLine::default()
        })
        .collect()
}

/// Nanoseconds per request of `f` over [`REQUESTS`] of `lines`.
fn per_request(lines: &[AuditLine], mut f: impl FnMut(&AuditLine)) -> f64 {
    let started = Instant::now();
    for line in lines.iter().cycle().take(REQUESTS) {
        f(line);
    }
    started.elapsed().as_nanos() as f64 / REQUESTS as f64
}

fn main() {
    println!("| lines | audit line as JSON (every request already) | dashboard bookkeeping | ratio |");
    println!("|---|---|---|---|");
    for applications in [4, 200] {
        let lines = lines(applications);
        let books = Books::new(false);
        let now = now_ms();
        let json = per_request(&lines, |l| {
            std::hint::black_box(serde_json::to_string(l).unwrap());
        });
        let record = per_request(&lines, |l| books.record(l, now));
        println!(
            "| {applications} applications, 20 endpoints, 3 profiles | {json:.0} ns | {record:.0} ns | {:.2}× |",
            record / json
        );
        std::hint::black_box(books.snapshot());
    }
}
