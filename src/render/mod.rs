//! Renderers: a [`Scene`] plus the participants' frames in, one 4:2:0 frame out.
//!
//! Two backends share this interface and the same golden images:
//! - `cpu`: composites straight into Y'CbCr planes with SIMD scaling (swscale),
//!   cached masks for corners and borders and cached sprites for text. Chosen
//!   when no hardware GPU exists, which is our normal case.
//! - `gpu` (feature `gpu`): wgpu shaders, for hardware adapters (or lavapipe when forced).

pub mod cpu;
#[cfg(feature = "gpu")]
pub mod gpu;
pub(crate) mod sprites;

use crate::frame::{ColorSpace, FrameError, VideoFrame};
use crate::scene::Scene;
use std::str::FromStr;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum RenderError {
    #[error("scene is {scene_w}x{scene_h} but the renderer was made for {w}x{h}")]
    SizeMismatch { scene_w: u32, scene_h: u32, w: u32, h: u32 },
    #[error("scene refers to source {0}, which was not given")]
    MissingSource(usize),
    #[error("swscale could not scale {0}")]
    Scaler(String),
    #[cfg(feature = "gpu")]
    #[error("no GPU adapter: {0}")]
    NoAdapter(#[source] gpu::context::AdapterError),
    /// A wgpu call failed.
    #[error("GPU error {what}: {source}")]
    Gpu {
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The GPU cannot hold a texture this big.
    #[error("{what} is {w}x{h}, over {adapter}'s texture limit of {max}")]
    TextureLimit { what: String, w: u32, h: u32, adapter: String, max: u32 },
    #[error("the output size: {0}")]
    Size(#[from] crate::encode::OptionsError),
    #[error("the renderer returned no frame")]
    NoFrame,
    #[error("the GPU readback buffer was never mapped")]
    NeverMapped,
    #[error("the {0} renderer is not built in (cargo feature `gpu`)")]
    NotBuilt(&'static str),
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// A rendered output frame with its presentation time on the job's clock.
#[derive(Debug, Clone)]
pub struct RenderedFrame {
    pub pts_us: i64,
    pub frame: VideoFrame,
}

/// The renderer interface. A renderer may hand back frame N during the call for
/// frame N+1 (the GPU backend reads back while it renders the next): callers
/// take whatever `render` returns and call `flush` at the end.
pub trait Renderer: Send {
    /// Backend and device, for logs and metrics.
    fn describe(&self) -> String;
    fn render(
        &mut self,
        scene: &Scene,
        sources: &[&VideoFrame],
        pts_us: i64,
    ) -> Result<Option<RenderedFrame>, RenderError>;
    fn flush(&mut self) -> Result<Option<RenderedFrame>, RenderError>;
}

/// Which backend to use (`TESSERA_RENDERER`, `--renderer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// wgpu on a hardware adapter if there is one, else the CPU backend.
    #[default]
    Auto,
    Cpu,
    /// wgpu on whatever adapter is chosen, lavapipe included.
    Gpu,
}

/// A renderer name that is none of `Backend`'s (it holds the name, lowercased).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown renderer {0:?}: use auto, cpu or gpu")]
pub struct UnknownBackend(pub String);

impl FromStr for Backend {
    type Err = UnknownBackend;
    fn from_str(s: &str) -> Result<Self, UnknownBackend> {
        match s.to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(Backend::Auto),
            "cpu" => Ok(Backend::Cpu),
            "gpu" | "wgpu" => Ok(Backend::Gpu),
            other => Err(UnknownBackend(other.into())),
        }
    }
}

/// Output colour space: BT.709 limited range, tagged as such by the encoder.
pub(crate) const OUTPUT_COLOR: ColorSpace =
    ColorSpace { matrix: crate::frame::Matrix::Bt709, range: crate::frame::Range::Limited };

/// Makes a renderer for `width` x `height` output.
pub fn create(backend: Backend, width: u32, height: u32) -> Result<Box<dyn Renderer>, RenderError> {
    crate::encode::check_size(width, height)?;
    match backend {
        Backend::Cpu => Ok(Box::new(cpu::CpuRenderer::new(width, height)?)),
        #[cfg(feature = "gpu")]
        Backend::Gpu => Ok(Box::new(gpu::GpuRenderer::new(width, height)?)),
        #[cfg(not(feature = "gpu"))]
        Backend::Gpu => Err(RenderError::NotBuilt("gpu")),
        Backend::Auto => {
            #[cfg(feature = "gpu")]
            if let Some(ctx) = gpu::context::shared_hardware() {
                tracing::info!(adapter = %ctx.adapter_name, "rendering with wgpu on a hardware adapter");
                return Ok(Box::new(gpu::GpuRenderer::with_context(ctx, width, height)?));
            }
            tracing::info!("no hardware GPU: rendering with the CPU backend on Y'CbCr planes");
            Ok(Box::new(cpu::CpuRenderer::new(width, height)?))
        }
    }
}

/// Refuses a scene made for another output size than the renderer's.
pub(crate) fn check_scene_size(scene: &Scene, width: u32, height: u32) -> Result<(), RenderError> {
    if (scene.width, scene.height) != (width, height) {
        return Err(RenderError::SizeMismatch { scene_w: scene.width, scene_h: scene.height, w: width, h: height });
    }
    Ok(())
}

/// Renders one scene to a finished frame (for PNG previews and tests).
pub fn render_once(r: &mut dyn Renderer, scene: &Scene, sources: &[&VideoFrame]) -> Result<VideoFrame, RenderError> {
    let first = r.render(scene, sources, 0)?;
    let rest = r.flush()?;
    rest.or(first).map(|f| f.frame).ok_or(RenderError::NoFrame)
}

/// Where a `sw` x `sh` source goes in `tile`: the source window to read (even
/// offsets and sizes) and the output rectangle to fill. Cover crops the source
/// to the tile's shape; contain letterboxes it. Shared by both backends.
pub(crate) fn place_video(
    tile: crate::scene::Rect,
    sw: u32,
    sh: u32,
    fit: crate::scene::Fit,
) -> (cpu::scale::Window, crate::scene::Rect) {
    use crate::scene::{Fit, Rect};
    let even = |v: f32| (((v / 2.0).round() as u32) * 2).max(2);
    let (tw, th) = (tile.w as f32, tile.h as f32);
    let (fw, fh) = (sw as f32, sh as f32);
    match fit {
        Fit::Cover => {
            let scale = (tw / fw).max(th / fh);
            let cw = even(tw / scale).min(sw);
            let ch = even(th / scale).min(sh);
            let x = ((sw - cw) / 4) * 2;
            let y = ((sh - ch) / 4) * 2;
            (cpu::scale::Window { x, y, w: cw, h: ch }, tile)
        }
        Fit::Contain => {
            let scale = (tw / fw).min(th / fh);
            let dw = even(fw * scale).min(tile.w);
            let dh = even(fh * scale).min(tile.h);
            let dx = tile.x + ((tile.w - dw) / 4) * 2;
            let dy = tile.y + ((tile.h - dh) / 4) * 2;
            (cpu::scale::Window { x: 0, y: 0, w: sw, h: sh }, Rect::new(dx, dy, dw, dh))
        }
    }
}
