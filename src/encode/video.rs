//! H.264 through libx264, VP8 through libvpx.

use super::EncodingOptions;
use super::{EncodeError, EncodedPacket, StreamKind, StreamSpec, VideoCodec, ff};
use crate::frame::{PixelFormat, VideoFrame};
use ffmpeg::{Dictionary, Rational, codec, encoder, format};
use ffmpeg_next as ffmpeg;

/// Video timestamps are microseconds of the job clock, rescaled to 90 kHz (the
/// MPEG clock every container handles well).
pub(super) const TIME_BASE: Rational = Rational(1, 90_000);

pub struct VideoEncoder {
    enc: encoder::Video,
    frame: ffmpeg::frame::Video,
    width: u32,
    height: u32,
    /// One frame in TIME_BASE units, given to packets so the last frame has a duration.
    frame_ticks: i64,
    force_key: bool,
}

impl VideoEncoder {
    /// Opens libx264 with `opts`. `gop` is frames between keyframes; `low_latency`
    /// turns off lookahead (streams).
    pub fn new(opts: &EncodingOptions, gop: u32, low_latency: bool) -> Result<Self, EncodeError> {
        Self::with_codec(VideoCodec::H264, opts, gop, low_latency)
    }

    /// Opens the encoder for `kind`. VP8 is set up for real-time WebRTC sending
    /// (no lag, fastest speed, error resilient); H.264 for muxers (global headers).
    pub(crate) fn with_codec(
        kind: VideoCodec,
        opts: &EncodingOptions,
        gop: u32,
        low_latency: bool,
    ) -> Result<Self, EncodeError> {
        super::init();
        let name = match kind {
            VideoCodec::H264 => "libx264",
            VideoCodec::Vp8 => "libvpx",
        };
        let codec = encoder::find_by_name(name).ok_or(EncodeError::NoCodec(name))?;
        let mut enc =
            codec::context::Context::new_with_codec(codec).encoder().video().map_err(ff(format!("{name} context")))?;
        enc.set_width(opts.width);
        enc.set_height(opts.height);
        enc.set_format(format::Pixel::YUV420P);
        enc.set_time_base(TIME_BASE);
        enc.set_frame_rate(Some(Rational(opts.framerate as i32, 1)));
        enc.set_bit_rate(opts.video_bitrate_kbps as usize * 1000);
        enc.set_gop(gop);
        enc.set_colorspace(ffmpeg::color::Space::BT709);
        enc.set_color_range(ffmpeg::color::Range::MPEG);
        unsafe {
            let p = enc.as_mut_ptr();
            (*p).color_primaries = ffmpeg::ffi::AVColorPrimaries::AVCOL_PRI_BT709;
            (*p).color_trc = ffmpeg::ffi::AVColorTransferCharacteristic::AVCOL_TRC_BT709;
        }
        // No B-frames: what LiveKit's x264enc does, and every packet's dts equals its
        // pts, so files start at 0 without edit lists and streams add no reorder delay.
        enc.set_max_b_frames(0);
        let mut dict = Dictionary::new();
        match kind {
            VideoCodec::H264 if low_latency && opts.profile == super::H264Profile::Baseline => {
                // For RTP: SPS/PPS repeated in-band before every keyframe (no global header),
                // constrained baseline as WebRTC receivers expect.
                dict.set("preset", "ultrafast");
                dict.set("profile", "baseline");
                dict.set("tune", "zerolatency");
                dict.set("x264-params", &format!("keyint={gop}:min-keyint={gop}:scenecut=0:repeat-headers=1"));
            }
            VideoCodec::H264 => {
                // Every muxer we feed (MP4, FLV) wants SPS/PPS in the stream header.
                enc.set_flags(codec::Flags::GLOBAL_HEADER);
                dict.set("preset", &opts.x264_preset);
                dict.set("profile", opts.profile.x264_name());
                // Keyframes exactly every `gop` frames: outputs cut segments on them.
                dict.set("x264-params", &format!("keyint={gop}:min-keyint={gop}:scenecut=0"));
                if low_latency {
                    dict.set("tune", "zerolatency");
                }
            }
            VideoCodec::Vp8 => {
                dict.set("deadline", "realtime");
                dict.set("cpu-used", "8");
                dict.set("lag-in-frames", "0");
                dict.set("error-resilient", "1");
            }
        }
        let enc = enc.open_as_with(codec, dict).map_err(ff(format!("opening {name}")))?;
        let frame = ffmpeg::frame::Video::new(format::Pixel::YUV420P, opts.width, opts.height);
        Ok(Self {
            enc,
            frame,
            width: opts.width,
            height: opts.height,
            frame_ticks: 90_000 / opts.framerate.max(1) as i64,
            force_key: false,
        })
    }

    pub fn spec(&self) -> StreamSpec {
        StreamSpec {
            kind: StreamKind::Video,
            parameters: codec::Parameters::from(&self.enc),
            time_base: TIME_BASE,
            priming: 0,
        }
    }

    /// Encodes a frame shown at `pts_us` on the job clock.
    pub fn encode(&mut self, f: &VideoFrame, pts_us: i64) -> Result<Vec<EncodedPacket>, EncodeError> {
        if (f.width, f.height) != (self.width, self.height) {
            return Err(EncodeError::FrameSize { got_w: f.width, got_h: f.height, w: self.width, h: self.height });
        }
        // The encoder may still hold a reference to the last buffer.
        unsafe {
            let r = ffmpeg::ffi::av_frame_make_writable(self.frame.as_mut_ptr());
            if r < 0 {
                return Err(EncodeError::Ffmpeg { what: "frame buffer".into(), cause: ffmpeg::Error::from(r) });
            }
        }
        let (w, h) = (f.width as usize, f.height as usize);
        for plane in 0..3 {
            let (pw, ph) = if plane == 0 { (w, h) } else { (w / 2, h / 2) };
            let dst_stride = self.frame.stride(plane);
            let dst = self.frame.data_mut(plane);
            match (f.format, plane) {
                (PixelFormat::I420, _) | (PixelFormat::Nv12, 0) => {
                    let src = &f.planes[plane];
                    for row in 0..ph {
                        dst[row * dst_stride..row * dst_stride + pw]
                            .copy_from_slice(&src.data[row * src.stride..row * src.stride + pw]);
                    }
                }
                (PixelFormat::Nv12, k) => {
                    let src = &f.planes[1];
                    for row in 0..ph {
                        let s = &src.data[row * src.stride..row * src.stride + pw * 2];
                        for (x, d) in dst[row * dst_stride..row * dst_stride + pw].iter_mut().enumerate() {
                            *d = s[x * 2 + (k - 1)];
                        }
                    }
                }
            }
        }
        self.frame.set_pts(Some(pts_us.saturating_mul(90) / 1000));
        // A requested keyframe (a receiver's PLI) is forced through the frame's picture type.
        let kind =
            if std::mem::take(&mut self.force_key) { ffmpeg::picture::Type::I } else { ffmpeg::picture::Type::None };
        self.frame.set_kind(kind);
        self.enc.send_frame(&self.frame).map_err(ff("sending a frame to libx264"))?;
        self.receive()
    }

    /// Makes the next frame a keyframe.
    pub(crate) fn force_keyframe(&mut self) {
        self.force_key = true;
    }

    /// Drains the encoder at the end of the job.
    pub(crate) fn finish(&mut self) -> Result<Vec<EncodedPacket>, EncodeError> {
        self.enc.send_eof().map_err(ff("flushing libx264"))?;
        self.receive()
    }

    fn receive(&mut self) -> Result<Vec<EncodedPacket>, EncodeError> {
        let mut out = Vec::new();
        loop {
            let mut packet = ffmpeg::Packet::empty();
            match self.enc.receive_packet(&mut packet) {
                Ok(()) => {
                    if packet.duration() <= 0 {
                        packet.set_duration(self.frame_ticks);
                    }
                    out.push(EncodedPacket { kind: StreamKind::Video, packet, time_base: TIME_BASE })
                }
                Err(ffmpeg::Error::Eof) => break,
                Err(ffmpeg::Error::Other { errno }) if errno == libc::EAGAIN => break,
                Err(e) => return Err(EncodeError::Ffmpeg { what: "receiving from libx264".into(), cause: e }),
            }
        }
        Ok(out)
    }
}
