//! `tessera record`: joins a room as a hidden subscriber, receives and decodes
//! every track, puts them on one clock and records the composite to a file.
//!
//! Data flows one way: the room client reports participants, speakers and
//! tracks; each track has a receiver task (jitter buffer, clock) feeding a
//! decoder thread; decoded media waits in the store; the compositor thread ticks
//! at the output frame rate, takes what each tile should show, renders, mixes
//! and hands both to the encode pipeline.

pub mod clock;
pub mod control;
pub mod jitter;
pub mod receive;
pub mod roster;
pub mod store;
pub mod token;

use crate::audio::{Mixer, SAMPLE_RATE};
use crate::config::EncodingOptions;
use crate::layout::{Layout, compose};
use crate::pipeline::{EncodePipeline, PipelineError, Summary};
use crate::render::{self, Backend, RenderError};
use crate::room::{ClientError, ConnectOptions, RoomClient, RoomEvent};
pub use control::{LiveLayout, LiveStats};
use receive::{ReceiveContext, TrackReport};
use roster::Roster;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use store::{MediaStore, SharedStore, lock};
use thiserror::Error;
use tokio::sync::mpsc;

#[derive(Debug, Error)]
pub enum RecordError {
    #[error("cannot join the room: {0}")]
    Join(#[from] ClientError),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("the compositor thread failed")]
    Compositor,
}

/// A recording to make.
#[derive(Clone)]
pub struct RecordJob {
    pub url: String,
    pub token: String,
    pub layout: LiveLayout,
    pub encoding: EncodingOptions,
    pub audio_only: bool,
    /// No audio track in the output.
    pub video_only: bool,
    pub backend: Backend,
    /// Stop after this long (from the first frame); None: until the room closes or we are stopped.
    pub duration: Option<Duration>,
    /// Each tick shows the newest frame not newer than the tick minus this.
    pub video_delay: Duration,
    /// Audio is mixed this far behind real time, so late packets still make it.
    pub audio_delay: Duration,
    /// How long a gap in a track waits for its retransmission.
    pub max_wait: Duration,
    /// Start the output this long after joining even if no media came yet.
    pub start_timeout: Duration,
    /// The file to write (none: streams only); `{room_id}` in it is replaced by the room's sid once joined.
    pub output: Option<PathBuf>,
    /// Where encoded packets also go (live streams).
    pub sinks: Vec<Arc<dyn crate::output::stream::PacketSink>>,
    pub images: Vec<Arc<crate::output::images::ImageSink>>,
    /// Name of every thread the recording starts (FFmpeg's threads inherit it), so its
    /// CPU can be measured apart from other recordings in the same process.
    pub thread_name: String,
    pub stats: Arc<LiveStats>,
    /// Where the peer connections bind (None: as `ConnectOptions` decides from the URL).
    pub network: Option<crate::peer::Network>,
}

impl RecordJob {
    pub fn new(url: &str, token: &str, layout: Layout, encoding: EncodingOptions, output: &Path) -> Self {
        Self {
            url: url.into(),
            token: token.into(),
            layout: LiveLayout::new(layout),
            encoding,
            audio_only: false,
            video_only: false,
            backend: Backend::Auto,
            duration: None,
            video_delay: Duration::from_millis(50),
            audio_delay: Duration::from_millis(200),
            max_wait: Duration::from_millis(300),
            start_timeout: Duration::from_secs(5),
            output: Some(output.to_path_buf()),
            sinks: Vec::new(),
            images: Vec::new(),
            thread_name: "record".into(),
            stats: Arc::default(),
            network: None,
        }
    }
}

/// What a recording produced and saw.
#[derive(Debug)]
pub struct RecordSummary {
    pub file: Summary,
    /// The room's name and sid, as the server gave them.
    pub room_name: String,
    pub room_sid: String,
    pub renderer: String,
    /// Identities of everyone seen in the room.
    pub participants: Vec<String>,
    pub tracks: Vec<TrackReport>,
    /// Seconds recorded.
    pub duration_s: f64,
    /// From joining to the first frame handed to the encoder.
    pub first_frame_after: Option<Duration>,
    /// Ticks rendered more than a frame late (the compositor fell behind).
    pub late_ticks: u64,
    /// Times the signal connection broke and was resumed.
    pub signal_resumed: u32,
    /// The mixer's accounting per audio track sid: late, gap-filled and underrun samples.
    pub audio: Vec<(String, crate::audio::InputStats)>,
    pub ended_by: String,
}

/// Stops a running recording (SIGINT, an API call).
#[derive(Clone, Default)]
pub struct StopHandle(Arc<(AtomicBool, tokio::sync::Notify)>);

impl StopHandle {
    pub fn stop(&self) {
        self.0.0.store(true, Ordering::SeqCst);
        self.0.1.notify_waiters();
    }

    pub fn stopped(&self) -> bool {
        self.0.0.load(Ordering::SeqCst)
    }

    pub async fn wait(&self) {
        loop {
            let notified = self.0.1.notified();
            if self.stopped() {
                return;
            }
            notified.await;
        }
    }
}

/// Records until the duration ends, the room closes or `stop` is called.
pub async fn record(mut job: RecordJob, stop: StopHandle) -> Result<RecordSummary, RecordError> {
    let joined_at = Instant::now();
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let client = RoomClient::connect_with(
        &job.url,
        &job.token,
        ConnectOptions { auto_subscribe: true, events: Some(events_tx), network: job.network.clone() },
    )
    .await?;
    let room_name = client.join.room.as_ref().map(|r| r.name.clone()).unwrap_or_default();
    let room_sid = client.join.room.as_ref().map(|r| r.sid.clone()).unwrap_or_default();
    job.output = job.output.map(|o| PathBuf::from(o.to_string_lossy().replace("{room_id}", &room_sid)));
    tracing::info!(room = %room_name, "joined as a hidden recorder");
    let ctx = Arc::new(ReceiveContext {
        store: Arc::new(Mutex::new(MediaStore::default())),
        server: Mutex::new(clock::ServerClock::default()),
        epoch: joined_at,
        max_wait: job.max_wait,
        thread_name: job.thread_name.clone(),
    });
    let roster = Arc::new(Mutex::new(Roster::default()));
    let (settings_tx, mut settings) = mpsc::unbounded_channel::<(String, u32, u32)>();
    let compositor = {
        let (job, store, roster, stop) = (job.clone(), ctx.store.clone(), roster.clone(), stop.clone());
        std::thread::Builder::new()
            .name(job.thread_name.clone())
            .spawn(move || {
                let r = composite(&job, joined_at, &store, &roster, &stop, &settings_tx);
                // However it ended (duration, failure), the rest stops too.
                stop.stop();
                r
            })
            .map_err(|_| RecordError::Compositor)?
    };
    let mut receivers = Vec::new();
    let mut ended_by = "stopped".to_string();
    let mut resumed = 0;
    loop {
        tokio::select! {
            _ = stop.wait() => break,
            ev = events.recv() => match ev {
                Some(RoomEvent::Participants(p)) => lock_roster(&roster).update(p),
                Some(RoomEvent::Speakers(s)) => {
                    let now_ms = joined_at.elapsed().as_millis() as u64;
                    lock_roster(&roster).speakers(s, now_ms);
                }
                Some(RoomEvent::Track(t)) => receivers.push(tokio::spawn(receive::run(t, ctx.clone()))),
                Some(RoomEvent::Resumed) => resumed += 1,
                Some(RoomEvent::Left(why)) => {
                    ended_by = why;
                    break;
                }
                None => break,
            },
            Some((sid, w, h)) = settings.recv() => {
                let _ = client.track_settings(&sid, w, h);
            }
        }
    }
    stop.stop();
    let result = tokio::task::spawn_blocking(move || compositor.join()).await;
    client.leave().await;
    let mut tracks = Vec::new();
    for r in receivers {
        if let Ok(Ok(report)) = tokio::time::timeout(Duration::from_secs(3), r).await {
            tracks.push(report);
        }
    }
    let out = match result {
        Ok(Ok(r)) => r?,
        _ => return Err(RecordError::Compositor),
    };
    let participants = lock_roster(&roster).seen();
    for t in &mut tracks {
        t.participant_identity = lock_roster(&roster).identity_of(&t.participant_sid).unwrap_or_default().to_string();
    }
    tracks.sort_by(|a, b| (&a.participant_identity, &a.mime).cmp(&(&b.participant_identity, &b.mime)));
    Ok(RecordSummary {
        file: out.summary,
        room_name,
        room_sid,
        renderer: out.renderer,
        participants,
        tracks,
        duration_s: out.duration_s,
        first_frame_after: out.first_frame_after,
        late_ticks: out.late_ticks,
        audio: out.audio,
        signal_resumed: resumed,
        ended_by: if out.duration_ended { "the duration ended".into() } else { ended_by },
    })
}

fn lock_roster(r: &Mutex<Roster>) -> std::sync::MutexGuard<'_, Roster> {
    r.lock().unwrap_or_else(|e| e.into_inner())
}

struct Composited {
    summary: Summary,
    renderer: String,
    duration_s: f64,
    first_frame_after: Option<Duration>,
    late_ticks: u64,
    duration_ended: bool,
    audio: Vec<(String, crate::audio::InputStats)>,
}

/// The compositor thread: waits for the first media, then ticks at the frame rate
/// on the room clock until stopped or the duration ends.
fn composite(
    job: &RecordJob,
    epoch: Instant,
    store: &SharedStore,
    roster: &Mutex<Roster>,
    stop: &StopHandle,
    settings: &mpsc::UnboundedSender<(String, u32, u32)>,
) -> Result<Composited, RecordError> {
    let enc = &job.encoding;
    let (w, h, fps) = (enc.width, enc.height, enc.framerate.max(1) as i64);
    let now_us = || epoch.elapsed().as_micros() as i64;
    // Encoder and renderer are ready before the media is.
    let outputs =
        crate::pipeline::Outputs { file: job.output.clone(), sinks: job.sinks.clone(), images: job.images.clone() };
    let pipeline =
        EncodePipeline::start_named(enc, &outputs, !job.audio_only, !job.video_only, true, &job.thread_name)?;
    let mut renderer = if job.audio_only { None } else { Some(render::create(job.backend, w, h)?) };
    let describe = renderer.as_ref().map(|r| r.describe()).unwrap_or_else(|| "none (audio only)".into());
    // The output starts with the first decoded video frame (the first audio for audio only), so
    // there is no black lead-in; after the timeout it starts anyway, with what there is.
    let first = || {
        let s = lock(store);
        if job.audio_only { s.first_audio_pts } else { s.first_video_pts }
    };
    while first().is_none() && epoch.elapsed() < job.start_timeout && !stop.stopped() {
        std::thread::sleep(Duration::from_millis(5));
    }
    let video_delay_us = job.video_delay.as_micros() as i64;
    // Output time 0 is room time `origin`: tick k shows what happened at origin + k frames, at
    // wall time origin + k frames + the video delay; audio is placed on the same scale.
    let origin_us = first().unwrap_or_else(|| now_us() - video_delay_us);
    if !stop.stopped() {
        job.stats.mark_started();
    }
    let start_us = origin_us + video_delay_us;
    let mut mixer = Mixer::new(0, SAMPLE_RATE as usize / 100);
    let mut mixer_ids: HashMap<String, u64> = HashMap::new();
    let mut sizes: HashMap<String, (u32, u32)> = HashMap::new();
    let mut first_frame_after = None;
    let mut late_ticks = 0;
    let mut duration_ended = false;
    let frame_us = 1_000_000 / fps;
    let mut k: i64 = 0;
    let to_pos = |us: i64| us * SAMPLE_RATE as i64 / 1_000_000;
    let origin_pos = to_pos(origin_us);
    let mut mix = |mixer: &mut Mixer, until_room_pos: i64, pipeline: &EncodePipeline| -> Result<(), RecordError> {
        let chunks: Vec<(String, store::AudioChunks)> = {
            let mut s = lock(store);
            s.audio.iter_mut().map(|(sid, q)| (sid.clone(), q.take_until(until_room_pos))).collect()
        };
        if job.video_only {
            return Ok(());
        }
        for (sid, chunks) in chunks {
            let next = mixer_ids.len() as u64;
            let id = *mixer_ids.entry(sid).or_insert(next);
            for (pos, samples) in chunks {
                mixer.push(id, pos - origin_pos, &samples);
            }
        }
        while mixer.position() + mixer.block_frames() as i64 <= until_room_pos - origin_pos {
            pipeline.push_audio(mixer.mix())?;
        }
        Ok(())
    };
    loop {
        let tick_us = start_us + k * frame_us;
        let due = epoch + Duration::from_micros(tick_us.max(0) as u64);
        let wait = due.saturating_duration_since(Instant::now());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        } else if Instant::now() - due > Duration::from_micros(frame_us as u64) {
            late_ticks += 1;
            job.stats.late_ticks.fetch_add(1, Ordering::Relaxed);
        }
        if stop.stopped() {
            break;
        }
        if job.duration.is_some_and(|d| (tick_us - start_us) as u128 >= d.as_micros()) {
            duration_ended = true;
            break;
        }
        if let Some(r) = renderer.as_mut() {
            let show = tick_us - video_delay_us;
            let mut arrivals = Vec::new();
            let frames: HashMap<String, Arc<crate::frame::VideoFrame>> = {
                let mut s = lock(store);
                s.video
                    .iter_mut()
                    .filter_map(|(sid, q)| {
                        let (f, arrival) = q.frame_at(show);
                        arrivals.extend(arrival.map(|a| epoch + Duration::from_micros(a.max(0) as u64)));
                        f.map(|f| (sid.clone(), f))
                    })
                    .collect()
            };
            let (tiles, videos) = lock_roster(roster).tiles(|sid| frames.contains_key(sid));
            let scene = compose(&job.layout.get(), &tiles, w, h);
            let sources: Vec<&crate::frame::VideoFrame> =
                videos.iter().filter_map(|v| frames.get(&v.track_sid).map(|f| f.as_ref())).collect();
            // Ask for the simulcast layer that fits each tile.
            for t in &scene.tiles {
                if let Some((i, _)) = t.video
                    && let Some(v) = videos.get(i)
                {
                    let size = (t.rect.w, t.rect.h);
                    if sizes.get(&v.track_sid) != Some(&size) {
                        sizes.insert(v.track_sid.clone(), size);
                        let _ = settings.send((v.track_sid.clone(), size.0, size.1));
                    }
                }
            }
            if sources.len() == videos.len()
                && let Some(f) = r.render(&scene, &sources, tick_us - start_us)?
            {
                first_frame_after.get_or_insert(epoch.elapsed());
                pipeline.push_video_timed(f, arrivals)?;
                job.stats.frames.fetch_add(1, Ordering::Relaxed);
            } else {
                job.stats.skipped.fetch_add(1, Ordering::Relaxed);
            }
        }
        // Audio is mixed further behind real time than video is shown, so late packets make it.
        mix(&mut mixer, to_pos(tick_us - job.audio_delay.as_micros() as i64), &pipeline)?;
        k += 1;
    }
    if let Some(r) = renderer.as_mut()
        && let Some(f) = r.flush()?
    {
        pipeline.push_video(f)?;
    }
    // Everything that arrived before the end is in the file.
    mix(&mut mixer, to_pos(origin_us + k * frame_us), &pipeline)?;
    let summary = pipeline.finish()?;
    let audio = mixer_ids.iter().filter_map(|(sid, id)| mixer.stats(*id).map(|st| (sid.clone(), st))).collect();
    Ok(Composited {
        audio,
        summary,
        renderer: describe,
        duration_s: (k * frame_us) as f64 / 1e6,
        first_frame_after,
        late_ticks,
        duration_ended,
    })
}
