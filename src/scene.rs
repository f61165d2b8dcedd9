//! What a renderer draws: rectangles, video, text and icons. The layout engine
//! builds a `Scene` for each output frame; renderers know nothing of layouts.

use crate::color::Rgba;

/// A rectangle in output pixels. Layouts keep every edge on an even pixel, so
/// tiles line up with 4:2:0 chroma samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

impl Rect {
    pub fn new(x: u32, y: u32, w: u32, h: u32) -> Self {
        Self { x, y, w, h }
    }

    pub fn right(&self) -> u32 {
        self.x + self.w
    }

    pub fn bottom(&self) -> u32 {
        self.y + self.h
    }

    pub fn contains(&self, x: u32, y: u32) -> bool {
        x >= self.x && y >= self.y && x < self.right() && y < self.bottom()
    }

    /// The rectangle shrunk by `d` pixels on every side.
    pub fn inset(&self, d: u32) -> Rect {
        let d2 = (2 * d).min(self.w).min(self.h);
        Rect { x: self.x + d2 / 2, y: self.y + d2 / 2, w: self.w - d2, h: self.h - d2 }
    }
}

/// How a video fills its tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fit {
    /// Fill the tile, cropping the source (cameras).
    Cover,
    /// Show the whole source, letterboxed (screen shares).
    Contain,
}

/// Index of an input frame in the slice handed to the renderer with the scene.
pub(crate) type SourceId = usize;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Border {
    pub width: f32,
    pub color: Rgba,
}

/// Where an overlay sits inside its tile.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Anchor {
    /// Bottom-left corner, `margin` pixels from both edges.
    BottomLeft { margin: u32 },
    /// Centred in the tile.
    Center,
}

/// Something drawn over a tile's video, rasterised once and cached by the renderer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OverlayContent {
    /// A participant's name on a translucent box, with a muted-microphone icon when muted.
    Label { text: String, muted: bool, font_px: u32, color: Rgba, background: Rgba },
    /// Large initials for a participant without video.
    Initials { text: String, font_px: u32, color: Rgba, circle: Rgba },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Overlay {
    pub anchor: Anchor,
    pub content: OverlayContent,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tile {
    pub rect: Rect,
    /// Fill behind (or instead of) the video.
    pub background: Rgba,
    /// Corner radius in pixels; 0 for square corners.
    pub radius: f32,
    pub video: Option<(SourceId, Fit)>,
    /// Drawn inside the tile's edge (like CSS `box-shadow: inset`).
    pub border: Option<Border>,
    pub overlays: Vec<Overlay>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Scene {
    pub width: u32,
    pub height: u32,
    pub background: Rgba,
    pub tiles: Vec<Tile>,
}

/// Where a `w`x`h` overlay lands in `tile`, kept on even pixels and inside the frame.
pub(crate) fn place_overlay(anchor: Anchor, tile: Rect, w: u32, h: u32) -> (i64, i64) {
    let (x, y) = match anchor {
        Anchor::BottomLeft { margin } => {
            (tile.x as i64 + margin as i64, tile.bottom() as i64 - margin as i64 - h as i64)
        }
        Anchor::Center => {
            (tile.x as i64 + (tile.w as i64 - w as i64) / 2, tile.y as i64 + (tile.h as i64 - h as i64) / 2)
        }
    };
    (x & !1, y & !1)
}

/// Coverage of the pixel whose centre is at (`px`, `py`), relative to a box of
/// `w` x `h` with rounded corners of radius `r`: 1 inside, 0 outside, a one-pixel
/// ramp across the edge. Both backends use this formula (the WGSL twin is in
/// `shaders/composite.wgsl`) so they agree on corners and borders.
pub(crate) fn rounded_box_coverage(px: f32, py: f32, w: f32, h: f32, r: f32) -> f32 {
    0.5 - rounded_box_sdf(px, py, w, h, r)
}

/// Signed distance from a point to the edge of a rounded box (negative inside).
pub(crate) fn rounded_box_sdf(px: f32, py: f32, w: f32, h: f32, r: f32) -> f32 {
    let r = r.min(w / 2.0).min(h / 2.0).max(0.0);
    let qx = (px - w / 2.0).abs() - (w / 2.0 - r);
    let qy = (py - h / 2.0).abs() - (h / 2.0 - r);
    let outside = (qx.max(0.0).powi(2) + qy.max(0.0).powi(2)).sqrt();
    outside + qx.max(qy).min(0.0) - r
}

/// Coverage of a tile's body and of its inset border at a pixel centre.
pub(crate) fn tile_chrome(px: f32, py: f32, w: f32, h: f32, r: f32, border: f32) -> (f32, f32) {
    let body = rounded_box_coverage(px, py, w, h, r).clamp(0.0, 1.0);
    if border <= 0.0 {
        return (body, 0.0);
    }
    let inner = rounded_box_sdf(px - border, py - border, w - 2.0 * border, h - 2.0 * border, (r - border).max(0.0));
    (body, (0.5 + inner).clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coverage_is_full_inside_and_empty_in_corners() {
        assert_eq!(rounded_box_coverage(50.5, 50.5, 100.0, 100.0, 8.0).clamp(0.0, 1.0), 1.0);
        assert_eq!(rounded_box_coverage(0.5, 0.5, 100.0, 100.0, 8.0).clamp(0.0, 1.0), 0.0);
        assert_eq!(rounded_box_coverage(0.5, 50.5, 100.0, 100.0, 8.0).clamp(0.0, 1.0), 1.0);
        let (_, b) = tile_chrome(1.5, 50.5, 100.0, 100.0, 8.0, 2.5);
        assert_eq!(b, 1.0);
        let (_, b) = tile_chrome(10.5, 50.5, 100.0, 100.0, 8.0, 2.5);
        assert_eq!(b, 0.0);
    }
}
