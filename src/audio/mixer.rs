//! Mixes any number of inputs, each with its own timestamps, in fixed blocks.
//!
//! Time is an input: samples are pushed with their position on the job's clock
//! (in 48 kHz sample frames) and blocks are pulled by position, so tests run
//! faster than real time and the caller decides how late the mix runs.
//! Nothing is dropped or duplicated silently: a gap in an input is filled with
//! silence and counted, samples that overlap what the input already gave or
//! arrive after their block was mixed are discarded and counted.

use super::CHANNELS;
use std::collections::{BTreeMap, VecDeque};

/// Counters an input keeps, reported in logs and, later, metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InputStats {
    /// Sample frames pushed and kept.
    pub received: u64,
    /// Silence inserted where the input's timestamps jumped forward.
    pub gap_filled: u64,
    /// Sample frames discarded because they overlapped earlier ones.
    pub overlapped: u64,
    /// Sample frames discarded because their block was already mixed.
    pub late: u64,
    /// Sample frames of silence mixed because the input had nothing yet.
    pub underrun: u64,
}

struct Input {
    /// Interleaved stereo samples starting at `start`.
    queue: VecDeque<f32>,
    /// Clock position (sample frames) of the queue's first frame.
    start: i64,
    stats: InputStats,
    /// Whether the input ever delivered anything (no underrun counted before it does).
    started: bool,
}

impl Input {
    fn end(&self) -> i64 {
        self.start + (self.queue.len() / CHANNELS) as i64
    }
}

/// A mixed block: `frames` stereo sample frames at clock position `pts`.
#[derive(Debug, Clone, PartialEq)]
pub struct MixedBlock {
    pub pts: i64,
    pub samples: Vec<f32>,
}

pub(crate) struct Mixer {
    block: usize,
    /// Clock position of the next block to mix.
    position: i64,
    inputs: BTreeMap<u64, Input>,
    /// Above this magnitude the limiter bends the signal towards 1.0.
    knee: f32,
}

impl Mixer {
    /// A mixer whose first block starts at `start` (sample frames), in blocks of `block` frames
    /// (480 = 10 ms at 48 kHz).
    pub(crate) fn new(start: i64, block: usize) -> Self {
        Self { block, position: start, inputs: BTreeMap::new(), knee: 0.8 }
    }

    pub(crate) fn block_frames(&self) -> usize {
        self.block
    }

    /// Clock position of the next block `mix` will produce.
    pub(crate) fn position(&self) -> i64 {
        self.position
    }

    pub(crate) fn add_input(&mut self, id: u64) {
        self.inputs.entry(id).or_insert(Input {
            queue: VecDeque::new(),
            start: self.position,
            stats: InputStats::default(),
            started: false,
        });
    }

    /// Adds interleaved stereo `samples` whose first frame is at clock position `pts`.
    pub(crate) fn push(&mut self, id: u64, pts: i64, samples: &[f32]) {
        self.add_input(id);
        let position = self.position;
        let Some(input) = self.inputs.get_mut(&id) else { return };
        let mut pts = pts;
        let mut samples = samples;
        // Whatever falls before the next block to mix is too late to be heard.
        if pts < position {
            let late = ((position - pts) as usize).min(samples.len() / CHANNELS);
            input.stats.late += late as u64;
            samples = &samples[late * CHANNELS..];
            pts += late as i64;
        }
        if samples.is_empty() {
            return;
        }
        if !input.started {
            input.started = true;
            input.start = pts;
        }
        let end = input.end();
        if pts > end {
            let gap = (pts - end) as usize;
            input.stats.gap_filled += gap as u64;
            input.queue.extend(std::iter::repeat_n(0.0, gap * CHANNELS));
        } else if pts < end {
            let overlap = ((end - pts) as usize).min(samples.len() / CHANNELS);
            input.stats.overlapped += overlap as u64;
            samples = &samples[overlap * CHANNELS..];
        }
        input.stats.received += (samples.len() / CHANNELS) as u64;
        input.queue.extend(samples.iter().copied());
    }

    /// Mixes the next block. Inputs that have nothing for it contribute silence.
    pub(crate) fn mix(&mut self) -> MixedBlock {
        let n = self.block * CHANNELS;
        let mut out = vec![0f32; n];
        let position = self.position;
        for input in self.inputs.values_mut() {
            // Align the queue to this block's start.
            if input.start < position {
                let drop = ((position - input.start) as usize * CHANNELS).min(input.queue.len());
                input.queue.drain(..drop);
                input.start = position;
            }
            let offset = ((input.start - position).max(0) as usize * CHANNELS).min(n);
            if offset == n {
                // Its first samples come after this block: it keeps its place (moving its
                // start to the next block would play it early), and is silent meanwhile.
                continue;
            }
            let avail = input.queue.len().min(n - offset);
            for (k, s) in input.queue.drain(..avail).enumerate() {
                out[offset + k] += s;
            }
            if input.started {
                input.stats.underrun += ((n - offset - avail) / CHANNELS) as u64;
            }
            input.start = position + ((offset + avail) / CHANNELS) as i64;
            if input.queue.is_empty() {
                input.start = input.start.max(position + self.block as i64);
            }
        }
        for s in &mut out {
            *s = soft_limit(*s, self.knee);
        }
        self.position += self.block as i64;
        MixedBlock { pts: position, samples: out }
    }

    pub(crate) fn stats(&self, id: u64) -> Option<InputStats> {
        self.inputs.get(&id).map(|i| i.stats)
    }
}

/// Identity below the knee, then a tanh curve that approaches 1.0 without ever
/// reaching it: loud sums are compressed, never clipped.
pub(crate) fn soft_limit(x: f32, knee: f32) -> f32 {
    let a = x.abs();
    if a <= knee {
        return x;
    }
    let room = 1.0 - knee;
    x.signum() * (knee + room * ((a - knee) / room).tanh())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(frames: usize, v: f32) -> Vec<f32> {
        vec![v; frames * CHANNELS]
    }

    #[test]
    fn mixes_aligned_inputs_by_timestamp() {
        let mut m = Mixer::new(0, 480);
        m.push(1, 0, &tone(960, 0.25));
        m.push(2, 480, &tone(480, 0.25));
        let a = m.mix();
        assert_eq!(a.pts, 0);
        assert!(a.samples.iter().all(|s| (*s - 0.25).abs() < 1e-6));
        let b = m.mix();
        assert_eq!(b.pts, 480);
        assert!(b.samples.iter().all(|s| (*s - 0.5).abs() < 1e-6));
        // Input 2 started late on purpose: no underrun counted before it began.
        assert_eq!(m.stats(2).unwrap().underrun, 0);
    }

    #[test]
    fn an_input_that_starts_blocks_ahead_plays_at_its_time() {
        let mut m = Mixer::new(0, 480);
        m.push(1, 1200, &tone(480, 0.25));
        let loud: Vec<usize> =
            (0..4).map(|_| m.mix().samples.chunks(CHANNELS).position(|f| f[0] > 0.1).unwrap_or(usize::MAX)).collect();
        // Blocks at 0 and 480 are silent; it begins 240 frames into the block at 960.
        assert_eq!(loud, [usize::MAX, usize::MAX, 240, 0]);
        // No underrun before it began; 240 frames after it ended (the last block's second half).
        assert_eq!(m.stats(1).unwrap().underrun, 240);
    }

    #[test]
    fn gaps_overlaps_and_late_samples_are_counted() {
        let mut m = Mixer::new(0, 480);
        m.push(1, 0, &tone(240, 0.1));
        m.push(1, 480, &tone(480, 0.1)); // 240 frames of gap
        m.push(1, 900, &tone(100, 0.1)); // 60 frames overlap
        let s = m.stats(1).unwrap();
        assert_eq!((s.gap_filled, s.overlapped, s.received), (240, 60, 240 + 480 + 40));
        m.mix();
        m.mix();
        m.mix();
        m.push(1, 0, &tone(10, 0.1)); // long past
        assert_eq!(m.stats(1).unwrap().late, 10);
        // Samples are neither lost nor doubled: 240 + 240 silence + 480 + 40 = 1000 frames, then underrun.
        assert_eq!(m.stats(1).unwrap().underrun, 1440 - 1000);
    }

    #[test]
    fn limiter_never_clips_and_keeps_quiet_signals() {
        assert_eq!(soft_limit(0.5, 0.8), 0.5);
        for x in [0.9f32, 1.5, 4.0, 100.0] {
            let y = soft_limit(x, 0.8);
            assert!(y <= 1.0 && y > 0.8, "{x} -> {y}");
            assert_eq!(soft_limit(-x, 0.8), -y);
        }
        let mut m = Mixer::new(0, 480);
        for id in 0..8 {
            m.push(id, 0, &tone(480, 0.9));
        }
        assert!(m.mix().samples.iter().all(|s| s.abs() <= 1.0));
    }
}
