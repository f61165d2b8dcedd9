//! Audio: the mixer that turns every participant's timestamped audio into one
//! 48 kHz stereo stream.

pub(crate) mod mixer;

pub(crate) use mixer::{InputStats, MixedBlock, Mixer};

/// The mixer's rate; WebRTC's Opus decodes to it.
pub(crate) const SAMPLE_RATE: u32 = 48_000;
pub(crate) const CHANNELS: usize = 2;
