//! Prometheus metrics of the gateway, served on a listener of their own
//! (`metrics_listen`), never on the API's: requests by application,
//! endpoint and status, their latency, the upstream's remaining quota per
//! profile and group, the circuits, the days before each token expires, and
//! the contract of the component the host runs.

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry, TextEncoder,
};

/// The gateway's metrics.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    remaining: GaugeVec,
    token_days: GaugeVec,
    circuits: GaugeVec,
    component: GaugeVec,
    swaps: IntCounterVec,
    audit_dropped: IntCounter,
    connections_closed: IntCounterVec,
    rotations: IntCounterVec,
    ip_windows: GaugeVec,
    ban: GaugeVec,
    /// Every metric's name, for the Grafana dashboard's check.
    #[cfg(test)]
    names: Vec<String>,
}

impl Metrics {
    /// The metrics, registered.
    pub fn new() -> Self {
        let swaps = IntCounterVec::new(
            Opts::new(
                "api_entreprise_component_swaps_total",
                "Changes of the client component: swapped, refused, rolled_back (asked) or rolled_back_automatically",
            ),
            &["outcome"],
        )
        .expect("a valid metric");
        let audit_dropped = IntCounter::new(
            "api_entreprise_audit_lines_dropped_total",
            "Audit lines dropped because the reader of standard output did not keep up (the requests were served)",
        )
        .expect("a valid metric");
        let connections_closed = IntCounterVec::new(
            Opts::new(
                "api_entreprise_gateway_connections_closed_total",
                "Connections the gateway closed to protect itself: refused (at the cap, none to evict), evicted \
                 (at the cap, the longest without a request), write_timeout (a caller that stopped reading)",
            ),
            &["reason"],
        )
        .expect("a valid metric");
        let rotations = IntCounterVec::new(
            Opts::new(
                "api_entreprise_token_rotations_total",
                "A profile's token read again and found changed: rotated (in use), refused (by /privileges: the old one \
                 stays) or unreadable (the variable or file: the old one stays)",
            ),
            &["profile", "outcome"],
        )
        .expect("a valid metric");
        let ip_windows = GaugeVec::new(
            Opts::new(
                "api_entreprise_ip_quota_used_ratio",
                "How full each per-IP window is (requests in it over its limit), as the quota store holds it for \
                 every host sharing it; sampled every second while the dashboard is on",
            ),
            &["quota"],
        )
        .expect("a valid metric");
        let ban = GaugeVec::new(
            Opts::new(
                "api_entreprise_ban_suspected_seconds",
                "Seconds before the probable end of a ban of this IP (0: none suspected): the API stopped answering \
                 right after a per-IP window was full or a 429, by profile",
            ),
            &["profile"],
        )
        .expect("a valid metric");
        let registry = Registry::new();
        #[cfg(test)]
        let mut names = Vec::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "api_entreprise_gateway_requests_total",
                "Requests answered, by application, endpoint and status",
            ),
            &["application", "endpoint", "status"],
        )
        .expect("a valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "api_entreprise_gateway_request_duration_seconds",
                "Time to answer a request",
            )
            .buckets(vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 12.0]),
            &["application"],
        )
        .expect("a valid metric");
        let remaining = GaugeVec::new(
            Opts::new(
                "api_entreprise_quota_remaining",
                "Requests left in the upstream's window (RateLimit-Remaining), by profile and endpoint group",
            ),
            &["profile", "endpoint"],
        )
        .expect("a valid metric");
        let token_days = GaugeVec::new(
            Opts::new(
                "api_entreprise_token_expiry_days",
                "Days before each profile's token expires",
            ),
            &["profile"],
        )
        .expect("a valid metric");
        let circuits = GaugeVec::new(
            Opts::new(
                "api_entreprise_circuit_open_seconds",
                "Seconds a circuit stays open (0: closed), by profile and circuit (`api` or a provider)",
            ),
            &["profile", "circuit"],
        )
        .expect("a valid metric");
        let component = GaugeVec::new(
            Opts::new(
                "api_entreprise_component_info",
                "The client component each profile runs: its version (and digest) and its contract",
            ),
            &["profile", "version", "contract"],
        )
        .expect("a valid metric");
        for metric in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(remaining.clone()),
            Box::new(token_days.clone()),
            Box::new(circuits.clone()),
            Box::new(component.clone()),
            Box::new(swaps.clone()),
            Box::new(audit_dropped.clone()),
            Box::new(connections_closed.clone()),
            Box::new(rotations.clone()),
            Box::new(ip_windows.clone()),
            Box::new(ban.clone()),
        ] {
            #[cfg(test)]
            names.extend(metric.desc().iter().map(|d| d.fq_name.clone()));
            registry.register(metric).expect("each metric registered once");
        }
        Self {
            registry,
            requests,
            latency,
            remaining,
            token_days,
            circuits,
            component,
            swaps,
            audit_dropped,
            connections_closed,
            rotations,
            ip_windows,
            ban,
            #[cfg(test)]
            names,
        }
    }

    /// Every metric's name.
    #[cfg(test)]
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// How long a profile's probable ban still lasts (zero: none).
    pub fn ban(&self, profile: &str, for_: std::time::Duration) {
        self.ban.with_label_values(&[profile]).set(for_.as_secs_f64());
    }

    /// How full a per-IP window is, as a fraction of its limit.
    pub fn ip_window(&self, quota: &str, ratio: f64) {
        self.ip_windows.with_label_values(&[quota]).set(ratio);
    }

    /// A profile's token read again and found changed, and what came of it.
    pub fn token_rotation(&self, profile: &str, outcome: &str) {
        self.rotations.with_label_values(&[profile, outcome]).inc();
    }

    /// The counter of dropped audit lines, for the audit writer.
    pub fn audit_dropped(&self) -> IntCounter {
        self.audit_dropped.clone()
    }

    /// The counter of connections closed for `reason`.
    pub fn closed_counter(&self, reason: &str) -> IntCounter {
        self.connections_closed.with_label_values(&[reason])
    }

    /// One connection closed to protect the gateway, and why.
    pub fn connection_closed(&self, reason: &str) {
        self.connections_closed.with_label_values(&[reason]).inc();
    }

    /// The client component each profile runs now, as `(profile, version)`.
    pub fn components(&self, versions: &[(String, String)]) {
        self.component.reset();
        for (profile, version) in versions {
            self.component
                .with_label_values(&[profile.as_str(), version.as_str(), api_entreprise::contract::VERSION])
                .set(1.0);
        }
    }

    /// One change of the client component (`swapped`, `refused`,
    /// `rolled_back`, `rolled_back_automatically`).
    pub fn swap(&self, outcome: &str) {
        self.swaps.with_label_values(&[outcome]).inc();
    }

    /// How long a profile's circuit stays open (zero when closed).
    pub fn circuit(&self, profile: &str, circuit: &str, open_for: std::time::Duration) {
        self.circuits
            .with_label_values(&[profile, circuit])
            .set(open_for.as_secs_f64());
    }

    /// One answered request.
    pub fn answered(&self, application: &str, endpoint: &str, status: u16, seconds: f64) {
        self.requests
            .with_label_values(&[application, endpoint, &status.to_string()])
            .inc();
        self.latency.with_label_values(&[application]).observe(seconds);
    }

    /// What the upstream said is left of a profile's quota for an endpoint.
    pub fn remaining(&self, profile: &str, endpoint: &str, remaining: u32) {
        self.remaining
            .with_label_values(&[profile, endpoint])
            .set(f64::from(remaining));
    }

    /// Days before a profile's token expires.
    pub fn token_expiry(&self, profile: &str, days: f64) {
        self.token_days.with_label_values(&[profile]).set(days);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Grafana dashboard (`grafana/api-entreprise-gateway.json`) asks
    /// only for metrics the gateway exports: each query's metric names,
    /// a histogram's `_bucket`, `_sum` and `_count` read as the histogram.
    #[test]
    fn every_query_of_the_grafana_dashboard_names_a_metric_the_gateway_exports() {
        let metrics = Metrics::new();
        let dashboard: serde_json::Value =
            serde_json::from_str(include_str!("../grafana/api-entreprise-gateway.json")).expect("JSON");
        let mut queries = 0;
        let mut used = std::collections::BTreeSet::new();
        for panel in dashboard["panels"].as_array().expect("panels") {
            for target in panel["targets"].as_array().expect("targets") {
                let expr = target["expr"].as_str().expect("a query");
                queries += 1;
                let names: Vec<&str> = expr
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .filter(|w| w.starts_with("api_entreprise_"))
                    .collect();
                assert!(!names.is_empty(), "{expr} names no metric of the gateway");
                for name in names {
                    let base = ["_bucket", "_sum", "_count"]
                        .iter()
                        .find_map(|s| name.strip_suffix(s))
                        .filter(|b| metrics.names().iter().any(|n| n == b))
                        .unwrap_or(name);
                    assert!(
                        metrics.names().iter().any(|n| n == base),
                        "{expr}: {name} is not a metric of the gateway ({:?})",
                        metrics.names()
                    );
                    used.insert(base.to_owned());
                }
            }
        }
        assert!(queries >= 10, "{queries} queries");
        // Every metric has its panel.
        let missing: Vec<_> = metrics.names().iter().filter(|n| !used.contains(*n)).collect();
        assert!(missing.is_empty(), "no panel shows {missing:?}");
    }
}
