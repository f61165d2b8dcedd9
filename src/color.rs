//! Colour conversions shared by both render backends, so they agree to the bit
//! on flat colours (backgrounds, borders, text).

use crate::frame::{ColorSpace, Matrix, Range};
use serde::Deserialize;
use std::fmt;
use std::str::FromStr;

/// An sRGB colour with straight alpha, as written in layout files (`#rrggbb` or `#rrggbbaa`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rgba {
    pub r: u8,
    pub g: u8,
    pub b: u8,
    pub a: u8,
}

impl Rgba {
    pub const BLACK: Rgba = Rgba { r: 0, g: 0, b: 0, a: 255 };
    pub const WHITE: Rgba = Rgba { r: 255, g: 255, b: 255, a: 255 };

    pub const fn rgb(r: u8, g: u8, b: u8) -> Self {
        Self { r, g, b, a: 255 }
    }

    pub fn to_f32(self) -> [f32; 4] {
        [self.r as f32 / 255.0, self.g as f32 / 255.0, self.b as f32 / 255.0, self.a as f32 / 255.0]
    }
}

/// Why a layout's colour string is not a colour; each variant quotes it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ColorError {
    #[error("colour {0:?} must start with '#'")]
    NoHash(String),
    /// A pair of digits is not hexadecimal (`cause` is `None` when the pair splits a
    /// multi-byte character, which `from_str_radix` never sees).
    #[error("colour {colour:?} is not hexadecimal")]
    NotHex {
        colour: String,
        #[source]
        cause: Option<std::num::ParseIntError>,
    },
    #[error("colour {0:?} must be #rrggbb or #rrggbbaa")]
    Length(String),
}

impl FromStr for Rgba {
    type Err = ColorError;
    fn from_str(s: &str) -> Result<Self, ColorError> {
        let hex = s.strip_prefix('#').ok_or_else(|| ColorError::NoHash(s.into()))?;
        let not_hex = |cause| ColorError::NotHex { colour: s.into(), cause };
        // `get`, not indexing: a layout file's non-ASCII text must be an error, not a panic.
        let byte = |i: usize| {
            let pair = hex.get(i..i + 2).ok_or_else(|| not_hex(None))?;
            u8::from_str_radix(pair, 16).map_err(|e| not_hex(Some(e)))
        };
        match hex.len() {
            6 => Ok(Rgba { r: byte(0)?, g: byte(2)?, b: byte(4)?, a: 255 }),
            8 => Ok(Rgba { r: byte(0)?, g: byte(2)?, b: byte(4)?, a: byte(6)? }),
            _ => Err(ColorError::Length(s.into())),
        }
    }
}

impl fmt::Display for Rgba {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{:02x}{:02x}{:02x}{:02x}", self.r, self.g, self.b, self.a)
    }
}

impl<'de> Deserialize<'de> for Rgba {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Luma weights (Kr, Kb) of a matrix.
fn weights(m: Matrix) -> (f32, f32) {
    match m {
        Matrix::Bt601 => (0.299, 0.114),
        Matrix::Bt709 => (0.2126, 0.0722),
    }
}

/// Y'CbCr <-> R'G'B' as affine 3x4 matrices on normalised values (0..1 for every
/// code value), the form the shaders take as uniforms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct YuvMatrix {
    /// rows: r, g, b; columns: y, u, v, offset
    pub to_rgb: [[f32; 4]; 3],
    /// rows: y, u, v; columns: r, g, b, offset
    pub from_rgb: [[f32; 4]; 3],
}

impl YuvMatrix {
    pub(crate) fn new(cs: ColorSpace) -> Self {
        let (kr, kb) = weights(cs.matrix);
        let kg = 1.0 - kr - kb;
        // Scale and offset of the code values, on a 0..1 scale.
        let (ys, yo, cs_, co) = match cs.range {
            Range::Limited => (219.0 / 255.0, 16.0 / 255.0, 224.0 / 255.0, 128.0 / 255.0),
            Range::Full => (1.0, 0.0, 1.0, 128.0 / 255.0),
        };
        // from_rgb: y = yo + ys*(kr r + kg g + kb b); u = co + cs*(b - Y)/(2(1-kb)); v = co + cs*(r - Y)/(2(1-kr))
        let cu = cs_ / (2.0 * (1.0 - kb));
        let cv = cs_ / (2.0 * (1.0 - kr));
        let from_rgb = [
            [ys * kr, ys * kg, ys * kb, yo],
            [-cu * kr, -cu * kg, cu * (1.0 - kb), co],
            [cv * (1.0 - kr), -cv * kg, -cv * kb, co],
        ];
        // to_rgb: Y = (y - yo)/ys; Pb = (u - co)/cs; Pr = (v - co)/cs
        // r = Y + 2(1-kr) Pr; b = Y + 2(1-kb) Pb; g = (Y - kr r - kb b)/kg
        let a = 1.0 / ys;
        let pr = 2.0 * (1.0 - kr) / cs_;
        let pb = 2.0 * (1.0 - kb) / cs_;
        let g_u = -kb * pb / kg;
        let g_v = -kr * pr / kg;
        let to_rgb = [
            [a, 0.0, pr, -yo * a - co * pr],
            [a, g_u, g_v, -yo * a - co * (g_u + g_v)],
            [a, pb, 0.0, -yo * a - co * pb],
        ];
        Self { to_rgb, from_rgb }
    }
}

/// An opaque colour in the output's Y'CbCr, rounded to code values.
pub(crate) fn rgb_to_yuv(c: Rgba, cs: ColorSpace) -> [u8; 3] {
    let m = YuvMatrix::new(cs).from_rgb;
    let [r, g, b, _] = c.to_f32();
    let ch = |row: [f32; 4]| ((row[0] * r + row[1] * g + row[2] * b + row[3]) * 255.0).round().clamp(0.0, 255.0) as u8;
    [ch(m[0]), ch(m[1]), ch(m[2])]
}

/// Y'CbCr code values back to sRGB (for PNG output and tests).
pub(crate) fn yuv_to_rgb(yuv: [u8; 3], cs: ColorSpace) -> [u8; 3] {
    let m = YuvMatrix::new(cs).to_rgb;
    let [y, u, v] = yuv.map(|c| c as f32 / 255.0);
    let ch = |row: [f32; 4]| ((row[0] * y + row[1] * u + row[2] * v + row[3]) * 255.0).round().clamp(0.0, 255.0) as u8;
    [ch(m[0]), ch(m[1]), ch(m[2])]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hex_colours() {
        assert_eq!("#1f8cf9".parse::<Rgba>().unwrap(), Rgba::rgb(0x1f, 0x8c, 0xf9));
        assert_eq!("#00000080".parse::<Rgba>().unwrap().a, 0x80);
        assert!("1f8cf9".parse::<Rgba>().is_err());
        assert!("#12345".parse::<Rgba>().is_err());
        // A pair that splits a multi-byte character is an error, not a panic.
        assert!(matches!("#aébcd".parse::<Rgba>(), Err(ColorError::NotHex { .. })));
        assert_eq!(
            "#12345".parse::<Rgba>().unwrap_err().to_string(),
            r##"colour "#12345" must be #rrggbb or #rrggbbaa"##
        );
    }

    #[test]
    fn round_trips_through_yuv() {
        for cs in [
            ColorSpace { matrix: Matrix::Bt709, range: Range::Limited },
            ColorSpace { matrix: Matrix::Bt601, range: Range::Full },
        ] {
            for c in [Rgba::rgb(200, 30, 90), Rgba::rgb(10, 250, 128), Rgba::WHITE, Rgba::BLACK] {
                let back = yuv_to_rgb(rgb_to_yuv(c, cs), cs);
                for (a, b) in back.iter().zip([c.r, c.g, c.b]) {
                    assert!((*a as i32 - b as i32).abs() <= 3, "{c} -> {back:?} in {cs:?}");
                }
            }
        }
        let black = rgb_to_yuv(Rgba::BLACK, ColorSpace::default());
        assert_eq!(black, [16, 128, 128]);
    }
}
