//! SIMD scaling of 4:2:0 planes straight into the canvas, through FFmpeg's
//! swscale. ffmpeg-next's safe `scaling::Context` only scales whole `AVFrame`s;
//! we need a cropped source and a destination that is a window of the canvas
//! (no intermediate copy), which takes the raw `sws_scale` with offset pointers.

use crate::frame::{PixelFormat, VideoFrame};
use crate::render::RenderError;
use ffmpeg_next::ffi;
use std::collections::HashMap;

/// A source window: whole-pixel, even offsets and sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Window {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

/// Destination: three I420 planes of the canvas with their strides, and the
/// even-aligned window to write.
pub(crate) struct Canvas<'a> {
    pub planes: [&'a mut [u8]; 3],
    pub strides: [usize; 3],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    format: PixelFormat,
    src: (u32, u32),
    dst: (u32, u32),
}

struct Context(*mut ffi::SwsContext);

// The context is only ever used from the thread that owns the renderer.
unsafe impl Send for Context {}

impl Drop for Context {
    fn drop(&mut self) {
        unsafe { ffi::sws_freeContext(self.0) }
    }
}

/// Scaling contexts by (format, source size, destination size). A layout reuses
/// the same few sizes frame after frame.
#[derive(Default)]
pub(crate) struct Scalers {
    contexts: HashMap<Key, Context>,
    /// swscale's SIMD output may write past the end of each row, so it scales
    /// into this padded scratch image and the rows are then copied into place.
    scratch: [Vec<u8>; 3],
}

/// Bytes of slack after each scratch row (swscale writes up to 32 past `dstW`).
const ROW_PAD: usize = 64;

impl Scalers {
    /// Scales `src` cropped to `win` into the canvas window at (dx, dy) of size dw x dh.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn scale(
        &mut self,
        src: &VideoFrame,
        win: Window,
        canvas: &mut Canvas<'_>,
        dx: u32,
        dy: u32,
        dw: u32,
        dh: u32,
    ) -> Result<(), RenderError> {
        let key = Key { format: src.format, src: (win.w, win.h), dst: (dw, dh) };
        if !self.contexts.contains_key(&key) {
            let fmt = match src.format {
                PixelFormat::I420 => ffi::AVPixelFormat::AV_PIX_FMT_YUV420P,
                PixelFormat::Nv12 => ffi::AVPixelFormat::AV_PIX_FMT_NV12,
            };
            let ctx = unsafe {
                ffi::sws_getContext(
                    win.w as i32,
                    win.h as i32,
                    fmt,
                    dw as i32,
                    dh as i32,
                    ffi::AVPixelFormat::AV_PIX_FMT_YUV420P,
                    ffi::SWS_BILINEAR,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    std::ptr::null(),
                )
            };
            if ctx.is_null() {
                return Err(RenderError::Scaler(format!("{}x{} to {dw}x{dh}", win.w, win.h)));
            }
            if self.contexts.len() > 256 {
                self.contexts.clear();
            }
            self.contexts.insert(key, Context(ctx));
        }
        let ctx = &self.contexts[&key];

        // Source pointers at the window's corner.
        let (x, y) = (win.x as usize, win.y as usize);
        let mut src_ptrs = [std::ptr::null::<u8>(); 4];
        let mut src_strides = [0i32; 4];
        for (i, p) in src.planes.iter().enumerate().take(src.plane_count()) {
            let off = match (src.format, i) {
                (_, 0) => y * p.stride + x,
                (PixelFormat::I420, _) => (y / 2) * p.stride + x / 2,
                (PixelFormat::Nv12, _) => (y / 2) * p.stride + x,
            };
            // Bounds: the window lies inside the frame (checked by the caller's geometry).
            assert!(off < p.data.len(), "scaler window outside the source plane");
            src_ptrs[i] = p.data[off..].as_ptr();
            src_strides[i] = p.stride as i32;
        }
        let mut dst_ptrs = [std::ptr::null_mut::<u8>(); 4];
        let mut dst_strides = [0i32; 4];
        let dims = |i: usize| if i == 0 { (dw as usize, dh as usize) } else { (dw as usize / 2, dh as usize / 2) };
        for i in 0..3 {
            let (ww, hh) = dims(i);
            let stride = (ww + ROW_PAD).next_multiple_of(64);
            let need = stride * (hh + 1);
            if self.scratch[i].len() < need {
                self.scratch[i].resize(need, 0);
            }
            dst_ptrs[i] = self.scratch[i].as_mut_ptr();
            dst_strides[i] = stride as i32;
        }
        let rows = unsafe {
            ffi::sws_scale(
                ctx.0,
                src_ptrs.as_ptr(),
                src_strides.as_ptr(),
                0,
                win.h as i32,
                dst_ptrs.as_ptr(),
                dst_strides.as_ptr(),
            )
        };
        if rows <= 0 {
            return Err(RenderError::Scaler(format!("{}x{} to {dw}x{dh} returned {rows}", win.w, win.h)));
        }
        for i in 0..3 {
            let (ww, hh) = dims(i);
            let (px, py) = if i == 0 { (dx as usize, dy as usize) } else { (dx as usize / 2, dy as usize / 2) };
            let (ss, cs) = (dst_strides[i] as usize, canvas.strides[i]);
            for row in 0..hh {
                let d = (py + row) * cs + px;
                canvas.planes[i][d..d + ww].copy_from_slice(&self.scratch[i][row * ss..row * ss + ww]);
            }
        }
        Ok(())
    }
}
