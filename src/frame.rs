//! Raw video frames as they travel between decoder, renderer and encoder.

use thiserror::Error;

/// Colour matrix of a Y'CbCr frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Matrix {
    Bt601,
    #[default]
    Bt709,
}

/// Quantisation range of a Y'CbCr frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Range {
    /// 16..235 luma, 16..240 chroma (video, "tv").
    #[default]
    Limited,
    /// 0..255 (JPEG, "pc").
    Full,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ColorSpace {
    pub matrix: Matrix,
    pub range: Range,
}

/// Memory layout of a 4:2:0 frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// Three planes: Y, U, V.
    I420,
    /// Two planes: Y, interleaved UV.
    Nv12,
}

#[derive(Debug, Error)]
pub enum FrameError {
    #[error("frame size {width}x{height} is not usable: both sides must be at least 2")]
    BadSize { width: u32, height: u32 },
    #[error("plane {plane} holds {got} bytes, {need} needed for {width}x{height} with stride {stride}")]
    ShortPlane { plane: usize, got: usize, need: usize, width: u32, height: u32, stride: usize },
}

/// One plane: bytes and the distance between rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plane {
    pub data: Vec<u8>,
    pub stride: usize,
}

/// A 4:2:0 Y'CbCr frame with its own strides. Any size: with an odd side the
/// chroma planes round up (`(w + 1) / 2`), as decoders give them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoFrame {
    pub format: PixelFormat,
    pub width: u32,
    pub height: u32,
    pub color: ColorSpace,
    pub planes: Vec<Plane>,
}

impl VideoFrame {
    /// A frame of the given format filled with one colour.
    pub fn filled(
        format: PixelFormat,
        width: u32,
        height: u32,
        color: ColorSpace,
        yuv: [u8; 3],
    ) -> Result<Self, FrameError> {
        check_size(width, height)?;
        let (w, h) = (width as usize, height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let planes = match format {
            PixelFormat::I420 => vec![
                Plane { data: vec![yuv[0]; w * h], stride: w },
                Plane { data: vec![yuv[1]; cw * ch], stride: cw },
                Plane { data: vec![yuv[2]; cw * ch], stride: cw },
            ],
            PixelFormat::Nv12 => {
                let uv: Vec<u8> = [yuv[1], yuv[2]].iter().copied().cycle().take(cw * 2 * ch).collect();
                vec![Plane { data: vec![yuv[0]; w * h], stride: w }, Plane { data: uv, stride: cw * 2 }]
            }
        };
        Ok(Self { format, width, height, color, planes })
    }

    /// Wraps planes received from elsewhere, checking they are large enough.
    pub(crate) fn from_planes(
        format: PixelFormat,
        width: u32,
        height: u32,
        color: ColorSpace,
        planes: Vec<Plane>,
    ) -> Result<Self, FrameError> {
        let frame = Self { format, width, height, color, planes };
        frame.validate()?;
        Ok(frame)
    }

    /// Checks the size and that every plane holds its rows: the fields are public,
    /// and renderers hand these bytes to C and GPU code that must not read past them.
    pub fn validate(&self) -> Result<(), FrameError> {
        check_size(self.width, self.height)?;
        if self.planes.len() < self.plane_count() {
            return Err(FrameError::ShortPlane {
                plane: self.planes.len(),
                got: 0,
                need: 1,
                width: self.width,
                height: self.height,
                stride: 0,
            });
        }
        for (i, p) in self.planes.iter().enumerate().take(self.plane_count()) {
            let (row, rows) = self.plane_dims(i);
            let need = p.stride * (rows - 1) + row;
            if p.stride < row || p.data.len() < need {
                return Err(FrameError::ShortPlane {
                    plane: i,
                    got: p.data.len(),
                    need,
                    width: self.width,
                    height: self.height,
                    stride: p.stride,
                });
            }
        }
        Ok(())
    }

    /// Bytes per row and number of rows of plane `i`.
    pub(crate) fn plane_dims(&self, i: usize) -> (usize, usize) {
        let (w, h) = (self.width as usize, self.height as usize);
        match (self.format, i) {
            (_, 0) => (w, h),
            (PixelFormat::I420, _) => (w.div_ceil(2), h.div_ceil(2)),
            (PixelFormat::Nv12, _) => (w.div_ceil(2) * 2, h.div_ceil(2)),
        }
    }

    /// Number of planes for this format.
    pub(crate) fn plane_count(&self) -> usize {
        match self.format {
            PixelFormat::I420 => 3,
            PixelFormat::Nv12 => 2,
        }
    }

    /// The Y'CbCr sample at (x, y), for tests and probes.
    pub(crate) fn yuv_at(&self, x: u32, y: u32) -> [u8; 3] {
        let (x, y) = (x as usize, y as usize);
        let luma = self.planes[0].data[y * self.planes[0].stride + x];
        match self.format {
            PixelFormat::I420 => [
                luma,
                self.planes[1].data[(y / 2) * self.planes[1].stride + x / 2],
                self.planes[2].data[(y / 2) * self.planes[2].stride + x / 2],
            ],
            PixelFormat::Nv12 => {
                let o = (y / 2) * self.planes[1].stride + (x / 2) * 2;
                [luma, self.planes[1].data[o], self.planes[1].data[o + 1]]
            }
        }
    }
}

fn check_size(width: u32, height: u32) -> Result<(), FrameError> {
    if width < 2 || height < 2 {
        return Err(FrameError::BadSize { width, height });
    }
    Ok(())
}
