//! What the gateway's benches share: a load of GETs from pooled keep-alive
//! connections, and a process's resident memory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};

/// What a load saw.
pub struct Figures {
    pub throughput: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub errors: usize,
}

/// `total` GETs of `url` from `concurrency` tasks, the `i`th with
/// `bearers[i % bearers.len()]` as its bearer token.
pub async fn load(url: &str, bearers: &[&str], concurrency: usize, total: usize) -> Figures {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_max_idle_per_host(concurrency)
        .build_http::<Empty<bytes::Bytes>>();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, next, url) = (client.clone(), next.clone(), url.to_owned());
            let bearers: Vec<String> = bearers.iter().map(|b| (*b).to_owned()).collect();
            tokio::spawn(async move {
                let (mut latencies, mut errors) = (Vec::new(), 0);
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    let bearer = &bearers[i % bearers.len()];
                    let request = http::Request::get(&url)
                        .header("authorization", format!("Bearer {bearer}"))
                        .body(Empty::new())
                        .unwrap();
                    let t = Instant::now();
                    match client.request(request).await {
                        Ok(response) => {
                            let ok = response.status() == 200;
                            let body = response.into_body().collect().await;
                            errors += usize::from(!ok || body.is_err());
                        }
                        Err(_) => errors += 1,
                    }
                    latencies.push(t.elapsed());
                }
                (latencies, errors)
            })
        })
        .collect();
    let (mut latencies, mut errors) = (Vec::new(), 0);
    for task in tasks {
        let (l, e) = task.await.unwrap();
        latencies.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    Figures {
        throughput: total as f64 / elapsed.as_secs_f64(),
        p50: latencies[latencies.len() / 2],
        p99: latencies[latencies.len() * 99 / 100],
        errors,
    }
}

/// `VmRSS` and `VmHWM` of a process, in MiB.
pub fn memory(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}
