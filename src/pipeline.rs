//! The encode side of a job: a dedicated thread that takes rendered frames and
//! mixed audio over a bounded channel, encodes once and writes every output.

use crate::audio::MixedBlock;
use crate::encode::EncodingOptions;
use crate::encode::{AudioCodec, AudioEncoder, EncodeError, EncodedPacket, StreamSpec, VideoEncoder};
use crate::output::mp4::Mp4Writer;
use crate::output::mux::MuxWriter;
use crate::output::stream::PacketSink;
use crate::output::{FileFormat, OutputError};
use crate::recording::{Media, Outputs, RecordingSpec};
use crate::render::RenderedFrame;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum PipelineError {
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error("the encoder thread ended early")]
    Gone,
    #[error("{0}")]
    Unsupported(String),
}

/// The file being written.
enum FileWriter {
    Mp4(Mp4Writer),
    Mux(MuxWriter, PathBuf),
}

impl FileWriter {
    fn create(format: FileFormat, path: &Path, specs: &[StreamSpec]) -> Result<Self, PipelineError> {
        let muxer = match format {
            FileFormat::Mp4 => return Ok(FileWriter::Mp4(Mp4Writer::create(path, specs)?)),
            FileFormat::Ogg => "ogg",
            FileFormat::Mp3 => "mp3",
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|cause| OutputError::Io { path: dir.display().to_string(), cause })?;
        }
        let name = path.display().to_string();
        Ok(FileWriter::Mux(MuxWriter::create(&name, muxer, specs, &[], &name)?, path.to_path_buf()))
    }

    fn write(&mut self, p: EncodedPacket) -> Result<(), OutputError> {
        match self {
            FileWriter::Mp4(w) => w.write(p),
            FileWriter::Mux(w, _) => w.write(p),
        }
    }

    fn finish(self) -> Result<PathBuf, OutputError> {
        match self {
            FileWriter::Mp4(w) => w.finish(),
            FileWriter::Mux(w, path) => w.finish().map(|()| path),
        }
    }
}

enum Msg {
    /// A frame, and when the source frames it newly shows arrived (for latency).
    Video(RenderedFrame, Vec<std::time::Instant>),
    Audio(MixedBlock),
}

/// What a finished job wrote.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub path: PathBuf,
    pub video_frames: u64,
    pub audio_blocks: u64,
    pub bytes: u64,
    /// For frames pushed with arrival times: arrival to encoded packet written, in µs.
    pub latencies_us: Vec<u64>,
    /// Why the file stopped being written, when it failed while other outputs went on.
    pub file_error: Option<String>,
}

/// Whether the encoder may hold frames back to look ahead (x264's lookahead, B-frames).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Latency {
    Lookahead,
    Live,
}

pub(crate) struct EncodePipeline {
    tx: Option<SyncSender<Msg>>,
    handle: Option<JoinHandle<Result<Summary, PipelineError>>>,
}

impl EncodePipeline {
    /// Opens encoders and the file for audio and video from a source that is not live
    /// (the encoder may look ahead), then starts the encode thread.
    pub(crate) fn start(opts: &EncodingOptions, path: &Path) -> Result<Self, PipelineError> {
        let outputs = Outputs { file: Some(path.to_path_buf()), ..Outputs::default() };
        Self::open(opts, &outputs, Media::AudioVideo, Latency::Lookahead, "encode")
    }

    /// Opens what `spec` asks for, for a live source: every frame's packet comes out as it
    /// is encoded. The encode thread is named `thread_name` (FFmpeg's worker threads inherit
    /// the name, so a job's CPU can be told apart from another's in one process).
    pub(crate) fn start_live(spec: &RecordingSpec, thread_name: &str) -> Result<Self, PipelineError> {
        Self::open(&spec.encoding, &spec.outputs, spec.media, Latency::Live, thread_name)
    }

    fn open(
        opts: &EncodingOptions,
        outputs: &Outputs,
        media: Media,
        latency: Latency,
        thread_name: &str,
    ) -> Result<Self, PipelineError> {
        let (video, audio, low_latency) = (media.video(), media.audio(), latency == Latency::Live);
        let format = outputs.file.as_deref().and_then(FileFormat::from_extension).unwrap_or(FileFormat::Mp4);
        if video && !format.holds_video() {
            return Err(PipelineError::Unsupported(format!(
                "{format:?} files hold audio only; record audio only or write an MP4"
            )));
        }
        // Streams get a keyframe every 4 s unless told otherwise (LiveKit's default); files every 2 s.
        let gop = opts.gop_frames(if outputs.sinks.is_empty() { 2.0 } else { 4.0 });
        let venc = if video { Some(VideoEncoder::new(opts, gop, low_latency)?) } else { None };
        let codec = if format == FileFormat::Mp4 && opts.opus_in_mp4 { AudioCodec::Opus } else { format.audio_codec() };
        let aenc = if audio { Some(AudioEncoder::with_codec(codec, opts)?) } else { None };
        let mut specs = Vec::new();
        specs.extend(venc.as_ref().map(|v| v.spec()));
        specs.extend(aenc.as_ref().map(|a| a.spec()));
        // A file that cannot be written stops only itself while other outputs take packets.
        let (writer, file_error) = match &outputs.file {
            Some(path) => match FileWriter::create(format, path, &specs) {
                Ok(w) => (Some(w), None),
                Err(e) if others_take_packets(&outputs.sinks, &outputs.images) => {
                    tracing::warn!(file = %path.display(), error = %e, "the file cannot be written; the other outputs go on");
                    (None, Some(e.to_string()))
                }
                Err(e) => return Err(e),
            },
            None => (None, None),
        };
        let path = outputs.file.clone().unwrap_or_default();
        for s in &outputs.sinks {
            s.start(&specs);
        }
        let sinks = outputs.sinks.clone();
        let images = outputs.images.clone();
        // A few frames of slack; the producer waits beyond that (offline) or drops (live, later).
        let (tx, rx) = sync_channel(8);
        let handle = std::thread::Builder::new()
            .name(thread_name.into())
            .spawn(move || run(rx, venc, aenc, Written { writer, path, error: file_error }, sinks, images))
            .map_err(|_| PipelineError::Gone)?;
        Ok(Self { tx: Some(tx), handle: Some(handle) })
    }

    pub(crate) fn push_video(&self, frame: RenderedFrame) -> Result<(), PipelineError> {
        self.send(Msg::Video(frame, Vec::new()))
    }

    /// A frame showing source frames that arrived at `arrivals`.
    pub(crate) fn push_video_timed(
        &self,
        frame: RenderedFrame,
        arrivals: Vec<std::time::Instant>,
    ) -> Result<(), PipelineError> {
        self.send(Msg::Video(frame, arrivals))
    }

    pub(crate) fn push_audio(&self, block: MixedBlock) -> Result<(), PipelineError> {
        self.send(Msg::Audio(block))
    }

    fn send(&self, msg: Msg) -> Result<(), PipelineError> {
        match &self.tx {
            Some(tx) => tx.send(msg).map_err(|_| PipelineError::Gone),
            None => Err(PipelineError::Gone),
        }
    }

    /// Flushes the encoders and finalises the file.
    pub(crate) fn finish(mut self) -> Result<Summary, PipelineError> {
        self.tx.take();
        match self.handle.take().map(|h| h.join()) {
            Some(Ok(r)) => r,
            _ => Err(PipelineError::Gone),
        }
    }
}

/// Whether outputs other than the file still take packets (then a failing file ends only itself).
fn others_take_packets(sinks: &[Arc<dyn PacketSink>], images: &[Arc<crate::output::images::ImageSink>]) -> bool {
    sinks.iter().any(|s| s.active()) || !images.is_empty()
}

/// The job's file: its writer until it fails, and why it failed.
struct Written {
    writer: Option<FileWriter>,
    path: PathBuf,
    error: Option<String>,
}

fn run(
    rx: Receiver<Msg>,
    mut venc: Option<VideoEncoder>,
    mut aenc: Option<AudioEncoder>,
    mut file: Written,
    sinks: Vec<Arc<dyn PacketSink>>,
    images: Vec<Arc<crate::output::images::ImageSink>>,
) -> Result<Summary, PipelineError> {
    let (mut frames, mut blocks) = (0u64, 0u64);
    let mut latencies_us = Vec::new();
    let write_all = |f: &mut Written, packets: Vec<EncodedPacket>| -> Result<(), PipelineError> {
        for p in packets {
            for s in &sinks {
                s.write(&p);
            }
            if let Some(w) = f.writer.as_mut()
                && let Err(e) = w.write(p)
            {
                // A full disk ends the file; the streams, segments and images go on if there are any.
                if !others_take_packets(&sinks, &images) {
                    return Err(e.into());
                }
                tracing::warn!(file = %f.path.display(), error = %e, "the file output failed; the other outputs go on");
                f.writer = None;
                f.error = Some(e.to_string());
            }
        }
        Ok(())
    };
    for msg in rx {
        match msg {
            Msg::Video(f, arrivals) => {
                for i in &images {
                    i.offer(&f.frame, f.pts_us);
                }
                if let Some(v) = venc.as_mut() {
                    // (every sink is asked, so each request is cleared)
                    if sinks.iter().filter(|s| s.keyframe_wanted(f.pts_us)).count() > 0 {
                        v.force_keyframe();
                    }
                    let packets = v.encode(&f.frame, f.pts_us)?;
                    let out = !packets.is_empty();
                    write_all(&mut file, packets)?;
                    if out {
                        latencies_us.extend(arrivals.iter().map(|a| a.elapsed().as_micros() as u64));
                    }
                    frames += 1;
                }
            }
            Msg::Audio(b) => {
                if let Some(a) = aenc.as_mut() {
                    let packets = a.encode(&b)?;
                    write_all(&mut file, packets)?;
                    blocks += 1;
                }
            }
        }
    }
    if let Some(v) = venc.as_mut() {
        let packets = v.finish()?;
        write_all(&mut file, packets)?;
    }
    if let Some(a) = aenc.as_mut() {
        let packets = a.finish()?;
        write_all(&mut file, packets)?;
    }
    for s in &sinks {
        s.finish();
    }
    for i in &images {
        i.finish();
    }
    let path = match file.writer {
        Some(w) => w.finish()?,
        None => file.path,
    };
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    Ok(Summary { path, video_frames: frames, audio_blocks: blocks, bytes, latencies_us, file_error: file.error })
}
