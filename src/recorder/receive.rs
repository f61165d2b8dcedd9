//! One received track: RTP through the jitter buffer, onto the room clock, to an
//! FFmpeg decoder on its own thread, decoded media into the store. Video asks
//! for a keyframe when it starts and after a loss (PLI), and drops what cannot
//! be decoded until the keyframe comes; nothing here waits on another track.

use super::clock::{ServerClock, TrackClock, ntp_to_unix_us};
use super::jitter::{JitterBuffer, JitterStats, is_keyframe};
use super::store::SharedStore;
use crate::decode::{AudioDecoder, VideoDecoder, codec_for};
use crate::room::RemoteTrack;
use crate::sync::lock;
use bytes::Bytes;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtp::codec::{av1::Av1Depacketizer, h264::H264Packet, opus::OpusPacket, vp8::Vp8Packet, vp9::Vp9Packet};
use rtc::rtp::packetizer::Depacketizer;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use webrtc::media_stream::track_remote::TrackRemoteEvent;

/// Whatever codec the track uses, behind one depacketiser.
enum AnyDepacketizer {
    Vp8(Vp8Packet),
    Vp9(Vp9Packet),
    H264(H264Packet),
    Av1(Av1Depacketizer),
    Opus(OpusPacket),
}

impl AnyDepacketizer {
    fn for_mime(mime: &str) -> Option<Self> {
        Some(match mime.to_ascii_lowercase().as_str() {
            "video/vp8" => Self::Vp8(Vp8Packet::default()),
            "video/vp9" => Self::Vp9(Vp9Packet::default()),
            "video/h264" => Self::H264(H264Packet::default()),
            "video/av1" => Self::Av1(Av1Depacketizer::default()),
            "audio/opus" => Self::Opus(OpusPacket),
            _ => return None,
        })
    }

    fn inner(&mut self) -> &mut dyn Depacketizer {
        match self {
            Self::Vp8(d) => d,
            Self::Vp9(d) => d,
            Self::H264(d) => d,
            Self::Av1(d) => d,
            Self::Opus(d) => d,
        }
    }
}

impl Depacketizer for AnyDepacketizer {
    fn depacketize(&mut self, b: &Bytes) -> rtc::shared::error::Result<Bytes> {
        self.inner().depacketize(b)
    }
    fn is_partition_head(&self, payload: &Bytes) -> bool {
        match self {
            Self::Vp8(d) => d.is_partition_head(payload),
            Self::Vp9(d) => d.is_partition_head(payload),
            Self::H264(d) => d.is_partition_head(payload),
            Self::Av1(d) => d.is_partition_head(payload),
            Self::Opus(d) => d.is_partition_head(payload),
        }
    }
    fn is_partition_tail(&self, marker: bool, payload: &Bytes) -> bool {
        match self {
            Self::Vp8(d) => d.is_partition_tail(marker, payload),
            Self::Vp9(d) => d.is_partition_tail(marker, payload),
            Self::H264(d) => d.is_partition_tail(marker, payload),
            Self::Av1(d) => d.is_partition_tail(marker, payload),
            Self::Opus(d) => d.is_partition_tail(marker, payload),
        }
    }
}

/// How long an audio gap waits for a reordered packet.
const AUDIO_REORDER_WAIT_US: i64 = 80_000;

/// What every track receiver shares.
pub(crate) struct ReceiveContext {
    pub store: SharedStore,
    pub server: Mutex<ServerClock>,
    /// Zero of the room clock.
    pub epoch: Instant,
    /// How long a gap waits for its retransmission.
    pub max_wait: Duration,
    /// Name of the decoder threads (the job's tag, so its CPU can be measured).
    pub thread_name: String,
}

impl ReceiveContext {
    pub(crate) fn now_us(&self) -> i64 {
        self.epoch.elapsed().as_micros() as i64
    }
}

/// What one track's receiver saw, for the summary and the logs.
#[derive(Debug, Clone, Default)]
pub struct TrackReport {
    pub track_sid: String,
    pub participant_sid: String,
    /// Filled in from the roster when the recording ends.
    pub participant_identity: String,
    pub mime: String,
    pub jitter: JitterStats,
    pub keyframe_requests: u64,
    pub decoded: u64,
    pub decode_errors: u64,
    /// Decoded video sizes, each time it changed (a simulcast layer switch changes it).
    pub sizes: Vec<(u32, u32)>,
    pub sender_reports: u64,
    /// Mean of release from the jitter buffer minus room-clock time over the frames
    /// received (µs): how far behind its clock the track is ready to decode.
    pub mean_lag_us: i64,
}

/// One frame as it came over the wire, in order, ready for its consumer.
pub(crate) struct Encoded {
    pub data: Bytes,
    /// On the room clock.
    pub pts_us: i64,
    pub arrival_us: i64,
    /// The sender's own timestamp (in the codec's clock rate), for writers that keep it.
    pub rtp_timestamp: u32,
}

/// What a track's frames go to: the decoder (a composite) or a thread of the caller's that
/// takes them as they are (track egress writes them without transcoding). It is given the
/// codec's MIME type and clock rate once the track opens.
pub(crate) enum Consumer {
    Decode,
    Frames(FrameThread),
}

pub(crate) type FrameThread = Box<dyn FnOnce(&str, u32, std::sync::mpsc::Receiver<Encoded>) -> Decoded + Send>;

/// Reads a track until it ends; returns what it saw.
pub(crate) async fn run(remote: RemoteTrack, ctx: Arc<ReceiveContext>) -> TrackReport {
    run_into(remote, ctx, Consumer::Decode).await
}

/// Reads a track until it ends, handing its frames to `consumer`; returns what it saw.
pub(crate) async fn run_into(remote: RemoteTrack, ctx: Arc<ReceiveContext>, consumer: Consumer) -> TrackReport {
    let mut consumer = Some(consumer);
    let track = remote.track;
    let mut report = TrackReport {
        track_sid: remote.track_sid.clone(),
        participant_sid: remote.participant_sid.clone(),
        ..Default::default()
    };
    let mut state: Option<Receiving> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        let ev = tokio::select! {
            ev = track.poll() => match ev { Some(ev) => Some(ev), None => break },
            _ = tick.tick() => None,
        };
        let now = ctx.now_us();
        match ev {
            Some(TrackRemoteEvent::OnOpen(init)) if state.is_none() => {
                let codec = track.codec(init.ssrc).await.unwrap_or_default();
                report.mime = codec.mime_type.clone();
                let consumer = consumer.take().unwrap_or(Consumer::Decode);
                match Receiving::start(
                    &remote.track_sid,
                    (&codec.mime_type, codec.clock_rate),
                    init.ssrc,
                    &ctx,
                    consumer,
                ) {
                    Some(r) => {
                        tracing::info!(track = %remote.track_sid, participant = %remote.participant_sid, codec = %codec.mime_type, "receiving");
                        state = Some(r);
                    }
                    None => {
                        tracing::warn!(track = %remote.track_sid, codec = %codec.mime_type, "cannot decode this codec; the track is ignored");
                    }
                }
            }
            Some(TrackRemoteEvent::OnRtpPacket(pkt)) => {
                if let Some(s) = state.as_mut() {
                    s.ssrc = pkt.header.ssrc;
                    s.jitter.push(pkt, now);
                }
            }
            Some(TrackRemoteEvent::OnRtcpPacket(packets)) => {
                if let Some(s) = state.as_mut() {
                    for sr in packets.iter().filter_map(|p| p.as_any().downcast_ref::<SenderReport>()) {
                        let ntp_us = ntp_to_unix_us(sr.ntp_time);
                        if let Ok(mut server) = ctx.server.lock() {
                            server.observe(ntp_us, now);
                        }
                        s.clock.on_report(sr.rtp_time, ntp_us);
                        report.sender_reports += 1;
                    }
                }
            }
            _ => {}
        }
        if let Some(s) = state.as_mut() {
            s.drain(now, &ctx);
            if s.wants_keyframe(now) {
                report.keyframe_requests += 1;
                tracing::debug!(track = %remote.track_sid, "asking for a keyframe (PLI)");
                let pli = PictureLossIndication { sender_ssrc: 0, media_ssrc: s.ssrc };
                if track.write_rtcp(vec![Box::new(pli)]).await.is_err() {
                    break;
                }
            }
        }
    }
    if let Some(s) = state {
        report.jitter = s.jitter.stats();
        report.mean_lag_us = s.lag_sum / s.lag_count.max(1);
        let d = s.finish();
        report.decoded = d.frames;
        report.decode_errors = d.errors;
        report.sizes = d.sizes;
    }
    tracing::debug!(track = %report.track_sid, "track ended: {report:?}");
    report
}

struct Receiving {
    mime: String,
    video: bool,
    ssrc: u32,
    jitter: JitterBuffer<AnyDepacketizer>,
    clock: TrackClock,
    /// Frames are dropped until a keyframe (video, at the start and after a loss).
    need_keyframe: bool,
    last_request_us: Option<i64>,
    /// Set by the decoder thread when a frame failed to decode.
    decoder_wants_keyframe: Arc<AtomicBool>,
    to_decoder: Option<std::sync::mpsc::Sender<Encoded>>,
    decoder: Option<std::thread::JoinHandle<Decoded>>,
    lag_sum: i64,
    lag_count: i64,
}

impl Receiving {
    fn start(
        track_sid: &str,
        (mime, clock_rate): (&str, u32),
        ssrc: u32,
        ctx: &Arc<ReceiveContext>,
        consumer: Consumer,
    ) -> Option<Self> {
        let id = codec_for(mime)?;
        let depack = AnyDepacketizer::for_mime(mime)?;
        let video = mime.to_ascii_lowercase().starts_with("video/");
        let wants = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel::<Encoded>();
        let (store, sid, flag) = (ctx.store.clone(), track_sid.to_string(), wants.clone());
        let owned_mime = mime.to_string();
        // Frames kept as sent wait as long for a reordered audio packet as for video: what
        // comes late is lost for good, and nothing here is played live.
        let audio_wait = match consumer {
            Consumer::Frames(_) => ctx.max_wait.as_micros() as i64,
            Consumer::Decode => AUDIO_REORDER_WAIT_US,
        };
        let thread = std::thread::Builder::new()
            .name(ctx.thread_name.clone())
            .spawn(move || match consumer {
                Consumer::Frames(take) => take(&owned_mime, clock_rate, rx),
                Consumer::Decode if video => decode_video(id, rx, &store, &sid, &flag),
                Consumer::Decode => decode_audio(id, rx, &store, &sid),
            })
            .ok()?;
        let max_wait = ctx.max_wait.as_micros() as i64;
        Some(Self {
            mime: mime.to_string(),
            video,
            ssrc,
            // Audio is not retransmitted (WebRTC negotiates NACK for video only): an audio gap
            // waits only for packets the network reordered.
            jitter: JitterBuffer::new(depack, !video, if video { max_wait } else { max_wait.min(audio_wait) }),
            clock: TrackClock::new(clock_rate),
            need_keyframe: video,
            last_request_us: None,
            decoder_wants_keyframe: wants,
            to_decoder: Some(tx),
            decoder: Some(thread),
            lag_sum: 0,
            lag_count: 0,
        })
    }

    fn drain(&mut self, now: i64, ctx: &ReceiveContext) {
        while let Some(f) = self.jitter.pop(now) {
            if self.video && f.after_loss {
                self.need_keyframe = true;
            }
            if self.need_keyframe {
                if !is_keyframe(&self.mime, &f.data) {
                    continue;
                }
                self.need_keyframe = false;
            }
            let server = ctx.server.lock().map(|s| *s).unwrap_or_default();
            let pts_us = self.clock.local_time(f.rtp_timestamp, f.arrival_us, &server);
            self.lag_sum += now - pts_us;
            self.lag_count += 1;
            if let Some(tx) = &self.to_decoder {
                let _ =
                    tx.send(Encoded { data: f.data, pts_us, arrival_us: f.arrival_us, rtp_timestamp: f.rtp_timestamp });
            }
        }
    }

    /// Whether to send a PLI now: wanted, and none in the last 250 ms.
    fn wants_keyframe(&mut self, now: i64) -> bool {
        if self.decoder_wants_keyframe.swap(false, Ordering::Relaxed) {
            self.need_keyframe = true;
        }
        if !self.need_keyframe || self.last_request_us.is_some_and(|t| now - t < 250_000) {
            return false;
        }
        self.last_request_us = Some(now);
        true
    }

    fn finish(mut self) -> Decoded {
        self.to_decoder = None;
        self.decoder.take().and_then(|t| t.join().ok()).unwrap_or_default()
    }
}

/// The decoder, or None with the reason logged (the track is then dropped, not the recording).
fn opened<T>(r: Result<T, crate::decode::DecodeError>, sid: &str) -> Option<T> {
    r.map_err(|e| tracing::error!(track = %sid, "cannot decode: {e}")).ok()
}

/// What a track's consumer thread did.
#[derive(Default)]
pub(crate) struct Decoded {
    pub frames: u64,
    pub errors: u64,
    pub sizes: Vec<(u32, u32)>,
}

fn decode_video(
    id: ffmpeg_next::codec::Id,
    rx: std::sync::mpsc::Receiver<Encoded>,
    store: &SharedStore,
    sid: &str,
    wants_keyframe: &AtomicBool,
) -> Decoded {
    let Some(mut dec) = opened(VideoDecoder::new(id), sid) else { return Decoded::default() };
    let (mut decoded, mut errors) = (0, 0);
    let mut sizes = Vec::new();
    while let Ok(e) = rx.recv() {
        match dec.decode(&e.data, e.pts_us) {
            Ok(frames) => {
                let mut s = lock(store);
                if let Some((pts, _)) = frames.first() {
                    s.first_video_pts.get_or_insert(*pts);
                }
                let q = s.video.entry(sid.to_string()).or_default();
                for (pts, f) in frames {
                    decoded += 1;
                    if sizes.last() != Some(&(f.width, f.height)) {
                        sizes.push((f.width, f.height));
                    }
                    q.push(pts, Arc::new(f), e.arrival_us);
                }
            }
            Err(err) => {
                errors += 1;
                tracing::debug!(track = %sid, "decode error: {err}");
                wants_keyframe.store(true, Ordering::Relaxed);
            }
        }
    }
    Decoded { frames: decoded, errors, sizes }
}

fn decode_audio(
    id: ffmpeg_next::codec::Id,
    rx: std::sync::mpsc::Receiver<Encoded>,
    store: &SharedStore,
    sid: &str,
) -> Decoded {
    let Some(mut dec) = opened(AudioDecoder::new(id), sid) else { return Decoded::default() };
    let (mut decoded, mut errors) = (0, 0);
    while let Ok(e) = rx.recv() {
        match dec.decode(&e.data) {
            Ok(samples) if !samples.is_empty() => {
                decoded += 1;
                let pos = e.pts_us * crate::audio::SAMPLE_RATE as i64 / 1_000_000;
                let mut s = lock(store);
                s.first_audio_pts.get_or_insert(e.pts_us);
                s.audio.entry(sid.to_string()).or_default().push(pos, samples);
            }
            Ok(_) => {}
            Err(err) => {
                errors += 1;
                tracing::debug!(track = %sid, "decode error: {err}");
            }
        }
    }
    Decoded { frames: decoded, errors, sizes: Vec::new() }
}
