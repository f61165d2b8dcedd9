//! Outputs: where a job's encoded packets go. Each output owns its muxer, so a
//! failing one stops only itself.

pub mod images;
pub mod mp4;
pub mod mux;
pub mod png;
pub mod segments;
pub mod stream;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum OutputError {
    #[error("{path}: {what}: {cause}")]
    Ffmpeg { path: String, what: &'static str, cause: ffmpeg_next::Error },
    #[error("{path}: {cause}")]
    Io { path: String, cause: std::io::Error },
}
