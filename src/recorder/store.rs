//! Decoded media waiting to be composited: per video track a short queue of
//! frames on the room clock, per audio track decoded samples. Decoder threads
//! push; the compositor takes, for each tick, the newest frame not newer than the
//! tick minus its delay. A track that stops sending keeps showing its last frame
//! for a while, then its tile falls back to the placeholder.

use crate::frame::VideoFrame;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// How long a frozen track keeps its last frame on screen.
pub(crate) const FREEZE_LIMIT_US: i64 = 3_000_000;
/// Frames queued per track beyond which the oldest are dropped (a stalled compositor
/// must not grow memory).
const MAX_QUEUED: usize = 60;

#[derive(Default)]
pub(crate) struct VideoQueue {
    queue: VecDeque<(i64, Arc<VideoFrame>)>,
    current: Option<(i64, Arc<VideoFrame>)>,
    /// When the decoder handed over each queued frame (our clock, µs), for latency.
    arrivals: VecDeque<i64>,
}

impl VideoQueue {
    pub(crate) fn push(&mut self, pts_us: i64, frame: Arc<VideoFrame>, arrival_us: i64) {
        // Out-of-order frames cannot be shown after newer ones.
        if self.queue.back().is_some_and(|(p, _)| *p >= pts_us) {
            return;
        }
        self.queue.push_back((pts_us, frame));
        self.arrivals.push_back(arrival_us);
        while self.queue.len() > MAX_QUEUED {
            self.queue.pop_front();
            self.arrivals.pop_front();
        }
    }

    /// The frame to show at `t_us` (newest with pts <= t), with its arrival time
    /// when it is newly shown. After FREEZE_LIMIT without a new frame: nothing.
    pub(crate) fn frame_at(&mut self, t_us: i64) -> (Option<Arc<VideoFrame>>, Option<i64>) {
        let mut arrival = None;
        while self.queue.front().is_some_and(|(p, _)| *p <= t_us) {
            self.current = self.queue.pop_front();
            arrival = self.arrivals.pop_front();
        }
        let shown = self.current.as_ref().filter(|(p, _)| t_us - p <= FREEZE_LIMIT_US).map(|(_, f)| f.clone());
        (shown, arrival)
    }

    #[cfg(test)]
    pub(crate) fn has_frame(&self) -> bool {
        self.current.is_some() || !self.queue.is_empty()
    }
}

/// Decoded audio of one track: interleaved stereo at 48 kHz, by sample position
/// on the room clock.
/// Decoded audio: (sample position, interleaved stereo samples).
pub(crate) type AudioChunks = Vec<(i64, Vec<f32>)>;

#[derive(Default)]
pub(crate) struct AudioQueue {
    chunks: VecDeque<(i64, Vec<f32>)>,
}

impl AudioQueue {
    pub(crate) fn push(&mut self, pos: i64, samples: Vec<f32>) {
        self.chunks.push_back((pos, samples));
        // About 10 s of 20 ms packets: a compositor that stopped taking must not grow memory.
        while self.chunks.len() > 500 {
            self.chunks.pop_front();
        }
    }

    /// Every chunk that starts before `until` (sample position).
    pub(crate) fn take_until(&mut self, until: i64) -> AudioChunks {
        let mut out = Vec::new();
        while self.chunks.front().is_some_and(|(p, _)| *p < until) {
            if let Some(c) = self.chunks.pop_front() {
                out.push(c);
            }
        }
        out
    }
}

/// Everything the decoders have produced, by track sid.
#[derive(Default)]
pub(crate) struct MediaStore {
    pub video: HashMap<String, VideoQueue>,
    pub audio: HashMap<String, AudioQueue>,
    /// Room-clock time of the first decoded video frame, and of the first audio.
    pub first_video_pts: Option<i64>,
    pub first_audio_pts: Option<i64>,
}

pub(crate) type SharedStore = Arc<Mutex<MediaStore>>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{ColorSpace, PixelFormat};

    fn frame(y: u8) -> Arc<VideoFrame> {
        Arc::new(VideoFrame::filled(PixelFormat::I420, 4, 4, ColorSpace::default(), [y, 128, 128]).unwrap())
    }

    #[test]
    fn the_newest_frame_not_newer_than_the_tick_is_shown() {
        let mut q = VideoQueue::default();
        q.push(0, frame(10), 5);
        q.push(33_000, frame(20), 40_000);
        q.push(66_000, frame(30), 70_000);
        assert_eq!(q.frame_at(-1).0, None);
        let (f, arrival) = q.frame_at(50_000);
        assert_eq!(f.unwrap().planes[0].data[0], 20);
        assert_eq!(arrival, Some(40_000));
        // The same frame again: not newly shown.
        assert_eq!(q.frame_at(60_000).1, None);
        assert_eq!(q.frame_at(66_000).0.unwrap().planes[0].data[0], 30);
    }

    #[test]
    fn a_frozen_track_shows_its_last_frame_then_nothing() {
        let mut q = VideoQueue::default();
        q.push(1_000_000, frame(50), 0);
        assert!(q.frame_at(1_000_000 + FREEZE_LIMIT_US).0.is_some());
        assert!(q.frame_at(1_000_001 + FREEZE_LIMIT_US).0.is_none());
        assert!(q.has_frame());
    }

    #[test]
    fn late_frames_are_not_shown_after_newer_ones() {
        let mut q = VideoQueue::default();
        q.push(100, frame(1), 0);
        q.push(50, frame(2), 0);
        assert_eq!(q.frame_at(1000).0.unwrap().planes[0].data[0], 1);
    }

    #[test]
    fn audio_is_taken_up_to_a_position() {
        let mut a = AudioQueue::default();
        a.push(0, vec![0.0; 1920]);
        a.push(960, vec![0.0; 1920]);
        assert_eq!(a.take_until(960).len(), 1);
        assert_eq!(a.take_until(961).len(), 1);
        assert!(a.take_until(5000).is_empty());
    }
}
