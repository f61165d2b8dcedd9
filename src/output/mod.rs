//! Outputs: where a job's encoded packets go. Each output owns its muxer, so a
//! failing one stops only itself.

pub mod images;
pub mod mp4;
pub mod mux;
pub mod png;
pub mod segments;
pub mod stream;
pub mod track_file;
pub mod websocket;

use crate::encode::AudioCodec;
use std::path::Path;
use thiserror::Error;

/// Told of each file an output has finished writing (`true`: its last version, it will not
/// be rewritten), so that whoever owns the output (an egress job) can upload it: outputs
/// know nothing of storage.
pub(crate) type OnWritten = std::sync::Arc<dyn Fn(&Path, bool) + Send + Sync>;

/// What a file is, decided once, by its extension (LiveKit's EncodedFileType names MP4,
/// OGG and MP3; `.oga` and `.opus` are Ogg too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// H.264 + AAC (or either alone), crash-safe.
    Mp4,
    /// Opus, audio only.
    Ogg,
    /// MP3, audio only.
    Mp3,
}

impl FileFormat {
    /// The format a path's extension names, if it names one.
    pub(crate) fn from_extension(path: impl AsRef<Path>) -> Option<Self> {
        let ext = path.as_ref().extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "mp4" => Some(FileFormat::Mp4),
            "ogg" | "oga" | "opus" => Some(FileFormat::Ogg),
            "mp3" => Some(FileFormat::Mp3),
            _ => None,
        }
    }

    /// The extension given to a file of this format that has none of its own.
    pub fn extension(self) -> &'static str {
        match self {
            FileFormat::Mp4 => "mp4",
            FileFormat::Ogg => "ogg",
            FileFormat::Mp3 => "mp3",
        }
    }

    /// Whether it can hold video.
    pub(crate) fn holds_video(self) -> bool {
        self == FileFormat::Mp4
    }

    /// The audio codec it carries.
    pub fn audio_codec(self) -> AudioCodec {
        match self {
            FileFormat::Mp4 => AudioCodec::Aac,
            FileFormat::Ogg => AudioCodec::Opus,
            FileFormat::Mp3 => AudioCodec::Mp3,
        }
    }
}

#[derive(Debug, Error)]
pub enum OutputError {
    #[error("{path}: {what}: {cause}")]
    Ffmpeg { path: String, what: &'static str, cause: ffmpeg_next::Error },
    #[error("{path}: {cause}")]
    Io { path: String, cause: std::io::Error },
}
