//! `tessera serve`'s configuration: a YAML file (or the YAML itself in an
//! environment variable) that takes LiveKit egress's keys, so an existing egress
//! config works, plus Tessera's own. Unknown keys are warned about; invalid values
//! are refused at start with the key named.

use crate::time::deserialize_duration as duration;
use crate::upload::config::{Provider, Secret, StorageConfig, StorageConfigError, StorageSpec};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ServiceConfigError {
    #[error("cannot read the config file {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("invalid config: {0}")]
    Parse(String),
    #[error("invalid config: {key}: {why}")]
    Invalid { key: &'static str, why: String },
    #[error("invalid config: {0}")]
    Storage(#[from] crate::upload::config::StorageConfigError),
}

fn invalid(key: &'static str, why: impl Into<String>) -> ServiceConfigError {
    ServiceConfigError::Invalid { key, why: why.into() }
}

/// The whole configuration. Field names are LiveKit egress's where the two share a meaning.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ServiceConfig {
    // --- LiveKit egress keys ---
    pub api_key: String,
    pub api_secret: String,
    /// The LiveKit server recordings join (ws:// or wss://).
    pub ws_url: String,
    pub log_level: String,
    /// Serves `/` with the health answer when set (LiveKit's key); `/health` on `listen` always.
    pub health_port: u16,
    /// Serves `/metrics` when set (LiveKit's key); `/metrics` on `listen` always.
    pub prometheus_port: u16,
    pub session_limits: SessionLimits,
    pub cpu_cost: CpuCost,
    /// Where outputs are uploaded unless a request names its own storage (none: they stay in `output_dir`).
    pub storage: Option<StorageConfig>,
    /// Where an output goes once its primary storage fails (LiveKit's `backup`).
    pub backup: Option<StorageConfig>,
    /// LiveKit's keys before 1.9: `backup_storage` a local directory, `s3`/`azure`/`gcp`
    /// the storage at the top level. Read as `backup` and `storage`, with a warning.
    pub backup_storage: Option<PathBuf>,
    pub s3: Option<serde_yaml_ng::Value>,
    pub azure: Option<serde_yaml_ng::Value>,
    pub gcp: Option<serde_yaml_ng::Value>,
    pub alioss: Option<serde_yaml_ng::Value>,
    /// Fleet mode: with it set, `tessera serve` joins a LiveKit deployment's egress fleet
    /// (psrpc over this Redis) and livekit-server dispatches jobs to it.
    pub redis: Option<RedisConfig>,
    /// LiveKit's `cluster_id`: the StartEgress topic this node bids on. Empty for
    /// livekit-server (OSS), which sends every request on the empty topic.
    pub cluster_id: String,
    /// Chromium without web security, for template pages (LiveKit's key).
    pub insecure: bool,
    /// LiveKit's `logging` block: the level and JSON lines.
    pub logging: Logging,
    /// Refuse requests whose outputs would stay on this machine (LiveKit's key).
    pub disallow_local_storage: bool,
    /// Write through symbolic links inside `output_dir` that lead out of it (another disk the
    /// operator linked in). Off: such a path is refused, since a request could otherwise write
    /// wherever a stray link points.
    pub follow_links_out_of_output_dir: bool,
    /// LiveKit's latency keys, with the recorder's meanings (see `Latency`).
    pub latency: Latency,

    // --- Tessera's own ---
    /// Address of the Egress API (Twirp), health and metrics.
    pub listen: String,
    /// Local files go here; request paths are confined to it.
    pub output_dir: PathBuf,
    /// `auto`, `cpu` or `gpu`: the compositor backend every job uses.
    pub renderer: String,
    /// Layout files other than the built-in ones.
    pub layouts_dir: Option<PathBuf>,
    /// Where egress_started / egress_updated / egress_ended are POSTed.
    pub webhook: Webhook,
    /// On SIGTERM, how long running jobs may go on before they are stopped (0: stop them at once).
    #[serde(deserialize_with = "duration")]
    pub drain_timeout: Option<Duration>,
    /// The Chromium path (custom templates, web egress).
    pub browser: BrowserConfig,
    /// How long a finished egress stays listed by ListEgress.
    #[serde(deserialize_with = "duration")]
    pub keep_finished: Option<Duration>,
    /// The addresses recordings' peer connections bind (LiveKit's server calls its
    /// counterpart `rtc`).
    pub rtc: RtcConfig,
}

/// Where the recorder's peer connections bind. Unset: loopback when `ws_url` is on
/// loopback, else every interface over UDP and TCP (ICE-TCP for networks that block
/// UDP). The STUN and TURN servers the LiveKit server sends are used either way.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RtcConfig {
    /// UDP `address:port` to bind (`0.0.0.0:0`: every interface but loopback).
    pub udp: Vec<String>,
    /// TCP `address:port` to bind for ICE-TCP; empty with `udp` set: UDP only.
    pub tcp: Vec<String>,
}

impl RtcConfig {
    /// The peer connections' policy, if the config sets one.
    pub fn network(&self) -> Option<crate::peer::Network> {
        (!self.udp.is_empty() || !self.tcp.is_empty()).then(|| crate::peer::Network {
            udp: self.udp.clone(),
            tcp: self.tcp.clone(),
            ..crate::peer::Network::loopback()
        })
    }
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            api_key: String::new(),
            api_secret: String::new(),
            ws_url: "ws://127.0.0.1:7880".into(),
            log_level: "info".into(),
            health_port: 0,
            prometheus_port: 0,
            session_limits: SessionLimits::default(),
            cpu_cost: CpuCost::default(),
            storage: None,
            backup: None,
            backup_storage: None,
            s3: None,
            azure: None,
            gcp: None,
            alioss: None,
            redis: None,
            cluster_id: String::new(),
            insecure: false,
            logging: Logging::default(),
            disallow_local_storage: false,
            follow_links_out_of_output_dir: false,
            latency: Latency::default(),
            listen: "127.0.0.1:7980".into(),
            output_dir: PathBuf::from("recordings"),
            renderer: "auto".into(),
            layouts_dir: None,
            webhook: Webhook::default(),
            browser: BrowserConfig::default(),
            drain_timeout: None,
            keep_finished: Some(Duration::from_secs(24 * 3600)),
            rtc: RtcConfig::default(),
        }
    }
}

/// LiveKit's `redis` block (fleet mode). One address; TLS, Sentinel and Cluster are refused
/// at start with the key named.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RedisConfig {
    /// host:port
    pub address: String,
    pub username: String,
    pub password: Secret,
    pub db: i64,
    pub use_tls: bool,
    pub sentinel_master_name: String,
    pub sentinel_addresses: Vec<String>,
    pub sentinel_username: String,
    pub sentinel_password: Secret,
    pub cluster_addresses: Vec<String>,
}

impl RedisConfig {
    /// The connection URL (credentials percent-encoded; never logged: `address` is).
    pub(crate) fn url(&self) -> String {
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let auth = match (self.username.as_str(), self.password.expose()) {
            ("", "") => String::new(),
            (u, p) => format!("{}:{}@", enc(u), enc(p)),
        };
        format!("redis://{auth}{}/{}", self.address, self.db)
    }
}

/// LiveKit's `logging` block. `level` (when set) wins over the top-level `log_level`; `json`
/// writes one JSON object a line, for log pipelines. LiveKit's sampling keys are accepted and
/// warned about (Tessera does not sample its logs).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Logging {
    pub json: bool,
    pub level: String,
}

/// The LiveKit egress keys Tessera reads but that have no effect here, each with why; a
/// config written for LiveKit's egress starts, and the log says what was not used.
const UNUSED_LIVEKIT_KEYS: [(&str, &str); 35] = [
    ("template_base", "the built-in layouts are rendered natively; custom templates come as custom_base_url"),
    ("template_port", "there is no built-in template server: the layouts are rendered natively"),
    ("debug_handler_port", "Tessera has no per-job handler processes"),
    ("enable_chrome_sandbox", "Chromium runs without its sandbox (as root in a display of its own)"),
    ("location", "not used by Tessera"),
    ("logging.sample", "logs are not sampled"),
    ("logging.sample_initial", "logs are not sampled"),
    ("logging.sample_interval", "logs are not sampled"),
    ("logging.item_sample_seconds", "logs are not sampled"),
    ("logging.item_sample_initial", "logs are not sampled"),
    ("logging.item_sample_interval", "logs are not sampled"),
    ("logging.component_levels", "use TESSERA_LOG (tracing's filter syntax) for per-module levels"),
    ("max_upload_queue", "uploads are queued per job without a limit"),
    ("io_create_timeout", "fleet mode's IOInfo calls use their own timeouts and retry until the server has the state"),
    ("io_update_timeout", "fleet mode's IOInfo calls use their own timeouts and retry until the server has the state"),
    (
        "io_selection_timeout",
        "fleet mode's IOInfo calls use their own timeouts and retry until the server has the state",
    ),
    ("io_workers", "fleet mode's IOInfo calls use their own timeouts and retry until the server has the state"),
    ("s3_assume_role_key", "S3 AssumeRole is not supported"),
    ("s3_assume_role_secret", "S3 AssumeRole is not supported"),
    ("s3_assume_role_arn", "S3 AssumeRole is not supported"),
    ("s3_assume_role_external_id", "S3 AssumeRole is not supported"),
    ("debug", "LiveKit's debug uploads (GStreamer dot files, track dumps) do not exist here"),
    ("chrome_flags", "Chromium's flags are Tessera's own"),
    ("latency_overrides", "one latency block serves every kind of egress"),
    ("video_encoder_threads", "x264 picks its threads"),
    ("enable_one_shot_sender_report_sync", "the recorder always syncs on every sender report"),
    ("enable_sync_engine", "the recorder always syncs on every sender report"),
    ("audio_tempo_controller", "audio is placed on the room clock, not tempo-adjusted"),
    ("test_overrides", "LiveKit's fault injection; Tessera's tests use devroom's"),
    ("pulse_sink_reap_grace_sec", "each Chromium job has its own PulseAudio, removed with the job"),
    ("cpu_cost.max_memory", "admission counts CPU only"),
    ("cpu_cost.memory_cost", "admission counts CPU only"),
    ("cpu_cost.sdk_audio_room_composite_memory_cost", "admission counts CPU only"),
    ("cpu_cost.max_pulse_clients", "each Chromium job has its own PulseAudio"),
    ("session_limits.file_output_max_size", "files are limited by duration only"),
];

/// Why a key the config parser did not use was not used: a LiveKit key with no effect here
/// (and why), or an unknown key.
pub(crate) fn why_unused(key: &str) -> Option<&'static str> {
    let extra = [
        ("cpu_cost.memory_source", "admission counts CPU only"),
        ("cpu_cost.memory_kill_grace_sec", "admission counts CPU only"),
        ("cpu_cost.cpu_kill_grace_sec", "jobs are admitted by cost, not killed for using more"),
        ("latency.old_packet_threshold", "the jitter buffer's wait (jitter_buffer_latency) bounds old packets"),
        ("latency.rtpmaxallowedtsdiff", "the recorder places media by sender reports, not by RTP drift"),
        ("latency.rtpmaxdriftadjustment", "the recorder places media by sender reports, not by RTP drift"),
        ("latency.rtpdriftadjustmentwindowpercent", "the recorder places media by sender reports, not by RTP drift"),
    ];
    UNUSED_LIVEKIT_KEYS
        .iter()
        .chain(extra.iter())
        .find(|(k, _)| key == *k || key.starts_with(&format!("{k}.")))
        .map(|(_, why)| *why)
}

/// LiveKit's session limits: an output kind's longest recording (none when unset).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SessionLimits {
    #[serde(deserialize_with = "duration")]
    pub file_output_max_duration: Option<Duration>,
    #[serde(deserialize_with = "duration")]
    pub stream_output_max_duration: Option<Duration>,
    #[serde(deserialize_with = "duration")]
    pub segment_output_max_duration: Option<Duration>,
    #[serde(deserialize_with = "duration")]
    pub image_output_max_duration: Option<Duration>,
}

/// Admission: CPU cores a job is expected to use, against the machine's cores times
/// `max_cpu_utilization`. LiveKit's keys; the defaults are Tessera's measured costs
/// (bench/RESULTS.md: 0.33 to 0.37 of a core for a 720p30 room composite), not
/// LiveKit's 4 cores. Video costs scale with pixels per second from 720p30.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct CpuCost {
    pub room_composite_cpu_cost: f64,
    pub audio_room_composite_cpu_cost: f64,
    pub web_cpu_cost: f64,
    pub audio_web_cpu_cost: f64,
    pub participant_cpu_cost: f64,
    pub track_composite_cpu_cost: f64,
    pub track_cpu_cost: f64,
    /// An audio-only room composite recorded from the SDK (no layout, no template); LiveKit's
    /// default is `audio_room_composite_cpu_cost`.
    pub sdk_audio_room_composite_cpu_cost: Option<f64>,
    pub max_cpu_utilization: f64,
    /// Cores the budget counts; 0 means every core the machine has.
    pub cpus: f64,
}

impl Default for CpuCost {
    fn default() -> Self {
        Self {
            room_composite_cpu_cost: 0.5,
            audio_room_composite_cpu_cost: 0.1,
            web_cpu_cost: 1.0,
            audio_web_cpu_cost: 0.5,
            participant_cpu_cost: 0.5,
            track_composite_cpu_cost: 0.5,
            track_cpu_cost: 0.1,
            sdk_audio_room_composite_cpu_cost: None,
            max_cpu_utilization: 0.8,
            cpus: 0.0,
        }
    }
}

impl CpuCost {
    /// The cores admission may hand out.
    pub fn budget(&self) -> f64 {
        let cpus = if self.cpus > 0.0 {
            self.cpus
        } else {
            std::thread::available_parallelism().map(|n| n.get() as f64).unwrap_or(1.0)
        };
        cpus * self.max_cpu_utilization
    }
}

/// LiveKit's `latency` block, read as the native recorder's delays (each unset keeps
/// Tessera's default, far below LiveKit's seconds): `jitter_buffer_latency` is how long a
/// gap in a track waits for its retransmission (300 ms), `audio_mixer_latency` how far
/// behind real time audio is mixed so late packets still make it (200 ms), and
/// `pipeline_latency` how long each video frame is held so a late one still makes its
/// tick (50 ms). Live streams wait for the audio, so the mixer's delay is most of their
/// latency (bench/latency.sh).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Latency {
    #[serde(deserialize_with = "duration")]
    pub jitter_buffer_latency: Option<Duration>,
    #[serde(deserialize_with = "duration")]
    pub audio_mixer_latency: Option<Duration>,
    #[serde(deserialize_with = "duration")]
    pub pipeline_latency: Option<Duration>,
}

/// Tessera's settings for pages recorded in Chromium.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct BrowserConfig {
    /// Fail a page that has not logged START_RECORDING after this long (unset: wait, as LiveKit does).
    #[serde(deserialize_with = "duration")]
    pub start_timeout: Option<Duration>,
}

/// LiveKit server's webhook block: events are signed with `api_key` (default: the service's key).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Webhook {
    pub api_key: String,
    pub urls: Vec<String>,
}

/// Where the configuration came from, for the log.
#[derive(Debug, Clone)]
pub enum Source {
    File(PathBuf),
    Env(&'static str),
    Defaults,
}

/// A loaded configuration and the keys it did not know.
#[derive(Debug)]
pub struct Loaded {
    pub config: ServiceConfig,
    pub unknown_keys: Vec<String>,
    pub source: Source,
}

/// Environment variables holding the YAML itself (Tessera's, then LiveKit egress's).
pub(crate) const BODY_VARS: [&str; 2] = ["TESSERA_CONFIG_BODY", "EGRESS_CONFIG_BODY"];

impl ServiceConfig {
    /// Loads from `path`, else from the YAML in an environment variable, else defaults;
    /// then checks every value.
    pub fn load(path: Option<&Path>) -> Result<Loaded, ServiceConfigError> {
        let (text, source) = match path {
            Some(p) => {
                (std::fs::read_to_string(p).map_err(|e| ServiceConfigError::Read(p.into(), e))?, Source::File(p.into()))
            }
            None => match BODY_VARS.iter().find_map(|v| std::env::var(v).ok().map(|b| (b, *v))) {
                Some((body, var)) => (body, Source::Env(var)),
                None => (String::new(), Source::Defaults),
            },
        };
        let mut loaded = Self::parse(&text)?;
        loaded.source = source;
        Ok(loaded)
    }

    pub fn parse(text: &str) -> Result<Loaded, ServiceConfigError> {
        let mut unknown_keys = Vec::new();
        let config: ServiceConfig = if text.trim().is_empty() {
            ServiceConfig::default()
        } else {
            let de = serde_yaml_ng::Deserializer::from_str(text);
            let mut note = |path: serde_ignored::Path| unknown_keys.push(path.to_string());
            let de = serde_ignored::Deserializer::new(de, &mut note);
            // The path names the key even when the error comes from a nested value.
            serde_path_to_error::deserialize(de)
                .map_err(|e| ServiceConfigError::Parse(format!("{}: {}", e.path(), e.inner())))?
        };
        config.check()?;
        Ok(Loaded { config, unknown_keys, source: Source::Defaults })
    }

    fn check(&self) -> Result<(), ServiceConfigError> {
        if self.api_key.is_empty() || self.api_secret.is_empty() {
            return Err(invalid(
                "api_key",
                "api_key and api_secret are required: they check the Egress API's tokens and sign the recorder's",
            ));
        }
        if !(self.ws_url.starts_with("ws://") || self.ws_url.starts_with("wss://")) {
            return Err(invalid("ws_url", format!("{:?} must start with ws:// or wss://", self.ws_url)));
        }
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid("listen", format!("{:?} is not an address like 127.0.0.1:7980", self.listen)));
        }
        if let Some(r) = &self.redis {
            if r.address.is_empty() {
                return Err(invalid("redis.address", "is required with redis (host:port)"));
            }
            if r.use_tls {
                return Err(invalid("redis.use_tls", "TLS to Redis is not built in yet; use a TLS-terminating proxy"));
            }
            if !r.sentinel_master_name.is_empty() || !r.sentinel_addresses.is_empty() {
                return Err(invalid(
                    "redis.sentinel_addresses",
                    "Redis Sentinel is not supported yet; give one address",
                ));
            }
            if !r.cluster_addresses.is_empty() {
                return Err(invalid("redis.cluster_addresses", "Redis Cluster is not supported yet; give one address"));
            }
        }
        if !["auto", "cpu", "gpu"].contains(&self.renderer.as_str()) {
            return Err(invalid("renderer", format!("{:?}: choose auto, cpu or gpu", self.renderer)));
        }
        for (key, level) in [("log_level", &self.log_level), ("logging.level", &self.logging.level)] {
            if !["", "debug", "info", "warn", "error", "trace"].contains(&level.to_ascii_lowercase().as_str()) {
                return Err(invalid(key, format!("{level:?}: choose debug, info, warn or error")));
            }
        }
        let c = &self.cpu_cost;
        if !(c.max_cpu_utilization > 0.0 && c.max_cpu_utilization <= 1.0) {
            return Err(invalid("cpu_cost.max_cpu_utilization", format!("{} is not in (0, 1]", c.max_cpu_utilization)));
        }
        for (key, v) in [
            ("cpu_cost.room_composite_cpu_cost", c.room_composite_cpu_cost),
            ("cpu_cost.audio_room_composite_cpu_cost", c.audio_room_composite_cpu_cost),
            ("cpu_cost.cpus", c.cpus),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(invalid(key, format!("{v} must be a number of cores, 0 or more")));
            }
        }
        if self.alioss.is_some() {
            return Err(invalid("alioss", "Alibaba OSS is not supported; use s3, azure or gcp"));
        }
        if self.storage.is_some() && (self.s3.is_some() || self.azure.is_some() || self.gcp.is_some()) {
            return Err(invalid(
                "storage",
                "give the storage either under storage: or at the top level (old style), not both",
            ));
        }
        self.storage_spec()?;
        self.backup_spec()?;
        for url in &self.webhook.urls {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(invalid("webhook.urls", format!("{url:?} must be an http:// or https:// URL")));
            }
        }
        Ok(())
    }

    /// The `storage` block, or the old top-level keys read as one.
    pub(crate) fn storage_block(&self) -> Result<Option<StorageConfig>, StorageConfigError> {
        match &self.storage {
            Some(s) => Ok(Some(s.clone())),
            None => crate::upload::config::legacy(self.s3.as_ref(), self.azure.as_ref(), self.gcp.as_ref()),
        }
    }

    /// Where outputs go when a request names no storage (None: they stay in output_dir).
    pub(crate) fn storage_spec(&self) -> Result<Option<StorageSpec>, StorageConfigError> {
        let at = if self.storage.is_some() { "storage" } else { "" };
        match self.storage_block()? {
            Some(b) => b.spec(at).map_err(|mut e| {
                e.key = e.key.trim_start_matches('.').to_string();
                e
            }),
            None => Ok(None),
        }
    }

    /// The backup storage: `backup`, or the old `backup_storage` directory.
    pub(crate) fn backup_spec(&self) -> Result<Option<StorageSpec>, StorageConfigError> {
        match (&self.backup, &self.backup_storage) {
            (Some(b), _) => b.spec("backup"),
            (None, Some(dir)) => Ok(Some(StorageSpec {
                prefix: String::new(),
                provider: Provider::Local(crate::upload::config::LocalConfig { storage_dir: dir.clone() }),
            })),
            (None, None) => Ok(None),
        }
    }

    /// Old-style keys in use, to warn about.
    pub(crate) fn legacy_keys(&self) -> Vec<&'static str> {
        [
            ("s3", self.s3.is_some()),
            ("azure", self.azure.is_some()),
            ("gcp", self.gcp.is_some()),
            ("backup_storage", self.backup_storage.is_some()),
        ]
        .into_iter()
        .filter(|(_, used)| *used)
        .map(|(k, _)| k)
        .collect()
    }

    /// The log level: `logging.level`, else `log_level`.
    pub fn log_level(&self) -> String {
        let l = if self.logging.level.is_empty() { &self.log_level } else { &self.logging.level };
        if l.is_empty() { "info".into() } else { l.to_ascii_lowercase() }
    }

    /// The key webhooks are signed with, and its secret.
    pub(crate) fn webhook_key(&self) -> &str {
        if self.webhook.api_key.is_empty() { &self.api_key } else { &self.webhook.api_key }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "api_key: devkey\napi_secret: secret\n";

    #[test]
    fn livekit_egress_config_loads_and_unknown_keys_are_listed() {
        let yaml = format!(
            "{BASE}ws_url: wss://example.livekit.cloud\nhealth_port: 8080\nprometheus_port: 9090\n\
             log_level: debug\nsession_limits:\n  file_output_max_duration: 1h30m\n  stream_output_max_duration: 90\n\
             cpu_cost:\n  room_composite_cpu_cost: 0.7\n  max_cpu_utilization: 0.5\n\
             insecure: true\nmystery: 1\nwebhook:\n  urls: [http://127.0.0.1:9/hook]\n  colour: red\n\
             latency:\n  audio_mixer_latency: 40ms\n"
        );
        let l = ServiceConfig::parse(&yaml).unwrap();
        let c = &l.config;
        assert_eq!(c.session_limits.file_output_max_duration, Some(Duration::from_secs(5400)));
        assert_eq!(c.session_limits.stream_output_max_duration, Some(Duration::from_secs(90)));
        assert_eq!((c.cpu_cost.room_composite_cpu_cost, c.cpu_cost.max_cpu_utilization), (0.7, 0.5));
        assert_eq!(c.webhook_key(), "devkey");
        assert_eq!(c.latency.audio_mixer_latency, Some(Duration::from_millis(40)));
        assert_eq!(c.latency.jitter_buffer_latency, None);
        assert_eq!(l.unknown_keys, vec!["mystery".to_string(), "webhook.colour".to_string()]);
    }

    #[test]
    fn invalid_values_name_their_key() {
        for (yaml, key) in [
            ("api_key: k\n", "api_key"),
            ("ws_url: http://x\n", "ws_url"),
            ("listen: nowhere\n", "listen"),
            ("renderer: magic\n", "renderer"),
            ("cpu_cost:\n  max_cpu_utilization: 2\n", "cpu_cost.max_cpu_utilization"),
            ("session_limits:\n  file_output_max_duration: soon\n", "session_limits.file_output_max_duration"),
            ("health_port: many\n", "health_port"),
            ("storage:\n  s3:\n    region: x\n", "storage.s3.bucket"),
            ("s3:\n  region: x\n", "s3.bucket"),
            ("backup:\n  azure:\n    account_name: a\n", "backup.azure.account_key"),
            ("alioss:\n  bucket: b\n", "alioss"),
            ("webhook:\n  urls: [ftp://x]\n", "webhook.urls"),
        ] {
            let text = if yaml.starts_with("api_key") { yaml.to_string() } else { format!("{BASE}{yaml}") };
            let e = ServiceConfig::parse(&text).unwrap_err().to_string();
            assert!(e.contains(key), "{yaml:?} gave {e}");
        }
    }
}
