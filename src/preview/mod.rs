//! `tessera preview`: a layout rendered with synthetic participants, to a PNG
//! (one frame) or an MP4 clip, so a layout or theme can be seen before a room exists.

pub mod synthetic;

use crate::compositor::{AudioChunk, Compositor, CompositorOptions, TickSource, TickVideo, VideoAt};
use crate::encode::EncodingOptions;
use crate::frame::VideoFrame;
use crate::layout::{Layout, compose};
use crate::pipeline::{EncodePipeline, PipelineError, Summary};
use crate::recording::Media;
use crate::render::{self, Backend, RenderError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use synthetic::{RoomOptions, SyntheticRoom};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum PreviewError {
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Output(#[from] crate::output::OutputError),
    #[error("output {0} must end in .png or .mp4")]
    Extension(PathBuf),
}

pub struct PreviewJob {
    pub layout: Layout,
    pub room: RoomOptions,
    pub encoding: EncodingOptions,
    pub duration: Duration,
    pub backend: Backend,
    /// Pace frames at real time (a live-looking run) instead of as fast as possible.
    pub realtime: bool,
    /// Also dump the rendered frames as raw I420 here (for the FFmpeg floor in `bench/`).
    pub raw_video_out: Option<PathBuf>,
}

/// What a preview produced.
#[derive(Debug)]
pub struct PreviewResult {
    pub summary: Option<Summary>,
    pub renderer: String,
    pub frames: u64,
}

pub fn run(job: &PreviewJob, out: &Path) -> Result<PreviewResult, PreviewError> {
    let ext = out.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase());
    let (w, h) = (job.encoding.width, job.encoding.height);
    let mut renderer = render::create(job.backend, w, h)?;
    let mut room = SyntheticRoom::new(job.room.clone())?;
    match ext.as_deref() {
        Some("png") => {
            // A second in, so the moving bars are visible.
            room.update(1_000_000);
            let scene = compose(&job.layout, &room.tile_sources(), w, h);
            let frame = render::render_once(renderer.as_mut(), &scene, &room.frames())?;
            crate::output::png::write_frame(out, &frame)?;
            Ok(PreviewResult { summary: None, renderer: renderer.describe(), frames: 1 })
        }
        Some("mp4") => clip(job, &mut room, renderer.as_mut(), out),
        _ => Err(PreviewError::Extension(out.to_path_buf())),
    }
}

/// The synthetic room as the compositor sees it: its tiles and frames at any time, and
/// each audible participant's tone generated up to where the mix needs it.
struct PreviewSource<'a> {
    room: &'a mut SyntheticRoom,
    audible: Vec<usize>,
    audio_pos: i64,
}

impl TickSource for PreviewSource<'_> {
    fn video_at(&mut self, t_us: i64) -> VideoAt {
        self.room.update(t_us);
        let videos = self.room.shared_frames().into_iter().map(|(key, f)| (key, Some(f))).collect();
        VideoAt { tiles: self.room.tile_sources(), videos, arrivals: Vec::new() }
    }

    fn audio_until(&mut self, until: i64) -> Vec<AudioChunk> {
        let (from, frames) = (self.audio_pos, (until - self.audio_pos).max(0) as usize);
        self.audio_pos = self.audio_pos.max(until);
        if frames == 0 {
            return Vec::new();
        }
        let room = &*self.room;
        self.audible
            .iter()
            .map(|&i| AudioChunk { input: i as u64, pos: from, samples: room.audio(i, from, frames) })
            .collect()
    }
}

fn clip(
    job: &PreviewJob,
    room: &mut SyntheticRoom,
    renderer: &mut dyn render::Renderer,
    out: &Path,
) -> Result<PreviewResult, PreviewError> {
    use std::io::Write;
    let fps = job.encoding.framerate.max(1);
    let pipeline = EncodePipeline::start(&job.encoding, out)?;
    let mut raw = match &job.raw_video_out {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p)
                .map_err(|cause| crate::output::OutputError::Io { path: p.display().to_string(), cause })?,
        )),
        None => None,
    };
    let audible = room.audible();
    let mut source = PreviewSource { room, audible, audio_pos: 0 };
    // Preview's clock is the output's: no delays, frame k at k/fps.
    let opts = CompositorOptions {
        width: job.encoding.width,
        height: job.encoding.height,
        fps,
        media: Media::AudioVideo,
        video_delay: Duration::ZERO,
        audio_delay: Duration::ZERO,
    };
    let mut compositor = Compositor::new(opts, 0);
    let frames = (job.duration.as_secs_f64() * fps as f64).round() as i64;
    let started = Instant::now();
    let mut rendered = 0u64;
    let mut emit = |f: render::RenderedFrame, pipeline: &EncodePipeline| -> Result<(), PreviewError> {
        if let Some(raw) = raw.as_mut() {
            for p in &f.frame.planes {
                raw.write_all(&p.data)
                    .map_err(|cause| crate::output::OutputError::Io { path: "raw video".into(), cause })?;
            }
        }
        rendered += 1;
        pipeline.push_video(f)?;
        Ok(())
    };
    for _ in 0..frames {
        if job.realtime {
            let due = started + Duration::from_micros(compositor.next_tick_us() as u64);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        let tick = compositor.tick(&mut source, &job.layout);
        if let TickVideo::Render { scene, frames, pts_us, .. } = tick.video {
            let refs: Vec<&VideoFrame> = frames.iter().map(|f| f.as_ref()).collect();
            if let Some(f) = renderer.render(&scene, &refs, pts_us)? {
                emit(f, &pipeline)?;
            }
        }
        for block in tick.audio {
            pipeline.push_audio(block)?;
        }
    }
    if let Some(f) = renderer.flush()? {
        emit(f, &pipeline)?;
    }
    for block in compositor.finish(&mut source) {
        pipeline.push_audio(block)?;
    }
    let summary = pipeline.finish()?;
    Ok(PreviewResult { summary: Some(summary), renderer: renderer.describe(), frames: rendered })
}
