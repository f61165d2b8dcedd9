//! Reading a composite's grid: where each tile is, and who is in it.

use tessera::layout::{LayoutSet, TileSource, compose};
use tessera::scene::Rect;

/// Tile rectangles a layout gives `n` cameras.
pub fn rects(layout: &str, n: usize, w: u32, h: u32) -> Vec<Rect> {
    let layout = LayoutSet::builtin().unwrap().resolve(layout).unwrap();
    let sources: Vec<TileSource> = (0..n)
        .map(|i| TileSource { joined_ms: i as u64, ..TileSource::camera(&format!("p{i}"), &format!("p{i}"), Some(i)) })
        .collect();
    compose(&layout, &sources, w, h).tiles.iter().map(|t| t.rect).collect()
}

pub fn centre(r: Rect) -> Rect {
    Rect::new(r.x + r.w / 4, r.y + r.h / 4, r.w / 2, r.h / 3)
}

/// Participants seen at the centres of a grid of `n` cells.
pub fn cells(frame: &[u8], n: usize, w: u32, h: u32) -> Vec<Option<usize>> {
    rects("grid", n, w, h)
        .iter()
        .map(|r| {
            let c = centre(*r);
            super::who(super::median_rgb(frame, w, c.x, c.y, c.w, c.h), n)
        })
        .collect()
}

/// A two-participant recording that switched from grid to single-speaker at `switch_s` s.
/// Every frame is read, not a few samples: a participant flashes white for 100 ms every 5 s
/// (and becomes the speaker then), and samples spaced near a multiple of 5 s can all land on
/// flashes.
pub struct Switch {
    /// The cells of each frame from 0.5 s to half a second before the switch, and from
    /// `settle` s after it to half a second before the end.
    pub before: Vec<Vec<Option<usize>>>,
    pub after: Vec<Vec<Option<usize>>>,
    /// The share of frames before with both side by side (either may be on the left: grid
    /// orders tiles by who spoke last), and after with one filling the frame.
    pub both: f64,
    pub full: f64,
}

pub fn grid_then_single(video: &[Vec<u8>], fps: f64, switch_s: f64, settle: f64, w: u32, h: u32) -> Switch {
    let secs = video.len() as f64 / fps;
    let stretch = |from: f64, to: f64| -> Vec<Vec<Option<usize>>> {
        let (a, b) = ((from * fps) as usize, ((to * fps) as usize).min(video.len()));
        video[a.min(b)..b].iter().map(|f| cells(f, 2, w, h)).collect()
    };
    let share = |v: &[Vec<Option<usize>>], f: &dyn Fn(&Vec<Option<usize>>) -> bool| {
        v.iter().filter(|c| f(c)).count() as f64 / v.len().max(1) as f64
    };
    let before = stretch(0.5, switch_s - 0.5);
    let after = stretch(switch_s + settle, secs - 0.5);
    let both = share(&before, &|c| c.contains(&Some(0)) && c.contains(&Some(1)));
    let full = share(&after, &|c| c[0].is_some() && c[0] == c[1]);
    Switch { before, after, both, full }
}

/// The share of a frame's points showing each of participants `0..n`.
pub fn shares(frame: &[u8], n: usize, w: u32, h: u32) -> Vec<f64> {
    let mut count = vec![0usize; n];
    let mut total = 0;
    for y in (0..h).step_by(8) {
        for x in (0..w).step_by(8) {
            let i = ((y * w + x) * 3) as usize;
            total += 1;
            if let Some(j) = super::who([frame[i], frame[i + 1], frame[i + 2]], n) {
                count[j] += 1;
            }
        }
    }
    count.iter().map(|c| *c as f64 / total as f64).collect()
}
