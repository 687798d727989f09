//! A real `redis-server` (Debian's package) on a free loopback port, for the
//! tests of the shared quota, and `redis-server --sentinel` beside it for
//! failovers; stopped when dropped. Also included by the host's command
//! tests (`#[path]`), which run the command as processes.

#![allow(dead_code, reason = "each test binary uses its own part of the harness")]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `redis-server` (or sentinel).
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    args: Vec<String>,
    /// Its working folder (append-only file, sentinel configuration).
    dir: PathBuf,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl RedisServer {
    /// Starts one with no persistence on a free port, and waits until it
    /// answers `PING`. Fails with what to install when it is missing.
    pub fn start() -> Self {
        Self::start_with(&["--save", "", "--appendonly", "no"])
    }

    /// Starts one that writes every change to its append-only file before
    /// answering (`appendfsync always`), as a quota store should run: a
    /// `kill -9` and a restart keep every window.
    pub fn start_durable() -> Self {
        Self::start_with(&["--save", "", "--appendonly", "yes", "--appendfsync", "always"])
    }

    /// Starts a replica of the server on `master`.
    pub fn start_replica_of(master: &RedisServer) -> Self {
        Self::start_with(&[
            "--save",
            "",
            "--appendonly",
            "no",
            "--replicaof",
            "127.0.0.1",
            &master.port.to_string(),
        ])
    }

    /// Starts a sentinel watching `master` as `mymaster` (quorum 1, down
    /// after 1 s, so that a failover takes a few seconds).
    pub fn start_sentinel(master: &RedisServer) -> Self {
        let port = free_port();
        let dir = Self::folder(port);
        let config = dir.join("sentinel.conf");
        std::fs::write(
            &config,
            format!(
                "port {port}\nbind 127.0.0.1\nsentinel monitor mymaster 127.0.0.1 {} 1\n\
                 sentinel down-after-milliseconds mymaster 1000\nsentinel failover-timeout mymaster 5000\n\
                 sentinel parallel-syncs mymaster 1\n",
                master.port
            ),
        )
        .unwrap();
        let args = vec![config.display().to_string(), "--sentinel".to_owned()];
        Self::launch(port, dir, args)
    }

    fn folder(port: u16) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("api-entreprise-redis-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn start_with(extra: &[&str]) -> Self {
        let port = free_port();
        let dir = Self::folder(port);
        let mut args: Vec<String> = ["--port", &port.to_string(), "--bind", "127.0.0.1", "--dir"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        args.push(dir.display().to_string());
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        Self::launch(port, dir, args)
    }

    fn launch(port: u16, dir: PathBuf, args: Vec<String>) -> Self {
        let mut server = Self {
            child: None,
            port,
            args,
            dir,
        };
        server.restart();
        server
    }

    /// Starts it again (after [`Self::kill`]) on the same port, with the
    /// same files, and waits until it answers.
    pub fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is not installed: run scripts/setup (it installs Debian's redis-server)");
        self.child = Some(child);
        let started = Instant::now();
        while !self.answers_ping() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not start on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `kill -9`: gone at once, mid-command for whoever was talking to it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn answers_ping(&self) -> bool {
        self.command("PING").as_deref() == Some("+PONG")
    }

    /// One inline command's first reply line, if it answers.
    pub fn command(&self, command: &str) -> Option<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        stream.write_all(format!("{command}\r\n").as_bytes()).ok()?;
        let mut reply = Vec::new();
        let mut byte = [0u8; 1];
        while stream.read_exact(&mut byte).is_ok() {
            if byte[0] == b'\n' {
                break;
            }
            reply.push(byte[0]);
        }
        let reply = String::from_utf8_lossy(&reply).trim_end().to_owned();
        (!reply.is_empty()).then_some(reply)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
