//! Text and icons rasterised once into premultiplied RGBA "sprites" and cached, so
//! no frame re-shapes a label. Both render backends draw these same pixels.

use crate::color::Rgba;
use crate::scene::{OverlayContent, rounded_box_coverage};
use cosmic_text::{Attrs, Buffer, Color, Family, FontSystem, Metrics, Shaping, SwashCache};
use resvg::{tiny_skia, usvg};
use std::collections::HashMap;
use std::sync::Arc;

/// The font every label uses, shipped in the repository so output is identical everywhere.
const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
const FONT_FAMILY: &str = "DejaVu Sans";
const MUTED_ICON: &str = include_str!("../../assets/icons/mic-muted.svg");

/// A premultiplied RGBA image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sprite {
    pub width: u32,
    pub height: u32,
    pub rgba: Vec<u8>,
}

impl Sprite {
    fn new(width: u32, height: u32) -> Self {
        Self { width, height, rgba: vec![0; (width * height * 4) as usize] }
    }

    /// Source-over of a straight-alpha colour with coverage `cov` at (x, y).
    fn blend(&mut self, x: i32, y: i32, c: Rgba, cov: f32) {
        if x < 0 || y < 0 || x >= self.width as i32 || y >= self.height as i32 || cov <= 0.0 {
            return;
        }
        let a = (c.a as f32 / 255.0) * cov.min(1.0);
        let i = ((y as u32 * self.width + x as u32) * 4) as usize;
        let px = &mut self.rgba[i..i + 4];
        for (k, ch) in [c.r, c.g, c.b].into_iter().enumerate() {
            px[k] = (ch as f32 * a + px[k] as f32 * (1.0 - a)).round() as u8;
        }
        px[3] = (255.0 * a + px[3] as f32 * (1.0 - a)).round() as u8;
    }

    /// Source-over of another premultiplied sprite at (x, y).
    fn draw(&mut self, other: &Sprite, x: i32, y: i32) {
        for sy in 0..other.height as i32 {
            for sx in 0..other.width as i32 {
                let (dx, dy) = (x + sx, y + sy);
                if dx < 0 || dy < 0 || dx >= self.width as i32 || dy >= self.height as i32 {
                    continue;
                }
                let s = ((sy as u32 * other.width + sx as u32) * 4) as usize;
                let d = ((dy as u32 * self.width + dx as u32) * 4) as usize;
                let sa = other.rgba[s + 3] as f32 / 255.0;
                for k in 0..4 {
                    self.rgba[d + k] = (other.rgba[s + k] as f32 + self.rgba[d + k] as f32 * (1.0 - sa)).round() as u8;
                }
            }
        }
    }
}

/// Rasterises overlays on first use and hands out the cached result after.
pub(crate) struct SpriteCache {
    fonts: FontSystem,
    swash: SwashCache,
    icon: Option<usvg::Tree>,
    cache: HashMap<OverlayContent, Arc<Sprite>>,
}

impl Default for SpriteCache {
    fn default() -> Self {
        Self::new()
    }
}

impl SpriteCache {
    pub(crate) fn new() -> Self {
        let mut db = cosmic_text::fontdb::Database::new();
        db.load_font_data(FONT.to_vec());
        db.set_sans_serif_family(FONT_FAMILY);
        let fonts = FontSystem::new_with_locale_and_db("en-US".into(), db);
        // The icon is ours and fixed; failing to parse it would be a build defect,
        // so it degrades to a label without icon rather than failing a recording.
        let icon = usvg::Tree::from_str(MUTED_ICON, &usvg::Options::default())
            .map_err(|e| tracing::error!("muted icon does not parse: {e}"))
            .ok();
        Self { fonts, swash: SwashCache::new(), icon, cache: HashMap::new() }
    }

    /// The sprite for an overlay, rasterised once.
    pub(crate) fn get(&mut self, content: &OverlayContent) -> Arc<Sprite> {
        if let Some(s) = self.cache.get(content) {
            return s.clone();
        }
        let sprite = Arc::new(match content {
            OverlayContent::Label { text, muted, font_px, color, background } => {
                self.label(text, *muted, *font_px, *color, *background)
            }
            OverlayContent::Initials { text, font_px, color, circle } => self.initials(text, *font_px, *color, *circle),
        });
        // Labels change rarely; a bound keeps a room with churning names from growing it forever.
        if self.cache.len() > 4096 {
            self.cache.clear();
        }
        self.cache.insert(content.clone(), sprite.clone());
        sprite
    }

    /// Text as a sprite of its own size (width, line height).
    fn text(&mut self, text: &str, font_px: u32, color: Rgba) -> Sprite {
        let px = font_px.max(4) as f32;
        let mut buffer = Buffer::new(&mut self.fonts, Metrics::new(px, (px * 1.25).ceil()));
        buffer.set_size(None, None);
        buffer.set_text(text, &Attrs::new().family(Family::Name(FONT_FAMILY)), Shaping::Advanced, None);
        buffer.shape_until_scroll(&mut self.fonts, false);
        let width = buffer.layout_runs().map(|r| r.line_w).fold(0.0f32, f32::max).ceil() as u32;
        let height = (px * 1.25).ceil() as u32;
        let mut sprite = Sprite::new(width.max(1), height);
        let ink = Color::rgba(color.r, color.g, color.b, color.a);
        buffer.draw(&mut self.fonts, &mut self.swash, ink, |x, y, w, h, c| {
            for dy in 0..h as i32 {
                for dx in 0..w as i32 {
                    let paint = Rgba { r: c.r(), g: c.g(), b: c.b(), a: 255 };
                    sprite.blend(x + dx, y + dy, paint, c.a() as f32 / 255.0);
                }
            }
        });
        sprite
    }

    fn icon(&self, size: u32) -> Option<Sprite> {
        let tree = self.icon.as_ref()?;
        let mut pixmap = tiny_skia::Pixmap::new(size, size)?;
        let scale = size as f32 / tree.size().width().max(tree.size().height());
        resvg::render(tree, tiny_skia::Transform::from_scale(scale, scale), &mut pixmap.as_mut());
        // tiny-skia pixmaps are premultiplied RGBA already.
        Some(Sprite { width: size, height: size, rgba: pixmap.take() })
    }

    /// A name on a translucent rounded box, with the muted icon in front when muted.
    fn label(&mut self, text: &str, muted: bool, font_px: u32, color: Rgba, background: Rgba) -> Sprite {
        let text = self.text(text, font_px, color);
        let pad = (font_px as f32 * 0.3).round().max(2.0) as u32;
        let icon = if muted { self.icon(font_px.max(4)) } else { None };
        let icon_w = icon.as_ref().map_or(0, |i| i.width + pad);
        let (w, h) = (pad * 2 + icon_w + text.width, pad * 2 + text.height);
        let mut sprite = Sprite::new(w + w % 2, h + h % 2);
        let radius = pad as f32;
        for y in 0..h {
            for x in 0..w {
                let cov = rounded_box_coverage(x as f32 + 0.5, y as f32 + 0.5, w as f32, h as f32, radius);
                sprite.blend(x as i32, y as i32, background, cov.clamp(0.0, 1.0));
            }
        }
        if let Some(icon) = &icon {
            let y = (h as i32 - icon.height as i32) / 2;
            sprite.draw(icon, pad as i32, y);
        }
        sprite.draw(&text, (pad + icon_w) as i32, pad as i32);
        sprite
    }

    /// Initials centred on a circle, the placeholder for a participant without video.
    fn initials(&mut self, text: &str, font_px: u32, color: Rgba, circle: Rgba) -> Sprite {
        let text = self.text(text, font_px, color);
        let d = ((font_px as f32 * 2.4).ceil() as u32).max(text.width + 4);
        let d = d + d % 2;
        let mut sprite = Sprite::new(d, d);
        let r = d as f32 / 2.0;
        for y in 0..d {
            for x in 0..d {
                let cov = rounded_box_coverage(x as f32 + 0.5, y as f32 + 0.5, d as f32, d as f32, r);
                sprite.blend(x as i32, y as i32, circle, cov.clamp(0.0, 1.0));
            }
        }
        sprite.draw(&text, (d as i32 - text.width as i32) / 2, (d as i32 - text.height as i32) / 2);
        sprite
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_have_ink_and_are_cached() {
        let mut cache = SpriteCache::new();
        let content = OverlayContent::Label {
            text: "Alice".into(),
            muted: true,
            font_px: 14,
            color: Rgba::WHITE,
            background: "#00000080".parse().unwrap(),
        };
        let a = cache.get(&content);
        let b = cache.get(&content);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(a.width > 40 && a.height >= 17, "{}x{}", a.width, a.height);
        // Some pixels are bright (text), some red (icon).
        let px: Vec<&[u8]> = a.rgba.chunks(4).collect();
        assert!(px.iter().any(|p| p[0] > 200 && p[1] > 200));
        assert!(px.iter().any(|p| p[0] > 150 && p[1] < 120));
    }
}
