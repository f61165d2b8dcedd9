//! Images: a JPEG of the composite every `capture_interval` seconds of media time,
//! optionally scaled, named by index, by time or overwriting one file. The only
//! output with its own scaler and encoder (FFmpeg's swscale and MJPEG), on its own
//! thread, so a slow disk never holds up the recording.

use super::OnWritten;
use crate::frame::{PixelFormat, VideoFrame};
use crate::sync::lock;
use ffmpeg::{codec, encoder, format, software::scaling};
use ffmpeg_next as ffmpeg;
use std::path::PathBuf;
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageNaming {
    /// `{prefix}_00000.jpeg`
    Index,
    /// `{prefix}_{UTC time}.jpeg`
    Timestamp,
    /// `{prefix}.jpeg`, replaced each time
    Overwrite,
}

#[derive(Debug, Clone)]
pub struct ImagesPlan {
    pub dir: PathBuf,
    pub prefix: String,
    /// As reported (relative to the output directory).
    pub filename_prefix: String,
    pub interval_s: u32,
    /// Scale to this size (0: the output's).
    pub width: u32,
    pub height: u32,
    pub naming: ImageNaming,
}

#[derive(Default)]
struct Progress {
    count: i64,
    started_at: i64,
    ended_at: i64,
    error: Option<String>,
    /// (file name, media time in seconds) of each image written.
    written: Vec<(String, f64)>,
}

pub struct ImageSink {
    plan: ImagesPlan,
    /// Media time of the next capture (µs); None before the first frame.
    next_us: Mutex<Option<i64>>,
    tx: Mutex<Option<SyncSender<(VideoFrame, i64)>>>,
    worker: Mutex<Option<std::thread::JoinHandle<()>>>,
    progress: Arc<Mutex<Progress>>,
}

/// How far an image output has got (the egress job reports it as LiveKit's ImagesInfo).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImagesProgress {
    pub filename_prefix: String,
    pub count: i64,
    /// Unix ns of the first image, and of the end (0: not yet).
    pub started_at: i64,
    pub ended_at: i64,
}

impl ImageSink {
    /// Starts the image thread, named `thread_name` (the job's); `on_written` is told of
    /// each image written.
    pub fn new(plan: ImagesPlan, thread_name: &str, on_written: Option<OnWritten>) -> Arc<Self> {
        let (tx, rx) = sync_channel::<(VideoFrame, i64)>(1);
        let progress = Arc::new(Mutex::new(Progress::default()));
        let (p, worker_plan) = (progress.clone(), plan.clone());
        let worker = std::thread::Builder::new()
            .name(if thread_name.is_empty() { "images".to_string() } else { thread_name.to_string() })
            .spawn(move || {
                let mut enc: Option<JpegEncoder> = None;
                for (frame, pts_us) in rx {
                    if let Err(e) = write_one(&worker_plan, &mut enc, &frame, pts_us, &p, on_written.as_ref()) {
                        tracing::warn!(error = %e, "image output failed");
                        lock(&p).error = Some(e.to_string());
                        return;
                    }
                }
            })
            .ok();
        Arc::new(Self {
            plan,
            next_us: Mutex::new(None),
            tx: Mutex::new(Some(tx)),
            worker: Mutex::new(worker),
            progress,
        })
    }

    /// Offers the frame at `pts_us`; it is captured when a capture is due.
    pub(crate) fn offer(&self, frame: &VideoFrame, pts_us: i64) {
        let mut next = lock(&self.next_us);
        let due = next.get_or_insert(pts_us);
        if pts_us < *due {
            return;
        }
        let Some(tx) = lock(&self.tx).clone() else { return };
        match tx.try_send((frame.clone(), pts_us)) {
            Ok(()) => {
                while *due <= pts_us {
                    *due += self.plan.interval_s.max(1) as i64 * 1_000_000;
                }
            }
            // The encoder is still busy with the last one: the next frame is tried.
            Err(TrySendError::Full(_)) => {}
            Err(TrySendError::Disconnected(_)) => *lock(&self.tx) = None,
        }
    }

    pub(crate) fn finish(&self) {
        lock(&self.tx).take();
        if let Some(w) = lock(&self.worker).take() {
            let _ = w.join();
        }
        lock(&self.progress).ended_at = crate::time::unix_ns();
    }

    pub fn progress(&self) -> ImagesProgress {
        let p = lock(&self.progress);
        ImagesProgress {
            filename_prefix: self.plan.filename_prefix.clone(),
            count: p.count,
            started_at: p.started_at,
            ended_at: p.ended_at,
        }
    }

    pub fn error(&self) -> Option<String> {
        lock(&self.progress).error.clone()
    }

    /// (file name, media seconds) of every image written, for the manifest.
    pub fn written(&self) -> Vec<(String, f64)> {
        lock(&self.progress).written.clone()
    }
}

struct JpegEncoder {
    enc: encoder::Video,
    scaler: scaling::Context,
    src: ffmpeg::frame::Video,
    dst: ffmpeg::frame::Video,
    /// The encoder wants rising timestamps.
    next_pts: i64,
}

/// Why an image could not be made; the output stops at the first (EgressInfo says which).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ImageError {
    #[error("no MJPEG encoder in this FFmpeg")]
    NoEncoder,
    #[error("{what}: {source}")]
    Ffmpeg {
        what: &'static str,
        #[source]
        source: ffmpeg::Error,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn ff(what: &'static str) -> impl FnOnce(ffmpeg::Error) -> ImageError {
    move |source| ImageError::Ffmpeg { what, source }
}

/// The images' size: as asked, the frame's when neither side is given, and with one side
/// given the other follows the frame's shape (even, as 4:2:0 needs), as LiveKit allows.
pub(crate) fn image_size(width: u32, height: u32, frame_w: u32, frame_h: u32) -> (u32, u32) {
    let even = |v: f64| ((v / 2.0).round() as u32 * 2).max(2);
    match (width, height) {
        (0, 0) => (frame_w, frame_h),
        (w, 0) => (w, even(w as f64 * frame_h as f64 / frame_w.max(1) as f64)),
        (0, h) => (even(h as f64 * frame_w as f64 / frame_h.max(1) as f64), h),
        (w, h) => (w, h),
    }
}

impl JpegEncoder {
    fn new(frame: &VideoFrame, plan: &ImagesPlan) -> Result<Self, ImageError> {
        crate::encode::init();
        let (w, h) = image_size(plan.width, plan.height, frame.width, frame.height);
        let codec = encoder::find(codec::Id::MJPEG).ok_or(ImageError::NoEncoder)?;
        let mut enc = codec::context::Context::new_with_codec(codec).encoder().video().map_err(ff("MJPEG context"))?;
        enc.set_width(w);
        enc.set_height(h);
        enc.set_format(format::Pixel::YUVJ420P);
        enc.set_time_base(ffmpeg::Rational(1, 25));
        // A good quality (qscale 3 of 2..31).
        enc.set_flags(codec::Flags::QSCALE);
        enc.set_global_quality(3 * 118);
        let enc = enc.open_as(codec).map_err(ff("opening MJPEG"))?;
        let src_fmt = match frame.format {
            PixelFormat::I420 => format::Pixel::YUV420P,
            PixelFormat::Nv12 => format::Pixel::NV12,
        };
        let scaler = scaling::Context::get(
            src_fmt,
            frame.width,
            frame.height,
            format::Pixel::YUVJ420P,
            w,
            h,
            scaling::Flags::BILINEAR,
        )
        .map_err(ff("creating the scaler"))?;
        Ok(Self {
            enc,
            scaler,
            src: ffmpeg::frame::Video::new(src_fmt, frame.width, frame.height),
            dst: ffmpeg::frame::Video::new(format::Pixel::YUVJ420P, w, h),
            next_pts: 0,
        })
    }

    fn encode(&mut self, frame: &VideoFrame) -> Result<Vec<u8>, ImageError> {
        for (i, plane) in frame.planes.iter().enumerate() {
            let rows = if i == 0 { frame.height as usize } else { (frame.height as usize).div_ceil(2) };
            let stride = self.src.stride(i);
            let width = plane.stride.min(stride);
            let dst = self.src.data_mut(i);
            for r in 0..rows {
                dst[r * stride..r * stride + width]
                    .copy_from_slice(&plane.data[r * plane.stride..r * plane.stride + width]);
            }
        }
        self.scaler.run(&self.src, &mut self.dst).map_err(ff("scaling"))?;
        self.dst.set_pts(Some(self.next_pts));
        self.next_pts += 1;
        self.enc.send_frame(&self.dst).map_err(ff("encoding"))?;
        let mut packet = ffmpeg::Packet::empty();
        self.enc.receive_packet(&mut packet).map_err(ff("encoding"))?;
        Ok(packet.data().unwrap_or_default().to_vec())
    }
}

fn write_one(
    plan: &ImagesPlan,
    enc: &mut Option<JpegEncoder>,
    frame: &VideoFrame,
    pts_us: i64,
    progress: &Mutex<Progress>,
    on_written: Option<&OnWritten>,
) -> Result<(), ImageError> {
    if enc.is_none() {
        std::fs::create_dir_all(&plan.dir).map_err(|source| ImageError::Io { path: plan.dir.clone(), source })?;
        *enc = Some(JpegEncoder::new(frame, plan)?);
    }
    let Some(e) = enc.as_mut() else { return Ok(()) };
    let jpeg = e.encode(frame)?;
    let index = lock(progress).count;
    let name = match plan.naming {
        ImageNaming::Index => format!("{}_{index:05}.jpeg", plan.prefix),
        ImageNaming::Timestamp => {
            format!("{}_{}.jpeg", plan.prefix, chrono::Utc::now().format("%Y%m%d%H%M%S%3f"))
        }
        ImageNaming::Overwrite => format!("{}.jpeg", plan.prefix),
    };
    let path = plan.dir.join(&name);
    // Written aside and renamed, so a reader never sees half an image.
    let tmp = path.with_extension("jpeg.tmp");
    std::fs::write(&tmp, &jpeg)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|source| ImageError::Io { path: path.clone(), source })?;
    if let Some(f) = on_written {
        f(&path, true);
    }
    let mut p = lock(progress);
    if p.count == 0 {
        p.started_at = crate::time::unix_ns();
    }
    p.count += 1;
    p.written.push((name, pts_us as f64 / 1e6));
    Ok(())
}
