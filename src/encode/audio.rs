//! AAC through FFmpeg's native encoder, Opus through libopus, MP3 through LAME,
//! fed from the 48 kHz mixer.

use super::EncodingOptions;
use super::{AudioCodec, EncodeError, EncodedPacket, StreamKind, StreamSpec, ff};
use crate::audio::{CHANNELS, MixedBlock, SAMPLE_RATE};
use ffmpeg::{ChannelLayout, Rational, codec, encoder, format, software::resampling};
use ffmpeg_next as ffmpeg;

pub struct AudioEncoder {
    enc: encoder::Audio,
    resampler: resampling::Context,
    rate: u32,
    frame_size: usize,
    /// Resampled samples waiting for a full encoder frame, one Vec per channel.
    fifo: [Vec<f32>; CHANNELS],
    /// Timestamp (in `rate` units) of the first sample in the fifo.
    next_pts: Option<i64>,
    /// The encoder takes interleaved samples (libopus) rather than one plane per channel (AAC).
    packed: bool,
}

impl AudioEncoder {
    /// AAC at the options' rate and bitrate.
    pub fn new(opts: &EncodingOptions) -> Result<Self, EncodeError> {
        Self::with_codec(AudioCodec::Aac, opts)
    }

    /// AAC, or Opus at 48 kHz (its native rate) in 20 ms frames.
    pub(crate) fn with_codec(kind: AudioCodec, opts: &EncodingOptions) -> Result<Self, EncodeError> {
        super::init();
        let (codec, rate, packed) = match kind {
            AudioCodec::Aac => {
                (encoder::find(codec::Id::AAC).ok_or(EncodeError::NoCodec("aac"))?, opts.audio_frequency, false)
            }
            AudioCodec::Opus => {
                (encoder::find_by_name("libopus").ok_or(EncodeError::NoCodec("libopus"))?, SAMPLE_RATE, true)
            }
            AudioCodec::Mp3 => (
                encoder::find_by_name("libmp3lame").ok_or(EncodeError::NoCodec("libmp3lame"))?,
                opts.audio_frequency,
                false,
            ),
        };
        let mut enc =
            codec::context::Context::new_with_codec(codec).encoder().audio().map_err(ff("audio encoder context"))?;
        enc.set_rate(rate as i32);
        // FFmpeg 5.1's API: both the layout and the channel count.
        enc.set_channel_layout(ChannelLayout::STEREO);
        enc.set_channels(CHANNELS as i32);
        let layout = if packed { format::sample::Type::Packed } else { format::sample::Type::Planar };
        enc.set_format(format::Sample::F32(layout));
        enc.set_bit_rate(opts.audio_bitrate_kbps as usize * 1000);
        enc.set_time_base(Rational(1, rate as i32));
        // AAC in MP4, FLV and TS wants its config as extradata; MP3 frames carry their own headers.
        if kind == AudioCodec::Aac {
            enc.set_flags(codec::Flags::GLOBAL_HEADER);
        }
        let enc = enc.open_as(codec).map_err(ff("opening the audio encoder"))?;
        let frame_size = (enc.frame_size() as usize).max(1);
        let resampler = resampling::Context::get(
            format::Sample::F32(format::sample::Type::Packed),
            ChannelLayout::STEREO,
            SAMPLE_RATE,
            format::Sample::F32(format::sample::Type::Planar),
            ChannelLayout::STEREO,
            rate,
        )
        .map_err(ff("creating the resampler"))?;
        Ok(Self { enc, resampler, rate, frame_size, fifo: [Vec::new(), Vec::new()], next_pts: None, packed })
    }

    pub fn spec(&self) -> StreamSpec {
        StreamSpec {
            kind: StreamKind::Audio,
            parameters: codec::Parameters::from(&self.enc),
            time_base: Rational(1, self.rate as i32),
            priming: unsafe { (*self.enc.as_ptr()).initial_padding as i64 },
        }
    }

    /// Encodes a mixed block; its `pts` (48 kHz sample frames on the job clock)
    /// sets the stream's first timestamp, later ones follow sample by sample.
    pub fn encode(&mut self, block: &MixedBlock) -> Result<Vec<EncodedPacket>, EncodeError> {
        if self.next_pts.is_none() {
            self.next_pts = Some(block.pts * self.rate as i64 / SAMPLE_RATE as i64);
        }
        let n = block.samples.len() / CHANNELS;
        let mut input =
            ffmpeg::frame::Audio::new(format::Sample::F32(format::sample::Type::Packed), n, ChannelLayout::STEREO);
        input.set_rate(SAMPLE_RATE);
        let bytes: &[u8] =
            unsafe { std::slice::from_raw_parts(block.samples.as_ptr() as *const u8, block.samples.len() * 4) };
        input.data_mut(0)[..bytes.len()].copy_from_slice(bytes);
        let mut out =
            ffmpeg::frame::Audio::new(format::Sample::F32(format::sample::Type::Planar), n + 64, ChannelLayout::STEREO);
        self.resampler.run(&input, &mut out).map_err(ff("resampling audio"))?;
        self.take(&out);
        self.drain(false)
    }

    fn take(&mut self, out: &ffmpeg::frame::Audio) {
        let got = out.samples();
        for ch in 0..CHANNELS {
            self.fifo[ch].extend_from_slice(&out.plane::<f32>(ch)[..got]);
        }
    }

    /// Encodes whole frames from the fifo (and the rest, padded, at the end).
    fn drain(&mut self, last: bool) -> Result<Vec<EncodedPacket>, EncodeError> {
        let mut packets = Vec::new();
        while self.fifo[0].len() >= self.frame_size || (last && !self.fifo[0].is_empty()) {
            let take = self.fifo[0].len().min(self.frame_size);
            let layout = if self.packed { format::sample::Type::Packed } else { format::sample::Type::Planar };
            let mut frame =
                ffmpeg::frame::Audio::new(format::Sample::F32(layout), self.frame_size, ChannelLayout::STEREO);
            frame.set_rate(self.rate);
            if self.packed {
                // One plane of interleaved samples.
                let bytes = frame.data_mut(0);
                bytes.fill(0);
                for i in 0..take {
                    for ch in 0..CHANNELS {
                        let o = (i * CHANNELS + ch) * 4;
                        bytes[o..o + 4].copy_from_slice(&self.fifo[ch][i].to_ne_bytes());
                    }
                }
                for ch in 0..CHANNELS {
                    self.fifo[ch].drain(..take);
                }
            } else {
                for ch in 0..CHANNELS {
                    let plane = frame.plane_mut::<f32>(ch);
                    plane[..take].copy_from_slice(&self.fifo[ch][..take]);
                    plane[take..].fill(0.0);
                    self.fifo[ch].drain(..take);
                }
            }
            if take < self.frame_size {
                frame.set_samples(take);
            }
            let pts = self.next_pts.unwrap_or(0);
            frame.set_pts(Some(pts));
            self.next_pts = Some(pts + take as i64);
            self.enc.send_frame(&frame).map_err(ff("sending audio to the encoder"))?;
            self.receive(&mut packets)?;
        }
        Ok(packets)
    }

    pub(crate) fn finish(&mut self) -> Result<Vec<EncodedPacket>, EncodeError> {
        let mut out =
            ffmpeg::frame::Audio::new(format::Sample::F32(format::sample::Type::Planar), 4096, ChannelLayout::STEREO);
        if self.resampler.flush(&mut out).is_ok() {
            self.take(&out);
        }
        let mut packets = self.drain(true)?;
        self.enc.send_eof().map_err(ff("flushing the audio encoder"))?;
        self.receive(&mut packets)?;
        Ok(packets)
    }

    fn receive(&mut self, packets: &mut Vec<EncodedPacket>) -> Result<(), EncodeError> {
        let tb = Rational(1, self.rate as i32);
        loop {
            let mut packet = ffmpeg::Packet::empty();
            match self.enc.receive_packet(&mut packet) {
                Ok(()) => packets.push(EncodedPacket { kind: StreamKind::Audio, packet, time_base: tb }),
                Err(ffmpeg::Error::Eof) => return Ok(()),
                Err(ffmpeg::Error::Other { errno }) if errno == libc::EAGAIN => return Ok(()),
                Err(e) => {
                    return Err(EncodeError::Ffmpeg { what: "receiving from the audio encoder".into(), cause: e });
                }
            }
        }
    }
}
