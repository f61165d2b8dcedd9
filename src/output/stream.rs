//! Live streams: RTMP and RTMPS (FLV) and SRT (MPEG-TS), several URLs at once.
//! Each URL has its own thread and a bounded queue of encoded packets, so a slow
//! or dead receiver never holds up the encoder or the other outputs: a full queue
//! drops packets until the next keyframe, a failed connection is retried with
//! backoff and, after the last retry, reported FAILED. Every connection starts on
//! a keyframe with its timestamps from zero. URLs can be added and removed while
//! the job runs (UpdateStream); stream keys never appear in logs or results.

use super::OutputError;
use super::mux::MuxWriter;
use crate::encode::{EncodedPacket, StreamKind, StreamSpec};
use crate::secrets::redact;
use crate::sync::lock;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Packets a receiver may fall behind by (about 5 s of 30 fps video and its audio).
const QUEUE: usize = 400;
/// Retries of a failed URL before it is reported FAILED; the waits double from 1 s.
const RETRIES: u32 = 3;

/// A packet source the encode thread feeds (streams now; segments next).
pub trait PacketSink: Send + Sync {
    /// The encoders' streams, once, before any packet.
    fn start(&self, specs: &[StreamSpec]);
    fn write(&self, p: &EncodedPacket);
    /// The job is ending: flush and close everything.
    fn finish(&self);
    /// Whether the sink wants the next video frame (at `next_pts_us`) to be a keyframe:
    /// a receiver just joined or lost packets, a segment begins. Asking clears a request.
    fn keyframe_wanted(&self, _next_pts_us: i64) -> bool {
        false
    }
    /// Whether it still takes packets (a stream URL that has not failed, segments being
    /// cut): a failing file then ends only itself.
    fn active(&self) -> bool {
        true
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StreamError {
    #[error("{0:?} is not a stream URL: use rtmp://, rtmps:// or srt://")]
    BadUrl(String),
    #[error("{0} is already streamed to")]
    Duplicate(String),
    #[error("{0} is not one of this egress's streams")]
    Unknown(String),
}

/// All stream URLs of one job.
#[derive(Default)]
pub struct StreamSet(Mutex<Inner>, std::sync::atomic::AtomicBool);

#[derive(Default)]
struct Inner {
    /// Name of the threads (the job's, so its CPU can be told apart).
    thread_name: String,
    specs: Option<Vec<StreamSpec>>,
    streams: Vec<Stream>,
    finished: bool,
}

/// Where a stream stands (LiveKit's StreamInfo status).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Status {
    #[default]
    Active,
    Finished,
    Failed,
}

/// How one URL has fared (the egress job reports it as LiveKit's StreamInfo). Times are
/// Unix ns, 0 when not yet.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamProgress {
    /// With its key hidden.
    pub url: String,
    pub status: Status,
    pub started_at: i64,
    pub ended_at: i64,
    pub duration: i64,
    /// Reconnections so far, the last one's time, and the last error.
    pub retries: u32,
    pub last_retry_at: i64,
    pub error: String,
}

struct Stream {
    url: String,
    info: Arc<Mutex<StreamProgress>>,
    /// None once removed, failed or finished.
    tx: Option<SyncSender<EncodedPacket>>,
    /// A full queue dropped a packet: skip to the next keyframe.
    resync: bool,
    worker: Option<std::thread::JoinHandle<()>>,
}

/// The URL a stream connects to, as LiveKit resolves it: `mux://KEY` is Mux's RTMPS ingest,
/// `twitch://KEY` Twitch's global ingest (`live.twitch.tv`, which routes to the nearest; LiveKit
/// looks the nearest up online, which a closed network cannot), and librtmp's ` live=1`
/// suffix, which FFmpeg's RTMP client does not take, is dropped.
pub fn resolve(url: &str) -> Result<String, StreamError> {
    let url = url.trim();
    let url = url.strip_suffix(" live=1").unwrap_or(url);
    let shortcut = |prefix: &str, ingest: &str| {
        url.strip_prefix(prefix).map(|key| {
            if key.is_empty() || key.contains(['/', ' ']) {
                Err(StreamError::BadUrl(format!("{prefix}{{stream key}}: {}", redact(url))))
            } else {
                Ok(format!("{ingest}{key}"))
            }
        })
    };
    shortcut("mux://", "rtmps://global-live.mux.com:443/app/")
        .or_else(|| shortcut("twitch://", "rtmps://live.twitch.tv:443/app/"))
        .unwrap_or_else(|| Ok(url.to_string()))
}

/// Checks a stream URL (resolved).
pub(crate) fn check_url(url: &str) -> Result<(), StreamError> {
    let ok = ["rtmp://", "rtmps://", "srt://"].iter().any(|s| url.starts_with(s)) && url.len() > 8;
    if ok { Ok(()) } else { Err(StreamError::BadUrl(redact(url))) }
}

impl StreamSet {
    /// The URLs of one job; each gets a thread named `thread_name` (the job's).
    pub fn new(urls: &[String], thread_name: &str) -> Result<Arc<Self>, StreamError> {
        let set = Arc::new(Self::default());
        lock(&set.0).thread_name = thread_name.to_string();
        for u in urls {
            set.add(u)?;
        }
        Ok(set)
    }

    /// Adds a URL; it starts with the next keyframe.
    pub fn add(&self, url: &str) -> Result<(), StreamError> {
        let resolved = resolve(url)?;
        let url = resolved.as_str();
        check_url(url)?;
        let mut inner = lock(&self.0);
        if inner.streams.iter().any(|s| s.url == url && s.tx.is_some()) {
            return Err(StreamError::Duplicate(redact(url)));
        }
        let info = Arc::new(Mutex::new(StreamProgress { url: redact(url), ..Default::default() }));
        let mut s = Stream { url: url.to_string(), info, tx: None, resync: false, worker: None };
        if let Some(specs) = inner.specs.clone() {
            spawn(&mut s, specs, &inner.thread_name);
            // A receiver added mid-way starts at once rather than at the next scheduled keyframe.
            self.1.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        inner.streams.push(s);
        Ok(())
    }

    /// Removes a URL: its connection is closed cleanly and reported FINISHED.
    pub fn remove(&self, url: &str) -> Result<(), StreamError> {
        let resolved = resolve(url)?;
        let url = resolved.as_str();
        let mut inner = lock(&self.0);
        let specs_known = inner.specs.is_some();
        let s = inner
            .streams
            .iter_mut()
            .find(|s| s.url == url && is_live(s))
            .ok_or_else(|| StreamError::Unknown(redact(url)))?;
        s.tx = None; // the worker finishes its queue, closes and reports
        if !specs_known {
            finish_info(&s.info, Status::Finished, None);
        }
        Ok(())
    }

    /// URLs still streaming (or retrying).
    pub fn live(&self) -> usize {
        lock(&self.0).streams.iter().filter(|s| is_live(s)).count()
    }

    /// The progress of every URL this job has had.
    pub fn progress(&self) -> Vec<StreamProgress> {
        lock(&self.0).streams.iter().map(|s| lock(&s.info).clone()).collect()
    }
}

fn is_live(s: &Stream) -> bool {
    lock(&s.info).status == Status::Active && (s.tx.is_some() || s.worker.is_none())
}

impl PacketSink for StreamSet {
    fn start(&self, specs: &[StreamSpec]) {
        let mut inner = lock(&self.0);
        inner.specs = Some(specs.to_vec());
        let name = inner.thread_name.clone();
        for s in inner.streams.iter_mut().filter(|s| s.worker.is_none() && s.tx.is_none()) {
            if lock(&s.info).status == Status::Active {
                spawn(s, specs.to_vec(), &name);
            }
        }
    }

    fn write(&self, p: &EncodedPacket) {
        let mut inner = lock(&self.0);
        for s in inner.streams.iter_mut() {
            let Some(tx) = &s.tx else { continue };
            if s.resync {
                if !(p.kind == StreamKind::Video && p.packet.is_key()) {
                    continue;
                }
                s.resync = false;
            }
            let copy = EncodedPacket { kind: p.kind, packet: p.packet.clone(), time_base: p.time_base };
            match tx.try_send(copy) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    s.resync = true;
                    self.1.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                // The worker gave up (FAILED); its info says why.
                Err(TrySendError::Disconnected(_)) => s.tx = None,
            }
        }
    }

    fn keyframe_wanted(&self, _next_pts_us: i64) -> bool {
        self.1.swap(false, std::sync::atomic::Ordering::SeqCst)
    }

    fn active(&self) -> bool {
        self.live() > 0
    }

    fn finish(&self) {
        let workers: Vec<_> = {
            let mut inner = lock(&self.0);
            inner.finished = true;
            inner
                .streams
                .iter_mut()
                .map(|s| {
                    s.tx = None;
                    if s.worker.is_none() && lock(&s.info).status == Status::Active {
                        finish_info(&s.info, Status::Finished, None);
                    }
                    s.worker.take()
                })
                .collect()
        };
        // A worker stuck in a blocking write is left behind after a while rather than holding up the job.
        let deadline = Instant::now() + Duration::from_secs(5);
        for w in workers.into_iter().flatten() {
            while !w.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if w.is_finished() {
                let _ = w.join();
            }
        }
    }
}

fn spawn(s: &mut Stream, specs: Vec<StreamSpec>, thread_name: &str) {
    let (tx, rx) = sync_channel(QUEUE);
    let (url, info) = (s.url.clone(), s.info.clone());
    match std::thread::Builder::new()
        .name(if thread_name.is_empty() { "stream".to_string() } else { thread_name.to_string() })
        .spawn(move || run(&url, &specs, rx, &info))
    {
        Ok(h) => {
            s.tx = Some(tx);
            s.worker = Some(h);
        }
        Err(e) => finish_info(&s.info, Status::Failed, Some(format!("cannot start its thread: {e}"))),
    }
}

fn finish_info(info: &Mutex<StreamProgress>, status: Status, error: Option<String>) {
    let mut i = lock(info);
    let now = crate::time::unix_ns();
    i.status = status;
    i.ended_at = now;
    if i.started_at > 0 {
        i.duration = now - i.started_at;
    }
    if let Some(e) = error {
        i.error = e;
    }
}

/// How one connection ended.
enum Ended {
    /// The URL was removed or the job ended: closed cleanly.
    Removed,
    Failed(String),
}

/// One URL's thread: connect, stream, reconnect with backoff, report.
fn run(url: &str, specs: &[StreamSpec], rx: Receiver<EncodedPacket>, info: &Mutex<StreamProgress>) {
    let shown = redact(url);
    let mut failures = 0;
    let mut backoff = crate::time::Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
    loop {
        let ended = match connect(url, &shown, specs) {
            Ok(w) => {
                tracing::info!(url = %shown, "stream connected");
                pump(w, &rx, specs, info)
            }
            Err(e) => Ended::Failed(e.to_string()),
        };
        let why = match ended {
            Ended::Removed => {
                tracing::info!(url = %shown, "stream finished");
                finish_info(info, Status::Finished, None);
                return;
            }
            Ended::Failed(why) => why.replace(url, &shown),
        };
        failures += 1;
        if failures > RETRIES {
            tracing::warn!(url = %shown, error = %why, "stream failed; giving up");
            finish_info(info, Status::Failed, Some(why));
            return;
        }
        {
            let mut i = lock(info);
            i.retries = failures;
            i.last_retry_at = crate::time::unix_ns();
            i.error = why.clone();
        }
        tracing::warn!(url = %shown, error = %why, retry = failures, "stream failed; retrying");
        // Wait (draining the queue: those packets are lost to this URL anyway); removal ends the wait.
        let until = Instant::now() + backoff.next_delay();
        loop {
            match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => break,
                // Removed (or the job ended) while still failing: it is reported as it was, failed.
                Err(RecvTimeoutError::Disconnected) => {
                    finish_info(info, Status::Failed, Some(why));
                    return;
                }
            }
        }
    }
}

fn connect(url: &str, shown: &str, specs: &[StreamSpec]) -> Result<MuxWriter, OutputError> {
    if url.starts_with("srt://") {
        // SRT carries MPEG-TS in 1316-byte payloads (7 TS packets).
        let target = if url.contains("pkt_size=") {
            url.to_string()
        } else {
            format!("{url}{}pkt_size=1316", if url.contains('?') { '&' } else { '?' })
        };
        MuxWriter::create(&target, "mpegts", specs, &[], shown)
    } else {
        MuxWriter::create(url, "flv", specs, &[("flvflags", "no_duration_filesize")], shown)
    }
}

/// Streams from the next keyframe with timestamps from zero, until the queue closes or a write fails.
fn pump(mut w: MuxWriter, rx: &Receiver<EncodedPacket>, specs: &[StreamSpec], info: &Mutex<StreamProgress>) -> Ended {
    let has_video = specs.iter().any(|s| s.kind == StreamKind::Video);
    // The first packet written (a keyframe when there is video) is time zero, in µs.
    let mut origin_us: Option<i64> = None;
    let us = |ts: i64, tb: ffmpeg_next::Rational| ts * 1_000_000 * tb.0 as i64 / tb.1.max(1) as i64;
    let to_tb = |t_us: i64, tb: ffmpeg_next::Rational| t_us * tb.1 as i64 / (1_000_000 * tb.0.max(1) as i64);
    for mut p in rx.iter() {
        let Some(dts) = p.packet.dts().or(p.packet.pts()) else { continue };
        let origin = match origin_us {
            Some(o) => o,
            None => {
                if has_video && !(p.kind == StreamKind::Video && p.packet.is_key()) {
                    continue;
                }
                let o = us(dts, p.time_base);
                origin_us = Some(o);
                let mut i = lock(info);
                if i.started_at == 0 {
                    i.started_at = crate::time::unix_ns();
                }
                o
            }
        };
        let shift = to_tb(origin, p.time_base);
        if dts < shift {
            continue; // audio from before the first keyframe
        }
        p.packet.set_dts(Some(dts - shift));
        p.packet.set_pts(p.packet.pts().map(|t| t - shift));
        if let Err(e) = w.write(p) {
            return Ended::Failed(e.to_string());
        }
    }
    match w.finish() {
        Ok(()) => Ended::Removed,
        Err(e) => {
            tracing::debug!(error = %e, "closing a stream");
            Ended::Removed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_stream_urls_are_taken() {
        assert!(check_url("http://x/y").is_err());
        assert!(check_url("rtmp://127.0.0.1/live/k").is_ok());
    }
}
