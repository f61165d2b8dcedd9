//! What every kind of recording shares, whichever path makes it (the native compositor,
//! Chromium, and next fleet and participant jobs): the plain-data spec of what to record
//! and where, why it ended, and the live handles the outside holds while it runs.

mod live;
mod subject;

pub use live::{LiveLayout, LiveStats, StopHandle};
pub use subject::{AudioPick, AudioRoute, AudioTrackRef, Channel, RouteMatch, Subject, VideoPick};

use crate::encode::EncodingOptions;
use crate::output::images::ImageSink;
use crate::output::stream::PacketSink;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Where a recording's encoded packets go: a file (MP4, OGG, MP3 by its extension),
/// packet sinks (streams, HLS) and image outputs (offered every composite frame).
#[derive(Clone, Default)]
pub struct Outputs {
    pub file: Option<PathBuf>,
    pub sinks: Vec<Arc<dyn PacketSink>>,
    pub images: Vec<Arc<ImageSink>>,
}

/// Which media a recording holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Media {
    #[default]
    AudioVideo,
    AudioOnly,
    VideoOnly,
}

impl Media {
    pub(crate) fn from_flags(audio_only: bool, video_only: bool) -> Self {
        match (audio_only, video_only) {
            (true, _) => Media::AudioOnly,
            (false, true) => Media::VideoOnly,
            (false, false) => Media::AudioVideo,
        }
    }

    pub fn video(self) -> bool {
        self != Media::AudioOnly
    }

    pub fn audio(self) -> bool {
        self != Media::VideoOnly
    }
}

/// How participants' audio is placed in the stereo mix (LiveKit's `audio_mixing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChannelMixing {
    /// Everyone in both channels.
    #[default]
    Both,
    /// Agents in the left channel, everyone else in the right (DUAL_CHANNEL_AGENT).
    AgentLeft,
    /// Each audio track in one channel, left and right in turn as tracks first appear, kept
    /// for the track's life (DUAL_CHANNEL_ALTERNATE).
    Alternate,
}

/// What to record and where: plain data, the same for every path.
#[derive(Clone, Default)]
pub struct RecordingSpec {
    pub encoding: EncodingOptions,
    pub media: Media,
    /// Stop after this long (from the first frame); None: until the source ends or it is stopped.
    pub limit: Option<Duration>,
    /// The file (`{room_id}` in it is replaced once the room is joined), streams and images.
    pub outputs: Outputs,
}

/// A running recording's name and counters, apart from what it records.
#[derive(Clone)]
pub struct RunContext {
    /// Name of every thread the recording starts (FFmpeg's threads inherit it), so its
    /// CPU can be measured apart from other recordings in the same process.
    pub thread_name: String,
    pub stats: Arc<LiveStats>,
}

impl RunContext {
    pub fn named(thread_name: &str) -> Self {
        Self { thread_name: thread_name.into(), stats: Arc::default() }
    }
}

/// Why a recording ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// Stopped from outside: StopEgress, a signal, a shutdown.
    Stopped,
    /// Its duration (or session limit) ended.
    DurationEnded,
    /// The source ended it: the room closed, the page sent END_RECORDING, Chromium went away.
    SourceClosed(String),
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndReason::Stopped => f.write_str("stopped"),
            EndReason::DurationEnded => f.write_str("the duration ended"),
            EndReason::SourceClosed(why) => f.write_str(why),
        }
    }
}
