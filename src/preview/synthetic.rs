//! Synthetic participants: a moving pattern in each one's colour with its name,
//! and a tone at each one's pitch. They stand in for a room in `preview`, in the
//! golden-image tests and in benchmarks.

use crate::audio::{CHANNELS, SAMPLE_RATE};
use crate::color::{Rgba, rgb_to_yuv};
use crate::frame::{PixelFormat, VideoFrame};
use crate::layout::{TileKind, TileSource};
use crate::render::cpu::CpuRenderer;
use crate::render::{RenderError, render_once};
use crate::scene::{Anchor, Overlay, OverlayContent, Rect, Scene, Tile};
use std::sync::Arc;

const NAMES: [&str; 12] =
    ["Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy", "Mallory", "Niaj"];

/// The display name of participant `i` (0-based).
pub fn name(i: usize) -> String {
    if i < NAMES.len() { NAMES[i].to_string() } else { format!("Guest {}", i + 1) }
}

/// Participant `i`'s colour: hues a golden angle apart, so any number stay distinct.
pub fn color(i: usize) -> Rgba {
    let h = (i as f32 * 137.508) % 360.0;
    let (s, v) = (0.75f32, 0.85f32);
    let c = v * s;
    let x = c * (1.0 - ((h / 60.0) % 2.0 - 1.0).abs());
    let (r, g, b) = match (h / 60.0) as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = v - c;
    let q = |f: f32| ((f + m) * 255.0).round() as u8;
    Rgba::rgb(q(r), q(g), q(b))
}

/// Participant `i`'s tone in Hz: 150 Hz apart, easy to tell apart by FFT.
pub fn tone_hz(i: usize) -> f32 {
    300.0 + 150.0 * i as f32
}

#[derive(Debug, Clone, Default)]
pub struct RoomOptions {
    pub participants: usize,
    /// Index of the first participant (names, colours and tones follow the index).
    pub first: usize,
    /// Participant 0 shares a screen.
    pub screen_share: bool,
    /// 0-based indices.
    pub speaking: Vec<usize>,
    pub muted: Vec<usize>,
    pub camera_off: Vec<usize>,
    /// Colour space of the camera frames: BT.709 (the output's) for previews,
    /// BT.601 for WebRTC publishing, which is what receivers assume for VP8.
    pub color: crate::frame::ColorSpace,
    /// Camera resolution.
    pub input_width: u32,
    pub input_height: u32,
}

struct Participant {
    name: String,
    base: VideoFrame,
    /// Shared with whoever renders it; redrawn in place once they let go.
    frame: Arc<VideoFrame>,
    light: [u8; 3],
}

pub struct SyntheticRoom {
    opts: RoomOptions,
    people: Vec<Participant>,
    share: Option<Participant>,
}

/// A frame of `w`x`h` in colour `c` with `label` drawn in the middle.
fn base_frame(w: u32, h: u32, c: Rgba, label: &str) -> Result<VideoFrame, RenderError> {
    let scene = Scene {
        width: w,
        height: h,
        background: c,
        tiles: vec![Tile {
            rect: Rect::new(0, 0, w, h),
            background: c,
            radius: 0.0,
            video: None,
            border: None,
            overlays: vec![Overlay {
                anchor: Anchor::Center,
                content: OverlayContent::Label {
                    text: label.to_string(),
                    muted: false,
                    font_px: (h / 10).max(8),
                    color: Rgba::WHITE,
                    background: Rgba { r: 0, g: 0, b: 0, a: 96 },
                },
            }],
        }],
    };
    render_once(&mut CpuRenderer::new(w, h)?, &scene, &[])
}

fn lighter(c: Rgba) -> Rgba {
    let l = |v: u8| v.saturating_add(60);
    Rgba::rgb(l(c.r), l(c.g), l(c.b))
}

impl SyntheticRoom {
    /// Fails only for camera sizes the renderer refuses (below 2 pixels, above 4096).
    pub fn new(opts: RoomOptions) -> Result<Self, RenderError> {
        let (w, h) = (opts.input_width, opts.input_height);
        let people = (opts.first..opts.first + opts.participants)
            .map(|i| {
                let mut base = base_frame(w, h, color(i), &name(i))?;
                crate::render::cpu::convert_frame(&mut base, opts.color);
                let light = rgb_to_yuv(lighter(color(i)), opts.color);
                Ok(Participant { name: name(i), frame: Arc::new(base.clone()), base, light })
            })
            .collect::<Result<_, RenderError>>()?;
        let share = if opts.screen_share && opts.participants > 0 {
            let slide = Rgba::rgb(0xf0, 0xf0, 0xf0);
            let mut base = base_frame(1280, 720, slide, &format!("{}'s screen", name(opts.first)))?;
            crate::render::cpu::convert_frame(&mut base, opts.color);
            let light = rgb_to_yuv(Rgba::rgb(40, 40, 40), opts.color);
            Some(Participant { name: name(opts.first), frame: Arc::new(base.clone()), base, light })
        } else {
            None
        };
        Ok(Self { opts, people, share })
    }

    /// Moves every pattern to time `t_us`: a bar crossing the frame every 4 s.
    pub fn update(&mut self, t_us: i64) {
        let phase = (t_us.rem_euclid(4_000_000)) as f32 / 4_000_000.0;
        for p in self.people.iter_mut().chain(self.share.iter_mut()) {
            let frame = Arc::make_mut(&mut p.frame);
            frame.clone_from(&p.base);
            let w = frame.width;
            let bar = (w / 20).max(2) & !1;
            let x0 = ((phase * (w - bar) as f32) as u32) & !1;
            draw_bar(frame, x0, bar, p.light);
        }
    }

    /// The frames, indexed as `tile_sources` refers to them.
    pub fn frames(&self) -> Vec<&VideoFrame> {
        self.people.iter().chain(self.share.iter()).map(|p| p.frame.as_ref()).collect()
    }

    /// The frames, shared, with a key each (the participant's identity, `:screen` for the share).
    pub(crate) fn shared_frames(&self) -> Vec<(String, Arc<VideoFrame>)> {
        let first = self.opts.first;
        let people = self.people.iter().enumerate().map(|(i, p)| (format!("synthetic-{}", first + i), p.frame.clone()));
        let share = self.share.iter().map(|p| (format!("synthetic-{first}:screen"), p.frame.clone()));
        people.chain(share).collect()
    }

    /// What the layout engine sees: one camera per participant, plus the share.
    pub fn tile_sources(&self) -> Vec<TileSource> {
        let mut v: Vec<TileSource> = self
            .people
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let speaking = self.opts.speaking.contains(&i);
                TileSource {
                    identity: format!("synthetic-{}", self.opts.first + i),
                    name: p.name.clone(),
                    kind: TileKind::Camera,
                    video: (!self.opts.camera_off.contains(&i)).then_some(i),
                    speaking,
                    audio_level: if speaking { 0.5 } else { 0.0 },
                    audio_muted: self.opts.muted.contains(&i),
                    last_spoke_ms: None,
                    joined_ms: i as u64 * 1000,
                }
            })
            .collect();
        if let Some(s) = &self.share {
            v.push(TileSource {
                identity: format!("synthetic-{}", self.opts.first),
                name: s.name.clone(),
                kind: TileKind::ScreenShare,
                video: Some(self.people.len()),
                speaking: false,
                audio_level: 0.0,
                audio_muted: false,
                last_spoke_ms: None,
                joined_ms: 0,
            });
        }
        v
    }

    /// Which participants make sound (not muted).
    pub(crate) fn audible(&self) -> Vec<usize> {
        (0..self.people.len()).filter(|i| !self.opts.muted.contains(i)).collect()
    }

    /// Participant `i`'s tone for `frames` sample frames from clock position `pos`.
    pub fn audio(&self, i: usize, pos: i64, frames: usize) -> Vec<f32> {
        let f = tone_hz(self.opts.first + i) as f64;
        let mut out = Vec::with_capacity(frames * CHANNELS);
        for k in 0..frames as i64 {
            // Phase from the absolute position keeps the tone continuous across blocks.
            let t = ((pos + k) as f64 * f / SAMPLE_RATE as f64).fract();
            let s = (0.08 * (t * std::f64::consts::TAU).sin()) as f32;
            out.push(s);
            out.push(s);
        }
        out
    }
}

fn draw_bar(f: &mut VideoFrame, x0: u32, w: u32, yuv: [u8; 3]) {
    debug_assert_eq!(f.format, PixelFormat::I420);
    let (x0, w) = (x0 as usize, w as usize);
    for row in 0..f.height as usize {
        let s = f.planes[0].stride;
        f.planes[0].data[row * s + x0..row * s + x0 + w].fill(yuv[0]);
    }
    for row in 0..f.height as usize / 2 {
        for k in 1..3 {
            let s = f.planes[k].stride;
            f.planes[k].data[row * s + x0 / 2..row * s + (x0 + w) / 2].fill(yuv[k]);
        }
    }
}
