//! Sprites (labels, icons, initials) converted once to premultiplied Y'CbCr with
//! 4:2:0 alpha, then blended into the canvas: out = canvas * (1 - a) + sprite.

use crate::color::YuvMatrix;
use crate::frame::ColorSpace;
use crate::render::sprites::Sprite;
use crate::scene::Rect;

pub(super) struct YuvSprite {
    pub w: u32,
    pub h: u32,
    /// Premultiplied luma and alpha, per pixel.
    y: Vec<(u8, u8)>,
    /// Premultiplied Cb, Cr and alpha, per 2x2 block.
    c: Vec<(u8, u8, u8)>,
}

impl YuvSprite {
    pub(super) fn new(s: &Sprite, cs: ColorSpace) -> Self {
        let m = YuvMatrix::new(cs).from_rgb;
        let (w, h) = (s.width, s.height);
        let px = |x: u32, y: u32| {
            let i = ((y * w + x) * 4) as usize;
            let p = &s.rgba[i..i + 4];
            let [r, g, b, a] = [p[0], p[1], p[2], p[3]].map(|v| v as f32 / 255.0);
            // Premultiplied RGB: the offsets scale with alpha too.
            let yy = m[0][0] * r + m[0][1] * g + m[0][2] * b + m[0][3] * a;
            let u = m[1][0] * r + m[1][1] * g + m[1][2] * b + m[1][3] * a;
            let v = m[2][0] * r + m[2][1] * g + m[2][2] * b + m[2][3] * a;
            [yy, u, v, a]
        };
        let q = |v: f32| (v * 255.0).round().clamp(0.0, 255.0) as u8;
        let mut y = Vec::with_capacity((w * h) as usize);
        for yy in 0..h {
            for xx in 0..w {
                let p = px(xx, yy);
                y.push((q(p[0]), q(p[3])));
            }
        }
        let mut c = Vec::with_capacity((w / 2 * h / 2) as usize);
        for cy in 0..h / 2 {
            for cx in 0..w / 2 {
                let mut acc = [0f32; 4];
                for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                    let p = px(cx * 2 + dx, cy * 2 + dy);
                    for k in 0..4 {
                        acc[k] += p[k] / 4.0;
                    }
                }
                c.push((q(acc[1]), q(acc[2]), q(acc[3])));
            }
        }
        Self { w, h, y, c }
    }

    /// Blends at (x, y) (even), clipped to `clip`.
    pub(super) fn blend(&self, planes: &mut [&mut [u8]; 3], strides: [usize; 3], x: i64, y: i64, clip: Rect) {
        let (x0, y0) = (x.max(clip.x as i64), y.max(clip.y as i64));
        let x1 = (x + self.w as i64).min(clip.right() as i64);
        let y1 = (y + self.h as i64).min(clip.bottom() as i64);
        if x0 >= x1 || y0 >= y1 {
            return;
        }
        let over = |dst: u8, src: u8, a: u8| (src as u32 + (dst as u32 * (255 - a as u32) + 127) / 255).min(255) as u8;
        for py in y0..y1 {
            let sy = (py - y) as usize;
            for px in x0..x1 {
                let (sv, a) = self.y[sy * self.w as usize + (px - x) as usize];
                if a == 0 {
                    continue;
                }
                let d = &mut planes[0][py as usize * strides[0] + px as usize];
                *d = over(*d, sv, a);
            }
        }
        for py in (y0 / 2)..(y1 / 2) {
            let sy = (py - y / 2) as usize;
            for px in (x0 / 2)..(x1 / 2) {
                let (u, v, a) = self.c[sy * (self.w / 2) as usize + (px - x / 2) as usize];
                if a == 0 {
                    continue;
                }
                let du = &mut planes[1][py as usize * strides[1] + px as usize];
                *du = over(*du, u, a);
                let dv = &mut planes[2][py as usize * strides[2] + px as usize];
                *dv = over(*dv, v, a);
            }
        }
    }
}
