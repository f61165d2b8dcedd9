//! Output settings: LiveKit's encoding presets, advanced options and the checks on them.

use std::fmt;
use std::str::FromStr;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum OptionsError {
    #[error("output size {width}x{height} is impossible: {why}")]
    BadSize { width: u32, height: u32, why: &'static str },
    #[error("unknown preset {0:?}; known presets: {1}")]
    UnknownPreset(String, String),
    #[error("{field} = {value} is out of range: {why}")]
    OutOfRange { field: &'static str, value: String, why: &'static str },
}

/// Smallest and largest output side we accept (LiveKit asks for at least 16; 4096
/// is the largest H.264 level 5.1 frame side and beyond what a room composite needs).
pub(crate) const MIN_SIDE: u32 = 16;
pub(crate) const MAX_SIDE: u32 = 4096;

/// Checks an output size the way the API will: even, 16..=4096 on each side.
/// The sample rates AAC and MP3 both take; the 48 kHz mix is resampled to any of them.
pub(crate) const AUDIO_RATES: [u32; 9] = [8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000];

pub(crate) fn check_size(width: u32, height: u32) -> Result<(), OptionsError> {
    let bad = |why| Err(OptionsError::BadSize { width, height, why });
    if width < MIN_SIDE || height < MIN_SIDE {
        return bad("each side must be at least 16 pixels");
    }
    if width > MAX_SIDE || height > MAX_SIDE {
        return bad("each side must be at most 4096 pixels");
    }
    if width % 2 == 1 || height % 2 == 1 {
        return bad("each side must be even (4:2:0 video)");
    }
    Ok(())
}

/// H.264 profile the encoder is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum H264Profile {
    Baseline,
    Main,
    High,
}

impl FromStr for H264Profile {
    type Err = OptionsError;
    fn from_str(s: &str) -> Result<Self, OptionsError> {
        match s.to_ascii_lowercase().as_str() {
            "baseline" | "h264_baseline" => Ok(H264Profile::Baseline),
            "main" | "h264_main" => Ok(H264Profile::Main),
            "high" | "h264_high" => Ok(H264Profile::High),
            _ => Err(OptionsError::OutOfRange {
                field: "video_codec",
                value: s.to_string(),
                why: "H.264 profiles are baseline, main and high",
            }),
        }
    }
}

impl H264Profile {
    pub(crate) fn x264_name(self) -> &'static str {
        match self {
            H264Profile::Baseline => "baseline",
            H264Profile::Main => "main",
            H264Profile::High => "high",
        }
    }
}

/// LiveKit's EncodingOptionsPreset values.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    H264_720P_30,
    H264_720P_60,
    H264_1080P_30,
    H264_1080P_60,
    PORTRAIT_H264_720P_30,
    PORTRAIT_H264_720P_60,
    PORTRAIT_H264_1080P_30,
    PORTRAIT_H264_1080P_60,
}

impl Preset {
    pub(crate) const ALL: [Preset; 8] = [
        Preset::H264_720P_30,
        Preset::H264_720P_60,
        Preset::H264_1080P_30,
        Preset::H264_1080P_60,
        Preset::PORTRAIT_H264_720P_30,
        Preset::PORTRAIT_H264_720P_60,
        Preset::PORTRAIT_H264_1080P_30,
        Preset::PORTRAIT_H264_1080P_60,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Preset::H264_720P_30 => "H264_720P_30",
            Preset::H264_720P_60 => "H264_720P_60",
            Preset::H264_1080P_30 => "H264_1080P_30",
            Preset::H264_1080P_60 => "H264_1080P_60",
            Preset::PORTRAIT_H264_720P_30 => "PORTRAIT_H264_720P_30",
            Preset::PORTRAIT_H264_720P_60 => "PORTRAIT_H264_720P_60",
            Preset::PORTRAIT_H264_1080P_30 => "PORTRAIT_H264_1080P_30",
            Preset::PORTRAIT_H264_1080P_60 => "PORTRAIT_H264_1080P_60",
        }
    }

    /// The encoding options this preset stands for (LiveKit's table).
    pub fn options(self) -> EncodingOptions {
        let (w, h, fps, kbps) = match self {
            Preset::H264_720P_30 => (1280, 720, 30, 3000),
            Preset::H264_720P_60 => (1280, 720, 60, 4500),
            Preset::H264_1080P_30 => (1920, 1080, 30, 4500),
            Preset::H264_1080P_60 => (1920, 1080, 60, 6000),
            Preset::PORTRAIT_H264_720P_30 => (720, 1280, 30, 3000),
            Preset::PORTRAIT_H264_720P_60 => (720, 1280, 60, 4500),
            Preset::PORTRAIT_H264_1080P_30 => (1080, 1920, 30, 4500),
            Preset::PORTRAIT_H264_1080P_60 => (1080, 1920, 60, 6000),
        };
        EncodingOptions { width: w, height: h, framerate: fps, video_bitrate_kbps: kbps, ..EncodingOptions::default() }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Preset {
    type Err = OptionsError;
    fn from_str(s: &str) -> Result<Self, OptionsError> {
        Preset::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| OptionsError::UnknownPreset(s.to_string(), Preset::ALL.map(|p| p.name()).join(", ")))
    }
}

/// LiveKit's EncodingOptions (advanced), with LiveKit's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodingOptions {
    pub width: u32,
    pub height: u32,
    pub framerate: u32,
    pub video_bitrate_kbps: u32,
    pub profile: H264Profile,
    /// Seconds between keyframes; 0 lets the output kind choose (files: 2 s).
    pub key_frame_interval: f64,
    pub audio_bitrate_kbps: u32,
    pub audio_frequency: u32,
    /// x264 speed preset; LiveKit uses veryfast.
    pub x264_preset: String,
    /// Opus instead of AAC in an MP4 file (LiveKit's `audio_codec: OPUS`); other files and
    /// every stream and segment carry their own codec.
    pub opus_in_mp4: bool,
}

impl Default for EncodingOptions {
    fn default() -> Self {
        Self {
            width: 1280,
            height: 720,
            framerate: 30,
            video_bitrate_kbps: 3000,
            profile: H264Profile::Main,
            key_frame_interval: 0.0,
            audio_bitrate_kbps: 128,
            audio_frequency: 44100,
            x264_preset: "veryfast".into(),
            opus_in_mp4: false,
        }
    }
}

impl EncodingOptions {
    /// Refuses settings no encoder could honour, naming the field.
    pub fn validate(&self) -> Result<(), OptionsError> {
        check_size(self.width, self.height)?;
        let range = |field, value: String, ok: bool, why| {
            if ok { Ok(()) } else { Err(OptionsError::OutOfRange { field, value, why }) }
        };
        range("framerate", self.framerate.to_string(), (1..=60).contains(&self.framerate), "1 to 60 fps")?;
        range(
            "video_bitrate",
            self.video_bitrate_kbps.to_string(),
            (100..=50_000).contains(&self.video_bitrate_kbps),
            "100 to 50000 kbps",
        )?;
        range(
            "audio_frequency",
            self.audio_frequency.to_string(),
            AUDIO_RATES.contains(&self.audio_frequency),
            "8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100 or 48000 Hz",
        )?;
        range(
            "audio_bitrate",
            self.audio_bitrate_kbps.to_string(),
            (16..=512).contains(&self.audio_bitrate_kbps),
            "16 to 512 kbps",
        )?;
        range(
            "key_frame_interval",
            self.key_frame_interval.to_string(),
            (0.0..=60.0).contains(&self.key_frame_interval),
            "0 to 60 seconds",
        )
    }

    /// Frames between keyframes for this output, `default_s` when unset.
    pub(crate) fn gop_frames(&self, default_s: f64) -> u32 {
        let s = if self.key_frame_interval > 0.0 { self.key_frame_interval } else { default_s };
        ((s * self.framerate as f64).round() as u32).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_match_livekit() {
        let p: Preset = "portrait_h264_1080p_60".parse().unwrap();
        let o = p.options();
        assert_eq!((o.width, o.height, o.framerate, o.video_bitrate_kbps), (1080, 1920, 60, 6000));
        assert_eq!(Preset::H264_720P_30.options().video_bitrate_kbps, 3000);
        assert!("H264_4K".parse::<Preset>().unwrap_err().to_string().contains("H264_720P_30"));
    }

    #[test]
    fn sizes_are_checked() {
        assert!(check_size(1280, 720).is_ok());
        for (w, h, word) in [(1281, 720, "even"), (8, 720, "at least 16"), (5000, 720, "at most 4096")] {
            let e = check_size(w, h).unwrap_err().to_string();
            assert!(e.contains(word), "{e}");
        }
    }
}
