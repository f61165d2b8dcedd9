//! `tessera preview`: a layout rendered with synthetic participants, to a PNG
//! (one frame) or an MP4 clip, so a layout or theme can be seen before a room exists.

pub mod synthetic;

use crate::audio::{Mixer, SAMPLE_RATE};
use crate::config::EncodingOptions;
use crate::layout::{Layout, compose};
use crate::pipeline::{EncodePipeline, PipelineError, Summary};
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

fn clip(
    job: &PreviewJob,
    room: &mut SyntheticRoom,
    renderer: &mut dyn render::Renderer,
    out: &Path,
) -> Result<PreviewResult, PreviewError> {
    use std::io::Write;
    let (w, h, fps) = (job.encoding.width, job.encoding.height, job.encoding.framerate as i64);
    let pipeline = EncodePipeline::start(&job.encoding, out, true, true)?;
    let mut raw = match &job.raw_video_out {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p)
                .map_err(|cause| crate::output::OutputError::Io { path: p.display().to_string(), cause })?,
        )),
        None => None,
    };
    let mut mixer = Mixer::new(0, SAMPLE_RATE as usize / 100);
    let audible = room.audible();
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
    for k in 0..frames {
        // Frame k is shown at k/fps on the job clock; audio is mixed up to the next frame.
        let t_us = k * 1_000_000 / fps;
        if job.realtime {
            let due = started + Duration::from_micros(t_us as u64);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        room.update(t_us);
        let scene = compose(&job.layout, &room.tile_sources(), w, h);
        if let Some(f) = renderer.render(&scene, &room.frames(), t_us)? {
            emit(f, &pipeline)?;
        }
        let audio_until = (k + 1) * SAMPLE_RATE as i64 / fps;
        while mixer.position() + mixer.block_frames() as i64 <= audio_until {
            let pos = mixer.position();
            for &i in &audible {
                mixer.push(i as u64, pos, &room.audio(i, pos, mixer.block_frames()));
            }
            pipeline.push_audio(mixer.mix())?;
        }
    }
    if let Some(f) = renderer.flush()? {
        emit(f, &pipeline)?;
    }
    let summary = pipeline.finish()?;
    Ok(PreviewResult { summary: Some(summary), renderer: renderer.describe(), frames: rendered })
}
