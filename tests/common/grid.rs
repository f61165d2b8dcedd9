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
