//! `tessera serve` and devroom for the service tests: the real binary with a YAML config,
//! driven through LiveKit's own server SDKs (tests/peers/egress_node.mjs, egress_py.py).

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tessera::devroom::DevRoom;
use tessera::devroom::synthetic::{self, SyntheticOptions};
use tessera::peer::impair::Impairment;

pub const KEY: &str = "devkey";
pub const SECRET: &str = "egress-test-secret-egress-test-secret";

pub async fn devroom() -> DevRoom {
    super::rooms::devroom(KEY, SECRET, Impairment::default()).await
}

/// devroom or livekit-server: where participants and services join.
pub trait RoomUrl {
    fn room_url(&self) -> String;
}

impl RoomUrl for DevRoom {
    fn room_url(&self) -> String {
        self.url()
    }
}

impl RoomUrl for super::rooms::Server {
    fn room_url(&self) -> String {
        self.url()
    }
}

/// The server the service tests run against, with this module's key and secret.
pub async fn server(kind: super::rooms::Kind, dir: &Path) -> super::rooms::Server {
    super::rooms::Server::start(kind, dir, KEY, SECRET).await
}

pub fn participants(room: &impl RoomUrl, name: &str, count: usize) -> tokio::task::JoinHandle<()> {
    participants_for(room, name, count, Duration::from_secs(90))
}

/// Synthetic participants who leave after `stay`.
pub fn participants_for(room: &impl RoomUrl, name: &str, count: usize, stay: Duration) -> tokio::task::JoinHandle<()> {
    publishers(room, name, count, |o| o.duration = Some(stay))
}

/// `tessera serve` as a child process, killed when dropped.
pub struct Serve {
    pub child: Child,
    pub url: String,
    pub out: PathBuf,
}

impl Serve {
    pub fn start(dir: &Path, extra_yaml: &str) -> Serve {
        Self::start_with_env(dir, extra_yaml, &[])
    }

    /// As `start`, with these environment variables set for the service.
    pub fn start_with_env(dir: &Path, extra_yaml: &str, env: &[(&str, &str)]) -> Serve {
        std::fs::create_dir_all(dir).unwrap();
        let out = dir.join("rec");
        let cfg = dir.join("tessera.yaml");
        std::fs::write(
            &cfg,
            format!(
                "api_key: {KEY}\napi_secret: {SECRET}\nlisten: 127.0.0.1:0\noutput_dir: {}\nrenderer: cpu\nlog_level: debug\n{extra_yaml}",
                out.display()
            ),
        )
        .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(["serve", "--config"])
            .arg(&cfg)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join("serve.log")).unwrap())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = loop {
            match lines.next() {
                Some(Ok(l)) => {
                    if let Some(a) = l.strip_prefix("tessera serve: listening on ") {
                        break a.to_string();
                    }
                }
                _ => panic!("tessera serve did not start: {}", log(dir)),
            }
        };
        Serve { child, url: format!("http://{addr}"), out }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Synthetic participants of this module's key, their options changed by `tweak`.
pub fn publishers(
    room: &impl RoomUrl,
    name: &str,
    count: usize,
    tweak: impl FnOnce(&mut SyntheticOptions),
) -> tokio::task::JoinHandle<()> {
    publishers_as((KEY, SECRET), room, name, count, tweak)
}

/// Synthetic participants of `key`, staying 120 s unless `tweak` says otherwise.
pub fn publishers_as(
    (key, secret): (&str, &str),
    room: &impl RoomUrl,
    name: &str,
    count: usize,
    tweak: impl FnOnce(&mut SyntheticOptions),
) -> tokio::task::JoinHandle<()> {
    let mut o = SyntheticOptions {
        url: room.room_url(),
        api_key: key.into(),
        api_secret: secret.into(),
        room: name.into(),
        count,
        duration: Some(Duration::from_secs(120)),
        ..Default::default()
    };
    tweak(&mut o);
    tokio::spawn(async move {
        if let Err(e) = synthetic::run(o).await {
            eprintln!("synthetic publishers: {e}");
        }
    })
}

pub fn log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default()
}

#[derive(Clone, Copy, Debug)]
pub enum Sdk {
    Node,
    Python,
}

/// One call through LiveKit's SDK: Ok(result) or Err({code, message, status}).
pub async fn call(sdk: Sdk, url: &str, secret: &str, method: &str, args: Value) -> Result<Value, Value> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cmd = match sdk {
        Sdk::Node => {
            let mut c = tokio::process::Command::new("node");
            c.arg(root.join("tests/peers/egress_node.mjs"));
            c
        }
        Sdk::Python => {
            let mut c = tokio::process::Command::new(root.join("target/peers-venv/bin/python"));
            c.arg(root.join("tests/peers/egress_py.py"));
            c
        }
    };
    let out = cmd
        .arg(method)
        .arg(args.to_string())
        .env("LIVEKIT_URL", url)
        .env("LIVEKIT_API_KEY", KEY)
        .env("LIVEKIT_API_SECRET", secret)
        .env("LIVEKIT_REQUEST_TIMEOUT", "60")
        .output()
        .await
        .expect("the SDK driver runs (make test installs the SDKs)");
    let line = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(line.trim()).unwrap_or_else(|_| {
        panic!("{sdk:?} {method}: {line} / {}", String::from_utf8_lossy(&out.stderr));
    });
    // A transport failure (the server did not answer at all) is an error too.
    match v.get("error").or(v.get("transportError")) {
        Some(e) => Err(e.clone()),
        None => Ok(v["ok"].clone()),
    }
}

pub fn status(info: &Value) -> &str {
    // The SDKs leave out default values: no status is EGRESS_STARTING.
    info["status"].as_str().unwrap_or("EGRESS_STARTING")
}

/// Polls ListEgress for one egress until `pred` holds.
pub async fn wait_for(sdk: Sdk, url: &str, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = call(sdk, url, SECRET, "listEgress", json!({ "egressId": id })).await.unwrap();
        if let Some(info) = list.as_array().and_then(|l| l.first())
            && pred(info)
        {
            return info.clone();
        }
        assert!(Instant::now() < deadline, "egress {id} never became {what}: {list}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// One egress's value of a Prometheus metric from `/metrics` (`tessera_` and the name).
pub async fn job_metric(url: &str, name: &str, id: &str) -> f64 {
    let metrics = reqwest::get(format!("{url}/metrics")).await.unwrap().text().await.unwrap();
    let key = format!("tessera_{name}{{egress_id=\"{id}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&key))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} for {id}: {metrics}"))
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A raw Twirp call: (HTTP status, Content-Type, body).
pub async fn raw(
    url: &str,
    method: &str,
    token: Option<&str>,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, String, Vec<u8>) {
    let mut req = reqwest::Client::new()
        .post(format!("{url}/twirp/livekit.Egress/{method}"))
        .header("Content-Type", content_type)
        .body(body);
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    (status, ct, resp.bytes().await.unwrap().to_vec())
}

pub fn record_token(secret: &str, grants: livekit_api::access_token::VideoGrants, ttl: Duration) -> String {
    livekit_api::access_token::AccessToken::with_api_key(KEY, secret)
        .with_identity("caller")
        .with_ttl(ttl)
        .with_grants(grants)
        .to_jwt()
        .unwrap()
}

pub fn recorder_grant() -> livekit_api::access_token::VideoGrants {
    livekit_api::access_token::VideoGrants { room_record: true, ..Default::default() }
}

/// tests/peers/webhook_receiver.py: LiveKit's Python SDK verifying every webhook it gets.
pub struct Hooks {
    pub port: u16,
    _proc: tokio::process::Child,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    /// Every verified event so far.
    pub events: Vec<Value>,
}

impl Hooks {
    /// `fail_first`: that many deliveries are refused (500), so the sender must retry.
    pub async fn start(fail_first: u32) -> Hooks {
        use tokio::io::AsyncBufReadExt;
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut proc = tokio::process::Command::new(root.join("target/peers-venv/bin/python"))
            .arg(root.join("tests/peers/webhook_receiver.py"))
            .args(["0", KEY, SECRET, "--fail-first", &fail_first.to_string()])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = tokio::io::BufReader::new(proc.stdout.take().unwrap()).lines();
        let first = lines.next_line().await.unwrap().expect("the webhook receiver starts");
        let port = serde_json::from_str::<Value>(&first).unwrap()["listening"].as_u64().unwrap() as u16;
        Hooks { port, _proc: proc, lines, events: Vec::new() }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Reads events until `done(events)` holds; every one must verify.
    pub async fn until(&mut self, limit: Duration, done: impl Fn(&[Value]) -> bool) -> &[Value] {
        let deadline = Instant::now() + limit;
        while !done(&self.events) {
            let line = tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), self.lines.next_line())
                .await
                .unwrap_or_else(|_| panic!("webhooks so far: {:?}", self.events))
                .unwrap()
                .expect("the webhook receiver ended");
            let v: Value = serde_json::from_str(&line).unwrap();
            if v["failedOnPurpose"] == true {
                continue;
            }
            assert_eq!(v["valid"], true, "{v}");
            self.events.push(v);
        }
        &self.events
    }

    /// (event, status) of one egress's events, in arrival order.
    pub fn of(&self, egress_id: &str) -> Vec<(String, String)> {
        self.events
            .iter()
            .filter(|e| e["egressId"] == egress_id)
            .map(|e| (e["event"].as_str().unwrap_or("").to_string(), e["status"].as_str().unwrap_or("").to_string()))
            .collect()
    }
}
