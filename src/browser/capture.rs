//! Capture of a job's display and audio sink through FFmpeg's devices (x11grab, pulse),
//! each on its own thread, into the job's encode pipeline: the same encoders and
//! outputs as the native path. Both devices stamp their packets with the wall clock
//! (the audio's minus the server's latency), so output time is wall time minus the
//! moment capture started, and audio and video stay in sync.

use crate::audio::{Mixer, SAMPLE_RATE};
use crate::pipeline::{EncodePipeline, PipelineError};
use crate::recording::LiveStats;
use crate::render::RenderedFrame;
use ffmpeg::format;
use ffmpeg_next as ffmpeg;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::thread::JoinHandle;

/// Why capture could not start or stopped. Each variant names the device or the step,
/// and keeps FFmpeg's (or the pipeline's) error as its source.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CaptureError {
    /// The device name cannot be handed to FFmpeg (it holds a NUL byte).
    #[error("FFmpeg device name {device:?}: {cause}")]
    DeviceName {
        device: String,
        #[source]
        cause: std::ffi::NulError,
    },
    #[error("FFmpeg has no {0} input (libavdevice)")]
    NoDevice(String),
    #[error("opening {device} {url}: {cause}")]
    Open {
        device: String,
        url: String,
        #[source]
        cause: ffmpeg::Error,
    },
    #[error("cannot start the {what} capture thread: {cause}")]
    Spawn {
        what: &'static str,
        #[source]
        cause: std::io::Error,
    },
    #[error("a capture thread panicked")]
    Panicked,
    #[error("{device} gave no {kind} stream")]
    NoStream { device: &'static str, kind: &'static str },
    /// A step of decoding or converting what a device gave.
    #[error("{what}: {cause}")]
    Ffmpeg {
        what: &'static str,
        #[source]
        cause: ffmpeg::Error,
    },
    /// The encode pipeline refused a frame or an audio block.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

/// Wraps an FFmpeg error with the step it failed in.
fn ff(what: &'static str) -> impl FnOnce(ffmpeg::Error) -> CaptureError {
    move |cause| CaptureError::Ffmpeg { what, cause }
}

/// Opens an FFmpeg input device (`x11grab`, `pulse`) at `url` with `options`.
fn open_device(device: &str, url: &str, options: &[(&str, String)]) -> Result<format::context::Input, CaptureError> {
    crate::encode::init();
    let name =
        std::ffi::CString::new(device).map_err(|cause| CaptureError::DeviceName { device: device.into(), cause })?;
    // SAFETY: FFmpeg returns a static descriptor or null.
    let ptr = unsafe { ffmpeg::ffi::av_find_input_format(name.as_ptr()) };
    if ptr.is_null() {
        return Err(CaptureError::NoDevice(device.into()));
    }
    let fmt = ffmpeg::Format::Input(unsafe { format::Input::wrap(ptr as *mut _) });
    let mut opts = ffmpeg::Dictionary::new();
    for (k, v) in options {
        opts.set(k, v);
    }
    // Without this, opening probes (and buffers) frames for a while: the first ones come late.
    opts.set("fpsprobesize", "0");
    format::open_with(&url, &fmt, opts).map(|c| c.input()).map_err(|cause| CaptureError::Open {
        device: device.into(),
        url: url.into(),
        cause,
    })
}

/// What the capture threads share.
pub(crate) struct Capture {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Result<(), CaptureError>>>,
    /// Output µs of the newest video frame and audio sample.
    pub last_video_us: Arc<AtomicI64>,
}

pub(crate) struct CaptureConfig {
    pub display: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// PulseAudio server (`unix:...`), when audio is captured.
    pub pulse_server: Option<String>,
    pub video: bool,
    /// Wall-clock µs of output time 0.
    pub t0_us: i64,
    pub thread_name: String,
}

impl Capture {
    pub(crate) fn start(
        c: CaptureConfig,
        pipeline: Arc<EncodePipeline>,
        stats: Arc<LiveStats>,
    ) -> Result<Self, CaptureError> {
        let stop = Arc::new(AtomicBool::new(false));
        let last_video_us = Arc::new(AtomicI64::new(0));
        let mut threads = Vec::new();
        // Devices open here, so a failure is reported before anything runs.
        if c.video {
            let input = open_device(
                "x11grab",
                &format!("{}+0,0", c.display),
                &[
                    ("video_size", format!("{}x{}", c.width, c.height)),
                    ("framerate", c.fps.to_string()),
                    ("draw_mouse", "0".into()),
                ],
            )?;
            let (stop, pipeline, stats, last) = (stop.clone(), pipeline.clone(), stats.clone(), last_video_us.clone());
            let (t0, frame_us) = (c.t0_us, 1_000_000 / i64::from(c.fps.max(1)));
            threads.push(
                std::thread::Builder::new()
                    .name(c.thread_name.clone())
                    .spawn(move || logged("video", video(input, t0, frame_us, &stop, &pipeline, &stats, &last)))
                    .map_err(|cause| CaptureError::Spawn { what: "video", cause })?,
            );
        }
        if let Some(server) = &c.pulse_server {
            let input = open_device(
                "pulse",
                &format!("{}.monitor", super::pulse::SINK),
                &[
                    ("server", server.clone()),
                    ("sample_rate", SAMPLE_RATE.to_string()),
                    ("channels", "2".into()),
                    // 10 ms fragments (16-bit stereo at 48 kHz): low latency, little overhead.
                    ("fragment_size", "1920".into()),
                ],
            )?;
            let (stop, pipeline, stats) = (stop.clone(), pipeline.clone(), stats.clone());
            let (t0, video_too) = (c.t0_us, c.video);
            threads.push(
                std::thread::Builder::new()
                    .name(c.thread_name.clone())
                    .spawn(move || logged("audio", audio(input, t0, &stop, &pipeline, &stats, !video_too)))
                    .map_err(|cause| CaptureError::Spawn { what: "audio", cause })?,
            );
        }
        Ok(Self { stop, threads, last_video_us })
    }

    /// Stops both threads (each within a frame or a fragment) and reports the first error.
    pub(crate) fn stop(self) -> Result<(), CaptureError> {
        self.stop.store(true, Ordering::SeqCst);
        let mut first = Ok(());
        for t in self.threads {
            let r = t.join().unwrap_or(Err(CaptureError::Panicked));
            if first.is_ok() {
                first = r;
            }
        }
        first
    }

    /// Whether a capture thread has ended by itself (a device failed).
    pub(crate) fn failed(&self) -> bool {
        self.threads.iter().any(|t| t.is_finished())
    }
}

/// A device timestamp in microseconds (they are Unix-epoch µs: multiplied out in i128, as
/// µs x 10^6 overflows i64).
fn wall_us(pts: i64, tb: ffmpeg::Rational) -> i64 {
    (pts as i128 * 1_000_000 * tb.0 as i128 / tb.1.max(1) as i128) as i64
}

fn logged(what: &str, r: Result<(), CaptureError>) -> Result<(), CaptureError> {
    match &r {
        Ok(()) => tracing::debug!("{what} capture ended"),
        Err(e) => tracing::warn!(error = %e, "{what} capture failed"),
    }
    r
}

fn video(
    mut input: format::context::Input,
    t0_us: i64,
    frame_us: i64,
    stop: &AtomicBool,
    pipeline: &EncodePipeline,
    stats: &LiveStats,
    last_us: &AtomicI64,
) -> Result<(), CaptureError> {
    let stream = input
        .streams()
        .best(ffmpeg::media::Type::Video)
        .ok_or(CaptureError::NoStream { device: "x11grab", kind: "video" })?;
    let index = stream.index();
    let tb = stream.time_base();
    let mut decoder = ffmpeg::codec::context::Context::from_parameters(stream.parameters())
        .and_then(|c| c.decoder().video())
        .map_err(ff("x11grab's raw video"))?;
    let mut scaler: Option<ffmpeg::software::scaling::Context> = None;
    let mut raw = ffmpeg::frame::Video::empty();
    let mut last_pts = i64::MIN;
    let mut started = false;
    for (s, packet) in input.packets() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        if s.index() != index {
            continue;
        }
        let Some(pts) = packet.pts() else { continue };
        // On the output's frame grid: x11grab's wall-clock stamps jitter when the machine is
        // busy, and two grabs within one frame would give the file two frames at one time
        // (players and FFmpeg see a non-monotonic timestamp); the later one is dropped.
        let pts_us = (wall_us(pts, tb) - t0_us + frame_us / 2).div_euclid(frame_us) * frame_us;
        if pts_us < 0 || pts_us <= last_pts {
            continue;
        }
        decoder.send_packet(&packet).map_err(ff("x11grab frame"))?;
        while decoder.receive_frame(&mut raw).is_ok() {
            if scaler.is_none() {
                let mut ctx = ffmpeg::software::scaling::Context::get(
                    raw.format(),
                    raw.width(),
                    raw.height(),
                    format::Pixel::YUV420P,
                    raw.width(),
                    raw.height(),
                    ffmpeg::software::scaling::Flags::BILINEAR,
                )
                .map_err(ff("a colour converter for the capture"))?;
                // BT.709, limited range: what the encoder declares.
                unsafe {
                    let coefficients = ffmpeg::ffi::sws_getCoefficients(ffmpeg::ffi::SWS_CS_ITU709);
                    ffmpeg::ffi::sws_setColorspaceDetails(
                        ctx.as_mut_ptr(),
                        coefficients,
                        1,
                        coefficients,
                        0,
                        0,
                        1 << 16,
                        1 << 16,
                    );
                }
                scaler = Some(ctx);
            }
            let mut yuv = ffmpeg::frame::Video::empty();
            if let Some(sc) = scaler.as_mut() {
                sc.run(&raw, &mut yuv).map_err(ff("converting the capture"))?;
            }
            let frame = crate::decode::planes_of(&yuv, crate::frame::Matrix::Bt709, false);
            pipeline.push_video(RenderedFrame { pts_us, frame })?;
            last_pts = pts_us;
            last_us.store(pts_us, Ordering::SeqCst);
            if !started {
                started = true;
                stats.mark_started();
            }
            stats.frames.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(())
}

fn audio(
    mut input: format::context::Input,
    t0_us: i64,
    stop: &AtomicBool,
    pipeline: &EncodePipeline,
    stats: &LiveStats,
    marks_start: bool,
) -> Result<(), CaptureError> {
    let stream = input
        .streams()
        .best(ffmpeg::media::Type::Audio)
        .ok_or(CaptureError::NoStream { device: "pulse", kind: "audio" })?;
    let index = stream.index();
    let tb = stream.time_base();
    let block = SAMPLE_RATE as usize / 100;
    let mut mixer = Mixer::new(0, block);
    let mut newest = 0i64;
    let mut started = false;
    for (s, packet) in input.packets() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        if s.index() != index {
            continue;
        }
        let (Some(pts), Some(data)) = (packet.pts(), packet.data()) else { continue };
        let pts_us = wall_us(pts, tb) - t0_us;
        // 16-bit interleaved stereo to the mixer's floats.
        let samples: Vec<f32> =
            data.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0).collect();
        let pos = pts_us * SAMPLE_RATE as i64 / 1_000_000;
        let end = pos + (samples.len() / 2) as i64;
        if end <= 0 {
            continue;
        }
        mixer.push(0, pos, &samples);
        newest = newest.max(end);
        // A fragment of slack, so a jittery one still lands in its block.
        while mixer.position() + 2 * block as i64 <= newest {
            pipeline.push_audio(mixer.mix())?;
            if marks_start && !started {
                started = true;
                stats.mark_started();
            }
        }
    }
    while mixer.position() + block as i64 <= newest {
        pipeline.push_audio(mixer.mix())?;
    }
    Ok(())
}
