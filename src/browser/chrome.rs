//! Debian's Chromium, headed on the job's display (as LiveKit runs it: what is drawn
//! is what is captured), playing into the job's audio sink, with a fresh profile and
//! the flags these machines need (no background networking: its connections are
//! refused here, many at a time). DevTools listens on a port Chromium picks, which it
//! writes to `DevToolsActivePort` in the profile.

use super::BrowserError;
use super::process::Owned;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) struct Chrome {
    pub devtools_port: u16,
    pub process: Owned,
}

/// The Chromium binary: `TESSERA_CHROMIUM`, else the first of Debian's names found.
pub(crate) fn binary() -> String {
    if let Ok(b) = std::env::var("TESSERA_CHROMIUM") {
        return b;
    }
    for b in ["chromium", "chromium-browser", "google-chrome"] {
        if std::env::var_os("PATH").map(|p| std::env::split_paths(&p).any(|d| d.join(b).exists())).unwrap_or(false) {
            return b.to_string();
        }
    }
    "chromium".to_string()
}

impl Chrome {
    /// Starts Chromium on `display` at `width` x `height`, its profile under `dir`.
    pub(crate) fn start(
        display: &str,
        width: u32,
        height: u32,
        dir: &Path,
        env: &[(&'static str, String)],
        insecure: bool,
    ) -> Result<Self, BrowserError> {
        let profile = dir.join("profile");
        std::fs::create_dir_all(&profile)
            .map_err(|e| BrowserError::Io { what: profile.display().to_string(), source: e })?;
        let mut cmd = Command::new(binary());
        cmd.args([
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--disable-extensions",
            "--disable-breakpad",
            "--disable-client-side-phishing-detection",
            "--disable-hang-monitor",
            "--disable-popup-blocking",
            "--disable-prompt-on-repost",
            "--disable-background-timer-throttling",
            "--disable-backgrounding-occluded-windows",
            "--disable-renderer-backgrounding",
            "--disable-ipc-flooding-protection",
            "--disable-features=AudioServiceOutOfProcess,Translate,TranslateUI,MediaRouter,OptimizationHints",
            "--disable-quic",
            "--metrics-recording-only",
            "--password-store=basic",
            "--use-mock-keychain",
            "--force-color-profile=srgb",
            "--autoplay-policy=no-user-gesture-required",
            "--hide-scrollbars",
            "--kiosk",
            "--window-position=0,0",
            "--remote-debugging-port=0",
            "--remote-allow-origins=*",
        ])
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("--user-data-dir={}", profile.display()));
        if insecure {
            cmd.args(["--disable-web-security", "--allow-running-insecure-content"]);
        }
        cmd.arg("about:blank")
            .env("DISPLAY", display)
            .env("HOME", dir)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("chromium.log")).map(Stdio::from).unwrap_or(Stdio::null()));
        let mut process = Owned::spawn("chromium", cmd)
            .map_err(|e| BrowserError::Io { what: format!("cannot start Chromium ({})", binary()), source: e })?;
        let port_file = profile.join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(30);
        let devtools_port = loop {
            if let Some(port) =
                std::fs::read_to_string(&port_file).ok().and_then(|t| t.lines().next()?.trim().parse().ok())
            {
                break port;
            }
            if !process.alive() {
                let log = std::fs::read_to_string(dir.join("chromium.log")).unwrap_or_default();
                let tail: String = log.lines().rev().take(3).collect::<Vec<_>>().join(" / ");
                return Err(BrowserError::Setup(format!("Chromium exited at start: {tail}")));
            }
            if Instant::now() > deadline {
                return Err(BrowserError::Setup("Chromium did not open DevTools within 30 s".into()));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Ok(Self { devtools_port, process })
    }

    /// The page target's WebSocket URL (the window opened with about:blank).
    pub(crate) async fn page_ws(&self) -> Result<String, BrowserError> {
        let url = format!("http://127.0.0.1:{}/json/list", self.devtools_port);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let targets = async { reqwest::get(&url).await?.text().await }.await;
            if let Ok(list) = targets.map(|t| serde_json::from_str::<serde_json::Value>(&t).unwrap_or_default())
                && let Some(ws) = list.as_array().into_iter().flatten().find_map(|t| {
                    (t["type"] == "page").then(|| t["webSocketDebuggerUrl"].as_str().map(String::from)).flatten()
                })
            {
                return Ok(ws);
            }
            if Instant::now() > deadline {
                return Err(BrowserError::Setup("Chromium shows no page target".into()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
