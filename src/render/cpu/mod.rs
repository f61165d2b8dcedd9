//! The CPU backend: composites straight into I420 planes. At 720p with four
//! 640x360 tiles it costs a few percent of a core (see `bench/RESULTS.md`),
//! where lavapipe costs more than the encoder.

mod chrome;
mod convert;
pub use convert::{Converter, convert_frame};
mod overlay;
pub mod scale;

use super::sprites::SpriteCache;
use super::{OUTPUT_COLOR, RenderError, RenderedFrame, Renderer, place_video};
use crate::color::rgb_to_yuv;
use crate::frame::{ColorSpace, PixelFormat, Plane, VideoFrame};
use crate::scene::{OverlayContent, Rect, Scene, place_overlay};
use chrome::{ChromeCache, mix};
use overlay::YuvSprite;
use scale::{Canvas, Scalers};
use std::collections::HashMap;
use std::sync::Arc;

pub(crate) struct CpuRenderer {
    width: u32,
    height: u32,
    planes: [Vec<u8>; 3],
    scalers: Scalers,
    chrome: ChromeCache,
    sprites: SpriteCache,
    yuv_sprites: HashMap<OverlayContent, Arc<YuvSprite>>,
    converters: HashMap<ColorSpace, Converter>,
}

impl CpuRenderer {
    pub(crate) fn new(width: u32, height: u32) -> Result<Self, RenderError> {
        crate::encode::check_size(width, height)?;
        let (w, h) = (width as usize, height as usize);
        Ok(Self {
            width,
            height,
            planes: [vec![0; w * h], vec![0; w * h / 4], vec![0; w * h / 4]],
            scalers: Scalers::default(),
            chrome: ChromeCache::default(),
            sprites: SpriteCache::new(),
            yuv_sprites: HashMap::new(),
            converters: HashMap::new(),
        })
    }

    fn strides(&self) -> [usize; 3] {
        let w = self.width as usize;
        [w, w / 2, w / 2]
    }

    fn fill(&mut self, r: Rect, yuv: [u8; 3]) {
        let s = self.strides();
        for row in r.y..r.bottom() {
            let o = row as usize * s[0] + r.x as usize;
            self.planes[0][o..o + r.w as usize].fill(yuv[0]);
        }
        for row in r.y / 2..r.bottom() / 2 {
            for k in 1..3 {
                let o = row as usize * s[k] + r.x as usize / 2;
                self.planes[k][o..o + r.w as usize / 2].fill(yuv[k]);
            }
        }
    }

    /// Copies a source window 1:1 (no scaling needed): a plain row copy.
    fn copy(&mut self, src: &VideoFrame, win: scale::Window, dst: Rect) {
        let s = self.strides();
        for row in 0..win.h as usize {
            let sp = &src.planes[0];
            let so = (win.y as usize + row) * sp.stride + win.x as usize;
            let d = (dst.y as usize + row) * s[0] + dst.x as usize;
            self.planes[0][d..d + win.w as usize].copy_from_slice(&sp.data[so..so + win.w as usize]);
        }
        for row in 0..win.h as usize / 2 {
            for k in 1..3 {
                let sp = &src.planes[k];
                let so = (win.y as usize / 2 + row) * sp.stride + win.x as usize / 2;
                let d = (dst.y as usize / 2 + row) * s[k] + dst.x as usize / 2;
                self.planes[k][d..d + win.w as usize / 2].copy_from_slice(&sp.data[so..so + win.w as usize / 2]);
            }
        }
    }

    fn draw_video(&mut self, src: &VideoFrame, tile: Rect, fit: crate::scene::Fit) -> Result<(), RenderError> {
        // swscale and the row copies trust the plane sizes.
        src.validate()?;
        let (win, dst) = place_video(tile, src.width, src.height, fit);
        if win.w == dst.w && win.h == dst.h && src.format == PixelFormat::I420 {
            self.copy(src, win, dst);
        } else {
            let strides = self.strides();
            let [y, u, v] = &mut self.planes;
            let mut canvas = Canvas { planes: [y, u, v], strides };
            self.scalers.scale(src, win, &mut canvas, dst.x, dst.y, dst.w, dst.h)?;
        }
        if src.color != OUTPUT_COLOR {
            let conv = self.converters.entry(src.color).or_insert_with(|| Converter::new(src.color, OUTPUT_COLOR));
            let strides = [self.width as usize, self.width as usize / 2, self.width as usize / 2];
            let [y, u, v] = &mut self.planes;
            conv.apply(&mut [y, u, v], strides, dst.x, dst.y, dst.w, dst.h);
        }
        Ok(())
    }

    fn draw_chrome(&mut self, tile: &crate::scene::Tile, page: [u8; 3]) {
        let border_w = tile.border.map_or(0.0, |b| b.width);
        let mask = self.chrome.get(tile.rect.w, tile.rect.h, tile.radius, border_w);
        let border = tile.border.map_or(page, |b| rgb_to_yuv(b.color, OUTPUT_COLOR));
        let s = self.strides();
        let r = tile.rect;
        for smp in &mask.luma {
            let o = (r.y as usize + smp.y as usize) * s[0] + r.x as usize + smp.x as usize;
            let c = mix(self.planes[0][o], border[0], smp.border);
            self.planes[0][o] = mix(page[0], c, smp.body);
        }
        for smp in &mask.chroma {
            for k in 1..3 {
                let o = (r.y as usize / 2 + smp.y as usize) * s[k] + r.x as usize / 2 + smp.x as usize;
                let c = mix(self.planes[k][o], border[k], smp.border);
                self.planes[k][o] = mix(page[k], c, smp.body);
            }
        }
    }
}

impl Renderer for CpuRenderer {
    fn describe(&self) -> String {
        "cpu (Y'CbCr planes, swscale)".into()
    }

    fn render(
        &mut self,
        scene: &Scene,
        sources: &[&VideoFrame],
        pts_us: i64,
    ) -> Result<Option<RenderedFrame>, RenderError> {
        super::check_scene_size(scene, self.width, self.height)?;
        let page = rgb_to_yuv(scene.background, OUTPUT_COLOR);
        self.fill(Rect::new(0, 0, self.width, self.height), page);
        for tile in &scene.tiles {
            let video = match tile.video {
                Some((id, fit)) => Some((*sources.get(id).ok_or(RenderError::MissingSource(id))?, fit)),
                None => None,
            };
            let covers = matches!(video, Some((_, crate::scene::Fit::Cover)));
            if !covers {
                self.fill(tile.rect, rgb_to_yuv(tile.background, OUTPUT_COLOR));
            }
            if let Some((src, fit)) = video {
                self.draw_video(src, tile.rect, fit)?;
            }
            for ov in &tile.overlays {
                let sprite = match self.yuv_sprites.get(&ov.content) {
                    Some(s) => s.clone(),
                    None => {
                        let s = Arc::new(YuvSprite::new(&self.sprites.get(&ov.content), OUTPUT_COLOR));
                        if self.yuv_sprites.len() > 4096 {
                            self.yuv_sprites.clear();
                        }
                        self.yuv_sprites.insert(ov.content.clone(), s.clone());
                        s
                    }
                };
                let (x, y) = place_overlay(ov.anchor, tile.rect, sprite.w, sprite.h);
                let strides = self.strides();
                let [py, pu, pv] = &mut self.planes;
                sprite.blend(&mut [py, pu, pv], strides, x, y, tile.rect);
            }
            self.draw_chrome(tile, page);
        }
        let s = self.strides();
        let planes = self.planes.iter().zip(s).map(|(d, stride)| Plane { data: d.clone(), stride }).collect();
        let frame = VideoFrame::from_planes(PixelFormat::I420, self.width, self.height, OUTPUT_COLOR, planes)?;
        Ok(Some(RenderedFrame { pts_us, frame }))
    }

    fn flush(&mut self) -> Result<Option<RenderedFrame>, RenderError> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::color::Rgba;
    use crate::frame::{Matrix, Range};
    use crate::scene::{Fit, Tile};

    fn tile(rect: Rect, video: (usize, Fit)) -> Tile {
        Tile {
            rect,
            background: Rgba::rgb(30, 30, 30),
            radius: 8.0,
            video: Some(video),
            border: None,
            overlays: vec![],
        }
    }

    #[test]
    fn odd_sized_sources_in_other_colour_spaces_render_their_colour() {
        let red = Rgba::rgb(200, 40, 40);
        let blue = Rgba::rgb(40, 60, 210);
        let full601 = ColorSpace { matrix: Matrix::Bt601, range: Range::Full };
        let a = VideoFrame::filled(PixelFormat::Nv12, 641, 361, full601, rgb_to_yuv(red, full601)).unwrap();
        let b = VideoFrame::filled(PixelFormat::I420, 333, 201, OUTPUT_COLOR, rgb_to_yuv(blue, OUTPUT_COLOR)).unwrap();
        let scene = Scene {
            width: 320,
            height: 180,
            background: Rgba::BLACK,
            tiles: vec![
                tile(Rect::new(0, 0, 160, 180), (0, Fit::Cover)),
                tile(Rect::new(160, 0, 160, 180), (1, Fit::Contain)),
            ],
        };
        let mut r = CpuRenderer::new(320, 180).unwrap();
        let out = crate::render::render_once(&mut r, &scene, &[&a, &b]).unwrap();
        for (x, want) in [(80, red), (240, blue)] {
            let got = out.yuv_at(x, 90);
            let want = rgb_to_yuv(want, OUTPUT_COLOR);
            for k in 0..3 {
                assert!(got[k].abs_diff(want[k]) <= 3, "at x={x}: {got:?} vs {want:?}");
            }
        }
    }

    #[test]
    fn a_short_plane_is_an_error_not_a_crash() {
        let mut f = VideoFrame::filled(PixelFormat::I420, 64, 64, OUTPUT_COLOR, [100, 128, 128]).unwrap();
        f.planes[1].data.truncate(10);
        let scene = Scene {
            width: 64,
            height: 64,
            background: Rgba::BLACK,
            tiles: vec![tile(Rect::new(0, 0, 64, 64), (0, Fit::Cover))],
        };
        let mut r = CpuRenderer::new(64, 64).unwrap();
        let e = r.render(&scene, &[&f], 0).unwrap_err().to_string();
        assert!(e.contains("plane 1 holds 10 bytes"), "{e}");
        let e = r.render(&scene, &[], 0).unwrap_err().to_string();
        assert!(e.contains("source 0"), "{e}");
    }
}
