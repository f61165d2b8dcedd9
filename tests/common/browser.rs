//! A `livekit-client` publisher in headless Chromium: `tests/peers/browser_publish.html`
//! served from the repository on loopback, its progress read from Chromium's log as
//! "TESSERA <event>" console lines.

use super::python;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// A join token for a browser publisher `identity` in `room`.
#[allow(dead_code)]
pub fn join_token(key: &str, secret: &str, room: &str, identity: &str) -> String {
    let grants = livekit_api::access_token::VideoGrants { room_join: true, room: room.into(), ..Default::default() };
    livekit_api::access_token::AccessToken::with_api_key(key, secret)
        .with_identity(identity)
        .with_grants(grants)
        .to_jwt()
        .unwrap()
}

pub struct BrowserPublisher {
    _http: Child,
    chromium: Child,
    profile: PathBuf,
    lines: mpsc::UnboundedReceiver<String>,
    /// Every "TESSERA" console line so far.
    pub console: Vec<String>,
}

impl BrowserPublisher {
    /// Opens the page with `url`, `token` and the page's other query parameters
    /// (`seconds`, `size` WxH, `fps`, `gain`: see the page).
    pub async fn start(url: &str, token: &str, query: &[(&str, &str)]) -> Self {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        assert!(
            root.join("target/peers-node/node_modules/livekit-client/dist/livekit-client.umd.js").exists(),
            "run scripts/test-peers.sh (make test does) to install livekit-client and Chromium"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let http = Command::new(python())
            .args(["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1", "--directory"])
            .arg(&root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        for _ in 0..50 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut page = format!("http://127.0.0.1:{port}/tests/peers/browser_publish.html?url={url}&token={token}");
        for (k, v) in query {
            page.push_str(&format!("&{k}={v}"));
        }
        let profile = std::env::temp_dir().join(format!("tessera-chromium-{}-{port}", std::process::id()));
        let mut chromium = Command::new("chromium")
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--autoplay-policy=no-user-gesture-required",
                // Loopback candidates, in the clear (no mDNS names): everything here is on 127.0.0.1.
                "--allow-loopback-in-peer-connection",
                "--disable-features=WebRtcHideLocalIpsWithMdns",
                "--enable-logging=stderr",
                "--v=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(&page)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("chromium runs (scripts/test-peers.sh installs it)");
        let (tx, lines) = mpsc::unbounded_channel();
        let mut stderr = BufReader::new(chromium.stderr.take().unwrap()).lines();
        tokio::spawn(async move {
            while let Ok(Some(l)) = stderr.next_line().await {
                if let Some(m) = l.split("\"TESSERA ").nth(1).and_then(|r| r.split('"').next())
                    && tx.send(m.to_string()).is_err()
                {
                    break;
                }
            }
        });
        Self { _http: http, chromium, profile, lines, console: Vec::new() }
    }

    /// Reads the console until a line starting with `prefix` (returned), an error, or `timeout`.
    pub async fn wait_for(&mut self, prefix: &str, timeout: Duration) -> String {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(l)) => {
                    self.console.push(l.clone());
                    assert!(!l.starts_with("ERROR"), "the page failed: {:?}", self.console);
                    if l.starts_with(prefix) {
                        return l;
                    }
                }
                _ => panic!("no \"{prefix}\" from the page within {timeout:?}: {:?}", self.console),
            }
        }
    }

    /// Stops Chromium and returns every console line.
    pub async fn stop(mut self) -> Vec<String> {
        tokio::time::sleep(Duration::from_millis(200)).await;
        while let Ok(l) = self.lines.try_recv() {
            self.console.push(l);
        }
        let _ = self.chromium.start_kill();
        let _ = self.chromium.wait().await;
        let _ = std::fs::remove_dir_all(&self.profile);
        std::mem::take(&mut self.console)
    }
}
