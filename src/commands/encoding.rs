//! Encoding options from the output flags (`--preset`, `--width`, `--fps`, ...).

use anyhow::Result;
use tessera::cli::OutputSize;
use tessera::encode::{EncodingOptions, Preset};

/// The preset (or the defaults) with each flag given laid over it, validated.
pub fn options(size: &OutputSize) -> Result<EncodingOptions> {
    let mut opts = match &size.preset {
        Some(p) => p.parse::<Preset>()?.options(),
        None => EncodingOptions::default(),
    };
    if let (Some(w), Some(h)) = (size.width, size.height) {
        opts.width = w;
        opts.height = h;
    }
    if let Some(fps) = size.fps {
        opts.framerate = fps;
    }
    if let Some(v) = size.video_bitrate {
        opts.video_bitrate_kbps = v;
    }
    if let Some(v) = size.key_frame_interval {
        opts.key_frame_interval = v;
    }
    if let Some(v) = &size.h264_profile {
        opts.profile = v.parse()?;
    }
    if let Some(v) = size.audio_bitrate {
        opts.audio_bitrate_kbps = v;
    }
    if let Some(v) = size.audio_frequency {
        opts.audio_frequency = v;
    }
    opts.validate()?;
    Ok(opts)
}
