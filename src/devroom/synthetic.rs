//! Synthetic participants: real clients that join a room over LiveKit's protocol
//! and publish VP8 video of a moving pattern in their own colour with their name,
//! and Opus audio (a tone at their own pitch, in speaking turns). Every 5 s the
//! video flashes white and the audio beeps at 1 kHz at the same instant, so a
//! recording's A/V sync can be measured. Options add a screen share, a late
//! joiner, a leaver and a microphone mute toggle.

use crate::audio::{CHANNELS, MixedBlock, SAMPLE_RATE};
use crate::encode::EncodingOptions;
use crate::encode::{AudioCodec, AudioEncoder, EncodeError, VideoCodec, VideoEncoder};
use crate::frame::VideoFrame;
use crate::preview::synthetic::{RoomOptions, SyntheticRoom, name};
use crate::room::{ClientError, LocalTrack, RoomClient, TrackSpec};
use livekit_api::access_token::{AccessToken, VideoGrants};
use livekit_protocol as proto;
use std::time::{Duration, Instant};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum SyntheticError {
    #[error("synthetic participant {who}: {cause}")]
    Client { who: String, cause: ClientError },
    #[error("synthetic participant {who}: {cause}")]
    Encode { who: String, cause: EncodeError },
    #[error("synthetic participant {who}: {cause}")]
    Render { who: String, cause: crate::render::RenderError },
    #[error("cannot sign a token: {0}")]
    Token(String),
}

#[derive(Debug, Clone)]
pub struct SyntheticOptions {
    pub url: String,
    pub api_key: String,
    pub api_secret: String,
    pub room: String,
    pub count: usize,
    /// Participant 1 also shares a screen (from `share_after` on).
    pub screen_share: bool,
    pub share_after: Duration,
    /// The last participant joins `late_by` late.
    pub late_joiner: bool,
    pub late_by: Duration,
    /// Participant 2 leaves after `leave_after`.
    pub leaver: bool,
    pub leave_after: Duration,
    /// The third participant mutes and unmutes its microphone every 4 s.
    pub mute_toggle: bool,
    pub fps: u32,
    /// Camera size.
    pub camera: (u32, u32),
    /// VP8 (default) or H.264 (constrained baseline).
    pub codec: VideoCodec,
    /// How long to run; None until cancelled.
    pub duration: Option<Duration>,
    /// Start each participant's clock on a whole multiple of MARK_EVERY of Unix
    /// time, so participant i's marks fall at `5 s × k + i × MARK_STAGGER` of the
    /// wall clock and a receiver on the same machine can time its glass-to-screen
    /// latency from the flashes alone (bench/latency.sh).
    pub wall_clock_marks: bool,
    /// This participant joins as an agent (LiveKit's participant kind AGENT).
    pub agent: Option<usize>,
    /// Number of the first participant (identity, colour and tone), so that two groups
    /// with different options can share a room.
    pub first: usize,
    /// Every frame and packet sent, as (track sid, `payload_digest`), in sending order: what a
    /// recording that keeps the bytes (track egress) must hold.
    pub payload_log: Option<PayloadLog>,
}

/// See `SyntheticOptions::payload_log`.
pub type PayloadLog = std::sync::Arc<std::sync::Mutex<Vec<(String, u64)>>>;

/// A digest of one sent frame's bytes. H.264 is compared by its NAL units (Annex B as sent,
/// length-prefixed in MP4), without the access unit delimiters and filler RTP leaves out.
pub fn payload_digest(h264: bool, data: &[u8]) -> u64 {
    if h264 { units_digest(crate::output::track_file::annexb_units(data)) } else { digest(data) }
}

/// The same digest for an H.264 frame as MP4 holds it (4-byte lengths before each unit).
pub fn avcc_digest(mut data: &[u8]) -> u64 {
    let mut units = Vec::new();
    while data.len() >= 4 {
        let n = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
        let Some(unit) = data.get(4..4 + n) else { break };
        units.push(unit);
        data = &data[4 + n..];
    }
    units_digest(units)
}

fn units_digest(units: Vec<&[u8]>) -> u64 {
    let mut all = Vec::new();
    for u in units.into_iter().filter(|u| !u.is_empty() && !matches!(u[0] & 0x1f, 9 | 12)) {
        all.extend((u.len() as u32).to_be_bytes());
        all.extend_from_slice(u);
    }
    digest(&all)
}

fn digest(data: &[u8]) -> u64 {
    use sha2::Digest;
    let d = sha2::Sha256::digest(data);
    u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

fn log_payload(log: &Option<PayloadLog>, track: &str, h264: bool, data: &[u8]) {
    if let Some(log) = log {
        crate::sync::lock(log).push((track.to_string(), payload_digest(h264, data)));
    }
}

impl Default for SyntheticOptions {
    fn default() -> Self {
        Self {
            url: "ws://127.0.0.1:7880".into(),
            api_key: "devkey".into(),
            api_secret: "secret".into(),
            room: "demo".into(),
            count: 4,
            screen_share: false,
            share_after: Duration::ZERO,
            late_joiner: false,
            late_by: Duration::from_secs(5),
            leaver: false,
            leave_after: Duration::from_secs(10),
            mute_toggle: false,
            fps: 15,
            camera: (640, 360),
            codec: VideoCodec::Vp8,
            duration: None,
            wall_clock_marks: false,
            agent: None,
            first: 0,
            payload_log: None,
        }
    }
}

/// Seconds between flash-and-beep marks, and how long each lasts.
pub(crate) const MARK_EVERY: Duration = Duration::from_secs(5);
pub(crate) const MARK_LENGTH: Duration = Duration::from_millis(100);
/// Participant i's marks are `i * MARK_STAGGER` into each period (on its own clock),
/// so in a mix every beep belongs to one participant.
pub(crate) const MARK_STAGGER: Duration = Duration::from_millis(400);

/// Whether participant `i` is in a mark `t` after it started sending.
pub fn in_mark(i: usize, t: Duration) -> bool {
    let every = MARK_EVERY.as_micros() as i64;
    let offset = (i as i64 * MARK_STAGGER.as_micros() as i64) % every;
    (t.as_micros() as i64 - offset).rem_euclid(every) < MARK_LENGTH.as_micros() as i64
}
/// Time from now to the next whole multiple of MARK_EVERY since the Unix epoch.
fn until_next_mark_period() -> Duration {
    let every = MARK_EVERY.as_micros() as i64;
    Duration::from_micros((every - crate::time::unix_us().rem_euclid(every)) as u64)
}

/// Seconds each participant speaks in turn.
const TURN: i64 = 3;

/// Runs every participant until the duration ends (or forever).
pub async fn run(o: SyntheticOptions) -> Result<(), SyntheticError> {
    // A JoinSet: when this future is dropped (a test aborting its publishers), every
    // participant stops with it instead of publishing on for its whole duration.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..o.count {
        tasks.spawn(participant(o.clone(), o.first + i));
    }
    let mut first_error = None;
    while let Some(t) = tasks.join_next().await {
        match t {
            Ok(Err(e)) => {
                tracing::warn!("{e}");
                first_error.get_or_insert(e);
            }
            Ok(Ok(())) => {}
            Err(e) => tracing::error!("a synthetic participant panicked: {e}"),
        }
    }
    first_error.map_or(Ok(()), Err)
}

fn token(o: &SyntheticOptions, i: usize) -> Result<String, SyntheticError> {
    let agent = o.agent == Some(i - o.first);
    AccessToken::with_api_key(&o.api_key, &o.api_secret)
        .with_identity(&format!("synthetic-{i}"))
        .with_name(&name(i))
        .with_kind(if agent { "agent" } else { "" })
        .with_ttl(Duration::from_secs(24 * 3600))
        .with_grants(VideoGrants {
            room_join: true,
            room: o.room.clone(),
            can_subscribe: Some(false),
            agent,
            ..Default::default()
        })
        .to_jwt()
        .map_err(|e| SyntheticError::Token(e.to_string()))
}

/// Side of one bit of the frame counter, in pixels.
pub(crate) const COUNTER_BIT: u32 = 16;

/// The frame number as a 16-bit barcode along the bottom-left edge: bit i (most
/// significant first) is a white or black 16x16 block. A recording's frame can be
/// matched to the sent one by reading it back.
fn draw_counter(f: &mut VideoFrame, n: u16) {
    let y0 = (f.height - COUNTER_BIT) as usize;
    for bit in 0..16u32 {
        let on = n & (0x8000 >> bit) != 0;
        let x0 = (bit * COUNTER_BIT) as usize;
        let luma = if on { 235 } else { 16 };
        let stride = f.planes[0].stride;
        for y in y0..y0 + COUNTER_BIT as usize {
            f.planes[0].data[y * stride + x0..y * stride + x0 + COUNTER_BIT as usize].fill(luma);
        }
        for k in 1..3 {
            let stride = f.planes[k].stride;
            for y in y0 / 2..(y0 + COUNTER_BIT as usize) / 2 {
                f.planes[k].data[y * stride + x0 / 2..y * stride + (x0 + COUNTER_BIT as usize) / 2].fill(128);
            }
        }
    }
}

/// Reads the frame counter back from packed RGB (for tests of recordings).
#[cfg(test)]
pub(crate) fn read_counter(rgb: &[u8], width: u32, height: u32) -> u16 {
    let y = height - COUNTER_BIT / 2;
    (0..16u32).fold(0u16, |acc, bit| {
        let x = bit * COUNTER_BIT + COUNTER_BIT / 2;
        let i = ((y * width + x) * 3) as usize;
        let bright = rgb.get(i).copied().unwrap_or(0) > 128;
        (acc << 1) | bright as u16
    })
}

fn flash(f: &mut VideoFrame) {
    for (k, p) in f.planes.iter_mut().enumerate() {
        p.data.fill(if k == 0 { 235 } else { 128 });
    }
}

async fn participant(o: SyntheticOptions, i: usize) -> Result<(), SyntheticError> {
    let who = name(i);
    let client_err = |cause| SyntheticError::Client { who: name(i), cause };
    let enc_err = |cause| SyntheticError::Encode { who: name(i), cause };
    // Roles go by the place in this group; identity, colour and tone by the number.
    let k = i - o.first;
    let late = o.late_joiner && k + 1 == o.count && o.count > 1;
    let leaves = o.leaver && k == 1;
    let toggles = o.mute_toggle && k == 2.min(o.count.saturating_sub(1));
    let shares = o.screen_share && k == 0;
    let started = Instant::now();
    let end = o.duration.map(|d| started + d);
    if late {
        tokio::time::sleep(o.late_by).await;
    }
    let video_spec = |name: &str, source, w, h| match o.codec {
        VideoCodec::H264 => TrackSpec::h264(name, source, w, h),
        VideoCodec::Vp8 => TrackSpec::vp8(name, source, w, h),
    };
    let (cw, ch) = o.camera;
    let mut specs = vec![video_spec("camera", proto::TrackSource::Camera, cw, ch), TrackSpec::opus("microphone")];
    if shares {
        specs.push(video_spec("screen", proto::TrackSource::ScreenShare, 1280, 720));
    }
    let (client, mut tracks) = join_and_publish(&o.url, &token(&o, i)?, &who, specs).await.map_err(client_err)?;
    tracing::info!(participant = %who, "synthetic participant publishing");
    let mut room = SyntheticRoom::new(RoomOptions {
        participants: 1,
        first: i,
        screen_share: shares,
        color: crate::frame::ColorSpace { matrix: crate::frame::Matrix::Bt601, range: crate::frame::Range::Limited },
        input_width: cw,
        input_height: ch,
        ..Default::default()
    })
    .map_err(|cause| SyntheticError::Render { who: who.clone(), cause })?;
    let fps = o.fps.max(1);
    // H.264 as WebRTC senders make it: constrained baseline, SPS and PPS before every keyframe.
    let cam_opts = EncodingOptions {
        width: cw,
        height: ch,
        framerate: fps,
        video_bitrate_kbps: 600,
        profile: crate::encode::H264Profile::Baseline,
        ..Default::default()
    };
    let share_opts = EncodingOptions { width: 1280, height: 720, video_bitrate_kbps: 1200, ..cam_opts.clone() };
    let mut cam = VideoEncoder::with_codec(o.codec, &cam_opts, fps * 2, true).map_err(enc_err)?;
    let mut share = if shares {
        Some(VideoEncoder::with_codec(o.codec, &share_opts, fps * 2, true).map_err(enc_err)?)
    } else {
        None
    };
    let frame_len = Duration::from_secs(1) / fps;
    let muted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let t0 = if o.wall_clock_marks { Instant::now() + until_next_mark_period() } else { Instant::now() };
    // Audio runs on its own 20 ms pace, so each packet leaves when its samples are
    // due and the sender's reports tie audio and video to the same clock.
    let mic = tracks.remove(1);
    let mic_sid = mic.sid.clone();
    let log = o.payload_log.clone();
    let audio = tokio::spawn(send_audio(mic, (i, k), o.count, t0, muted.clone(), log));
    let mut muted_now = false;
    for k in 0u64.. {
        // Exact frame times (k / fps), not k times a rounded frame length: marks fall on frames.
        let t = Duration::from_micros(k * 1_000_000 / fps as u64);
        let due = t0 + t;
        tokio::time::sleep_until(due.into()).await;
        let now = Instant::now();
        if end.is_some_and(|e| now >= e) || (leaves && now - started >= o.leave_after) || audio.is_finished() {
            break;
        }
        // Frame k shows time k/fps of the participant's clock, whenever the loop got to it.
        let t_us = t.as_micros() as i64;
        room.update(t_us);
        let mut frames: Vec<VideoFrame> = room.frames().into_iter().cloned().collect();
        if in_mark(i, t) {
            flash(&mut frames[0]);
        }
        draw_counter(&mut frames[0], k as u16);
        send_video(&mut cam, &frames[0], t_us, &tracks[0], frame_len, &o).await.map_err(|e| match e {
            Sent::Encode(c) => enc_err(c),
            Sent::Client(c) => client_err(c),
        })?;
        if let (Some(enc), Some(frame), Some(track)) = (share.as_mut(), frames.get(1), tracks.get(1))
            && t >= o.share_after
        {
            send_video(enc, frame, t_us, track, frame_len, &o).await.map_err(|e| match e {
                Sent::Encode(c) => enc_err(c),
                Sent::Client(c) => client_err(c),
            })?;
        }
        if toggles {
            let want = (t.as_secs() / 4) % 2 == 1;
            if want != muted_now {
                muted_now = want;
                muted.store(want, std::sync::atomic::Ordering::Relaxed);
                client.mute(&mic_sid, want).map_err(client_err)?;
            }
        }
    }
    audio.abort();
    if let Ok(Err(e)) = audio.await {
        return Err(e);
    }
    client.leave().await;
    tracing::info!(participant = %who, "synthetic participant left");
    Ok(())
}

/// Joins and publishes, trying three times: on a loaded machine a join or a publication can
/// time out, and a participant that gives up leaves a test's room one short.
async fn join_and_publish(
    url: &str,
    token: &str,
    who: &str,
    specs: Vec<TrackSpec>,
) -> Result<(RoomClient, Vec<LocalTrack>), ClientError> {
    let mut attempt = 1;
    loop {
        let e = match RoomClient::connect(url, token).await {
            Ok(client) => match client.publish(specs.clone()).await {
                Ok(tracks) => return Ok((client, tracks)),
                Err(e) => {
                    client.leave().await;
                    e
                }
            },
            Err(e) => e,
        };
        if attempt == 3 {
            return Err(e);
        }
        tracing::warn!(participant = %who, attempt, error = %e, "joining failed; trying again");
        attempt += 1;
        // Apart, so that a crowd that timed out together does not try again together.
        let spread = rand::random_range(0..2000);
        tokio::time::sleep(Duration::from_millis(1000 + spread)).await;
    }
}

/// Participant `i`'s microphone: 20 ms Opus packets paced on the clock from `t0`.
async fn send_audio(
    mic: LocalTrack,
    (i, k): (usize, usize),
    count: usize,
    t0: Instant,
    muted: std::sync::Arc<std::sync::atomic::AtomicBool>,
    log: Option<PayloadLog>,
) -> Result<(), SyntheticError> {
    let enc_err = |cause| SyntheticError::Encode { who: name(i), cause };
    let opts = EncodingOptions { audio_bitrate_kbps: 64, ..Default::default() };
    let mut enc = AudioEncoder::with_codec(AudioCodec::Opus, &opts).map_err(enc_err)?;
    let packet = Duration::from_millis(20);
    for j in 0u32.. {
        // Sent when its first sample is due, as the video frame showing that moment is.
        tokio::time::sleep_until((t0 + packet * j).into()).await;
        let pos = j as i64 * 960;
        let silent = muted.load(std::sync::atomic::Ordering::Relaxed);
        for half in [pos, pos + 480] {
            let block = audio_block((i, k), count, half);
            if silent {
                continue;
            }
            let level = dbov(&block.samples);
            for p in enc.encode(&block).map_err(enc_err)? {
                if let Some(data) = p.packet.data() {
                    log_payload(&log, &mic.sid, false, data);
                    mic.write_audio(bytes::Bytes::copy_from_slice(data), packet, level)
                        .await
                        .map_err(|cause| SyntheticError::Client { who: name(i), cause })?;
                }
            }
        }
    }
    Ok(())
}

enum Sent {
    Encode(EncodeError),
    Client(ClientError),
}

async fn send_video(
    enc: &mut VideoEncoder,
    f: &VideoFrame,
    t_us: i64,
    track: &LocalTrack,
    d: Duration,
    o: &SyntheticOptions,
) -> Result<(), Sent> {
    if track.keyframe_requested() {
        enc.force_keyframe();
    }
    for p in enc.encode(f, t_us).map_err(Sent::Encode)? {
        if let Some(data) = p.packet.data() {
            log_payload(&o.payload_log, &track.sid, o.codec == VideoCodec::H264, data);
            track.write(bytes::Bytes::copy_from_slice(data), d).await.map_err(Sent::Client)?;
        }
    }
    Ok(())
}

/// Loudness of samples in -dBov (RFC 6464): 0 loudest, 127 silent.
fn dbov(samples: &[f32]) -> u8 {
    let rms = (samples.iter().map(|s| s * s).sum::<f32>() / samples.len().max(1) as f32).sqrt();
    if rms <= 1e-7 { 127 } else { (-20.0 * rms.log10()).round().clamp(0.0, 127.0) as u8 }
}

/// 10 ms of participant `i`'s audio at clock position `pos`: its tone during its
/// speaking turn, silence otherwise, and the 1 kHz beep during its marks.
fn audio_block((i, k): (usize, usize), count: usize, pos: i64) -> MixedBlock {
    let frames = 480;
    let secs = pos / SAMPLE_RATE as i64;
    let speaking = (secs / TURN) as usize % count.max(1) == k;
    let tone = crate::preview::synthetic::tone_hz(i) as f64;
    let mut samples = vec![0.0f32; frames * CHANNELS];
    for k in 0..frames {
        let p = pos + k as i64;
        let t = p as f64 / SAMPLE_RATE as f64;
        let mut v = if speaking { 0.24 * (std::f64::consts::TAU * tone * t).sin() } else { 0.0 };
        if in_mark(i, Duration::from_secs_f64(t)) {
            v = 0.3 * (std::f64::consts::TAU * 1000.0 * t).sin();
        }
        samples[k * 2] = v as f32;
        samples[k * 2 + 1] = v as f32;
    }
    MixedBlock { pts: pos, samples }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{ColorSpace, Matrix, PixelFormat, Range};

    #[test]
    fn the_frame_counter_reads_back() {
        let cs = ColorSpace { matrix: Matrix::Bt601, range: Range::Limited };
        let mut f = VideoFrame::filled(PixelFormat::I420, 640, 360, cs, [81, 90, 240]).unwrap();
        for n in [0u16, 1, 0x8001, 12345, u16::MAX] {
            draw_counter(&mut f, n);
            let rgb = crate::output::png::frame_to_rgb(&f);
            assert_eq!(read_counter(&rgb, 640, 360), n);
        }
    }

    #[test]
    fn levels_follow_loudness() {
        assert_eq!(dbov(&[0.0; 960]), 127);
        assert_eq!(dbov(&[1.0; 960]), 0);
        assert_eq!(dbov(&[0.1; 960]), 20);
    }
}
