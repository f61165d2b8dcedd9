//! Colour-space correction of a window of the canvas, for sources whose matrix or
//! range differs from the output's. swscale converts range but not matrix between
//! two Y'CbCr formats, so this does both with lookup tables (three adds a sample).

use crate::color::YuvMatrix;
use crate::frame::ColorSpace;

/// Fixed-point tables for out = sum(table[in]) over y, u, v.
pub struct Converter {
    y: [[i32; 256]; 3],
    u: [[i32; 256]; 2],
    v: [[i32; 256]; 2],
}

const SHIFT: i32 = 16;

impl Converter {
    pub fn new(from: ColorSpace, to: ColorSpace) -> Self {
        let src = YuvMatrix::new(from).to_rgb;
        let dst = YuvMatrix::new(to).from_rgb;
        // Combined affine map on normalised values: out = dst * (src * in).
        let mut m = [[0f32; 4]; 3];
        for (r, row) in m.iter_mut().enumerate() {
            for (c, cell) in row.iter_mut().enumerate() {
                *cell = (0..3).map(|k| dst[r][k] * src[k][c]).sum::<f32>() + if c == 3 { dst[r][3] } else { 0.0 };
            }
        }
        let table = |coef: f32, offset: f32| {
            let mut t = [0i32; 256];
            for (i, e) in t.iter_mut().enumerate() {
                *e = ((coef * i as f32 + offset * 255.0) * (1 << SHIFT) as f32).round() as i32;
            }
            t
        };
        let half = 0.5 / 255.0; // rounds to nearest, in normalised units
        Self {
            y: [table(m[0][0], m[0][3] + half), table(m[0][1], 0.0), table(m[0][2], 0.0)],
            u: [table(m[1][1], m[1][3] + half), table(m[1][2], 0.0)],
            v: [table(m[2][1], m[2][3] + half), table(m[2][2], 0.0)],
        }
    }

    /// Converts the planes' window (luma coordinates, even) in place.
    pub(crate) fn apply(&self, planes: &mut [&mut [u8]; 3], strides: [usize; 3], x: u32, y: u32, w: u32, h: u32) {
        let clamp = |v: i32| (v >> SHIFT).clamp(0, 255) as u8;
        let (x, y, w, h) = (x as usize, y as usize, w as usize, h as usize);
        let [py, pu, pv] = planes;
        for row in 0..h {
            let cy = (y + row) / 2;
            let yrow = &mut py[(y + row) * strides[0] + x..][..w];
            let urow = &pu[cy * strides[1] + x / 2..][..w / 2];
            let vrow = &pv[cy * strides[2] + x / 2..][..w / 2];
            for (i, px) in yrow.iter_mut().enumerate() {
                let (u, v) = (urow[i / 2] as usize, vrow[i / 2] as usize);
                *px = clamp(self.y[0][*px as usize] + self.y[1][u] + self.y[2][v]);
            }
        }
        for row in 0..h / 2 {
            let off_u = (y / 2 + row) * strides[1] + x / 2;
            let off_v = (y / 2 + row) * strides[2] + x / 2;
            for i in 0..w / 2 {
                let (u, v) = (pu[off_u + i] as usize, pv[off_v + i] as usize);
                pu[off_u + i] = clamp(self.u[0][u] + self.u[1][v]);
                pv[off_v + i] = clamp(self.v[0][u] + self.v[1][v]);
            }
        }
    }
}

/// Converts an I420 frame to another colour space in place.
pub fn convert_frame(f: &mut crate::frame::VideoFrame, to: ColorSpace) {
    if f.color == to || f.format != crate::frame::PixelFormat::I420 {
        return;
    }
    let conv = Converter::new(f.color, to);
    let strides = [f.planes[0].stride, f.planes[1].stride, f.planes[2].stride];
    let (w, h) = (f.width & !1, f.height & !1);
    let [y, u, v] = &mut f.planes[..] else { return };
    conv.apply(&mut [&mut y.data, &mut u.data, &mut v.data], strides, 0, 0, w, h);
    f.color = to;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::color::{Rgba, rgb_to_yuv};
    use crate::frame::{Matrix, Range};

    #[test]
    fn converts_601_full_to_709_limited() {
        let from = ColorSpace { matrix: Matrix::Bt601, range: Range::Full };
        let to = ColorSpace { matrix: Matrix::Bt709, range: Range::Limited };
        let conv = Converter::new(from, to);
        let c = Rgba::rgb(180, 60, 30);
        let [y, u, v] = rgb_to_yuv(c, from);
        let (mut py, mut pu, mut pv) = (vec![y; 4], vec![u; 1], vec![v; 1]);
        conv.apply(&mut [&mut py, &mut pu, &mut pv], [2, 1, 1], 0, 0, 2, 2);
        let want = rgb_to_yuv(c, to);
        for (got, want) in [py[0], pu[0], pv[0]].iter().zip(want) {
            assert!((*got as i32 - want as i32).abs() <= 1, "{:?} vs {want:?}", [py[0], pu[0], pv[0]]);
        }
    }
}
