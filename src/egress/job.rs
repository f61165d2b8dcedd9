//! One egress: its EgressInfo, its recording and the way its status moves
//! (STARTING -> ACTIVE -> ENDING -> COMPLETE, or FAILED, ABORTED, LIMIT_REACHED).

use super::outcome::{Outcome, Ran, StopReason, outcome};
use super::request::{ManifestVia, Plan, PlanSource};
use super::webhook::Notifier;
use crate::browser::{BrowserError, BrowserJob};
use crate::output::images::{ImageSink, ImagesProgress};
use crate::output::segments::{SegmentSink, SegmentsProgress};
use crate::output::stream::{Status as StreamStatus, StreamProgress, StreamSet};
use crate::recorder::track::TrackJob;
use crate::recorder::{self, RecordJob, RecordSummary};
use crate::recording::{LiveLayout, LiveStats, RunContext, StopHandle};
use crate::time::unix_ns;
use crate::upload::queue::Uploader;
use livekit_protocol as proto;
use proto::EgressStatus as S;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

/// The outputs that report their own progress.
pub struct JobOutputs {
    pub streams: Arc<StreamSet>,
    pub segments: Option<Arc<SegmentSink>>,
    pub images: Vec<Arc<ImageSink>>,
    pub uploads: Uploads,
}

/// What a job records: a room through the native compositor, or a page through Chromium.
// One per job, built once and moved into its task: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Recording {
    Room(RecordJob),
    Browser(BrowserJob),
    /// One track, written as it was sent.
    Track(TrackJob),
}

impl Recording {
    fn run_context(&self) -> &RunContext {
        match self {
            Recording::Room(r) => &r.run,
            Recording::Browser(b) => &b.run,
            Recording::Track(t) => &t.run,
        }
    }
}

/// Each output's uploader (None: the output stays in the output directory).
#[derive(Clone, Default)]
pub struct Uploads {
    pub file: Option<Uploader>,
    pub segments: Option<Uploader>,
    pub images: Vec<Option<Uploader>>,
}

/// How long uploads that keep failing are retried once the recording has ended; then
/// their files are left on disk and the egress is FAILED, naming them.
const UPLOAD_GRACE: std::time::Duration = std::time::Duration::from_secs(60);

impl Uploads {
    fn all(&self) -> impl Iterator<Item = &Uploader> {
        self.file.iter().chain(self.segments.iter()).chain(self.images.iter().flatten())
    }

    /// The uploader of the output the manifest goes with (none: it stays local).
    fn of(&self, via: ManifestVia) -> Option<&Uploader> {
        match via {
            ManifestVia::File => self.file.as_ref(),
            ManifestVia::Segments => self.segments.as_ref(),
            ManifestVia::Images(n) => self.images.get(n).and_then(Option::as_ref),
        }
    }
}

pub struct Job {
    pub id: String,
    /// Cores admission counted for it.
    pub cost: f64,
    /// Name of the job's threads (for its CPU).
    pub thread_name: String,
    /// The file (none when the egress only streams).
    pub path: Option<PathBuf>,
    pub streams: Arc<StreamSet>,
    pub segments: Option<Arc<SegmentSink>>,
    pub images: Vec<Arc<ImageSink>>,
    uploads: Uploads,
    manifest: Option<(PathBuf, ManifestVia)>,
    /// The local names it writes (see `Plan::local_claims`); no other running job may write them.
    pub claims: Vec<PathBuf>,
    /// What it records: the room natively, a template or a web page.
    pub source: PlanSource,
    /// Where its uploaded outputs are staged; removed once they are all up.
    staging_dir: PathBuf,
    /// Where a staged file whose upload was given up is kept.
    local_dir: PathBuf,
    /// Why it was asked to stop, if it was.
    stop_reason: Mutex<Option<StopReason>>,
    pub fps: u32,
    info: Mutex<proto::EgressInfo>,
    stop: StopHandle,
    /// The native compositor's layout (None for a page in Chromium: its layout is its own).
    pub layout: Option<LiveLayout>,
    pub stats: Arc<LiveStats>,
    webhooks: Notifier,
    done: tokio::sync::watch::Sender<bool>,
}

impl Job {
    pub fn new(
        info: proto::EgressInfo,
        plan: &Plan,
        rec: &Recording,
        outputs: JobOutputs,
        cost: f64,
        webhooks: Notifier,
    ) -> Arc<Self> {
        let layout = match rec {
            Recording::Room(r) => Some(r.layout.clone()),
            Recording::Browser(_) | Recording::Track(_) => None,
        };
        Arc::new(Self {
            id: info.egress_id.clone(),
            cost,
            thread_name: rec.run_context().thread_name.clone(),
            path: plan.file.as_ref().map(|f| f.path.clone()),
            streams: outputs.streams,
            segments: outputs.segments,
            images: outputs.images,
            uploads: outputs.uploads,
            manifest: plan.manifest.clone(),
            claims: plan.local_claims(),
            source: plan.source.clone(),
            staging_dir: plan.staging_dir.clone(),
            local_dir: plan.local_dir.clone(),
            stop_reason: Mutex::new(None),
            fps: plan.encoding.framerate,
            info: Mutex::new(info),
            stop: StopHandle::default(),
            layout,
            stats: rec.run_context().stats.clone(),
            webhooks,
            done: tokio::sync::watch::channel(false).0,
        })
    }

    /// The EgressInfo now, with each stream's current state.
    pub fn info(&self) -> proto::EgressInfo {
        let mut i = self.lock().clone();
        self.fill_streams(&mut i);
        i
    }

    /// Streams and segments report their own state; it is copied in whenever the info is read.
    fn fill_streams(&self, i: &mut proto::EgressInfo) {
        i.stream_results = self.streams.progress().into_iter().map(stream_info).collect();
        i.segment_results = self.segments.iter().map(|g| self.segments_info(g)).collect();
        i.image_results = self.images.iter().map(|g| images_info(g.progress())).collect();
        #[allow(deprecated)]
        match &mut i.result {
            Some(proto::egress_info::Result::Stream(list)) => list.info = i.stream_results.clone(),
            Some(proto::egress_info::Result::Segments(g)) => {
                if let Some(now) = i.segment_results.first() {
                    *g = now.clone();
                }
            }
            _ => {}
        }
        if self.uploads.all().any(|u| u.backup_used()) {
            i.backup_storage_used = true;
        }
        // Once ended, details hold LiveKit's "End reason: ..." (set by the end itself).
        if i.ended_at != 0 {
            return;
        }
        if let Some(e) = self.segments.as_ref().and_then(|g| g.error()) {
            i.details = format!("the HLS output failed: {e}");
        }
        if let Some(e) = self.images.iter().find_map(|g| g.error()) {
            i.details = format!("the image output failed: {e}");
        }
        if let Some(e) = self.uploads.all().find_map(|u| u.last_error()) {
            i.details = format!("uploads are failing and being retried: {e}");
        }
    }

    fn segments_info(&self, g: &SegmentSink) -> proto::SegmentsInfo {
        segments_info(g.progress(), self.uploads.segments.as_ref())
    }

    /// UpdateStream: adds and removes URLs; removing the last one of an egress without a file ends it.
    pub(crate) fn update_streams(
        &self,
        add: &[String],
        remove: &[String],
    ) -> Result<proto::EgressInfo, super::EgressError> {
        use super::request::RequestError;
        for url in add {
            self.streams
                .add(url)
                .map_err(|e| RequestError::Invalid { field: "add_output_urls", why: e.to_string() })?;
        }
        for url in remove {
            self.streams
                .remove(url)
                .map_err(|e| RequestError::Invalid { field: "remove_output_urls", why: e.to_string() })?;
        }
        if self.path.is_none() && self.segments.is_none() && self.images.is_empty() && self.streams.live() == 0 {
            tracing::info!(egress_id = %self.id, "its last stream was removed: ending");
            return Ok(self.request_stop(StopReason::AllStreamsStopped));
        }
        // LiveKit reports stream changes as an update.
        Ok(self.update("egress_updated", |_| {}))
    }

    fn lock(&self) -> MutexGuard<'_, proto::EgressInfo> {
        crate::sync::lock(&self.info)
    }

    pub fn status(&self) -> S {
        S::try_from(self.lock().status).unwrap_or(S::EgressFailed)
    }

    pub(crate) fn is_active(&self) -> bool {
        matches!(self.status(), S::EgressStarting | S::EgressActive | S::EgressEnding)
    }

    /// Changes the status (and whatever else `f` sets), then tells the webhooks.
    fn update(&self, event: &str, f: impl FnOnce(&mut proto::EgressInfo)) -> proto::EgressInfo {
        let info = {
            let mut i = self.lock();
            f(&mut i);
            i.updated_at = unix_ns();
            self.fill_streams(&mut i);
            i.clone()
        };
        self.webhooks.send(event, &info);
        info
    }

    /// Stops the recording; it finalises its outputs and the job completes. The first
    /// reason given is the one EgressInfo's details will name.
    pub(crate) fn request_stop(&self, reason: StopReason) -> proto::EgressInfo {
        crate::sync::lock(&self.stop_reason).get_or_insert(reason);
        let info = if self.status() == S::EgressEnding {
            self.info()
        } else {
            self.update("egress_updated", |i| i.status = S::EgressEnding as i32)
        };
        self.stop.stop();
        info
    }

    /// Bytes this job has uploaded so far, all its outputs together.
    pub(crate) fn uploaded_bytes(&self) -> u64 {
        self.uploads.all().map(Uploader::uploaded_bytes).sum()
    }

    /// Sets the layout of the running recording (a template's is set in the room, so it
    /// comes without one) and records it in the request.
    pub(crate) fn set_layout(&self, name: &str, layout: Option<crate::layout::Layout>) -> proto::EgressInfo {
        if let (Some(l), Some(layout)) = (&self.layout, layout) {
            l.set(layout);
        }
        let mut i = self.lock();
        if let Some(proto::egress_info::Request::RoomComposite(r)) = &mut i.request {
            r.layout = name.into();
        }
        if let Some(proto::egress_info::Request::Egress(r)) = &mut i.request
            && let Some(proto::start_egress_request::Source::Template(t)) = &mut r.source
        {
            t.layout = name.into();
        }
        i.updated_at = unix_ns();
        i.clone()
    }

    /// Each stream's status, start and retries: what makes a stream update worth reporting.
    fn stream_states(&self) -> Vec<(i32, bool, u32)> {
        self.streams.progress().iter().map(|s| (s.status as i32, s.started_at != 0, s.retries)).collect()
    }

    /// The final status for what ran (see `outcome`), with why it was asked to stop.
    fn outcome(&self, ran: &Ran<'_>, limit: Option<std::time::Duration>) -> Outcome {
        let asked = *crate::sync::lock(&self.stop_reason);
        outcome(ran, asked, limit)
    }

    /// Resolves once the job has ended.
    pub async fn ended(&self) {
        let mut rx = self.done.subscribe();
        let _ = rx.wait_for(|d| *d).await;
    }

    /// Runs the recording to its end and reports each step. A panic or error ends
    /// only this job.
    pub async fn run(self: Arc<Self>, rec: Recording, limit: Option<std::time::Duration>) {
        self.webhooks.send("egress_started", &self.info());
        let stats = rec.run_context().stats.clone();
        let stop = self.stop.clone();
        let mut recording = tokio::spawn(async move {
            match rec {
                Recording::Room(r) => recorder::record(r, stop).await.map_err(Failure::from),
                Recording::Browser(b) => crate::browser::record(b, stop).await.map_err(Failure::from),
                Recording::Track(t) => recorder::track::record(t, stop).await.map_err(Failure::from),
            }
        });
        let mut active = false;
        // A stream that connects, retries or fails is an update, as LiveKit sends one.
        let mut streams_seen = self.stream_states();
        let mut poll = tokio::time::interval(std::time::Duration::from_millis(500));
        let outcome = loop {
            tokio::select! {
                _ = stats.wait_started(), if !active => {
                    active = true;
                    if self.status() == S::EgressStarting {
                        // EgressInfo.started_at is when the egress was accepted (LiveKit's);
                        // each output's started_at is when its media began.
                        let at = stats.started_at_ns().unwrap_or_else(unix_ns);
                        self.update("egress_updated", |i| {
                            i.status = S::EgressActive as i32;
                            if let Some(f) = i.file_results.first_mut() {
                                f.started_at = at;
                            }
                        });
                        tracing::info!(egress_id = %self.id, "recording");
                    }
                }
                _ = poll.tick() => {
                    let now = self.stream_states();
                    if now != streams_seen && self.is_active() {
                        streams_seen = now;
                        self.update("egress_updated", |_| {});
                    }
                }
                r = &mut recording => break r,
            }
        };
        if self.status() != S::EgressEnding {
            self.update("egress_updated", |i| i.status = S::EgressEnding as i32);
        }
        let info = match outcome {
            Ok(Ok(summary)) => self.finish(summary, limit).await,
            Ok(Err(Failure::Aborted(why))) => self.abort(self.outcome(&Ran::Aborted(&why), limit)).await,
            Ok(Err(Failure::Failed { why, code })) => {
                self.fail(self.outcome(&Ran::Failed { why: &why, code }, limit)).await
            }
            Err(join) => {
                let why = if join.is_panic() { "the recording panicked" } else { "the recording was cancelled" };
                self.fail(self.outcome(&Ran::Failed { why, code: 500 }, limit)).await
            }
        };
        tracing::info!(
            egress_id = %self.id,
            status = proto::EgressStatus::try_from(info.status).map(|s| s.as_str_name()).unwrap_or("?"),
            error = %info.error,
            "egress ended"
        );
        let _ = self.done.send(true);
    }

    async fn finish(&self, s: RecordSummary, limit: Option<std::time::Duration>) -> proto::EgressInfo {
        let now = unix_ns();
        let started = self.stats.started_at_ns();
        let recorded = started.is_some() && s.duration_s > 0.0;
        if !recorded {
            // Nothing was ever recorded: LiveKit's ABORTED, and no empty file left behind.
            let end = self.outcome(
                &Ran::Finished {
                    ended_by: &s.ended_by,
                    recorded,
                    file_error: None,
                    upload_failure: None,
                    streams_failure: None,
                },
                limit,
            );
            if self.path.is_some() {
                let _ = std::fs::remove_file(&s.file.path);
            }
            self.drain_uploads().await;
            return self.update("egress_ended", |i| {
                end.apply(i);
                i.ended_at = now;
                i.file_results.clear();
                i.result = None;
            });
        }
        let size = std::fs::metadata(&s.file.path).map(|m| m.len()).unwrap_or(s.file.bytes);
        // The file goes up once finished; segments and images went as they were made.
        if self.path.is_some()
            && s.file.file_error.is_none()
            && let Some(u) = &self.uploads.file
        {
            u.put(&s.file.path, true);
        }
        let mut failed = self.drain_uploads().await;
        // Streams that gave up make the egress FAILED only when nothing else was recorded.
        let streams = self.streams.progress();
        let all_failed = self.path.is_none()
            && self.segments.is_none()
            && !streams.is_empty()
            && streams.iter().all(|st| st.status == StreamStatus::Failed);
        let streams_failure = all_failed
            .then(|| streams.iter().map(|st| format!("{} ({})", st.url, st.error)).collect::<Vec<_>>().join("; "));
        let file_location = self
            .uploads
            .file
            .as_ref()
            .and_then(|u| u.location_of(&s.file.path))
            .unwrap_or_else(|| s.file.path.to_string_lossy().into_owned());
        let mut info = self.lock().clone();
        info.room_id = s.room_sid.clone();
        info.ended_at = now;
        if let Some(f) = info.file_results.first_mut() {
            f.filename = f.filename.replace("{room_id}", &s.room_sid);
            // A track egress names its file once the track is known (placeholders, extension).
            if !s.file.path.ends_with(&f.filename)
                && let Some(rel) =
                    [&self.staging_dir, &self.local_dir].into_iter().find_map(|d| s.file.path.strip_prefix(d).ok())
            {
                f.filename = rel.to_string_lossy().into_owned();
            }
            f.location = file_location;
            f.size = size as i64;
            f.duration = (s.duration_s * 1e9) as i64;
            f.started_at = started.unwrap_or(now);
            f.ended_at = now;
        }
        self.fill_streams(&mut info);
        // The manifest lists where everything went, so it is written once the rest is up.
        failed.extend(self.write_manifest(&mut info).await);
        let failed = self.keep(failed);
        if let Some(f) = info.file_results.first_mut()
            && let Some(kept) = failed.iter().find(|(p, _)| p.ends_with(&f.filename))
        {
            f.location = kept.0.to_string_lossy().into_owned();
        }
        self.remove_staging();
        let upload_failure = (!failed.is_empty()).then(|| upload_failure(&failed));
        let end = self.outcome(
            &Ran::Finished {
                ended_by: &s.ended_by,
                recorded,
                file_error: s.file.file_error.as_deref(),
                upload_failure: upload_failure.as_deref(),
                streams_failure: streams_failure.as_deref(),
            },
            limit,
        );
        self.update("egress_ended", |i| {
            i.room_id = info.room_id.clone();
            i.ended_at = now;
            i.file_results = info.file_results.clone();
            i.manifest_location = info.manifest_location.clone();
            if let Some(f) = i.file_results.first() {
                #[allow(deprecated)]
                {
                    i.result = Some(proto::egress_info::Result::File(f.clone()));
                }
            }
            end.apply(i);
        })
    }

    /// Waits for every output's uploads (failing ones retried for UPLOAD_GRACE); returns
    /// the files given up on, with why.
    async fn drain_uploads(&self) -> Vec<(PathBuf, String)> {
        let mut failed = Vec::new();
        for u in self.uploads.all() {
            failed.extend(u.finish(UPLOAD_GRACE).await.failed);
        }
        failed
    }

    /// `{egress_id}.json` beside the first output that keeps its manifest, in LiveKit's schema
    /// (`egress_id`, `room_id`, `room_name`, `started_at`, `ended_at`, `files`, `playlists`
    /// with their `segments`, `images` with their `timestamp`), with Tessera's extras beside
    /// (sizes, durations, media times); uploaded through that output's storage only. Returns
    /// the upload failure, if any.
    async fn write_manifest(&self, i: &mut proto::EgressInfo) -> Vec<(PathBuf, String)> {
        use serde_json::json;
        let Some((dir, via)) = &self.manifest else { return Vec::new() };
        let playlists: Vec<_> = self
            .segments
            .iter()
            .map(|g| {
                let info = self.segments_info(g);
                let dir = info.playlist_name.rsplit_once('/').map(|(d, _)| format!("{d}/")).unwrap_or_default();
                let base = info.playlist_location.rsplit_once('/').map(|(d, _)| format!("{d}/")).unwrap_or_default();
                json!({
                    "name": info.playlist_name,
                    "location": info.playlist_location,
                    "live_playlist_name": info.live_playlist_name,
                    "live_playlist_location": info.live_playlist_location,
                    "segments": g.segments().iter().map(|(name, start, dur)| json!({
                        "filename": format!("{dir}{name}"),
                        "location": format!("{base}{name}"),
                        "start_s": start,
                        "duration_s": dur,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let images: Vec<_> = self
            .images
            .iter()
            .flat_map(|im| {
                let progress = im.progress();
                let prefix = progress.filename_prefix;
                let dir = prefix.rsplit_once('/').map(|(d, _)| format!("{d}/")).unwrap_or_default();
                let started = progress.started_at;
                im.written().into_iter().map(move |(name, t)| {
                    let at = chrono::DateTime::<chrono::Utc>::from_timestamp_nanos(started + (t * 1e9) as i64);
                    json!({
                        "filename": format!("{dir}{name}"),
                        "timestamp": at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
                        "media_time_s": t,
                    })
                })
            })
            .collect();
        let manifest = json!({
            "egress_id": i.egress_id,
            "room_id": i.room_id,
            "room_name": i.room_name,
            "started_at": i.started_at,
            "ended_at": i.ended_at,
            "backup_storage_used": i.backup_storage_used,
            "files": i.file_results.iter().map(|f| json!({
                "filename": f.filename, "location": f.location, "size": f.size,
                "duration_ns": f.duration, "started_at": f.started_at, "ended_at": f.ended_at,
            })).collect::<Vec<_>>(),
            "playlists": playlists,
            "images": images,
        });
        let path = dir.join(format!("{}.json", self.id));
        if let Err(e) =
            serde_json::to_vec_pretty(&manifest).map_err(std::io::Error::other).and_then(|b| std::fs::write(&path, b))
        {
            tracing::warn!(egress_id = %self.id, error = %e, "cannot write the manifest");
            return Vec::new();
        }
        i.manifest_location = path.to_string_lossy().into_owned();
        let Some(u) = self.uploads.of(*via) else { return Vec::new() };
        u.put(&path, true);
        let report = u.finish(UPLOAD_GRACE).await;
        if let Some(at) = u.location_of(&path) {
            i.manifest_location = at;
        }
        i.backup_storage_used |= report.backup_used;
        report.failed.into_iter().filter(|(p, _)| *p == path).collect()
    }

    /// Files whose upload was given up leave the staging directory for the local directory, at
    /// the path they were asked for (where a local output would have been), unless something
    /// is there already; returns where each one is now, with why its upload failed.
    fn keep(&self, failed: Vec<(PathBuf, String)>) -> Vec<(PathBuf, String)> {
        failed
            .into_iter()
            .map(|(path, why)| {
                let Ok(rel) = path.strip_prefix(&self.staging_dir) else { return (path, why) };
                let target = self.local_dir.join(rel);
                let moved = !target.exists()
                    && target.parent().is_none_or(|d| std::fs::create_dir_all(d).is_ok())
                    && std::fs::rename(&path, &target).is_ok();
                (if moved { target } else { path }, why)
            })
            .collect()
    }

    /// Removes the staging directory's empty folders once its files are up (a file whose
    /// upload failed stays, named in the error).
    fn remove_staging(&self) {
        fn prune(dir: &std::path::Path) -> bool {
            let Ok(entries) = std::fs::read_dir(dir) else { return false };
            let mut empty = true;
            for e in entries.flatten() {
                let p = e.path();
                empty &= p.is_dir() && prune(&p);
            }
            empty && std::fs::remove_dir(dir).is_ok()
        }
        prune(&self.staging_dir);
        if let Some(parent) = self.staging_dir.parent() {
            let _ = std::fs::remove_dir(parent); // `.staging` itself, when no other egress uses it
        }
    }

    async fn fail(&self, end: Outcome) -> proto::EgressInfo {
        // What was already handed over (segments, images) still goes up, or is kept.
        let failed = self.drain_uploads().await;
        self.keep(failed);
        // A file that never got media (its subject never came) is not left behind.
        if self.stats.started_at_ns().is_none()
            && let Some(p) = &self.path
        {
            let _ = std::fs::remove_file(p);
        }
        self.remove_staging();
        let now = unix_ns();
        self.update("egress_ended", |i| {
            end.apply(i);
            i.ended_at = now;
        })
    }

    /// Ended before anything was recorded (no start signal): LiveKit's ABORTED, code 412.
    async fn abort(&self, end: Outcome) -> proto::EgressInfo {
        self.drain_uploads().await;
        if let Some(p) = &self.path {
            let _ = std::fs::remove_file(p);
        }
        self.remove_staging();
        let now = unix_ns();
        self.update("egress_ended", |i| {
            end.apply(i);
            i.ended_at = now;
            i.file_results.clear();
            i.result = None;
        })
    }
}

/// An HLS output's progress as LiveKit's SegmentsInfo; a playlist's location is its upload's
/// once it is up, else its local path.
pub(crate) fn segments_info(p: SegmentsProgress, uploader: Option<&Uploader>) -> proto::SegmentsInfo {
    let location = |path: &std::path::Path| {
        uploader.and_then(|u| u.location_of(path)).unwrap_or_else(|| path.to_string_lossy().into_owned())
    };
    proto::SegmentsInfo {
        playlist_name: p.playlist_name,
        live_playlist_name: p.live_playlist_name,
        duration: p.duration_us * 1000,
        size: p.bytes,
        playlist_location: location(&p.playlist_path),
        live_playlist_location: p.live_playlist_path.as_deref().map(location).unwrap_or_default(),
        segment_count: p.segment_count,
        started_at: p.started_at,
        ended_at: p.ended_at,
    }
}

/// A stream's progress as LiveKit's StreamInfo.
pub fn stream_info(p: StreamProgress) -> proto::StreamInfo {
    use proto::stream_info::Status as S;
    proto::StreamInfo {
        url: p.url,
        status: match p.status {
            StreamStatus::Active => S::Active,
            StreamStatus::Finished => S::Finished,
            StreamStatus::Failed => S::Failed,
        } as i32,
        started_at: p.started_at,
        ended_at: p.ended_at,
        duration: p.duration,
        retries: p.retries,
        last_retry_at: p.last_retry_at,
        error: p.error,
    }
}

/// An image output's progress as LiveKit's ImagesInfo.
pub(crate) fn images_info(p: ImagesProgress) -> proto::ImagesInfo {
    proto::ImagesInfo {
        filename_prefix: p.filename_prefix,
        image_count: p.count,
        started_at: p.started_at,
        ended_at: p.ended_at,
    }
}

/// EgressInfo's error when uploads were given up: where and why (never a credential), and
/// which files were kept on disk instead.
fn upload_failure(failed: &[(PathBuf, String)]) -> String {
    let kept: Vec<String> = failed.iter().map(|(p, _)| p.display().to_string()).collect();
    let shown =
        if kept.len() > 5 { format!("{} and {} more", kept[..5].join(", "), kept.len() - 5) } else { kept.join(", ") };
    format!("{}; kept on disk instead: {shown}", failed[0].1)
}

/// How a recording that did not finish ended, with LiveKit's codes.
enum Failure {
    Aborted(String),
    Failed { why: String, code: i32 },
}

impl From<recorder::RecordError> for Failure {
    fn from(e: recorder::RecordError) -> Self {
        // LiveKit's NotFound for a participant or track that never came.
        let code = match e {
            recorder::RecordError::NotFound(_) => 404,
            // The request's own fault: a video track for a websocket, a codec not written as sent.
            recorder::RecordError::Track(_) => 400,
            _ => 500,
        };
        Failure::Failed { why: e.to_string(), code }
    }
}

impl From<BrowserError> for Failure {
    fn from(e: BrowserError) -> Self {
        match e {
            BrowserError::NoStartSignal => Failure::Aborted(e.to_string()),
            // The page's fault: LiveKit answers these with InvalidArgument (400).
            BrowserError::PageLoad(_) | BrowserError::Template(_) | BrowserError::StartTimeout(_) => {
                Failure::Failed { why: e.to_string(), code: 400 }
            }
            _ => Failure::Failed { why: e.to_string(), code: 500 },
        }
    }
}
