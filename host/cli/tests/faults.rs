//! The gateway under faults, as an operator meets them: real processes (the
//! gateway, `redis-server`, `redis-server --sentinel`), real connections on
//! loopback, the sandbox's arrival log as the judge. Each test is bounded
//! in time and prints what it measured (recovery times) for the notes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use api_entreprise_gateway::hash_key;
use api_entreprise_sandbox::Sandbox;
use api_entreprise_tests::raw_request;

#[path = "common/gateway.rs"]
mod harness;
use harness::*;

#[path = "../../../tests/src/redis_server.rs"]
mod redis_server;
use redis_server::RedisServer;

const ADMIN_KEY: &str = "admin-key-1111111111";

/// One profile and the `batch` application (no allow-list, no share).
fn one_application(sandbox: &Sandbox, extra: &str) -> String {
    format!(
        "base_url = \"{}\"\n{extra}\n[profiles.aides]\ntoken_env = \"GATEWAY_TEST_TOKEN\"\n\
         [applications.batch]\nkey_sha256 = \"{}\"\nprofile = \"aides\"\n",
        sandbox.base_url(),
        hash_key(BATCH_KEY)
    )
}

fn sirene(gateway: &Gateway) -> String {
    format!("{}/v3/insee/sirene/unites_legales/552049447?{TRACE}", gateway.url)
}

/// The most arrivals at the sandbox in any `window` (ms), of the requests
/// `keep` selects.
fn worst_window(sandbox: &Sandbox, window: u64, keep: impl Fn(&str) -> bool) -> usize {
    let arrivals: Vec<u64> = sandbox
        .requests()
        .iter()
        .filter(|r| keep(&r.path))
        .map(|r| r.at_unix_ms)
        .collect();
    api_entreprise_tests::worst_window(&arrivals, window)
}

/// Keyed calls one after the other for `length`, each with its start (since
/// `origin`) and its status.
async fn traffic(url: String, length: Duration, origin: Instant) -> Vec<(Duration, u16, String)> {
    let mut seen = Vec::new();
    while origin.elapsed() < length {
        let at = origin.elapsed();
        let (status, _, body) = get(&url, Some(BATCH_KEY), None).await;
        seen.push((at, status, body.to_string()));
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_under_traffic_fails_closed_then_serves_again_and_no_window_passes_the_quota() {
    let mut redis = RedisServer::start_durable();
    let sandbox = api_entreprise_tests::sandbox().await;
    sandbox.set_rate_limit(Some(100_000_000));
    let global = ["--ip-quota", "10/3s", "--redis-url", &redis.url()];
    let gateway = start("redis-restart", &one_application(&sandbox, ""), &global);
    let origin = Instant::now();
    let calls = tokio::spawn(traffic(sirene(&gateway), Duration::from_secs(9), origin));
    tokio::time::sleep(Duration::from_secs(2)).await;
    redis.kill();
    let killed = origin.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let back = origin.elapsed();
    redis.restart();
    let seen = calls.await.unwrap();

    // While Redis was away: 503 in the API's shape, saying it is the store.
    let outage: Vec<_> = seen
        .iter()
        .filter(|(at, ..)| *at > killed + Duration::from_secs(1) && *at < back)
        .collect();
    assert!(!outage.is_empty());
    for (at, status, body) in &outage {
        assert_eq!(*status, 503, "at {at:?}: {body}");
        assert!(
            body.contains("00503") && body.contains("quota store (Redis at") && !body.contains("full"),
            "{body}"
        );
    }
    // Served again within seconds of its return.
    let recovered = seen
        .iter()
        .find(|(at, status, _)| *at >= back && *status == 200)
        .map(|(at, ..)| *at - back)
        .unwrap_or_else(|| panic!("never served again after Redis came back: {seen:?}"));
    assert!(recovered < Duration::from_secs(4), "{recovered:?}");
    assert!(seen.iter().all(|(_, s, _)| matches!(s, 200 | 429 | 503)), "{seen:?}");
    // The free /pings the gateway asks at start count against no quota.
    let worst = worst_window(&sandbox, 3000, |p| p != "/pings");
    println!(
        "redis kill -9 at {killed:?}, back at {back:?}: {} calls answered 503 meanwhile, served again {recovered:?} after; worst 3 s window at the sandbox {worst}/10",
        outage.len()
    );
    assert!(worst <= 10, "{worst} arrivals in one 3 s window");
    let stderr = std::fs::read_to_string(&gateway.stderr).unwrap();
    assert!(
        !stderr.contains('\u{1b}'),
        "no colour codes in a log that is a file: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_failover_moves_the_quota_to_the_new_master_and_the_gateway_follows() {
    let mut master = RedisServer::start();
    let replica = RedisServer::start_replica_of(&master);
    let sentinel = RedisServer::start_sentinel(&master);
    // The sentinel must know the replica before the master goes.
    let started = Instant::now();
    while sentinel.command("SENTINEL REPLICAS mymaster").is_none_or(|r| r == "*0") {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the sentinel never saw the replica"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sandbox = api_entreprise_tests::sandbox().await;
    sandbox.set_rate_limit(Some(100_000_000));
    let url = format!("redis+sentinel://127.0.0.1:{}/mymaster/0", sentinel.port());
    let global = ["--ip-quota", "10/3s", "--redis-url", &url];
    let gateway = start("sentinel", &one_application(&sandbox, ""), &global);
    let origin = Instant::now();
    let calls = tokio::spawn(traffic(sirene(&gateway), Duration::from_secs(20), origin));
    tokio::time::sleep(Duration::from_secs(2)).await;
    master.kill();
    let killed = origin.elapsed();
    let seen = calls.await.unwrap();
    let served_again = seen
        .iter()
        .find(|(at, status, _)| *at > killed + Duration::from_secs(1) && *status == 200)
        .map(|(at, ..)| *at - killed)
        .unwrap_or_else(|| panic!("never served after the failover: {seen:?}"));
    assert_eq!(
        replica.command("ROLE").as_deref(),
        Some("*3"),
        "the replica was promoted (ROLE answers three fields for a master)"
    );
    let worst = worst_window(&sandbox, 3000, |p| p != "/pings");
    println!(
        "sentinel failover: master killed at {killed:?}, served by the new master {served_again:?} later; worst 3 s window {worst}/10"
    );
    assert!(seen.iter().all(|(_, s, _)| matches!(s, 200 | 429 | 503)), "{seen:?}");
    // Replication is asynchronous: the windows of the last instants before
    // the failover may be lost with the old master; never more than the
    // quota twice over.
    assert!(worst <= 20, "{worst}");
}

/// Two gateways on one Redis decide the shares together: an application
/// of share 0.5 whose partner is idle borrows all the per-IP window
/// leaves (8 of 10: the gateways' own `/privileges` took 2), whichever
/// gateway it asks, and never more. (Taking a lent part back across two
/// gateways: `gateway.rs`, `two_gateways_on_one_redis_lend_and_take_back_the_shares_together`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_on_one_redis_lend_an_idle_share_and_never_pass_the_quota_together() {
    let redis = RedisServer::start();
    let sandbox = api_entreprise_tests::sandbox().await;
    sandbox.set_rate_limit(Some(100_000_000));
    let config = format!(
        "base_url = \"{}\"\n[profiles.aides]\ntoken_env = \"GATEWAY_TEST_TOKEN\"\n\
         [applications.batch]\nkey_sha256 = \"{}\"\nprofile = \"aides\"\nshare = 0.5\n\
         [applications.idle]\nkey_sha256 = \"{}\"\nprofile = \"aides\"\nshare = 0.5\n",
        sandbox.base_url(),
        hash_key(BATCH_KEY),
        hash_key("idle-key-0123456789")
    );
    let global = ["--ip-quota", "10/3s", "--redis-url", &redis.url()];
    let fleet = [start("share-a", &config, &global), start("share-b", &config, &global)];
    let mut statuses = Vec::new();
    for round in 0..16 {
        statuses.push(get(&sirene(&fleet[round % 2]), Some(BATCH_KEY), None).await.0);
    }
    let served = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(served, 8, "{statuses:?}");
    assert!(statuses.iter().all(|s| matches!(s, 200 | 429)), "{statuses:?}");
    assert_eq!(worst_window(&sandbox, 3000, |p| p != "/pings"), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_of_every_kind_past_the_connection_cap_never_keep_a_keyed_call_waiting() {
    let sandbox = api_entreprise_tests::sandbox().await;
    let extra = format!(
        "admin_key_sha256 = \"{}\"\n[limits]\nmax_connections = 50\nheader_read_timeout_seconds = 2\nwrite_timeout_seconds = 2\n",
        hash_key(ADMIN_KEY)
    );
    // `[limits]` must come before the tables that follow it.
    let config =
        one_application(&sandbox, "").replace("[profiles.aides]", &format!("{}\n[profiles.aides]", extra.trim_end()));
    let gateway = start("floods", &config, &[]);
    let addr = gateway.url.trim_start_matches("http://").to_owned();
    let connect = || TcpStream::connect(&addr).unwrap();
    let mut held = Vec::new();
    // Silent callers.
    for _ in 0..20 {
        held.push(connect());
    }
    // The HTTP/2 preface and an empty SETTINGS frame, then nothing.
    for _ in 0..20 {
        let mut s = connect();
        let _ = s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00");
        held.push(s);
    }
    // A head sent slowly, never finished.
    for _ in 0..10 {
        let mut s = connect();
        let _ = s.write_all(b"GET /v3/insee/sirene/unites_legales/552049447 HTTP/1.1\r\nHost: x\r\n");
        held.push(s);
    }
    // A promised 32 MiB body that never comes, without the admin key: refused
    // at once, the body never awaited.
    for _ in 0..5 {
        let mut s = connect();
        s.write_all(b"POST /admin/component HTTP/1.1\r\nHost: x\r\nContent-Length: 33554432\r\n\r\n")
            .unwrap();
        let mut answer = [0u8; 12];
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s.read_exact(&mut answer).unwrap();
        assert_eq!(&answer, b"HTTP/1.1 401");
        held.push(s);
    }
    // With the key, a body past the cap is refused before it is read.
    let mut s = connect();
    s.write_all(
        format!(
            "POST /admin/component HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_KEY}\r\nContent-Length: 33554432\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    let mut answer = [0u8; 12];
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"HTTP/1.1 413");
    // Callers that ask and ask and never read an answer.
    let pipelined = format!(
        "GET {} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {BATCH_KEY}\r\n\r\n",
        "/healthz"
    )
    .repeat(2000);
    for _ in 0..10 {
        let mut s = connect();
        s.set_write_timeout(Some(Duration::from_millis(200))).unwrap();
        let _ = s.write_all(pipelined.as_bytes());
        held.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // 66 connections against a cap of 50: a keyed call is served at once.
    let mut waits = Vec::new();
    for _ in 0..5 {
        let asked = Instant::now();
        let (status, _, body) = get(&sirene(&gateway), Some(BATCH_KEY), None).await;
        waits.push(asked.elapsed());
        assert_eq!(status, 200, "{body}");
        // A new wave of silent callers meanwhile.
        for _ in 0..10 {
            held.push(connect());
        }
    }
    println!("keyed calls through a flood of {} connections: {waits:?}", held.len());
    assert!(
        waits.iter().all(|w| *w < Duration::from_secs(2)),
        "a keyed call waited for the flood's deadlines: {waits:?}"
    );
    // And every flooding connection is gone after its deadline.
    let stuck = held
        .iter_mut()
        .map(|s| closed_within(s, Duration::from_secs(6)))
        .filter(|closed| !closed)
        .count();
    assert_eq!(stuck, 0, "connections held past every deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_readyz_flood_never_becomes_upstream_traffic() {
    let sandbox = api_entreprise_tests::sandbox().await;
    let gateway = start("readyz-flood", &one_application(&sandbox, ""), &[]);
    let pings = |sandbox: &Sandbox| sandbox.requests().iter().filter(|r| r.path == "/pings").count();
    let before = pings(&sandbox);
    let flood = Instant::now();
    let mut statuses = Vec::new();
    for _ in 0..200 {
        let (status, _, body) = raw_request("GET", &format!("{}/readyz", gateway.url), &[]).await;
        assert_eq!(String::from_utf8_lossy(&body).trim(), "ready");
        statuses.push(status);
    }
    let seconds = flood.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent = pings(&sandbox) - before;
    println!("200 /readyz in {seconds:.1} s: {sent} /pings sent upstream");
    assert!(statuses.iter().all(|s| *s == 200));
    let allowed = (seconds / api_entreprise_gateway::READINESS_REFRESH.as_secs_f64()).ceil() as usize + 1;
    assert!(sent <= allowed, "{sent} /pings for 200 /readyz in {seconds:.1} s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_audit_reader_never_holds_a_request_and_the_drops_are_counted() {
    let sandbox = api_entreprise_tests::sandbox().await;
    let metrics = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = one_application(&sandbox, &format!("metrics_listen = \"{metrics}\""));
    let gateway = start("stalled-stdout", &config, &[]);
    gateway.stall_stdout.store(true, std::sync::atomic::Ordering::SeqCst);
    // Far more lines than a pipe and the queue hold: the free health route,
    // 8 callers at once.
    let url = format!("{}/ping/insee/sirene", gateway.url);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..400 {
                statuses.push(get(&url, Some(BATCH_KEY), None).await.0);
            }
            statuses
        }));
    }
    for task in tasks {
        let statuses = tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("requests held by a stalled reader")
            .unwrap();
        assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    }
    let (_, _, text) = raw_request("GET", &format!("http://{metrics}/metrics"), &[]).await;
    let text = String::from_utf8_lossy(&text);
    let dropped: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("api_entreprise_audit_lines_dropped_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(dropped > 0, "{text}");
    // The reader resumes: the trail says how many lines it lost.
    gateway.stall_stdout.store(false, std::sync::atomic::Ordering::SeqCst);
    get(&url, Some(BATCH_KEY), None).await;
    let started = Instant::now();
    let notice = loop {
        if let Some(n) = gateway
            .audit()
            .iter()
            .find(|l| l["event"] == "audit_lines_dropped")
            .cloned()
        {
            break n;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no notice of the drops");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!("stalled stdout: 3200 requests served, {dropped} audit lines dropped, notice {notice}");
    assert!(notice["dropped"].as_u64().unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_during_start_up_is_a_reload_not_the_end_of_the_process() {
    let sandbox = api_entreprise_tests::sandbox().await;
    let config = one_application(&sandbox, "");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (hups, stopping) = (std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0)), stop.clone());
    let sent = hups.clone();
    // The gateway process gets SIGHUP every 20 ms from 100 ms after it
    // appears (while it compiles the component and reads its privileges)
    // until it listens: before the fix, the first one ended it.
    let watcher = std::thread::spawn(move || {
        let mut first_seen = None;
        while !stopping.load(std::sync::atomic::Ordering::SeqCst) {
            let pids = Command::new("pgrep")
                .args(["-f", "api-entreprise-gateway-hup-early-"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            for pid in pids.split_whitespace() {
                let seen = *first_seen.get_or_insert_with(Instant::now);
                if seen.elapsed() > Duration::from_millis(100)
                    && Command::new("kill")
                        .args(["-HUP", pid])
                        .status()
                        .is_ok_and(|s| s.success())
                {
                    sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let gateway = start("hup-early", &config, &[]);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    watcher.join().unwrap();
    let (status, _, _) = get(&sirene(&gateway), Some(BATCH_KEY), None).await;
    assert_eq!(status, 200);
    assert!(
        hups.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "no SIGHUP reached it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_under_traffic_and_restarted_on_its_state_sends_no_burst() {
    let sandbox = api_entreprise_tests::sandbox().await;
    sandbox.set_rate_limit(Some(100_000_000));
    let config = one_application(&sandbox, "");
    let global = ["--ip-quota", "8/4s"];
    let mut gateway = start("kill-restart", &config, &global);
    let origin = Instant::now();
    let first = traffic(sirene(&gateway), Duration::from_millis(1500), origin).await;
    let _ = gateway.child.kill();
    let _ = gateway.child.wait();
    let killed = origin.elapsed();
    // The same name: the same state directory.
    let restarted = start("kill-restart", &config, &global);
    let back = origin.elapsed();
    let second = traffic(sirene(&restarted), back + Duration::from_secs(6), origin).await;
    let served = |calls: &[(Duration, u16, String)]| calls.iter().filter(|c| c.1 == 200).count();
    let worst = worst_window(&sandbox, 4000, |p| p != "/privileges" && p != "/pings");
    println!(
        "kill -9 at {killed:?} after {} served, restarted by {back:?}, then {} served; worst 4 s window {worst}/8",
        served(&first),
        served(&second)
    );
    assert!(served(&first) > 0 && served(&second) > 0);
    // The gateway's own /privileges and /pings at start cost the per-IP quota
    // too (the privileges), so count every arrival but the free pings.
    assert!(
        worst_window(&sandbox, 4000, |p| p != "/pings") <= 8,
        "a burst over the quota after the restart"
    );
    drop(restarted);
}

/// A ban is seen, not guessed: the sandbox bans past a per-IP quota lower
/// than the one the gateway was given (a misconfiguration, or another
/// machine behind the same IP), and gives no answer at all from then on.
/// The calls that get no answer right after the gateway's own window
/// filled are taken for a ban: `/readyz`, the dashboard and the metrics say
/// "probably banned until …" (12 hours after the first silence), and the
/// next calls are held at the gateway instead of being sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_is_seen_said_with_its_end_and_calls_are_held_instead_of_sent() {
    let sandbox = api_entreprise_tests::sandbox().await;
    sandbox.set_ban(Some(api_entreprise_sandbox::Ban {
        limit: 5,
        window: Duration::from_secs(2),
        length: Duration::from_secs(3600),
    }));
    let gateway = start(
        "ban",
        &one_application(&sandbox, "metrics_listen = \"127.0.0.1:0\""),
        &["--ip-quota", "8/2s"],
    );
    let metrics = gateway.said("metrics on ");
    let dashboard = gateway.said("dashboard on ");
    let url = sirene(&gateway);
    // A burst: the sandbox answers 5 requests (the gateway's /privileges
    // at start, then 4 calls), then nothing (the next calls, and the one
    // that waited for the gateway's full window to free a slot); the
    // application's share (8 in 2 s) refuses the last 2 at once.
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { get(&url, Some(BATCH_KEY), None).await.0 })
        })
        .collect();
    let mut statuses = Vec::new();
    for call in calls {
        statuses.push(call.await.unwrap());
    }
    let answered = data_requests(&sandbox).iter().filter(|r| r.status == 200).count();
    assert_eq!(answered, 4);
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), answered, "{statuses:?}");
    let banned_for = sandbox.banned_for().expect("the sandbox banned");
    let unanswered = |sandbox: &Sandbox| sandbox.requests().iter().filter(|r| r.status == 0).count();
    let silent = unanswered(&sandbox);
    assert!(silent >= 3, "{silent} request(s) got no answer");

    // Seen: /readyz, the metrics, the dashboard.
    let bearer = format!("Bearer {BATCH_KEY}");
    let (status, _, body) = raw_request("GET", &format!("{}/readyz", gateway.url), &[("authorization", &bearer)]).await;
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("right after the per-IP quota 8/2s full: the IP is probably banned until"),
        "{body}"
    );
    let (_, _, exported) = raw_request("GET", &metrics, &[]).await;
    let exported = String::from_utf8_lossy(&exported);
    let left: f64 = exported
        .lines()
        .find_map(|l| l.strip_prefix(r#"api_entreprise_ban_suspected_seconds{profile="aides"} "#))
        .unwrap_or_else(|| panic!("{exported}"))
        .parse()
        .unwrap();
    assert!(left > 11.0 * 3600.0 && left <= 12.0 * 3600.0, "{left} s");
    let (_, _, page) = raw_request("GET", &dashboard, &[]).await;
    let page = String::from_utf8_lossy(&page);
    assert!(
        page.contains(r#"data-k="ban.aides""#) && page.contains("probably banned until"),
        "{page}"
    );

    // Held: the next calls are answered at once by the gateway, and none
    // reaches the API (which would not answer them anyway).
    let before = sandbox.requests().len();
    for _ in 0..3 {
        let started = Instant::now();
        let (status, _, body) = get(&url, Some(BATCH_KEY), None).await;
        assert_eq!(status, 503, "{body}");
        assert!(body.to_string().contains("probably banned until"), "{body}");
        assert!(started.elapsed() < Duration::from_secs(1), "held, not sent");
    }
    assert_eq!(sandbox.requests().len(), before, "nothing more was sent");
    assert!(sandbox.banned_for().unwrap() <= banned_for);
    println!("ban seen after {silent} unanswered request(s); held since, nothing sent");
}
