//! `tessera record`: joins a room as a hidden subscriber, receives and decodes
//! every track, puts them on one clock and records the composite to a file.
//!
//! Data flows one way: the room client reports participants, speakers and
//! tracks; each track has a receiver task (jitter buffer, clock) feeding a
//! decoder thread; decoded media waits in the store; the compositor thread ticks
//! at the output frame rate, takes what each tile should show, renders, mixes
//! and hands both to the encode pipeline.

pub(crate) mod channels;
pub mod clock;
pub mod jitter;
pub(crate) mod receive;
pub(crate) mod roster;
pub mod store;
pub mod token;
pub mod track;

use crate::compositor::{AudioChunk, Compositor, CompositorOptions, TickSource, TickVideo, VideoAt};
use crate::encode::EncodingOptions;
use crate::layout::Layout;
use crate::pipeline::{EncodePipeline, PipelineError, Summary};
use crate::recording::{
    Channel, ChannelMixing, EndReason, LiveLayout, Outputs, RecordingSpec, RouteMatch, RunContext, StopHandle, Subject,
    VideoPick,
};
use crate::render::{self, Backend, RenderError};
use crate::room::{ClientError, ConnectOptions, RoomClient, RoomEvent};
use crate::sync::lock;
use channels::Placer;
use receive::{ReceiveContext, TrackReport};
use roster::Roster;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use store::{MediaStore, SharedStore};
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
    /// The participant or track to record did not come within `subject_timeout` (LiveKit's
    /// words: "participant X not found", "track X not found").
    #[error("{0}")]
    NotFound(String),
    /// A track egress that cannot go on (a video track for a websocket, a codec that cannot
    /// be written as sent, a websocket that is not there).
    #[error("{0}")]
    Track(String),
}

/// A room to record: what and where (the spec), how to reach the room, and the
/// compositor's settings.
#[derive(Clone)]
pub struct RecordJob {
    pub url: String,
    pub token: String,
    pub spec: RecordingSpec,
    pub layout: LiveLayout,
    pub backend: Backend,
    /// Each tick shows the newest frame not newer than the tick minus this.
    pub video_delay: Duration,
    /// Audio is mixed this far behind real time, so late packets still make it.
    pub audio_delay: Duration,
    /// How long a gap in a track waits for its retransmission.
    pub max_wait: Duration,
    /// Start the output this long after joining even if no media came yet (a participant
    /// or track subject waits longer: `media_wait`).
    pub media_timeout: Duration,
    pub run: RunContext,
    /// Where the peer connections bind (None: as `ConnectOptions` decides from the URL).
    pub network: Option<crate::peer::Network>,
    /// The layouts the recording switches to when its own participant's metadata asks
    /// (`{"layout": "<name>"}`: LiveKit's UpdateLayout, as livekit-server delivers it).
    pub layouts: Option<crate::layout::LayoutSet>,
    /// Whose media is recorded: the room, one participant or chosen tracks.
    pub subject: Subject,
    /// How long a participant or track subject may take to appear (LiveKit waits 30 s).
    pub subject_timeout: Duration,
    /// Which channel each participant's audio goes to.
    pub mixing: ChannelMixing,
}

impl RecordJob {
    /// How long the output waits for its first media. A participant or track subject starts
    /// with its own media, which may take as long as the subject may take to come, and past
    /// that deadline, so that a subject that never comes is "not found" before an empty
    /// recording starts.
    fn media_wait(&self) -> Duration {
        match self.subject {
            Subject::Room => self.media_timeout,
            _ => self.media_timeout.max(self.subject_timeout + Duration::from_secs(5)),
        }
    }

    /// Audio and video of the room into `output`, with no limit.
    pub fn new(url: &str, token: &str, layout: Layout, encoding: EncodingOptions, output: &Path) -> Self {
        let outputs = Outputs { file: Some(output.to_path_buf()), ..Outputs::default() };
        Self::with_spec(url, token, layout, RecordingSpec { encoding, outputs, ..RecordingSpec::default() })
    }

    /// What `spec` asks for, with the default delays, renderer and network.
    pub(crate) fn with_spec(url: &str, token: &str, layout: Layout, spec: RecordingSpec) -> Self {
        Self {
            url: url.into(),
            token: token.into(),
            spec,
            layout: LiveLayout::new(layout),
            backend: Backend::Auto,
            video_delay: Duration::from_millis(50),
            audio_delay: Duration::from_millis(200),
            max_wait: Duration::from_millis(300),
            media_timeout: Duration::from_secs(5),
            run: RunContext::named("record"),
            network: None,
            layouts: None,
            subject: Subject::Room,
            subject_timeout: Duration::from_secs(30),
            mixing: ChannelMixing::Both,
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
    pub ended_by: EndReason,
}

/// Switches the layout when the recorder's own metadata names a new one (`last`: the name
/// it named before). An unknown name keeps the current layout and says so.
fn follow_metadata(job: &RecordJob, metadata: &str, last: &mut String) {
    let Some(layouts) = &job.layouts else { return };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(metadata) else { return };
    let Some(name) = v.get("layout").and_then(|l| l.as_str()) else { return };
    if name == last.as_str() {
        return;
    }
    *last = name.to_string();
    match layouts.resolve(name) {
        Ok(layout) => {
            tracing::info!(layout = name, "layout changed by the room (the recorder's metadata)");
            job.layout.set(layout);
        }
        Err(e) => {
            tracing::warn!(layout = name, error = %e, "the room asked for a layout that does not exist; keeping the current one")
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
    job.spec.outputs.file =
        job.spec.outputs.file.map(|o| PathBuf::from(o.to_string_lossy().replace("{room_id}", &room_sid)));
    tracing::info!(room = %room_name, "joined as a hidden recorder");
    let ctx = Arc::new(ReceiveContext {
        store: Arc::new(Mutex::new(MediaStore::default())),
        server: Mutex::new(clock::ServerClock::default()),
        epoch: joined_at,
        max_wait: job.max_wait,
        thread_name: job.run.thread_name.clone(),
    });
    let roster = Arc::new(Mutex::new(Roster::default()));
    let (settings_tx, mut settings) = mpsc::unbounded_channel::<(String, u32, u32)>();
    let compositor = {
        let (job, store, roster, stop) = (job.clone(), ctx.store.clone(), roster.clone(), stop.clone());
        std::thread::Builder::new()
            .name(job.run.thread_name.clone())
            .spawn(move || {
                let r = composite(&job, joined_at, &store, &roster, &stop, &settings_tx);
                // However it ended (duration, failure), the rest stops too.
                stop.stop();
                r
            })
            .map_err(|_| RecordError::Compositor)?
    };
    let own_sid = client.join.participant.as_ref().map(|p| p.sid.clone()).unwrap_or_default();
    let mut metadata_layout = String::new();
    let mut receivers = Vec::new();
    let mut ended_by = EndReason::Stopped;
    let mut resumed = 0;
    let mut presence = Presence::new(&job.subject, joined_at + job.subject_timeout);
    let mut check = tokio::time::interval(Duration::from_millis(250));
    let mut not_found = None;
    loop {
        tokio::select! {
            _ = stop.wait() => break,
            _ = check.tick(), if job.subject != Subject::Room => {
                match presence.check(&lock(&roster)) {
                    Watch::Waiting | Watch::Here => {}
                    Watch::Missing(what) => {
                        not_found = Some(what);
                        break;
                    }
                    Watch::Gone(why) => {
                        ended_by = EndReason::SourceClosed(why);
                        break;
                    }
                }
            }
            ev = events.recv() => match ev {
                Some(RoomEvent::Participants(p)) => {
                    if let Some(me) = p.iter().find(|p| p.sid == own_sid) {
                        follow_metadata(&job, &me.metadata, &mut metadata_layout);
                    }
                    lock(&roster).update(p)
                }
                Some(RoomEvent::Speakers(s)) => {
                    let now_ms = joined_at.elapsed().as_millis() as u64;
                    lock(&roster).speakers(s, now_ms);
                }
                Some(RoomEvent::Track(t)) => {
                    // Another participant's track is not received (nor decoded) at all.
                    if lock(&roster).wants(&t.track_sid, &job.subject) == Some(false) {
                        let _ = client.subscribe(&t.track_sid, false);
                    } else {
                        receivers.push(tokio::spawn(receive::run(t, ctx.clone())));
                    }
                }
                Some(RoomEvent::Resumed) => resumed += 1,
                Some(RoomEvent::Left(why)) => {
                    ended_by = EndReason::SourceClosed(why);
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
    if let Some(what) = not_found {
        return Err(RecordError::NotFound(what));
    }
    let out = match result {
        Ok(Ok(r)) => r?,
        _ => return Err(RecordError::Compositor),
    };
    let participants = lock(&roster).seen();
    for t in &mut tracks {
        t.participant_identity = lock(&roster).identity_of(&t.participant_sid).unwrap_or_default().to_string();
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
        ended_by: if out.duration_ended { EndReason::DurationEnded } else { ended_by },
    })
}

/// A participant or track subject's presence: it must appear in time, and its leaving
/// ends the recording (LiveKit's participant egress ends when the participant leaves; a
/// track composite when its tracks are gone).
struct Presence<'a> {
    subject: &'a Subject,
    deadline: Instant,
    seen: bool,
}

enum Watch {
    Waiting,
    Here,
    /// Not there by the deadline: what is missing, in LiveKit's words.
    Missing(String),
    /// There, then gone: why the recording ends.
    Gone(String),
}

impl<'a> Presence<'a> {
    fn new(subject: &'a Subject, deadline: Instant) -> Self {
        Self { subject, deadline, seen: false }
    }

    fn check(&mut self, roster: &Roster) -> Watch {
        let missing = match self.subject {
            Subject::Room => None,
            Subject::Participant { identity, .. } => {
                (!roster.has(self.subject)).then(|| format!("participant {identity} not found"))
            }
            Subject::Tracks { audio, video } => [audio, video]
                .into_iter()
                .flatten()
                .find(|sid| !roster.has_track(sid))
                .map(|sid| format!("track {sid} not found")),
            Subject::Media { video: Some(VideoPick::Track(sid)), .. } => {
                (!roster.has(self.subject)).then(|| format!("track {sid} not found"))
            }
            Subject::Media { video: Some(VideoPick::Participant { identity, .. }), .. } => {
                (!roster.has(self.subject)).then(|| format!("participant {identity} not found"))
            }
            // Audio alone: the tracks its routes name by id must come.
            Subject::Media { video: None, audio } => audio
                .routes
                .iter()
                .find_map(|r| match &r.matches {
                    RouteMatch::Track(sid) if !roster.has_track(sid) => Some(sid),
                    _ => None,
                })
                .map(|sid| format!("track {sid} not found")),
        };
        match (missing, self.seen) {
            (None, _) => {
                self.seen = true;
                Watch::Here
            }
            // Once there, the recording goes on while any of it is left.
            (Some(_), true) if roster.has(self.subject) => Watch::Here,
            (Some(_), true) => Watch::Gone(match self.subject {
                Subject::Participant { identity, .. } => format!("participant {identity} left"),
                _ => "the recorded tracks were unpublished".into(),
            }),
            (Some(what), false) if Instant::now() >= self.deadline => Watch::Missing(what),
            (Some(_), false) => Watch::Waiting,
        }
    }
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

/// The room as the compositor sees it: decoded media waiting in the store, tiles from the
/// roster, and a mixer input id for each audio track.
struct RoomSource<'a> {
    store: &'a SharedStore,
    roster: &'a Mutex<Roster>,
    subject: &'a Subject,
    mixer_ids: HashMap<String, u64>,
    channels: Placer,
}

impl TickSource for RoomSource<'_> {
    fn video_at(&mut self, t_us: i64) -> VideoAt {
        let mut arrivals = Vec::new();
        let frames: HashMap<String, Arc<crate::frame::VideoFrame>> = lock(self.store)
            .video
            .iter_mut()
            .filter_map(|(sid, q)| {
                let (f, arrival) = q.frame_at(t_us);
                arrivals.extend(arrival);
                f.map(|f| (sid.clone(), f))
            })
            .collect();
        let (tiles, videos) = lock(self.roster).tiles(|sid| frames.contains_key(sid), self.subject);
        let videos = videos
            .into_iter()
            .map(|v| {
                let f = frames.get(&v.track_sid).cloned();
                (v.track_sid, f)
            })
            .collect();
        VideoAt { tiles, videos, arrivals }
    }

    fn audio_until(&mut self, until: i64) -> Vec<AudioChunk> {
        let taken: Vec<(String, store::AudioChunks)> =
            lock(self.store).audio.iter_mut().map(|(sid, q)| (sid.clone(), q.take_until(until))).collect();
        // Only the subject's tracks are heard (a track the roster does not know yet is not).
        let roster = lock(self.roster);
        // A track's side is decided when its first audio comes (LiveKit's "first appearance").
        let taken: Vec<_> = taken
            .into_iter()
            .filter(|(sid, _)| roster.wants(sid, self.subject) == Some(true))
            .map(|(sid, list)| {
                let side = match roster.routed(&sid, self.subject) {
                    // A media source's route says where the track goes.
                    Some(Channel::Left) => Some(channels::Side::Left),
                    Some(Channel::Right) => Some(channels::Side::Right),
                    Some(Channel::Both) => None,
                    None if list.is_empty() => None,
                    None => self.channels.side(&sid, roster.is_agents(&sid)),
                };
                (sid, list, side)
            })
            .collect();
        drop(roster);
        let mut chunks = Vec::new();
        for (sid, list, side) in taken {
            let next = self.mixer_ids.len() as u64;
            let input = *self.mixer_ids.entry(sid).or_insert(next);
            chunks.extend(list.into_iter().map(|(pos, mut samples)| {
                if let Some(side) = side {
                    channels::place(side, &mut samples);
                }
                AudioChunk { input, pos, samples }
            }));
        }
        chunks
    }
}

/// The compositor thread: waits for the first media, then ticks at the frame rate on the
/// room clock (sleeping until each tick is due) until stopped or the duration ends.
fn composite(
    job: &RecordJob,
    epoch: Instant,
    store: &SharedStore,
    roster: &Mutex<Roster>,
    stop: &StopHandle,
    settings: &mpsc::UnboundedSender<(String, u32, u32)>,
) -> Result<Composited, RecordError> {
    let enc = &job.spec.encoding;
    let media = job.spec.media;
    let (w, h) = (enc.width, enc.height);
    let now_us = || epoch.elapsed().as_micros() as i64;
    // Encoder and renderer are ready before the media is.
    let pipeline = EncodePipeline::start_live(&job.spec, &job.run.thread_name)?;
    let mut renderer = if media.video() { Some(render::create(job.backend, w, h)?) } else { None };
    let describe = renderer.as_ref().map(|r| r.describe()).unwrap_or_else(|| "none (audio only)".into());
    // The output starts with the first decoded video frame (the first audio for audio only), so
    // there is no black lead-in; after the timeout it starts anyway, with what there is.
    let first = || {
        let s = lock(store);
        if media.video() { s.first_video_pts } else { s.first_audio_pts }
    };
    let media_wait = job.media_wait();
    while first().is_none() && epoch.elapsed() < media_wait && !stop.stopped() {
        std::thread::sleep(Duration::from_millis(5));
    }
    let origin_us = first().unwrap_or_else(|| now_us() - job.video_delay.as_micros() as i64);
    if !stop.stopped() {
        job.run.stats.mark_started();
    }
    let opts = CompositorOptions {
        width: w,
        height: h,
        fps: enc.framerate,
        media,
        video_delay: job.video_delay,
        audio_delay: job.audio_delay,
    };
    let mut compositor = Compositor::new(opts, origin_us);
    let mut source = RoomSource {
        store,
        roster,
        subject: &job.subject,
        mixer_ids: HashMap::new(),
        channels: Placer::new(job.mixing),
    };
    let mut first_frame_after = None;
    let mut late_ticks = 0;
    let mut duration_ended = false;
    let stats = &job.run.stats;
    loop {
        let due = epoch + Duration::from_micros(compositor.next_tick_us().max(0) as u64);
        let wait = due.saturating_duration_since(Instant::now());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        } else if compositor.is_late(now_us()) {
            late_ticks += 1;
            stats.late_ticks.fetch_add(1, Ordering::Relaxed);
        }
        if stop.stopped() {
            break;
        }
        if job.spec.limit.is_some_and(|d| compositor.elapsed_us() as u128 >= d.as_micros()) {
            duration_ended = true;
            break;
        }
        let tick = compositor.tick(&mut source, &job.layout.get());
        for (sid, w, h) in tick.layer_requests {
            let _ = settings.send((sid, w, h));
        }
        match (tick.video, renderer.as_mut()) {
            (TickVideo::Render { scene, frames, arrivals, pts_us }, Some(r)) => {
                let sources: Vec<&crate::frame::VideoFrame> = frames.iter().map(|f| f.as_ref()).collect();
                if let Some(f) = r.render(&scene, &sources, pts_us)? {
                    first_frame_after.get_or_insert(epoch.elapsed());
                    let arrivals = arrivals.iter().map(|a| epoch + Duration::from_micros((*a).max(0) as u64)).collect();
                    pipeline.push_video_timed(f, arrivals)?;
                    stats.frames.fetch_add(1, Ordering::Relaxed);
                } else {
                    stats.skipped.fetch_add(1, Ordering::Relaxed);
                }
            }
            (TickVideo::Skipped, _) => {
                stats.skipped.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
        for block in tick.audio {
            pipeline.push_audio(block)?;
        }
    }
    if let Some(r) = renderer.as_mut()
        && let Some(f) = r.flush()?
    {
        pipeline.push_video(f)?;
    }
    // Everything that arrived before the end is in the file.
    for block in compositor.finish(&mut source) {
        pipeline.push_audio(block)?;
    }
    let summary = pipeline.finish()?;
    let audio = source
        .mixer_ids
        .iter()
        .filter_map(|(sid, id)| compositor.audio_stats(*id).map(|st| (sid.clone(), st)))
        .collect();
    Ok(Composited {
        audio,
        summary,
        renderer: describe,
        duration_s: compositor.elapsed_us() as f64 / 1e6,
        first_frame_after,
        late_ticks,
        duration_ended,
    })
}
