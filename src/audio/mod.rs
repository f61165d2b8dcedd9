//! Audio: the mixer that turns every participant's timestamped audio into one
//! 48 kHz stereo stream.

pub mod mixer;

pub use mixer::{InputStats, MixedBlock, Mixer};

/// The mixer's rate; WebRTC's Opus decodes to it.
pub const SAMPLE_RATE: u32 = 48_000;
pub const CHANNELS: usize = 2;
