//! FFmpeg decoders for what WebRTC publishers send: VP8, VP9, H.264 and AV1
//! video to 4:2:0 frames, Opus audio to interleaved stereo f32 at 48 kHz.

use crate::audio::{CHANNELS, SAMPLE_RATE};
use crate::frame::{ColorSpace, Matrix, PixelFormat, Plane, Range, VideoFrame};
use ffmpeg::{codec, decoder, format};
use ffmpeg_next as ffmpeg;
use thiserror::Error;

#[derive(Debug, Error)]
pub(crate) enum DecodeError {
    #[error("no FFmpeg decoder for {0}")]
    NoDecoder(String),
    #[error("FFmpeg {what}: {cause}")]
    Ffmpeg { what: &'static str, cause: ffmpeg::Error },
}

fn ff(what: &'static str) -> impl FnOnce(ffmpeg::Error) -> DecodeError {
    move |cause| DecodeError::Ffmpeg { what, cause }
}

/// The FFmpeg codec for a WebRTC MIME type (`video/VP8`, `audio/opus`, ...).
pub(crate) fn codec_for(mime: &str) -> Option<codec::Id> {
    match mime.to_ascii_lowercase().as_str() {
        "video/vp8" => Some(codec::Id::VP8),
        "video/vp9" => Some(codec::Id::VP9),
        "video/h264" => Some(codec::Id::H264),
        "video/av1" => Some(codec::Id::AV1),
        "audio/opus" => Some(codec::Id::OPUS),
        _ => None,
    }
}

/// What a muxer needs to declare a track written as it was sent (codec, picture size, sample
/// rate and channels), learnt by decoding its first frame (a keyframe, for video).
pub(crate) fn stream_parameters(mime: &str, first: &[u8]) -> Result<ffmpeg::codec::Parameters, DecodeError> {
    let id = codec_for(mime).ok_or_else(|| DecodeError::NoDecoder(mime.into()))?;
    if id == codec::Id::OPUS {
        let dec = AudioDecoder::new(id)?;
        return Ok(ffmpeg::codec::Parameters::from(&dec.dec));
    }
    let mut dec = VideoDecoder::new(id)?;
    dec.decode(first, 0)?;
    Ok(ffmpeg::codec::Parameters::from(&dec.dec))
}

fn open(id: codec::Id) -> Result<codec::decoder::Decoder, DecodeError> {
    crate::encode::init();
    let c = decoder::find(id).ok_or_else(|| DecodeError::NoDecoder(format!("{id:?}")))?;
    let mut ctx = codec::context::Context::new_with_codec(c);
    // One thread per decoder: each track already decodes on its own thread, and
    // frame threading would add a frame of delay per thread.
    ctx.set_threading(ffmpeg::threading::Config {
        count: 1,
        ..ffmpeg::threading::Config::kind(ffmpeg::threading::Type::Frame)
    });
    if id == codec::Id::OPUS {
        unsafe {
            let p = ctx.as_mut_ptr();
            (*p).sample_rate = SAMPLE_RATE as i32;
            ffmpeg::ffi::av_channel_layout_default(&mut (*p).ch_layout, CHANNELS as i32);
        }
    }
    Ok(ctx.decoder())
}

pub(crate) struct VideoDecoder {
    dec: decoder::Video,
    frame: ffmpeg::frame::Video,
    scaler: Option<(ffmpeg::software::scaling::Context, format::Pixel, u32, u32)>,
}

impl VideoDecoder {
    pub(crate) fn new(id: codec::Id) -> Result<Self, DecodeError> {
        let dec = open(id)?.video().map_err(ff("video decoder"))?;
        Ok(Self { dec, frame: ffmpeg::frame::Video::empty(), scaler: None })
    }

    /// Decodes one frame's bitstream (`pts_us` passes through); returns the frames it completed.
    pub(crate) fn decode(&mut self, data: &[u8], pts_us: i64) -> Result<Vec<(i64, VideoFrame)>, DecodeError> {
        let mut pkt = ffmpeg::Packet::copy(data);
        pkt.set_pts(Some(pts_us));
        pkt.set_dts(Some(pts_us));
        self.dec.send_packet(&pkt).map_err(ff("sending a video packet"))?;
        let mut out = Vec::new();
        while self.dec.receive_frame(&mut self.frame).is_ok() {
            let pts = self.frame.timestamp().or(self.frame.pts()).unwrap_or(pts_us);
            if let Some(f) = self.convert()? {
                out.push((pts, f));
            }
        }
        Ok(out)
    }

    /// The decoded picture as an I420 frame (4:2:0 copied as is, anything else converted).
    fn convert(&mut self) -> Result<Option<VideoFrame>, DecodeError> {
        let (w, h) = (self.frame.width(), self.frame.height());
        if w < 2 || h < 2 {
            return Ok(None);
        }
        let full = matches!(self.frame.color_range(), ffmpeg::color::Range::JPEG);
        let matrix = match self.frame.color_space() {
            ffmpeg::color::Space::BT709 => Matrix::Bt709,
            // WebRTC video is BT.601 unless it says otherwise.
            _ => Matrix::Bt601,
        };
        let fmt = self.frame.format();
        let direct = matches!(fmt, format::Pixel::YUV420P | format::Pixel::YUVJ420P);
        let src = if direct {
            &self.frame
        } else {
            let stale = self.scaler.as_ref().is_none_or(|(_, f, sw, sh)| *f != fmt || *sw != w || *sh != h);
            if stale {
                let ctx = ffmpeg::software::scaling::Context::get(
                    fmt,
                    w,
                    h,
                    format::Pixel::YUV420P,
                    w,
                    h,
                    ffmpeg::software::scaling::Flags::BILINEAR,
                )
                .map_err(ff("a pixel format converter"))?;
                self.scaler = Some((ctx, fmt, w, h));
            }
            let mut conv = ffmpeg::frame::Video::empty();
            if let Some((ctx, ..)) = self.scaler.as_mut() {
                ctx.run(&self.frame, &mut conv).map_err(ff("converting a decoded frame"))?;
            }
            return Ok(Some(planes_of(&conv, matrix, full || fmt == format::Pixel::YUVJ420P)));
        };
        Ok(Some(planes_of(src, matrix, full || fmt == format::Pixel::YUVJ420P)))
    }
}

pub(crate) fn planes_of(f: &ffmpeg::frame::Video, matrix: Matrix, full: bool) -> VideoFrame {
    let (w, h) = (f.width(), f.height());
    let rows = [h as usize, h.div_ceil(2) as usize, h.div_ceil(2) as usize];
    let planes = (0..3)
        .map(|i| {
            let stride = f.stride(i);
            let data = f.data(i);
            Plane { data: data[..(stride * rows[i]).min(data.len())].to_vec(), stride }
        })
        .collect();
    VideoFrame {
        format: PixelFormat::I420,
        width: w,
        height: h,
        color: ColorSpace { matrix, range: if full { Range::Full } else { Range::Limited } },
        planes,
    }
}

pub(crate) struct AudioDecoder {
    dec: decoder::Audio,
    frame: ffmpeg::frame::Audio,
}

impl AudioDecoder {
    pub(crate) fn new(id: codec::Id) -> Result<Self, DecodeError> {
        let dec = open(id)?.audio().map_err(ff("audio decoder"))?;
        Ok(Self { dec, frame: ffmpeg::frame::Audio::empty() })
    }

    /// Decodes one packet to interleaved stereo f32 at 48 kHz.
    pub(crate) fn decode(&mut self, data: &[u8]) -> Result<Vec<f32>, DecodeError> {
        let pkt = ffmpeg::Packet::copy(data);
        self.dec.send_packet(&pkt).map_err(ff("sending an audio packet"))?;
        let mut out = Vec::new();
        while self.dec.receive_frame(&mut self.frame).is_ok() {
            interleave(&self.frame, &mut out);
        }
        Ok(out)
    }
}

/// Stereo interleaved f32 from FFmpeg's planar or packed float output (mono is doubled).
fn interleave(f: &ffmpeg::frame::Audio, out: &mut Vec<f32>) {
    let n = f.samples();
    // SAFETY: reading a field of the frame FFmpeg just filled.
    let channels = unsafe { (*f.as_ptr()).ch_layout.nb_channels }.max(1) as usize;
    let planar = f.is_planar();
    let sample = |ch: usize, i: usize| -> f32 {
        let ch = ch.min(channels - 1);
        if planar {
            f.plane::<f32>(ch).get(i).copied().unwrap_or(0.0)
        } else {
            let d = f.data(0);
            let k = (i * channels + ch) * 4;
            d.get(k..k + 4).map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]])).unwrap_or(0.0)
        }
    };
    out.reserve(n * CHANNELS);
    for i in 0..n {
        out.push(sample(0, i));
        out.push(sample(1, i));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::EncodingOptions;
    use crate::encode::{AudioCodec, AudioEncoder, VideoCodec, VideoEncoder};

    #[test]
    fn vp8_and_h264_round_trip_through_the_decoders() {
        // Baseline in low-latency mode: SPS/PPS in band, as WebRTC senders send them.
        let opts = EncodingOptions {
            width: 320,
            height: 180,
            framerate: 30,
            profile: crate::encode::H264Profile::Baseline,
            ..Default::default()
        };
        let src = VideoFrame::filled(PixelFormat::I420, 320, 180, ColorSpace::default(), [120, 90, 200]).unwrap();
        for (codec, id) in [(VideoCodec::Vp8, codec::Id::VP8), (VideoCodec::H264, codec::Id::H264)] {
            let mut enc = VideoEncoder::with_codec(codec, &opts, 30, true).unwrap();
            let mut dec = VideoDecoder::new(id).unwrap();
            let mut got = Vec::new();
            for k in 0..5 {
                for p in enc.encode(&src, k * 33_333).unwrap() {
                    let data = p.packet.data().unwrap();
                    got.extend(dec.decode(data, k * 33_333).unwrap_or_else(|e| panic!("{codec:?}: {e}")));
                }
            }
            assert!(!got.is_empty(), "{codec:?}: no frames");
            let (pts, f) = &got[0];
            assert_eq!(*pts, 0);
            assert_eq!((f.width, f.height), (320, 180));
            let y = f.planes[0].data[90 * f.planes[0].stride + 160] as i32;
            assert!((y - 120).abs() <= 3, "{codec:?}: luma {y}");
        }
    }

    #[test]
    fn opus_decodes_to_stereo_48k() {
        let opts = EncodingOptions::default();
        let mut enc = AudioEncoder::with_codec(AudioCodec::Opus, &opts).unwrap();
        let mut dec = AudioDecoder::new(codec::Id::OPUS).unwrap();
        let mut decoded = Vec::new();
        for k in 0..20i64 {
            let samples: Vec<f32> = (0..480 * 2)
                .map(|i| {
                    let t = (k * 480 + (i / 2) as i64) as f32 / 48_000.0;
                    0.3 * (std::f32::consts::TAU * 440.0 * t).sin()
                })
                .collect();
            for p in enc.encode(&crate::audio::MixedBlock { pts: k * 480, samples }).unwrap() {
                decoded.extend(dec.decode(p.packet.data().unwrap()).unwrap());
            }
        }
        assert!(decoded.len() >= 960 * 2 * 5, "{} samples", decoded.len());
        let rms = (decoded.iter().map(|s| s * s).sum::<f32>() / decoded.len() as f32).sqrt();
        assert!(rms > 0.1, "rms {rms}");
    }
}
