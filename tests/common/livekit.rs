//! LiveKit's own server (livekit-server v1.13.5, installed by scripts/test-peers.sh
//! under target/peers/livekit) on loopback: free ports, our own key and secret in a
//! generated config, `node_ip: 127.0.0.1`, no external IP discovery, optional Redis.
//! Its log is printed when a test using it fails.

use super::clouds::{Proc, root, wait_port};
use super::service::free_port;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The version `scripts/test-peers.sh` installs.
pub const VERSION: &str = "v1.13.5";

/// The binary, or a panic saying exactly why it is missing (never a silent skip).
pub fn binary() -> PathBuf {
    let dir = root().join("target/peers/livekit");
    let bin = dir.join("server");
    if !bin.is_file() {
        let why = std::fs::read_to_string(dir.join("install.log")).unwrap_or_else(|_| "no install was tried".into());
        panic!(
            "livekit-server {VERSION} is not installed at {}: run scripts/test-peers.sh (make test does). \
             The last install said:\n{why}",
            bin.display()
        );
    }
    bin
}

/// How to start it.
#[derive(Clone)]
pub struct Options {
    pub key: String,
    pub secret: String,
    /// Seconds an empty room stays open (the server's `empty_timeout`, and `departure_timeout`).
    pub empty_timeout: u32,
    /// The address its HTTP/WebSocket port and RTC ports bind and advertise.
    pub ip: String,
    /// ICE over TCP on a port of its own (off: UDP only).
    pub tcp: bool,
    /// Runs in this network namespace (`ip netns exec NAME`).
    pub netns: Option<String>,
    /// Redis, for egress dispatch (Egress API, psrpc).
    pub redis: Option<String>,
    /// Where the server posts its webhooks (signed with `key`).
    pub webhook: Option<String>,
}

impl Options {
    pub fn new(key: &str, secret: &str) -> Self {
        Self {
            key: key.into(),
            secret: secret.into(),
            empty_timeout: 2,
            ip: "127.0.0.1".into(),
            tcp: false,
            netns: None,
            redis: None,
            webhook: None,
        }
    }
}

/// A running livekit-server, killed when dropped (its log printed if the test is failing).
pub struct LiveKit {
    pub port: u16,
    pub ip: String,
    log: PathBuf,
    _proc: Proc,
}

impl LiveKit {
    pub fn start(dir: &Path, o: &Options) -> LiveKit {
        let bin = binary();
        let (port, udp_port, tcp_port) = (free_port(), free_udp_port(), free_port());
        let tcp = if o.tcp { format!("  tcp_port: {tcp_port}\n") } else { "  tcp_port: 0\n".into() };
        let redis = o.redis.as_ref().map(|r| format!("redis:\n  address: {r}\n")).unwrap_or_default();
        let webhook = o.webhook.as_ref().map(|u| format!("webhook:\n  api_key: {}\n  urls: [\"{u}\"]\n", o.key));
        let config = format!(
            "port: {port}\nbind_addresses: [{ip}]\nlog_level: info\nkeys:\n  {key}: {secret}\n\
             rtc:\n  udp_port: {udp_port}\n{tcp}  use_external_ip: false\n  node_ip: {ip}\n{loopback}\
             room:\n  auto_create: true\n  empty_timeout: {empty}\n  departure_timeout: {empty}\n{redis}{webhook}",
            ip = o.ip,
            // Loopback candidates on loopback only: with them on, a server on a host of its
            // own never completes ICE with anyone (LiveKit's SDKs included).
            loopback = if o.ip == "127.0.0.1" { "  enable_loopback_candidate: true\n" } else { "" },
            key = o.key,
            secret = o.secret,
            empty = o.empty_timeout,
            webhook = webhook.unwrap_or_default(),
        );
        let config_path = dir.join("livekit.yaml");
        std::fs::write(&config_path, config).unwrap();
        let log = dir.join("livekit-server.log");
        let out = std::fs::File::create(&log).unwrap();
        let mut cmd = match &o.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&bin);
                c
            }
            None => Command::new(&bin),
        };
        let child = cmd
            .arg("--config")
            .arg(&config_path)
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let proc = Proc::new(child);
        let server = LiveKit { port, ip: o.ip.clone(), log, _proc: proc };
        server.wait_ready();
        server
    }

    /// The signal URL (ws://ip:port).
    pub fn url(&self) -> String {
        format!("ws://{}:{}", self.ip, self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Ready when `/` answers "OK" (its health check).
    fn wait_ready(&self) {
        if self.ip == "127.0.0.1" {
            wait_port(self.port, "livekit-server");
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Ok(mut s) = std::net::TcpStream::connect((self.ip.as_str(), self.port)) {
                use std::io::{Read, Write};
                let _ = s.write_all(format!("GET / HTTP/1.0\r\nHost: {}\r\n\r\n", self.ip).as_bytes());
                let mut body = String::new();
                let _ = s.read_to_string(&mut body);
                if body.starts_with("HTTP/1.0 200") || body.starts_with("HTTP/1.1 200") {
                    return;
                }
            }
            assert!(std::time::Instant::now() < deadline, "livekit-server did not become ready:\n{}", self.log());
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

impl Drop for LiveKit {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(80).collect();
            eprintln!(
                "--- livekit-server log (last {} lines) ---\n{}",
                tail.len(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }
}

pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Redis on a free loopback port, for servers that dispatch egress.
pub struct Redis {
    pub addr: String,
    _proc: Proc,
}

impl Redis {
    pub fn start(dir: &Path) -> Redis {
        Self::start_on(dir, free_port())
    }

    /// On `port` (a restart: the same address, nothing kept).
    pub fn start_on(dir: &Path, port: u16) -> Redis {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("redis.log")).unwrap();
        let log = Stdio::from(log);
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"])
            .stdout(log)
            .spawn()
            .expect("redis-server (make test installs Debian's redis-server)");
        wait_port(port, "redis-server");
        Redis { addr: format!("127.0.0.1:{port}"), _proc: Proc::new(child) }
    }
}
