//! One compositor tick, without clocks or threads: what the output shows and mixes at its
//! next frame, from whatever supplies tiles, frames and audio. The recorder's thread drives
//! it against the wall clock, preview as fast as it can, and the tests in simulated time
//! (str0m's run loop is the model: the caller owns time, the state machine owns the rules).
//!
//! Time: the source's clock (the room clock) in µs. Tick k is due at `start + k frames`,
//! shows what the source had at `due - video_delay` and stamps it `k frames` on the output
//! clock; audio is mixed up to `due - audio_delay`, placed at its room time minus `origin`.

use crate::audio::{MixedBlock, Mixer, SAMPLE_RATE};
use crate::frame::VideoFrame;
use crate::layout::{Layout, TileSource, compose};
use crate::recording::Media;
use crate::scene::Scene;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// What a tick needs of the room: the tiles and the frame each video shows, and the audio.
pub(crate) trait TickSource {
    /// The tiles at source time `t_us`, and for each video a tile refers to (by index)
    /// its key (a track sid, for layer requests) and the frame it shows (None: none yet).
    fn video_at(&mut self, t_us: i64) -> VideoAt;
    /// Every input's audio before sample position `until` (48 kHz, source clock), taken.
    fn audio_until(&mut self, until: i64) -> Vec<AudioChunk>;
}

/// The picture side of a source at one time.
#[derive(Default)]
pub(crate) struct VideoAt {
    pub tiles: Vec<TileSource>,
    pub videos: Vec<(String, Option<Arc<VideoFrame>>)>,
    /// Source-clock times at which the frames first shown now arrived (for latency).
    pub arrivals: Vec<i64>,
}

/// Samples of one mixer input from a source-clock sample position (interleaved stereo).
pub(crate) struct AudioChunk {
    pub input: u64,
    pub pos: i64,
    pub samples: Vec<f32>,
}

/// The output's shape and the delays that let late media make its tick.
#[derive(Debug, Clone)]
pub(crate) struct CompositorOptions {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub media: Media,
    pub video_delay: Duration,
    pub audio_delay: Duration,
}

/// What one tick produced.
pub(crate) struct TickOutput {
    pub video: TickVideo,
    /// Mixed 10 ms blocks, stamped on the output clock.
    pub audio: Vec<MixedBlock>,
    /// (key, width, height) for each video whose tile changed size: ask the server for the
    /// simulcast layer that fits.
    pub layer_requests: Vec<(String, u32, u32)>,
}

pub(crate) enum TickVideo {
    /// Render this scene from these frames (indexed as the scene's tiles refer to them).
    Render { scene: Scene, frames: Vec<Arc<VideoFrame>>, arrivals: Vec<i64>, pts_us: i64 },
    /// A video shown in the layout has no frame yet: nothing to render this tick.
    Skipped,
    /// Audio only.
    None,
}

pub(crate) struct Compositor {
    opts: CompositorOptions,
    frame_us: i64,
    /// Source time of output time 0, and when tick 0 is due (origin + video delay).
    origin_us: i64,
    start_us: i64,
    k: i64,
    sizes: HashMap<String, (u32, u32)>,
    mixer: Mixer,
}

fn to_pos(us: i64) -> i64 {
    us * SAMPLE_RATE as i64 / 1_000_000
}

impl Compositor {
    /// Output time 0 is source time `origin_us` (the first frame, so there is no black lead-in).
    pub(crate) fn new(opts: CompositorOptions, origin_us: i64) -> Self {
        let frame_us = 1_000_000 / opts.fps.max(1) as i64;
        let start_us = origin_us + opts.video_delay.as_micros() as i64;
        Self {
            opts,
            frame_us,
            origin_us,
            start_us,
            k: 0,
            sizes: HashMap::new(),
            mixer: Mixer::new(0, SAMPLE_RATE as usize / 100),
        }
    }

    /// Source time at which the next tick is due.
    pub(crate) fn next_tick_us(&self) -> i64 {
        self.start_us + self.k * self.frame_us
    }

    /// Output time covered by the ticks so far.
    pub(crate) fn elapsed_us(&self) -> i64 {
        self.k * self.frame_us
    }

    /// Whether a tick run at source time `now_us` is more than a frame late.
    pub(crate) fn is_late(&self, now_us: i64) -> bool {
        now_us - self.next_tick_us() > self.frame_us
    }

    /// Composes the next tick against `layout` and mixes the audio that is due.
    pub(crate) fn tick(&mut self, source: &mut dyn TickSource, layout: &Layout) -> TickOutput {
        let due = self.next_tick_us();
        let mut layer_requests = Vec::new();
        let video = if self.opts.media.video() {
            let at = source.video_at(due - self.opts.video_delay.as_micros() as i64);
            let scene = compose(layout, &at.tiles, self.opts.width, self.opts.height);
            for t in &scene.tiles {
                if let Some((i, _)) = t.video
                    && let Some((key, _)) = at.videos.get(i)
                {
                    let size = (t.rect.w, t.rect.h);
                    if self.sizes.insert(key.clone(), size) != Some(size) {
                        layer_requests.push((key.clone(), size.0, size.1));
                    }
                }
            }
            let frames: Option<Vec<Arc<VideoFrame>>> = at.videos.into_iter().map(|(_, f)| f).collect();
            match frames {
                Some(frames) => TickVideo::Render { scene, frames, arrivals: at.arrivals, pts_us: self.elapsed_us() },
                None => TickVideo::Skipped,
            }
        } else {
            TickVideo::None
        };
        // Audio is mixed further behind real time than video is shown, so late packets make it.
        let audio = self.mix(source, to_pos(due - self.opts.audio_delay.as_micros() as i64));
        self.k += 1;
        TickOutput { video, audio, layer_requests }
    }

    /// The audio up to the end of the last tick (everything that arrived before the end).
    pub(crate) fn finish(&mut self, source: &mut dyn TickSource) -> Vec<MixedBlock> {
        self.mix(source, to_pos(self.origin_us + self.elapsed_us()))
    }

    /// The mixer's accounting of input `id`: late, gap-filled and underrun samples.
    pub(crate) fn audio_stats(&self, id: u64) -> Option<crate::audio::InputStats> {
        self.mixer.stats(id)
    }

    fn mix(&mut self, source: &mut dyn TickSource, until: i64) -> Vec<MixedBlock> {
        // Taken even for video only, so nothing waits in the source.
        let chunks = source.audio_until(until);
        let mut blocks = Vec::new();
        if !self.opts.media.audio() {
            return blocks;
        }
        let origin = to_pos(self.origin_us);
        for c in chunks {
            self.mixer.push(c.input, c.pos - origin, &c.samples);
        }
        while self.mixer.position() + self.mixer.block_frames() as i64 <= until - origin {
            blocks.push(self.mixer.mix());
        }
        blocks
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{ColorSpace, PixelFormat};
    use crate::layout::{LayoutSet, TileKind};

    /// A scripted room in simulated time: each video gets a new frame every `every_us` until
    /// `until_us` (then it freezes), and input 0 has audio from source position `audio_from`.
    struct Script {
        videos: Vec<(String, i64)>,
        every_us: i64,
        frame: Arc<VideoFrame>,
        audio_from: i64,
        audio_taken: i64,
    }

    impl TickSource for Script {
        fn video_at(&mut self, t_us: i64) -> VideoAt {
            let tiles = self
                .videos
                .iter()
                .enumerate()
                .map(|(i, (key, _))| TileSource { kind: TileKind::Camera, ..TileSource::camera(key, key, Some(i)) })
                .collect();
            let videos = self
                .videos
                .iter()
                .map(|(key, until)| {
                    (key.clone(), (t_us >= self.every_us && t_us <= *until).then(|| self.frame.clone()))
                })
                .collect();
            VideoAt { tiles, videos, arrivals: Vec::new() }
        }

        fn audio_until(&mut self, until: i64) -> Vec<AudioChunk> {
            let from = self.audio_taken.max(self.audio_from);
            self.audio_taken = until;
            if until <= from {
                return Vec::new();
            }
            vec![AudioChunk { input: 0, pos: from, samples: vec![0.25; (until - from) as usize * 2] }]
        }
    }

    fn opts(media: Media) -> CompositorOptions {
        CompositorOptions {
            width: 640,
            height: 360,
            fps: 10,
            media,
            video_delay: Duration::from_millis(50),
            audio_delay: Duration::from_millis(200),
        }
    }

    fn script(keys: &[&str]) -> Script {
        Script {
            videos: keys.iter().map(|k| (k.to_string(), i64::MAX)).collect(),
            every_us: 100_000,
            frame: Arc::new(
                VideoFrame::filled(PixelFormat::I420, 64, 36, ColorSpace::default(), [16, 128, 128]).unwrap(),
            ),
            audio_from: 0,
            audio_taken: 0,
        }
    }

    fn layout(name: &str) -> Layout {
        LayoutSet::builtin().unwrap().resolve(name).unwrap()
    }

    #[test]
    fn ticks_are_due_a_frame_apart_after_the_video_delay_and_stamped_from_zero() {
        let mut c = Compositor::new(opts(Media::AudioVideo), 1_000_000);
        let mut s = script(&["a"]);
        assert_eq!(c.next_tick_us(), 1_050_000);
        let pts: Vec<i64> = (0..3)
            .map(|_| match c.tick(&mut s, &layout("grid")).video {
                TickVideo::Render { pts_us, .. } => pts_us,
                _ => -1,
            })
            .collect();
        assert_eq!(pts, [0, 100_000, 200_000]);
        assert_eq!((c.next_tick_us(), c.elapsed_us()), (1_350_000, 300_000));
        // Late: more than a frame past due.
        assert!(!c.is_late(1_450_000) && c.is_late(1_450_001));
    }

    #[test]
    fn a_video_without_its_first_frame_skips_the_tick_and_a_frozen_one_keeps_its_tile() {
        let mut c = Compositor::new(opts(Media::AudioVideo), 0);
        let mut s = script(&["a", "b"]);
        // Source time 0 (tick 0 at 50 ms shows 0): nobody has a frame yet.
        assert!(matches!(c.tick(&mut s, &layout("grid")).video, TickVideo::Skipped));
        // "b" stops having frames after 250 ms: from then on the tick waits for it.
        s.videos[1].1 = 250_000;
        let shown: Vec<bool> =
            (0..4).map(|_| matches!(c.tick(&mut s, &layout("grid")).video, TickVideo::Render { .. })).collect();
        assert_eq!(shown, [true, true, false, false]);
    }

    #[test]
    fn one_layer_request_per_size_change() {
        let mut c = Compositor::new(opts(Media::AudioVideo), 0);
        let mut s = script(&["a", "b"]);
        let grid = layout("grid");
        let first = c.tick(&mut s, &grid).layer_requests;
        assert_eq!(first.len(), 2, "{first:?}");
        assert!(first.iter().all(|(_, w, h)| *w < 320 && *h < 360), "{first:?}");
        assert!(c.tick(&mut s, &grid).layer_requests.is_empty());
        // Single speaker: one video is shown, full frame; the other is not shown (no request).
        let single = c.tick(&mut s, &layout("single-speaker")).layer_requests;
        assert_eq!(single.len(), 1, "{single:?}");
        assert_eq!((single[0].1, single[0].2), (640, 360));
        assert!(c.tick(&mut s, &layout("single-speaker")).layer_requests.is_empty());
    }

    #[test]
    fn audio_is_placed_on_the_output_clock_and_mixed_behind_the_video() {
        // Output time 0 is source time 1 s; input 0's audio starts at source time 1.5 s.
        let mut c = Compositor::new(opts(Media::AudioVideo), 1_000_000);
        let mut s = script(&["a"]);
        s.audio_from = to_pos(1_500_000);
        let mut blocks = Vec::new();
        for _ in 0..10 {
            let out = c.tick(&mut s, &layout("grid"));
            blocks.extend(out.audio);
        }
        // Ten ticks of 100 ms, due up to 1.95 s, audio mixed up to 0.2 s before: 750 ms of output.
        blocks.extend(c.finish(&mut s));
        let loud: Vec<i64> = blocks.iter().filter(|b| b.samples.iter().any(|x| *x > 0.1)).map(|b| b.pts).collect();
        assert_eq!(blocks.len(), 100, "finish mixes to the end of the last tick");
        assert_eq!(loud.first(), Some(&to_pos(500_000)), "the audio starts 0.5 s into the output");
        assert_eq!(blocks.last().map(|b| b.pts), Some(to_pos(990_000)));
    }

    #[test]
    fn audio_only_renders_nothing_and_video_only_mixes_nothing_but_drains_the_source() {
        let mut c = Compositor::new(opts(Media::AudioOnly), 0);
        let mut s = script(&["a"]);
        let out = c.tick(&mut s, &layout("grid"));
        assert!(matches!(out.video, TickVideo::None) && out.layer_requests.is_empty());
        let mut c = Compositor::new(opts(Media::VideoOnly), 0);
        let mut s = script(&["a"]);
        for _ in 0..5 {
            assert!(c.tick(&mut s, &layout("grid")).audio.is_empty());
        }
        assert!(s.audio_taken > 0);
    }
}
