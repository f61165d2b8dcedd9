//! Encoders: one H.264 and one AAC encoder per job, through FFmpeg (ffmpeg-next).
//! Every packet they give is handed to every output of the job.

mod audio;
mod log;
mod options;
mod video;

pub use audio::AudioEncoder;
pub(crate) use options::check_size;
pub use options::{EncodingOptions, H264Profile, OptionsError, Preset};
pub use video::VideoEncoder;

use ffmpeg_next as ffmpeg;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum EncodeError {
    #[error("FFmpeg has no {0} encoder (Debian's libavcodec with libx264, libvpx and libopus is needed)")]
    NoCodec(&'static str),
    #[error("{what}: {cause}")]
    Ffmpeg { what: String, cause: ffmpeg::Error },
    #[error("frame is {got_w}x{got_h}, the encoder was opened for {w}x{h}")]
    FrameSize { got_w: u32, got_h: u32, w: u32, h: u32 },
}

pub(crate) fn ff(what: impl Into<String>) -> impl FnOnce(ffmpeg::Error) -> EncodeError {
    let what = what.into();
    move |cause| EncodeError::Ffmpeg { what, cause }
}

/// Video codecs we encode: H.264 for recordings and streams, VP8 for WebRTC publishing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    H264,
    Vp8,
}

/// Audio codecs we encode: AAC for MP4/TS/FLV, Opus for WebRTC (and OGG).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioCodec {
    Aac,
    Opus,
    Mp3,
}

/// Which stream of the job a packet belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamKind {
    Video,
    Audio,
}

/// An encoded packet, with the time base its timestamps are in.
pub struct EncodedPacket {
    pub kind: StreamKind,
    pub packet: ffmpeg::Packet,
    pub time_base: ffmpeg::Rational,
}

/// What a muxer needs to declare a stream.
#[derive(Clone)]
pub struct StreamSpec {
    pub kind: StreamKind,
    pub parameters: ffmpeg::codec::Parameters,
    pub time_base: ffmpeg::Rational,
    /// Encoder priming (AAC's 1024 samples) in `time_base` units: samples at the
    /// start that players must skip, written as an MP4 edit list.
    pub priming: i64,
}

/// Initialises FFmpeg once per process and keeps its logging to errors.
pub fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if let Err(e) = ffmpeg::init() {
            tracing::error!("FFmpeg failed to initialise: {e}");
        }
        ffmpeg::log::set_level(ffmpeg::log::Level::Error);
        log::install();
    });
}
