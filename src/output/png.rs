//! PNG snapshots of frames (previews, golden images).

use super::OutputError;
use crate::color::yuv_to_rgb;
use crate::frame::VideoFrame;
use std::path::Path;

/// A frame as packed RGB bytes.
pub fn frame_to_rgb(f: &VideoFrame) -> Vec<u8> {
    let mut out = Vec::with_capacity((f.width * f.height * 3) as usize);
    for y in 0..f.height {
        for x in 0..f.width {
            out.extend_from_slice(&yuv_to_rgb(f.yuv_at(x, y), f.color));
        }
    }
    out
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> OutputError + use<> {
    let path = path.display().to_string();
    move |cause| OutputError::Io { path, cause }
}

pub fn write_rgb(path: &Path, width: u32, height: u32, rgb: &[u8]) -> Result<(), OutputError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let file = std::fs::File::create(path).map_err(io(path))?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), width, height);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let to_io = std::io::Error::other::<png::EncodingError>;
    let mut w = enc.write_header().map_err(to_io).map_err(io(path))?;
    w.write_image_data(rgb).map_err(to_io).map_err(io(path))?;
    w.finish().map_err(to_io).map_err(io(path))
}

pub(crate) fn write_frame(path: &Path, f: &VideoFrame) -> Result<(), OutputError> {
    write_rgb(path, f.width, f.height, &frame_to_rgb(f))
}

/// Reads an 8-bit RGB or RGBA PNG as (width, height, rgb).
pub fn read_rgb(path: &Path) -> Result<(u32, u32, Vec<u8>), OutputError> {
    let file = std::fs::File::open(path).map_err(io(path))?;
    let dec = png::Decoder::new(std::io::BufReader::new(file));
    let to_io = std::io::Error::other::<png::DecodingError>;
    let mut reader = dec.read_info().map_err(to_io).map_err(io(path))?;
    let mut buf = vec![0; reader.output_buffer_size().unwrap_or(0)];
    let info = reader.next_frame(&mut buf).map_err(to_io).map_err(io(path))?;
    let data = &buf[..info.buffer_size()];
    let rgb = match info.color_type {
        png::ColorType::Rgb => data.to_vec(),
        png::ColorType::Rgba => data.chunks(4).flat_map(|p| [p[0], p[1], p[2]]).collect(),
        other => {
            return Err(OutputError::Io {
                path: path.display().to_string(),
                cause: std::io::Error::other(format!("unsupported PNG colour type {other:?}")),
            });
        }
    };
    Ok((info.width, info.height, rgb))
}
