//! MP4 files that survive a crash. While recording, the file is fragmented
//! (`empty_moov` + a fragment at least every second), so a killed process leaves
//! a playable file; a clean stop rewrites it as a normal MP4 with the index at
//! the front (`faststart`), which every player and editor prefers.

use super::OutputError;
use crate::encode::{EncodedPacket, StreamKind, StreamSpec};
use ffmpeg::{Dictionary, format};
use ffmpeg_next as ffmpeg;
use std::path::{Path, PathBuf};

pub(crate) struct Mp4Writer {
    path: PathBuf,
    octx: format::context::Output,
    /// (kind, stream index, stream time base)
    streams: Vec<(StreamKind, usize, ffmpeg::Rational)>,
    /// Per stream index: priming to trim when finalising, in seconds.
    priming: Vec<f64>,
    packets: u64,
}

fn ff(path: &Path, what: &'static str) -> impl FnOnce(ffmpeg::Error) -> OutputError + use<> {
    let path = path.display().to_string();
    move |cause| OutputError::Ffmpeg { path, what, cause }
}

impl Mp4Writer {
    pub(crate) fn create(path: &Path, specs: &[StreamSpec]) -> Result<Self, OutputError> {
        crate::encode::init();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|cause| OutputError::Io { path: dir.display().to_string(), cause })?;
        }
        let mut octx = format::output_as(path, "mp4").map_err(ff(path, "creating the file"))?;
        let priming = specs.iter().map(|s| s.priming as f64 * f64::from(s.time_base)).collect();
        // (stream indices follow `specs` order, which `priming` relies on)
        let indices = super::mux::add_streams(&mut octx, specs).map_err(ff(path, "adding a stream"))?;
        let mut opts = Dictionary::new();
        opts.set("movflags", "frag_keyframe+empty_moov+default_base_moof");
        opts.set("frag_duration", "1000000");
        octx.write_header_with(opts).map_err(ff(path, "writing the header"))?;
        // The muxer may change time bases when writing the header.
        let streams = indices
            .into_iter()
            .map(|(k, i)| (k, i, octx.stream(i).map(|s| s.time_base()).unwrap_or(ffmpeg::Rational(1, 90000))))
            .collect();
        Ok(Self { path: path.to_path_buf(), octx, streams, priming, packets: 0 })
    }

    pub(crate) fn write(&mut self, mut p: EncodedPacket) -> Result<(), OutputError> {
        let Some(&(_, index, tb)) = self.streams.iter().find(|(k, _, _)| *k == p.kind) else {
            return Ok(());
        };
        p.packet.rescale_ts(p.time_base, tb);
        // The fragmented file cannot hold negative timestamps (the muxer would shift
        // every stream to fit them): priming is written from 0 here and trimmed with
        // an edit list in `finish`.
        let shift = (self.priming.get(index).copied().unwrap_or(0.0) / f64::from(tb)).round() as i64;
        if shift > 0 {
            p.packet.set_pts(p.packet.pts().map(|t| t + shift));
            p.packet.set_dts(p.packet.dts().map(|t| t + shift));
        }
        p.packet.set_stream(index);
        p.packet.set_position(-1);
        p.packet.write_interleaved(&mut self.octx).map_err(ff(&self.path, "writing a packet"))?;
        // A fragment is written once a second; flushing FFmpeg's I/O buffer puts it
        // on disk whole at once, rather than leaving its tail in memory where a
        // crash would lose it. Between fragments the buffer is empty and this is free.
        unsafe {
            let pb = (*self.octx.as_mut_ptr()).pb;
            if !pb.is_null() {
                ffmpeg::ffi::avio_flush(pb);
            }
        }
        self.packets += 1;
        Ok(())
    }

    /// Closes the fragmented file, then rewrites it with the index at the front.
    /// If the rewrite fails, the fragmented file stays: it plays.
    pub(crate) fn finish(mut self) -> Result<PathBuf, OutputError> {
        self.octx.write_trailer().map_err(ff(&self.path, "writing the trailer"))?;
        let path = self.path.clone();
        let priming = std::mem::take(&mut self.priming);
        drop(self);
        if let Err(e) = faststart(&path, &priming) {
            tracing::warn!("kept the fragmented MP4 {}: rewriting it failed: {e}", path.display());
        }
        Ok(path)
    }
}

/// Remuxes `path` (fragmented) into a normal MP4 with `moov` first, replacing it.
/// `priming[i]` seconds at the start of stream i are encoder priming: the fragmented
/// file had to start them at 0, the final file trims them with an edit list.
pub(crate) fn faststart(path: &Path, priming: &[f64]) -> Result<(), OutputError> {
    let tmp = path.with_extension("mp4.faststart");
    let result = remux(path, &tmp, priming);
    match result {
        Ok(()) => {
            std::fs::rename(&tmp, path).map_err(|cause| OutputError::Io { path: path.display().to_string(), cause })
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

fn remux(src: &Path, dst: &Path, priming: &[f64]) -> Result<(), OutputError> {
    let mut ictx = format::input(src).map_err(ff(src, "reopening to finalise"))?;
    let mut octx = format::output_as(dst, "mp4").map_err(ff(dst, "creating the final file"))?;
    let mut map = Vec::new();
    for ist in ictx.streams() {
        let mut ost =
            octx.add_stream(ffmpeg::encoder::find(ffmpeg::codec::Id::None)).map_err(ff(dst, "adding a stream"))?;
        ost.set_parameters(ist.parameters());
        unsafe {
            (*(*ost.as_mut_ptr()).codecpar).codec_tag = 0;
        }
        ost.set_time_base(ist.time_base());
        map.push(ist.time_base());
    }
    let mut opts = Dictionary::new();
    opts.set("movflags", "faststart");
    octx.write_header_with(opts).map_err(ff(dst, "writing the final header"))?;
    let out_tbs: Vec<_> = octx.streams().map(|s| s.time_base()).collect();
    // (last pts, last step) per stream: a packet read back without a duration (the
    // last one) gets the step before it, so the final frame keeps its length.
    let mut steps: Vec<(Option<i64>, i64)> = vec![(None, 0); map.len()];
    for (stream, mut packet) in ictx.packets() {
        let i = stream.index();
        packet.rescale_ts(map[i], out_tbs[i]);
        if let Some(pts) = packet.pts() {
            if let Some(prev) = steps[i].0 {
                steps[i].1 = pts - prev;
            }
            steps[i].0 = Some(pts);
        }
        if packet.duration() <= 0 && steps[i].1 > 0 {
            packet.set_duration(steps[i].1);
        }
        let shift = (priming.get(i).copied().unwrap_or(0.0) / f64::from(out_tbs[i])).round() as i64;
        if shift > 0 {
            packet.set_pts(packet.pts().map(|t| t - shift));
            packet.set_dts(packet.dts().map(|t| t - shift));
        }
        packet.set_position(-1);
        packet.set_stream(i);
        packet.write_interleaved(&mut octx).map_err(ff(dst, "copying a packet"))?;
    }
    octx.write_trailer().map_err(ff(dst, "writing the final index"))?;
    Ok(())
}
