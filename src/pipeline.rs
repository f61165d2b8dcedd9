//! The encode side of a job: a dedicated thread that takes rendered frames and
//! mixed audio over a bounded channel, encodes once and writes every output.

use crate::audio::MixedBlock;
use crate::config::EncodingOptions;
use crate::encode::{AudioEncoder, EncodeError, EncodedPacket, VideoEncoder};
use crate::output::OutputError;
use crate::output::mp4::Mp4Writer;
use crate::render::RenderedFrame;
use std::path::{Path, PathBuf};
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
}

enum Msg {
    /// A frame, and when the source frames it newly shows arrived (for latency).
    Video(RenderedFrame, Vec<std::time::Instant>),
    Audio(MixedBlock),
}

/// What a finished job wrote.
#[derive(Debug, Clone)]
pub struct Summary {
    pub path: PathBuf,
    pub video_frames: u64,
    pub audio_blocks: u64,
    pub bytes: u64,
    /// For frames pushed with arrival times: arrival to encoded packet written, in µs.
    pub latencies_us: Vec<u64>,
}

pub struct EncodePipeline {
    tx: Option<SyncSender<Msg>>,
    handle: Option<JoinHandle<Result<Summary, PipelineError>>>,
}

impl EncodePipeline {
    /// Opens encoders and the MP4 file, then starts the encode thread.
    pub fn start(opts: &EncodingOptions, path: &Path, video: bool, audio: bool) -> Result<Self, PipelineError> {
        Self::start_with(opts, path, video, audio, false)
    }

    /// As `start`; `low_latency` makes every frame's packet come out as it is encoded
    /// (no lookahead), for live sources.
    pub fn start_with(
        opts: &EncodingOptions,
        path: &Path,
        video: bool,
        audio: bool,
        low_latency: bool,
    ) -> Result<Self, PipelineError> {
        Self::start_named(opts, path, video, audio, low_latency, "encode")
    }

    /// As `start_with`, naming the encode thread (FFmpeg's worker threads inherit the
    /// name, so a job's CPU can be told apart from another's in one process).
    pub fn start_named(
        opts: &EncodingOptions,
        path: &Path,
        video: bool,
        audio: bool,
        low_latency: bool,
        thread_name: &str,
    ) -> Result<Self, PipelineError> {
        let venc = if video { Some(VideoEncoder::new(opts, opts.gop_frames(2.0), low_latency)?) } else { None };
        let aenc = if audio { Some(AudioEncoder::new(opts)?) } else { None };
        let mut specs = Vec::new();
        specs.extend(venc.as_ref().map(|v| v.spec()));
        specs.extend(aenc.as_ref().map(|a| a.spec()));
        let writer = Mp4Writer::create(path, &specs)?;
        // A few frames of slack; the producer waits beyond that (offline) or drops (live, later).
        let (tx, rx) = sync_channel(8);
        let handle = std::thread::Builder::new()
            .name(thread_name.into())
            .spawn(move || run(rx, venc, aenc, writer))
            .map_err(|_| PipelineError::Gone)?;
        Ok(Self { tx: Some(tx), handle: Some(handle) })
    }

    pub fn push_video(&self, frame: RenderedFrame) -> Result<(), PipelineError> {
        self.send(Msg::Video(frame, Vec::new()))
    }

    /// A frame showing source frames that arrived at `arrivals`.
    pub fn push_video_timed(
        &self,
        frame: RenderedFrame,
        arrivals: Vec<std::time::Instant>,
    ) -> Result<(), PipelineError> {
        self.send(Msg::Video(frame, arrivals))
    }

    pub fn push_audio(&self, block: MixedBlock) -> Result<(), PipelineError> {
        self.send(Msg::Audio(block))
    }

    fn send(&self, msg: Msg) -> Result<(), PipelineError> {
        match &self.tx {
            Some(tx) => tx.send(msg).map_err(|_| PipelineError::Gone),
            None => Err(PipelineError::Gone),
        }
    }

    /// Flushes the encoders and finalises the file.
    pub fn finish(mut self) -> Result<Summary, PipelineError> {
        self.tx.take();
        match self.handle.take().map(|h| h.join()) {
            Some(Ok(r)) => r,
            _ => Err(PipelineError::Gone),
        }
    }
}

fn run(
    rx: Receiver<Msg>,
    mut venc: Option<VideoEncoder>,
    mut aenc: Option<AudioEncoder>,
    mut writer: Mp4Writer,
) -> Result<Summary, PipelineError> {
    let (mut frames, mut blocks) = (0u64, 0u64);
    let mut latencies_us = Vec::new();
    let write_all = |w: &mut Mp4Writer, packets: Vec<EncodedPacket>| -> Result<(), PipelineError> {
        for p in packets {
            w.write(p)?;
        }
        Ok(())
    };
    for msg in rx {
        match msg {
            Msg::Video(f, arrivals) => {
                if let Some(v) = venc.as_mut() {
                    let packets = v.encode(&f.frame, f.pts_us)?;
                    let out = !packets.is_empty();
                    write_all(&mut writer, packets)?;
                    if out {
                        latencies_us.extend(arrivals.iter().map(|a| a.elapsed().as_micros() as u64));
                    }
                    frames += 1;
                }
            }
            Msg::Audio(b) => {
                if let Some(a) = aenc.as_mut() {
                    let packets = a.encode(&b)?;
                    write_all(&mut writer, packets)?;
                    blocks += 1;
                }
            }
        }
    }
    if let Some(v) = venc.as_mut() {
        let packets = v.finish()?;
        write_all(&mut writer, packets)?;
    }
    if let Some(a) = aenc.as_mut() {
        let packets = a.finish()?;
        write_all(&mut writer, packets)?;
    }
    let path = writer.finish()?;
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    Ok(Summary { path, video_frames: frames, audio_blocks: blocks, bytes, latencies_us })
}
