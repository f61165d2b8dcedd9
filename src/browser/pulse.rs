//! An audio server per job: a PulseAudio daemon of its own (own runtime directory, no
//! default configuration) with one null sink Chromium plays into and whose monitor is
//! captured. A daemon per job rather than a sink on a shared daemon, so nothing of a
//! job outlives it and jobs cannot hear each other.

use super::BrowserError;
use super::process::Owned;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) const SINK: &str = "tessera";

pub(crate) struct Pulse {
    /// `unix:/.../native`, for PULSE_SERVER and FFmpeg's `server` option.
    pub server: String,
    _daemon: Owned,
}

impl Pulse {
    pub(crate) fn pid(&self) -> u32 {
        self._daemon.pid()
    }

    /// Starts the daemon with its files under `dir`.
    pub(crate) fn start(dir: &Path) -> Result<Self, BrowserError> {
        let runtime = dir.join("pulse");
        std::fs::create_dir_all(&runtime)
            .map_err(|e| BrowserError::Io { what: runtime.display().to_string(), source: e })?;
        let socket = runtime.join("native");
        let mut cmd = Command::new("pulseaudio");
        cmd.args(["--daemonize=no", "--exit-idle-time=-1", "--disallow-exit", "--use-pid-file=no", "-n"])
            .args(["--disable-shm=yes", "--log-target=stderr", "--log-level=error"])
            .arg(format!("--load=module-native-protocol-unix socket={} auth-anonymous=1", socket.display()))
            .arg(format!("--load=module-null-sink sink_name={SINK} rate=48000 channels=2"))
            .arg("--load=module-always-sink")
            .env("HOME", dir)
            .env("XDG_RUNTIME_DIR", dir)
            .env("PULSE_RUNTIME_PATH", &runtime)
            .env("XDG_CONFIG_HOME", dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut daemon = Owned::spawn("pulseaudio", cmd).map_err(|e| BrowserError::Io {
            what: "cannot start PulseAudio (is the pulseaudio package installed?)".into(),
            source: e,
        })?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            if Instant::now() > deadline || !daemon.alive() {
                return Err(BrowserError::Setup("PulseAudio did not start within 10 s".into()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(Self { server: format!("unix:{}", socket.display()), _daemon: daemon })
    }

    /// Environment a client of this server needs (no cookie: the socket takes anonymous clients).
    pub(crate) fn client_env(&self, dir: &Path) -> Vec<(&'static str, String)> {
        vec![
            ("PULSE_SERVER", self.server.clone()),
            ("PULSE_SINK", SINK.to_string()),
            ("PULSE_COOKIE", PathBuf::from(dir).join("pulse-cookie").display().to_string()),
        ]
    }
}
