//! Track egress: one track written as it was sent (no decode, no encode) to a file in its
//! codec's container, and/or its audio streamed as PCM to a websocket, as LiveKit's
//! TrackEgress does. The recorder joins hidden, takes only that track, asks for a keyframe
//! at the start (the receiver's PLI) and ends when the track is unpublished.

use super::receive::{self, Consumer, Decoded, Encoded, ReceiveContext};
use super::roster::Roster;
use super::{RecordError, RecordSummary};
use crate::decode::AudioDecoder;
use crate::output::track_file::{Container, TrackFile, Written};
use crate::output::websocket::{PcmFeed, WebsocketSink};
use crate::pipeline::Summary;
use crate::recording::{EndReason, LiveStats, RunContext, StopHandle};
use crate::room::{ConnectOptions, RoomClient, RoomEvent};
use livekit_protocol as proto;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// One track to take out of a room.
#[derive(Clone)]
pub struct TrackJob {
    pub url: String,
    pub token: String,
    /// The track's sid, or `identity/source` (`alice/microphone`) for the track that
    /// participant publishes from that source.
    pub track_sid: String,
    /// The file; `{track_type}`, `{track_source}` and `{publisher_identity}` are filled in
    /// once the track is known, and the container's extension is added when it is not there.
    pub file: Option<PathBuf>,
    /// LiveKit's websocket output: the track's audio as PCM.
    pub websocket: Option<String>,
    pub limit: Option<Duration>,
    pub run: RunContext,
    pub network: Option<crate::peer::Network>,
    /// How long a gap waits for its retransmission.
    pub max_wait: Duration,
    /// How long the track may take to appear (LiveKit waits 30 s).
    pub subject_timeout: Duration,
}

impl TrackJob {
    pub fn new(url: &str, token: &str, track_sid: &str) -> Self {
        Self {
            url: url.into(),
            token: token.into(),
            track_sid: track_sid.into(),
            file: None,
            websocket: None,
            limit: None,
            run: RunContext::named("track"),
            network: None,
            // A file is not played live: a gap may wait long for its retransmission.
            max_wait: Duration::from_secs(1),
            subject_timeout: Duration::from_secs(30),
        }
    }
}

/// The file's name once the track is known: LiveKit's track placeholders (a value can hold
/// no path separator), and the container's extension when the name has another or none.
pub(crate) fn track_path(file: &Path, identity: &str, info: &proto::TrackInfo, container: Container) -> PathBuf {
    let safe = |s: &str| s.replace(['/', '\\', '\0'], "_");
    let kind = if info.r#type == proto::TrackType::Audio as i32 { "audio" } else { "video" };
    let source = proto::TrackSource::try_from(info.source)
        .map(|s| s.as_str_name().to_ascii_lowercase())
        .unwrap_or_else(|_| "unknown".into());
    let name = file.to_string_lossy();
    let name = name
        .replace("{track_type}", kind)
        .replace("{track_source}", &safe(&source))
        .replace("{publisher_identity}", &safe(identity))
        .replace("{track_id}", &safe(&info.sid));
    let mut path = PathBuf::from(name);
    let has = path.extension().is_some_and(|e| e.eq_ignore_ascii_case(container.extension()));
    if !has {
        let mut s = path.into_os_string();
        s.push(format!(".{}", container.extension()));
        path = PathBuf::from(s);
    }
    path
}

/// Records the track until it is unpublished, the limit ends or `stop` is called.
pub async fn record(job: TrackJob, stop: StopHandle) -> Result<RecordSummary, RecordError> {
    let joined_at = Instant::now();
    // The websocket is dialled first: a receiver that is not there fails the egress before it joins.
    let websocket = match &job.websocket {
        Some(url) => Some(WebsocketSink::connect(url).await.map_err(|e| RecordError::Track(e.to_string()))?),
        None => None,
    };
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let options = ConnectOptions { auto_subscribe: true, events: Some(events_tx), network: job.network.clone() };
    let client = RoomClient::connect_with(&job.url, &job.token, options).await?;
    let room_name = client.join.room.as_ref().map(|r| r.name.clone()).unwrap_or_default();
    let room_sid = client.join.room.as_ref().map(|r| r.sid.clone()).unwrap_or_default();
    tracing::info!(room = %room_name, track = %job.track_sid, "joined to take one track");
    let ctx = Arc::new(ReceiveContext {
        store: Default::default(),
        server: Default::default(),
        epoch: joined_at,
        max_wait: job.max_wait,
        thread_name: job.run.thread_name.clone(),
    });
    let stats = job.run.stats.clone();
    let mut roster = Roster::default();
    let (written_tx, written_rx) = std::sync::mpsc::channel::<Result<Option<Written>, String>>();
    let mut receiver = None;
    let mut muted: Option<bool> = None;
    let mut seen = false;
    let mut ended_by = EndReason::Stopped;
    let mut failure = None;
    let mut duration_ended = false;
    let deadline = joined_at + job.subject_timeout;
    let mut check = tokio::time::interval(Duration::from_millis(250));
    let mut job = job;
    let selector = job.track_sid.split_once('/').map(|(who, source)| (who.to_string(), source.to_string()));
    loop {
        tokio::select! {
            _ = stop.wait() => break,
            _ = check.tick() => {
                if roster.published(&job.track_sid).is_some() {
                    seen = true;
                } else if seen {
                    ended_by = EndReason::SourceClosed("the track was unpublished".into());
                    break;
                } else if Instant::now() >= deadline {
                    failure = Some(RecordError::NotFound(format!("track {} not found", job.track_sid)));
                    break;
                }
                if let (Some(limit), Some(at)) = (job.limit, stats.started_at_ns())
                    && crate::time::unix_ns() - at >= limit.as_nanos() as i64
                {
                    duration_ended = true;
                    break;
                }
                if receiver.as_ref().is_some_and(|r: &tokio::task::JoinHandle<_>| r.is_finished()) {
                    ended_by = EndReason::SourceClosed("the track ended".into());
                    break;
                }
            }
            ev = events.recv() => match ev {
                Some(RoomEvent::Participants(p)) => {
                    roster.update(p);
                    if let Some((who, source)) = &selector
                        && let Some(sid) = roster.track_of(who, source)
                        && receiver.is_none()
                    {
                        job.track_sid = sid.to_string();
                    }
                    if let (Some(ws), Some((_, t))) = (&websocket, roster.published(&job.track_sid)) {
                        // LiveKit tells the receiver of each change (not of the first state).
                        if muted.is_some_and(|m| m != t.muted) {
                            ws.muted(t.muted);
                        }
                        muted = Some(t.muted);
                    }
                }
                Some(RoomEvent::Track(t)) if t.track_sid == job.track_sid && receiver.is_none() => {
                    let (identity, info) = match roster.published(&job.track_sid) {
                        Some((who, info)) => (who.to_string(), info.clone()),
                        None => (String::new(), proto::TrackInfo { sid: job.track_sid.clone(), ..Default::default() }),
                    };
                    if websocket.is_some() && info.r#type == proto::TrackType::Video as i32 {
                        failure = Some(RecordError::Track(format!(
                            "track {} is video; a websocket output takes audio tracks only", job.track_sid
                        )));
                        break;
                    }
                    // A codec known from the server's description that cannot be kept as sent (RED
                    // audio, AV1) fails now rather than leave the egress waiting for media.
                    let mime = info.mime_type.to_ascii_lowercase();
                    let unwritable = job.file.is_some() && Container::for_mime(&mime).is_none();
                    let undecodable = websocket.is_some() && mime != "audio/opus";
                    if !mime.is_empty() && (unwritable || undecodable) {
                        failure = Some(RecordError::Track(format!(
                            "track {} is {mime}, which track egress cannot take as sent (VP8, VP9, H.264, Opus)",
                            job.track_sid
                        )));
                        break;
                    }
                    let thread = frame_thread(Target {
                        file: job.file.clone().map(|f| (f, identity, info)),
                        feed: websocket.as_ref().map(WebsocketSink::feed),
                        stats: stats.clone(),
                        done: written_tx.clone(),
                    });
                    receiver = Some(tokio::spawn(receive::run_into(t, ctx.clone(), Consumer::Frames(thread))));
                }
                // Nothing else is received at all.
                Some(RoomEvent::Track(t)) => {
                    let _ = client.subscribe(&t.track_sid, false);
                }
                Some(RoomEvent::Speakers(_) | RoomEvent::Resumed) => {}
                Some(RoomEvent::Left(why)) => {
                    ended_by = EndReason::SourceClosed(why);
                    break;
                }
                None => break,
            },
        }
    }
    stop.stop();
    client.leave().await;
    let mut tracks = Vec::new();
    if let Some(mut r) = receiver {
        // Leaving ends the track; if it lingers, dropping the receiver closes the writer's feed.
        match tokio::time::timeout(Duration::from_secs(3), &mut r).await {
            Ok(Ok(mut report)) => {
                report.participant_identity =
                    roster.identity_of(&report.participant_sid).unwrap_or_default().to_string();
                tracks.push(report);
            }
            _ => r.abort(),
        }
    }
    drop(written_tx);
    let written = tokio::task::spawn_blocking(move || written_rx.recv_timeout(Duration::from_secs(120)))
        .await
        .ok()
        .and_then(Result::ok);
    let websocket_bytes = match websocket {
        Some(ws) => ws.close().await.map_err(|e| RecordError::Track(e.to_string()))?,
        None => 0,
    };
    if let Some(f) = failure {
        return Err(f);
    }
    let written = match written {
        Some(Err(e)) => return Err(RecordError::Track(e)),
        Some(Ok(w)) => w,
        None => None,
    };
    let started = stats.started_at_ns();
    let duration_s = match (&written, started) {
        (Some(w), _) => w.duration_s,
        (None, Some(at)) => (crate::time::unix_ns() - at) as f64 / 1e9,
        (None, None) => 0.0,
    };
    let file = match &written {
        Some(w) => Summary { path: w.path.clone(), bytes: w.bytes, ..Summary::default() },
        None => Summary { bytes: websocket_bytes, ..Summary::default() },
    };
    Ok(RecordSummary {
        file,
        room_name,
        room_sid,
        renderer: "none (written as sent)".into(),
        participants: roster.seen(),
        tracks,
        duration_s,
        first_frame_after: None,
        late_ticks: 0,
        signal_resumed: 0,
        audio: Vec::new(),
        ended_by: if duration_ended { EndReason::DurationEnded } else { ended_by },
    })
}

/// Where the track's frames go.
struct Target {
    /// The file as asked, with the publisher's identity and the track.
    file: Option<(PathBuf, String, proto::TrackInfo)>,
    feed: Option<PcmFeed>,
    stats: Arc<LiveStats>,
    done: std::sync::mpsc::Sender<Result<Option<Written>, String>>,
}

fn frame_thread(target: Target) -> receive::FrameThread {
    Box::new(move |mime: &str, clock_rate: u32, rx: std::sync::mpsc::Receiver<Encoded>| {
        let done = target.done.clone();
        let (result, decoded) = take_frames(mime, clock_rate, rx, target);
        let _ = done.send(result);
        decoded
    })
}

/// Writes each frame as it came (the file opens at the first keyframe) and decodes audio for
/// the websocket; returns the file written.
fn take_frames(
    mime: &str,
    clock_rate: u32,
    rx: std::sync::mpsc::Receiver<Encoded>,
    target: Target,
) -> (Result<Option<Written>, String>, Decoded) {
    let video = mime.to_ascii_lowercase().starts_with("video/");
    let mut decoded = Decoded::default();
    let path = match &target.file {
        Some((file, identity, info)) => match Container::for_mime(mime) {
            Some(c) => Some(track_path(file, identity, info, c)),
            None => {
                return (
                    Err(format!("{mime} cannot be written without transcoding (VP8, VP9, H.264, Opus can)")),
                    decoded,
                );
            }
        },
        None => None,
    };
    let mut file: Option<TrackFile> = None;
    let mut pcm = match (&target.feed, video) {
        (Some(_), false) => AudioDecoder::new(ffmpeg_next::codec::Id::OPUS).ok(),
        _ => None,
    };
    let mut started = false;
    while let Ok(e) = rx.recv() {
        let key = !video || super::jitter::is_keyframe(mime, &e.data);
        if let Some(p) = &path {
            if file.is_none() && key {
                match TrackFile::create(p, mime, clock_rate, &e.data, e.rtp_timestamp) {
                    Ok(f) => file = Some(f),
                    Err(err) => return (Err(err.to_string()), decoded),
                }
            }
            if let Some(f) = file.as_mut() {
                if let Err(err) = f.write(&e.data, e.rtp_timestamp, key) {
                    decoded.errors += 1;
                    tracing::warn!(error = %err, "a frame could not be written");
                    continue;
                }
                decoded.frames += 1;
            }
        }
        if let (Some(dec), Some(feed)) = (pcm.as_mut(), &target.feed) {
            match dec.decode(&e.data) {
                Ok(samples) => feed.send(&samples),
                Err(_) => decoded.errors += 1,
            }
        }
        if !started && (file.is_some() || pcm.is_some()) {
            started = true;
            target.stats.mark_started();
        }
    }
    (file.map(TrackFile::finish).transpose().map_err(|e| e.to_string()), decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_and_the_extension_follow_livekit() {
        let info = proto::TrackInfo {
            sid: "TR_a".into(),
            r#type: proto::TrackType::Audio as i32,
            source: proto::TrackSource::Microphone as i32,
            ..Default::default()
        };
        let p = track_path(
            Path::new("x/{publisher_identity}-{track_type}-{track_source}-{track_id}"),
            "a/b",
            &info,
            Container::Ogg,
        );
        assert_eq!(p, PathBuf::from("x/a_b-audio-microphone-TR_a.ogg"));
        assert_eq!(track_path(Path::new("t.ogg"), "a", &info, Container::Ogg), PathBuf::from("t.ogg"));
        assert_eq!(track_path(Path::new("t.mp4"), "a", &info, Container::WebM), PathBuf::from("t.mp4.webm"));
    }
}
