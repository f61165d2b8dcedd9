//! Any FFmpeg muxer fed with the job's encoded packets: OGG and MP3 files now,
//! FLV (RTMP) and MPEG-TS (SRT, HLS) next. MP4 has its own writer (crash-safe
//! fragments, then faststart).

use super::OutputError;
use crate::encode::{EncodedPacket, StreamKind, StreamSpec};
use ffmpeg::{Dictionary, format};
use ffmpeg_next as ffmpeg;

pub(crate) struct MuxWriter {
    /// A path or URL, for errors (stream keys must be redacted by the caller).
    name: String,
    octx: format::context::Output,
    /// (kind, stream index, stream time base)
    streams: Vec<(StreamKind, usize, ffmpeg::Rational)>,
    /// Hand packets to the muxer as they come rather than through FFmpeg's interleaving queue.
    direct: bool,
}

fn ff(name: &str, what: &'static str) -> impl FnOnce(ffmpeg::Error) -> OutputError + use<> {
    let path = name.to_string();
    move |cause| OutputError::Ffmpeg { path, what, cause }
}

/// Declares the job's encoded streams in a muxer; their indices follow `specs`.
pub(crate) fn add_streams(
    octx: &mut format::context::Output,
    specs: &[StreamSpec],
) -> Result<Vec<(StreamKind, usize)>, ffmpeg::Error> {
    let mut indices = Vec::new();
    for spec in specs {
        let mut st = octx.add_stream(ffmpeg::encoder::find(spec.parameters.id()))?;
        st.set_parameters(spec.parameters.clone());
        st.set_time_base(spec.time_base);
        unsafe {
            // The encoder's codec tag means nothing to the container.
            (*(*st.as_mut_ptr()).codecpar).codec_tag = 0;
        }
        indices.push((spec.kind, st.index()));
    }
    Ok(indices)
}

impl MuxWriter {
    /// Opens `target` (a file path or URL) with the muxer `format` and declares `specs`.
    pub(crate) fn create(
        target: &str,
        format: &str,
        specs: &[StreamSpec],
        options: &[(&str, &str)],
        name: &str,
    ) -> Result<Self, OutputError> {
        crate::encode::init();
        let mut octx = format::output_as(&target, format).map_err(ff(name, "opening the output"))?;
        let indices = add_streams(&mut octx, specs).map_err(ff(name, "adding a stream"))?;
        let mut opts = Dictionary::new();
        for (k, v) in options {
            opts.set(k, v);
        }
        octx.write_header_with(opts).map_err(ff(name, "writing the header"))?;
        let streams = indices
            .into_iter()
            .map(|(k, i)| (k, i, octx.stream(i).map(|s| s.time_base()).unwrap_or(ffmpeg::Rational(1, 90000))))
            .collect();
        Ok(Self { name: name.to_string(), octx, streams, direct: false })
    }

    /// Writes packets as they come (MPEG-TS segments: FFmpeg's interleaving queue, flushed
    /// at the trailer, stamped a segment's last audio frame with the next one's time).
    pub(crate) fn direct(mut self) -> Self {
        self.direct = true;
        self
    }

    pub(crate) fn write(&mut self, mut p: EncodedPacket) -> Result<(), OutputError> {
        let Some(&(_, index, tb)) = self.streams.iter().find(|(k, _, _)| *k == p.kind) else {
            return Ok(());
        };
        p.packet.rescale_ts(p.time_base, tb);
        p.packet.set_stream(index);
        p.packet.set_position(-1);
        if self.direct {
            p.packet.write(&mut self.octx).map(|_| ()).map_err(ff(&self.name, "writing a packet"))
        } else {
            p.packet.write_interleaved(&mut self.octx).map_err(ff(&self.name, "writing a packet"))
        }
    }

    pub(crate) fn finish(mut self) -> Result<(), OutputError> {
        self.octx.write_trailer().map_err(ff(&self.name, "writing the trailer"))
    }
}
