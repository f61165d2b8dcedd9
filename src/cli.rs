//! Command-line interface.

use clap::builder::RangedU64ValueParser;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

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
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64), allow_negative_numbers = true)]
    pub empty_timeout: u64,
    /// Percent of media packets to subscribers dropped (a lossy network, for tests).
    #[arg(long, default_value_t = 0.0, value_parser = percent, allow_negative_numbers = true)]
    pub loss_percent: f64,
    /// Up to this many milliseconds of random delay on each media packet to subscribers.
    #[arg(long, default_value_t = 0, value_parser = millis(), allow_negative_numbers = true)]
    pub jitter_ms: u64,
    /// Synthetic participants to put in the room (each a moving pattern in its colour and a tone).
    #[arg(long, default_value_t = 0, value_parser = participants(0), allow_negative_numbers = true)]
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
    /// Record one participant full frame (LiveKit's participant egress) instead of the room.
    #[arg(long)]
    pub participant: Option<String>,
    /// With --participant: its screen share and screen-share audio instead of its camera.
    #[arg(long, requires = "participant")]
    pub screen_share: bool,
    /// Write one track as it was sent, without transcoding (LiveKit's track egress): its sid, or
    /// `identity/source` (`alice/camera`, `alice/microphone`); the extension follows the codec.
    #[arg(long, conflicts_with_all = ["participant", "audio_only"])]
    pub track: Option<String>,
    /// Seconds to record; without it, until the room closes or SIGINT/SIGTERM.
    #[arg(long, value_parser = recording_seconds, allow_negative_numbers = true)]
    pub duration: Option<Duration>,
    /// Milliseconds each frame is held back so late frames still make their tick.
    #[arg(long, default_value_t = 50, value_parser = millis(), allow_negative_numbers = true)]
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
    #[arg(long, default_value = "20", value_parser = recording_seconds, allow_negative_numbers = true)]
    pub duration: Duration,
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
    #[arg(long, value_parser = key_frame_seconds, allow_negative_numbers = true)]
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
    #[arg(long, default_value_t = 4, value_parser = participants(0), allow_negative_numbers = true)]
    pub participants: usize,
    /// The first participant also shares a screen.
    #[arg(long)]
    pub screen_share: bool,
    /// Participant number (from 1) who is speaking; repeatable.
    #[arg(long, value_parser = participants(1), allow_negative_numbers = true)]
    pub speaking: Vec<usize>,
    /// Participant number (from 1) whose microphone is muted; repeatable.
    #[arg(long, value_parser = participants(1), allow_negative_numbers = true)]
    pub muted: Vec<usize>,
    /// Participant number (from 1) whose camera is off; repeatable.
    #[arg(long, value_parser = participants(1), allow_negative_numbers = true)]
    pub camera_off: Vec<usize>,
    #[command(flatten)]
    pub size: OutputSize,
    /// Seconds of MP4 to write.
    #[arg(long, default_value = "10", value_parser = preview_seconds, allow_negative_numbers = true)]
    pub duration: Duration,
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
    // At least one (the summary takes percentiles), at most a million (each frame's time is kept).
    #[arg(long, default_value_t = 300, allow_negative_numbers = true)]
    #[arg(value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub frames: u32,
    #[arg(long, default_value_t = 4, value_parser = participants(0), allow_negative_numbers = true)]
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

/// Most participants a synthetic room has (preview, bench-render, devroom --synthetic).
const MAX_PARTICIPANTS: u64 = 100;
/// Longest hold-back or network delay in milliseconds (--delay-ms, --jitter-ms): 10 s.
const MAX_DELAY_MS: u64 = 10_000;
/// Longest preview clip, in seconds: a day.
const MAX_PREVIEW_S: f64 = 86_400.0;
/// Longest recording (record and demo --duration), in seconds: 7 days.
const MAX_RECORDING_S: f64 = 7.0 * 86_400.0;

/// `--delay-ms` and `--jitter-ms`: 0 to [`MAX_DELAY_MS`].
fn millis() -> RangedU64ValueParser<u64> {
    RangedU64ValueParser::new().range(0..=MAX_DELAY_MS)
}

/// A count of participants (`from` 0) or a participant's number (`from` 1), at most
/// [`MAX_PARTICIPANTS`].
fn participants(from: u64) -> RangedU64ValueParser<usize> {
    RangedU64ValueParser::new().range(from..=MAX_PARTICIPANTS)
}

/// A decimal number within `min..=max`, a finite range: NaN, the infinities and
/// anything outside it are refused.
fn number_in(s: &str, min: f64, max: f64, unit: &str, range: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("not a number of {unit}"))?;
    if (min..=max).contains(&v) { Ok(v) } else { Err(format!("out of range: {range}")) }
}

/// `preview --duration`: 0.1 s to a day.
fn preview_seconds(s: &str) -> Result<Duration, String> {
    number_in(s, 0.1, MAX_PREVIEW_S, "seconds", "0.1 to 86400 seconds").map(Duration::from_secs_f64)
}

/// `record --duration` and `demo --duration`: 0.1 s to 7 days.
fn recording_seconds(s: &str) -> Result<Duration, String> {
    number_in(s, 0.1, MAX_RECORDING_S, "seconds", "0.1 s to 7 days").map(Duration::from_secs_f64)
}

/// `--key-frame-interval`: 0 (the output's default) to 60 seconds, as the encoding options take it.
fn key_frame_seconds(s: &str) -> Result<f64, String> {
    number_in(s, 0.0, 60.0, "seconds", "0 to 60 seconds")
}

/// `devroom --loss-percent`: 0 to 100.
fn percent(s: &str) -> Result<f64, String> {
    number_in(s, 0.0, 100.0, "percent", "0 to 100")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;

    fn parse(args: &str) -> Result<Command, clap::Error> {
        Cli::try_parse_from(std::iter::once("tessera").chain(args.split_whitespace())).map(|c| c.command)
    }

    /// `args` is refused as a bad value of `flag`, with `why` in the message.
    fn refused(args: &str, flag: &str, why: &str) {
        let e = parse(args).expect_err(args);
        assert_eq!(e.kind(), ErrorKind::ValueValidation, "{args}: {e}");
        assert_eq!(e.exit_code(), 2, "{args}");
        let text = e.to_string();
        assert!(text.contains(flag) && text.contains(why), "{args}: {text}");
    }

    #[test]
    fn durations_refuse_negative_nan_and_infinite_seconds() {
        refused("demo --duration=-10", "--duration", "out of range: 0.1 s to 7 days");
        refused("demo --duration -10", "--duration", "out of range: 0.1 s to 7 days");
        refused("demo --duration NaN", "--duration", "out of range");
        refused("demo --duration inf", "--duration", "out of range");
        refused("demo --duration 0", "--duration", "out of range");
        refused("demo --duration ten", "--duration", "not a number of seconds");
        refused("record --room r -o x.mp4 --duration=-1", "--duration", "out of range: 0.1 s to 7 days");
        refused("record --room r -o x.mp4 --duration 604801", "--duration", "out of range");
        refused("preview -o x.mp4 --duration 86401", "--duration", "out of range: 0.1 to 86400 seconds");
        refused("preview -o x.mp4 --duration=-infinity", "--duration", "out of range");
        refused("preview -o x.mp4 --key-frame-interval=-2", "--key-frame-interval", "out of range: 0 to 60");
        refused("preview -o x.mp4 --key-frame-interval nan", "--key-frame-interval", "out of range");
        refused("devroom --loss-percent 101", "--loss-percent", "out of range: 0 to 100");
        refused("devroom --loss-percent=-1", "--loss-percent", "out of range");
        refused("devroom --empty-timeout=-5", "--empty-timeout", "");
        refused("devroom --jitter-ms 10001", "--jitter-ms", "");
        refused("record --room r -o x.mp4 --delay-ms=-1", "--delay-ms", "");
        refused("record --room r -o x.mp4 --delay-ms 10001", "--delay-ms", "");
    }

    #[test]
    fn counts_refuse_zero_where_it_makes_no_sense_and_huge_values() {
        refused("bench-render --frames 0", "--frames", "0 is not in 1..=1000000");
        refused("bench-render --frames=-3", "--frames", "");
        refused("bench-render --inputs 101", "--inputs", "101 is not in 0..=100");
        refused("preview -o x.png --participants 101", "--participants", "101 is not in 0..=100");
        refused("preview -o x.png --participants=-1", "--participants", "");
        refused("preview -o x.png --speaking 0", "--speaking", "0 is not in 1..=100");
        refused("preview -o x.png --muted 0", "--muted", "");
        refused("preview -o x.png --camera-off 0", "--camera-off", "");
        refused("devroom --synthetic 101", "--synthetic", "");
    }

    #[test]
    fn good_values_and_defaults_parse() {
        let Command::Demo(d) = parse("demo --duration 2.5").unwrap() else { panic!() };
        assert_eq!(d.duration, Duration::from_millis(2500));
        let Command::Demo(d) = parse("demo").unwrap() else { panic!() };
        assert_eq!(d.duration, Duration::from_secs(20));

        let Command::Record(r) = parse("record --room r -o x.mp4 --duration 604800 --delay-ms 0").unwrap() else {
            panic!()
        };
        assert_eq!((r.duration, r.delay_ms), (Some(Duration::from_secs(604_800)), 0));
        let Command::Record(r) = parse("record --room r -o x.mp4").unwrap() else { panic!() };
        assert_eq!((r.duration, r.delay_ms), (None, 50));

        let args = "preview -o x.mp4 --duration 0.1 --participants 0 --speaking 100 --muted 1 --camera-off 2";
        let Command::Preview(p) = parse(&format!("{args} --key-frame-interval 0")).unwrap() else { panic!() };
        assert_eq!(p.duration, Duration::from_millis(100));
        assert_eq!((p.participants, p.speaking, p.muted, p.camera_off), (0, vec![100], vec![1], vec![2]));
        assert_eq!(p.size.key_frame_interval, Some(0.0));
        let Command::Preview(p) = parse("preview -o x.mp4").unwrap() else { panic!() };
        assert_eq!((p.duration, p.participants, p.size.key_frame_interval), (Duration::from_secs(10), 4, None));

        let Command::Devroom(d) =
            parse("devroom --loss-percent 100 --jitter-ms 10000 --synthetic 100 --empty-timeout 0").unwrap()
        else {
            panic!()
        };
        assert_eq!((d.loss_percent, d.jitter_ms, d.synthetic, d.empty_timeout), (100.0, 10_000, 100, 0));
        let Command::Devroom(d) = parse("devroom").unwrap() else { panic!() };
        assert_eq!((d.loss_percent, d.jitter_ms, d.synthetic, d.empty_timeout), (0.0, 0, 0, 20));

        let Command::BenchRender(b) = parse("bench-render --frames 1 --inputs 0").unwrap() else { panic!() };
        assert_eq!((b.frames, b.inputs), (1, 0));
        let Command::BenchRender(b) = parse("bench-render").unwrap() else { panic!() };
        assert_eq!((b.frames, b.inputs), (300, 4));
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
