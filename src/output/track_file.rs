//! One track written as it was sent, without transcoding (LiveKit's track egress): VP8
//! and VP9 in WebM, H.264 in MP4 (fragmented while recording, as every MP4 here), Opus
//! in Ogg. Timestamps are the sender's RTP time counted from the first frame written, so
//! a gap in the track (a mute, a stall) stays a gap in the file.

use super::OutputError;
use super::mp4::Mp4Writer;
use super::mux::MuxWriter;
use crate::encode::{EncodedPacket, StreamKind, StreamSpec};
use ffmpeg_next as ffmpeg;
use std::path::{Path, PathBuf};

/// The container a codec is written in, as LiveKit picks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    WebM,
    Mp4,
    Ogg,
}

impl Container {
    pub fn for_mime(mime: &str) -> Option<Self> {
        match mime.to_ascii_lowercase().as_str() {
            "video/vp8" | "video/vp9" => Some(Self::WebM),
            "video/h264" => Some(Self::Mp4),
            "audio/opus" => Some(Self::Ogg),
            _ => None,
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::WebM => "webm",
            Self::Mp4 => "mp4",
            Self::Ogg => "ogg",
        }
    }
}

enum Writer {
    Mp4(Mp4Writer),
    Mux(MuxWriter),
}

/// What was written.
#[derive(Debug, Clone)]
pub struct Written {
    pub path: PathBuf,
    pub bytes: u64,
    /// From the first frame's time to the end of the last one.
    pub duration_s: f64,
}

pub(crate) struct TrackFile {
    path: PathBuf,
    writer: Writer,
    kind: StreamKind,
    opus: bool,
    clock_rate: u32,
    /// The sender's timestamp of the last frame and its unwrapped distance from the first.
    last_rtp: u32,
    last_pts: i64,
    bytes: u64,
    last_duration: i64,
}

impl TrackFile {
    /// Opens `path` for a track of `mime` whose first frame (a keyframe, for video) is `first`;
    /// `first` is not written yet.
    pub(crate) fn create(
        path: &Path,
        mime: &str,
        clock_rate: u32,
        first: &[u8],
        first_rtp: u32,
    ) -> Result<Self, OutputError> {
        crate::encode::init();
        let container = Container::for_mime(mime).ok_or_else(|| OutputError::Io {
            path: path.display().to_string(),
            cause: std::io::Error::other(format!("{mime} is not written without transcoding")),
        })?;
        let mut parameters = crate::decode::stream_parameters(mime, first).map_err(|e| OutputError::Io {
            path: path.display().to_string(),
            cause: std::io::Error::other(format!("reading the track's first frame: {e}")),
        })?;
        let opus = container == Container::Ogg;
        match container {
            Container::Ogg => set_extradata(&mut parameters, &opus_head()),
            // The MP4 muxer turns Annex B parameter sets into its avcC box (and Annex B frames
            // into length-prefixed ones); it needs them before the first frame.
            Container::Mp4 => set_extradata(&mut parameters, &parameter_sets(first)),
            Container::WebM => {}
        }
        let kind = if opus { StreamKind::Audio } else { StreamKind::Video };
        let time_base = ffmpeg::Rational(1, clock_rate.max(1) as i32);
        let spec = StreamSpec { kind, parameters, time_base, priming: 0 };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|cause| OutputError::Io { path: dir.display().to_string(), cause })?;
        }
        let name = path.display().to_string();
        let writer = match container {
            Container::Mp4 => Writer::Mp4(Mp4Writer::create(path, &[spec])?),
            Container::WebM => Writer::Mux(MuxWriter::create(&name, "webm", &[spec], &[], &name)?),
            Container::Ogg => Writer::Mux(MuxWriter::create(&name, "ogg", &[spec], &[], &name)?),
        };
        Ok(Self {
            path: path.to_path_buf(),
            writer,
            kind,
            opus,
            clock_rate: clock_rate.max(1),
            last_rtp: first_rtp,
            last_pts: -1,
            bytes: 0,
            last_duration: 0,
        })
    }

    /// Writes one frame as it came, at its RTP time.
    pub(crate) fn write(&mut self, data: &[u8], rtp_timestamp: u32, keyframe: bool) -> Result<(), OutputError> {
        // RTP time wraps at 2^32; the distance from the last frame is signed.
        let step = rtp_timestamp.wrapping_sub(self.last_rtp) as i32 as i64;
        let mut pts = if self.last_pts < 0 { 0 } else { self.last_pts + step };
        // Containers need rising times: a frame stamped at or before the last (a sender's
        // glitch) goes right after it.
        if pts <= self.last_pts {
            pts = self.last_pts + 1;
        }
        self.last_rtp = rtp_timestamp;
        let mut packet = ffmpeg::Packet::copy(data);
        packet.set_pts(Some(pts));
        packet.set_dts(Some(pts));
        if self.opus {
            // Ogg's granule positions are counted from each packet's samples.
            self.last_duration = opus_samples(data).unwrap_or(960) as i64 * self.clock_rate as i64 / 48_000;
            packet.set_duration(self.last_duration);
        } else if self.last_pts >= 0 {
            self.last_duration = pts - self.last_pts;
        }
        if keyframe || self.opus {
            packet.set_flags(ffmpeg::packet::Flags::KEY);
        }
        let p = EncodedPacket { kind: self.kind, packet, time_base: ffmpeg::Rational(1, self.clock_rate as i32) };
        match &mut self.writer {
            Writer::Mp4(w) => w.write(p)?,
            Writer::Mux(w) => w.write(p)?,
        }
        self.last_pts = pts;
        self.bytes += data.len() as u64;
        Ok(())
    }

    /// Closes the file (an MP4 is rewritten with its index first).
    pub(crate) fn finish(self) -> Result<Written, OutputError> {
        let end = self.last_pts.max(0) + self.last_duration;
        let path = self.path.clone();
        match self.writer {
            Writer::Mp4(w) => {
                w.finish()?;
            }
            Writer::Mux(w) => w.finish()?,
        }
        let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(self.bytes);
        Ok(Written { path, bytes, duration_s: end as f64 / self.clock_rate as f64 })
    }
}

/// Replaces a stream's codec extradata (FFmpeg owns the copy).
fn set_extradata(p: &mut ffmpeg::codec::Parameters, data: &[u8]) {
    let padding = ffmpeg::ffi::AV_INPUT_BUFFER_PADDING_SIZE as usize;
    // SAFETY: the buffer is FFmpeg's own allocation, large enough with its padding, and the
    // parameters take ownership of it (freeing any earlier one).
    unsafe {
        let par = p.as_mut_ptr();
        let buf = ffmpeg::ffi::av_mallocz(data.len() + padding) as *mut u8;
        if buf.is_null() {
            return;
        }
        std::ptr::copy_nonoverlapping(data.as_ptr(), buf, data.len());
        if !(*par).extradata.is_null() {
            ffmpeg::ffi::av_free((*par).extradata as *mut _);
        }
        (*par).extradata = buf;
        (*par).extradata_size = data.len() as i32;
    }
}

/// The Ogg Opus identification header (RFC 7845 5.1): version 1, two channels (WebRTC's
/// Opus is negotiated as stereo), no pre-skip (the packets are the sender's own), 48 kHz,
/// no gain, mapping family 0.
fn opus_head() -> Vec<u8> {
    let mut h = b"OpusHead".to_vec();
    h.extend([1, 2]);
    h.extend(0u16.to_le_bytes());
    h.extend(48_000u32.to_le_bytes());
    h.extend(0i16.to_le_bytes());
    h.push(0);
    h
}

/// The NAL units of an Annex B access unit, without their start codes.
pub(crate) fn annexb_units(b: &[u8]) -> Vec<&[u8]> {
    let starts: Vec<(usize, usize)> = (0..b.len().saturating_sub(2))
        .filter(|&i| b[i] == 0 && b[i + 1] == 0 && b[i + 2] == 1)
        .map(|i| (if i > 0 && b[i - 1] == 0 { i - 1 } else { i }, i + 3))
        .collect();
    starts
        .iter()
        .enumerate()
        .map(|(k, &(_, body))| {
            let end = starts.get(k + 1).map_or(b.len(), |&(next, _)| next);
            &b[body..end.max(body)]
        })
        .filter(|u| !u.is_empty())
        .collect()
}

/// The sequence and picture parameter sets of a keyframe, in Annex B.
fn parameter_sets(frame: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for u in annexb_units(frame).into_iter().filter(|u| matches!(u[0] & 0x1f, 7 | 8)) {
        out.extend([0, 0, 0, 1]);
        out.extend_from_slice(u);
    }
    out
}

/// Samples (at 48 kHz) in an Opus packet, from its TOC byte (RFC 6716 3.1). Written by hand:
/// the Opus crates wrap libopus for this one table.
pub(crate) fn opus_samples(packet: &[u8]) -> Option<u32> {
    let toc = *packet.first()?;
    let config = toc >> 3;
    // Frame length in 1/400 s (2.5 ms) units.
    let units = match config {
        0..=11 => [4, 8, 16, 24][(config % 4) as usize],
        12..=15 => [4, 8][(config % 2) as usize],
        _ => [1, 2, 4, 8][(config % 4) as usize],
    };
    let frames = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => u32::from(*packet.get(1)? & 0x3f),
    };
    Some(units * 120 * frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opus_packet_lengths_come_from_the_toc() {
        // config 27 (CELT 20 ms), one frame; config 1 (SILK 20 ms), two frames; code 3, 3 frames of 10 ms.
        assert_eq!(opus_samples(&[27 << 3]), Some(960));
        assert_eq!(opus_samples(&[(1 << 3) | 1]), Some(1920));
        assert_eq!(opus_samples(&[(26 << 3) | 3, 3]), Some(1440));
        assert_eq!(opus_samples(&[]), None);
    }

    #[test]
    fn annexb_units_split_on_three_and_four_byte_start_codes() {
        let au = [0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4, 5];
        assert_eq!(annexb_units(&au), vec![&[0x67, 1, 2][..], &[0x68, 3][..], &[0x65, 4, 5][..]]);
        assert_eq!(parameter_sets(&au), vec![0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 1, 0x68, 3]);
    }
}
