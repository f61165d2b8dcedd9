//! Rounded corners and speaking borders on Y'CbCr planes. Only pixels near a
//! tile's edge can be affected, so each tile size gets a sparse mask of those
//! pixels, computed once with the same coverage formula as the GPU shader.

use crate::scene::tile_chrome;
use std::collections::HashMap;
use std::sync::Arc;

/// One affected sample: offset (x, y) inside the tile (luma or chroma units), body
/// and border coverage in 0..=255.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sample {
    pub x: u16,
    pub y: u16,
    pub body: u8,
    pub border: u8,
}

#[derive(Debug, Default)]
pub(super) struct ChromeMask {
    pub luma: Vec<Sample>,
    pub chroma: Vec<Sample>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    w: u32,
    h: u32,
    radius: u32,
    border: u32,
}

#[derive(Default)]
pub(super) struct ChromeCache {
    masks: HashMap<Key, Arc<ChromeMask>>,
}

impl ChromeCache {
    pub(super) fn get(&mut self, w: u32, h: u32, radius: f32, border: f32) -> Arc<ChromeMask> {
        let key = Key { w, h, radius: radius.to_bits(), border: border.to_bits() };
        if self.masks.len() > 512 {
            self.masks.clear();
        }
        self.masks.entry(key).or_insert_with(|| Arc::new(build(w, h, radius, border))).clone()
    }
}

fn build(w: u32, h: u32, radius: f32, border: f32) -> ChromeMask {
    let mut mask = ChromeMask::default();
    if radius <= 0.0 && border <= 0.0 {
        return mask;
    }
    // Pixels farther than this from every edge are untouched.
    let band = (radius.max(border) + 2.0).ceil() as u32;
    let (wf, hf) = (w as f32, h as f32);
    let cov = |x: u32, y: u32| {
        let (b, r) = tile_chrome(x as f32 + 0.5, y as f32 + 0.5, wf, hf, radius, border);
        (b, r)
    };
    let near_edge = |x: u32, y: u32, band: u32| x < band || y < band || x + band >= w || y + band >= h;
    let to_u8 = |v: f32| (v * 255.0).round().clamp(0.0, 255.0) as u8;
    for y in 0..h {
        for x in 0..w {
            if !near_edge(x, y, band) {
                continue;
            }
            let (b, r) = cov(x, y);
            if b < 1.0 || r > 0.0 {
                mask.luma.push(Sample { x: x as u16, y: y as u16, body: to_u8(b), border: to_u8(r) });
            }
        }
    }
    // Chroma: the mean coverage of the four luma pixels each sample covers.
    for cy in 0..h / 2 {
        for cx in 0..w / 2 {
            if !near_edge(cx * 2, cy * 2, band + 1) {
                continue;
            }
            let (mut b, mut r) = (0.0, 0.0);
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let (bb, rr) = cov(cx * 2 + dx, cy * 2 + dy);
                b += bb / 4.0;
                r += rr / 4.0;
            }
            if b < 1.0 || r > 0.0 {
                mask.chroma.push(Sample { x: cx as u16, y: cy as u16, body: to_u8(b), border: to_u8(r) });
            }
        }
    }
    mask
}

/// (a * (255 - t) + b * t) / 255, rounded.
#[inline]
pub(super) fn mix(a: u8, b: u8, t: u8) -> u8 {
    ((a as u32 * (255 - t as u32) + b as u32 * t as u32 + 127) / 255) as u8
}
