//! Command-line interface.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "tessera", version, about = "Records and live-streams LiveKit rooms without a browser")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render a layout with synthetic participants to a PNG (one frame) or an MP4 clip.
    Preview(Box<PreviewArgs>),
    /// List the layouts (and check the layout files).
    Layouts(LayoutsArgs),
    /// A local LiveKit-protocol room server for the demo and tests (not a production SFU).
    Devroom(DevroomArgs),
    /// Join a LiveKit room as a hidden recorder and record the composite to a file.
    Record(Box<RecordArgs>),
    /// Start devroom with synthetic participants and record them (the README's first command).
    Demo(DemoArgs),
    /// Serve LiveKit's Egress API (Twirp): room composites recorded by this process.
    Serve(ServeArgs),
    /// Measure the compositor: render-and-readback cost per frame (used by bench/).
    #[command(hide = true)]
    BenchRender(BenchArgs),
}

#[derive(Debug, Args)]
pub struct DevroomArgs {
    #[arg(long, default_value = "127.0.0.1:7880")]
    pub bind: std::net::SocketAddr,
    /// API key clients sign their tokens with (LiveKit's dev default).
    #[arg(long, env = "LIVEKIT_API_KEY", default_value = "devkey")]
    pub api_key: String,
    #[arg(long, env = "LIVEKIT_API_SECRET", default_value = "secret", hide_env_values = true)]
    pub api_secret: String,
    /// Seconds an empty room stays open.
    #[arg(long, default_value_t = 20)]
    pub empty_timeout: u64,
    /// Percent of media packets to subscribers dropped (a lossy network, for tests).
    #[arg(long, default_value_t = 0.0)]
    pub loss_percent: f64,
    /// Up to this many milliseconds of random delay on each media packet to subscribers.
    #[arg(long, default_value_t = 0)]
    pub jitter_ms: u64,
    /// Synthetic participants to put in the room (each a moving pattern in its colour and a tone).
    #[arg(long, default_value_t = 0)]
    pub synthetic: usize,
    /// Room the synthetic participants join.
    #[arg(long, default_value = "demo")]
    pub room: String,
    /// The first synthetic participant also shares a screen.
    #[arg(long)]
    pub screen_share: bool,
    /// The last synthetic participant joins 5 s late.
    #[arg(long)]
    pub late_joiner: bool,
    /// The second synthetic participant leaves after 10 s.
    #[arg(long)]
    pub leaver: bool,
    /// The third synthetic participant mutes and unmutes every 4 s.
    #[arg(long)]
    pub mute_toggle: bool,
    /// Flash and beep on the wall clock (every 5 s of Unix time, participant i 0.4 s × i
    /// later), so a receiver can time glass-to-screen latency (bench/latency.sh).
    #[arg(long)]
    pub wall_clock_marks: bool,
    /// Video codec of the synthetic participants: vp8, or h264 (experimental: devroom
    /// forwards H.264 that LiveKit's SDKs publish, but our own H.264 does not decode yet).
    #[arg(long, default_value = "vp8", hide = true)]
    pub codec: String,
    /// Start no room server: publish the synthetic participants into this LiveKit
    /// server instead (ws:// or wss://; a real livekit-server, for benches and load).
    #[arg(long, value_name = "URL")]
    pub publish_to: Option<String>,
}

#[derive(Debug, Args)]
pub struct RecordArgs {
    /// LiveKit server, ws:// or wss://.
    #[arg(long, env = "LIVEKIT_URL", default_value = "ws://127.0.0.1:7880")]
    pub url: String,
    /// API key to mint the recorder's token with.
    #[arg(long, env = "LIVEKIT_API_KEY", default_value = "devkey")]
    pub api_key: String,
    #[arg(long, env = "LIVEKIT_API_SECRET", default_value = "secret", hide_env_values = true)]
    pub api_secret: String,
    /// A ready token instead of minting one (it must grant roomJoin and canSubscribe).
    #[arg(long, env = "TESSERA_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Room to record (with --api-key/--api-secret).
    #[arg(long, required_unless_present = "token")]
    pub room: Option<String>,
    /// grid, speaker, single-speaker, with -light for the white theme.
    #[arg(long, default_value = "grid")]
    pub layout: String,
    #[arg(long, env = "TESSERA_LAYOUTS")]
    pub layouts_dir: Option<PathBuf>,
    #[command(flatten)]
    pub size: OutputSize,
    /// Record the audio mix only (no video encoder).
    #[arg(long)]
    pub audio_only: bool,
    /// Seconds to record; without it, until the room closes or SIGINT/SIGTERM.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Milliseconds each frame is held back so late frames still make their tick.
    #[arg(long, default_value_t = 50)]
    pub delay_ms: u64,
    /// auto (hardware GPU if any, else CPU), cpu, or gpu (wgpu on any adapter, lavapipe included).
    #[arg(long, env = "TESSERA_RENDERER", default_value = "auto")]
    pub renderer: String,
    /// Output file (.mp4).
    #[arg(short, long)]
    pub output: PathBuf,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// YAML configuration: LiveKit egress's keys plus Tessera's (see the README). Without it,
    /// the YAML in TESSERA_CONFIG_BODY or EGRESS_CONFIG_BODY, or the file EGRESS_CONFIG_FILE.
    #[arg(long, env = "TESSERA_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Seconds to record.
    #[arg(long, default_value_t = 20.0)]
    pub duration: f64,
    #[arg(long, default_value = "grid")]
    pub layout: String,
    #[arg(short, long, default_value = "out/demo.mp4")]
    pub output: PathBuf,
}

#[derive(Debug, Args)]
pub struct LayoutsArgs {
    /// Directory of layout files (default: the ones built in).
    #[arg(long, env = "TESSERA_LAYOUTS")]
    pub layouts_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct OutputSize {
    /// A LiveKit encoding preset, e.g. H264_720P_30 or PORTRAIT_H264_1080P_30.
    #[arg(long, conflicts_with_all = ["width", "height"])]
    pub preset: Option<String>,
    /// Output width (with --height), instead of a preset.
    #[arg(long, requires = "height")]
    pub width: Option<u32>,
    #[arg(long, requires = "width")]
    pub height: Option<u32>,
    /// Frames per second.
    #[arg(long)]
    pub fps: Option<u32>,
    /// Video bitrate in kbps (LiveKit's `video_bitrate`).
    #[arg(long)]
    pub video_bitrate: Option<u32>,
    /// Seconds between keyframes (LiveKit's `key_frame_interval`; files default to 2).
    #[arg(long)]
    pub key_frame_interval: Option<f64>,
    /// H.264 profile: baseline, main (LiveKit's) or high.
    #[arg(long)]
    pub h264_profile: Option<String>,
    /// AAC bitrate in kbps (default 128).
    #[arg(long)]
    pub audio_bitrate: Option<u32>,
    /// AAC sample rate: 44100 (default) or 48000.
    #[arg(long)]
    pub audio_frequency: Option<u32>,
}

#[derive(Debug, Args)]
pub struct PreviewArgs {
    /// grid, speaker, single-speaker, with -light for the white theme.
    #[arg(long, default_value = "grid")]
    pub layout: String,
    #[arg(long, default_value_t = 4)]
    pub participants: usize,
    /// The first participant also shares a screen.
    #[arg(long)]
    pub screen_share: bool,
    /// Participant number (from 1) who is speaking; repeatable.
    #[arg(long)]
    pub speaking: Vec<usize>,
    /// Participant number (from 1) whose microphone is muted; repeatable.
    #[arg(long)]
    pub muted: Vec<usize>,
    /// Participant number (from 1) whose camera is off; repeatable.
    #[arg(long)]
    pub camera_off: Vec<usize>,
    #[command(flatten)]
    pub size: OutputSize,
    /// Seconds of MP4 to write.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// auto (hardware GPU if any, else CPU), cpu, or gpu (wgpu on any adapter, lavapipe included).
    #[arg(long, env = "TESSERA_RENDERER", default_value = "auto")]
    pub renderer: String,
    #[arg(long, env = "TESSERA_LAYOUTS")]
    pub layouts_dir: Option<PathBuf>,
    /// Produce frames at real-time pace rather than as fast as possible.
    #[arg(long)]
    pub realtime: bool,
    /// Also write the rendered frames as raw I420 to this file.
    #[arg(long, hide = true)]
    pub raw_video_out: Option<PathBuf>,
    /// Output file: .png for one frame, .mp4 for a clip.
    #[arg(short, long)]
    pub output: PathBuf,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[arg(long, default_value_t = 300)]
    pub frames: u32,
    #[arg(long, default_value_t = 4)]
    pub inputs: usize,
    #[arg(long, default_value = "grid")]
    pub layout: String,
    #[arg(long, default_value_t = 1280)]
    pub width: u32,
    #[arg(long, default_value_t = 720)]
    pub height: u32,
    #[arg(long, default_value = "cpu")]
    pub renderer: String,
}
