//! Egress jobs: the manager turns API requests into running jobs (one per egress,
//! all in this process, sharing the renderer's device), admits them against a CPU
//! budget, lists, updates and stops them, and keeps finished ones listed for a while.

pub mod job;
pub(crate) mod outcome;
pub(crate) mod redact;
pub mod request;
pub(crate) mod room_service;
pub mod webhook;

use crate::browser::BrowserJob;
use crate::config::ServiceConfig;
use crate::layout::LayoutSet;
use crate::output::images::ImageSink;
use crate::output::segments::SegmentSink;
use crate::output::stream::StreamSet;
use crate::recorder::track::TrackJob;
use crate::recorder::{RecordJob, token};
use crate::recording::{Media, Outputs, RecordingSpec, RunContext, Subject};
use crate::render::Backend;
use crate::upload::config::{StorageConfig, StorageSpec};
use crate::upload::queue::Uploader;
use job::{Job, Recording};
use livekit_protocol as proto;
use request::{CompositeRequest, PlanContext, PlanSource, RequestError};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use thiserror::Error;

use crate::time::unix_ns;

/// Why a call on the manager was refused; the API maps each to a Twirp code.
#[derive(Debug, Error)]
pub enum EgressError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error("egress {0:?} not found")]
    NotFound(String),
    #[error("egress {id} is {status}; {what}")]
    NotActive { id: String, status: &'static str, what: &'static str },
    #[error("not enough CPU for this egress: it needs {need:.2} cores and {free:.2} of {budget:.2} are free")]
    Exhausted { need: f64, free: f64, budget: f64 },
    #[error("the service is shutting down and takes no new egress")]
    Draining,
    #[error("egress {0} is running here already")]
    AlreadyExists(String),
    #[error("{0}")]
    Internal(String),
}

pub struct Manager {
    cfg: ServiceConfig,
    /// The service's storage block, its default storage and the backup (checked at start).
    storage_block: Option<StorageConfig>,
    default_storage: Option<StorageSpec>,
    backup_storage: Option<StorageSpec>,
    layouts: LayoutSet,
    layout_names: Vec<String>,
    output_dir: PathBuf,
    backend: Backend,
    jobs: Mutex<Vec<Arc<Job>>>,
    webhooks: webhook::Notifier,
    draining: AtomicBool,
    pub counters: Counters,
}

/// Totals since start, for the metrics.
#[derive(Default)]
pub struct Counters {
    pub started: std::sync::atomic::AtomicU64,
    pub refused: std::sync::atomic::AtomicU64,
    /// Fleet mode: StartEgress requests bid for, won, and declined (full, draining, Redis away).
    pub fleet_bids: std::sync::atomic::AtomicU64,
    pub fleet_wins: std::sync::atomic::AtomicU64,
    pub fleet_declined: std::sync::atomic::AtomicU64,
    /// Fleet mode's Redis: 0 not in a fleet, 1 connected, 2 away.
    pub fleet_redis: std::sync::atomic::AtomicU8,
}

impl Manager {
    /// Needs a tokio runtime (webhook delivery runs on it).
    pub fn new(cfg: ServiceConfig, layouts: LayoutSet) -> Result<Arc<Self>, EgressError> {
        std::fs::create_dir_all(&cfg.output_dir).map_err(|e| {
            EgressError::Internal(format!("cannot create output_dir {}: {e}", cfg.output_dir.display()))
        })?;
        let output_dir = std::fs::canonicalize(&cfg.output_dir).map_err(|e| EgressError::Internal(e.to_string()))?;
        let backend: Backend =
            cfg.renderer.parse().map_err(|e| EgressError::Internal(format!("invalid config: renderer: {e}")))?;
        let webhooks = webhook::Notifier::start(&cfg.webhook.urls, cfg.webhook_key(), &cfg.api_secret);
        let layout_names = layouts.names();
        let bad = |e: crate::upload::config::StorageConfigError| EgressError::Internal(format!("invalid config: {e}"));
        let storage_block = cfg.storage_block().map_err(bad)?;
        let default_storage = cfg.storage_spec().map_err(bad)?;
        let backup_storage = cfg.backup_spec().map_err(bad)?;
        Ok(Arc::new(Self {
            storage_block,
            default_storage,
            backup_storage,
            cfg,
            layouts,
            layout_names,
            output_dir,
            backend,
            jobs: Mutex::default(),
            webhooks,
            draining: AtomicBool::new(false),
            counters: Counters::default(),
        }))
    }

    pub fn config(&self) -> &ServiceConfig {
        &self.cfg
    }

    pub fn output_dir(&self) -> &std::path::Path {
        &self.output_dir
    }

    fn jobs(&self) -> JobList<'_> {
        crate::sync::lock(&self.jobs)
    }

    pub fn all_jobs(&self) -> Vec<Arc<Job>> {
        self.jobs().clone()
    }

    /// The ids of the jobs still running (fleet mode's ListActiveEgress).
    pub(crate) fn active_ids(&self) -> Vec<String> {
        self.jobs().iter().filter(|j| j.is_active()).map(|j| j.id.clone()).collect()
    }

    pub fn budget(&self) -> f64 {
        self.cfg.cpu_cost.budget()
    }

    /// Cores held by running jobs.
    pub(crate) fn committed(&self) -> f64 {
        committed_by(&self.jobs())
    }

    /// Whether a default room composite would be admitted now (the health answer).
    pub(crate) fn can_accept(&self) -> bool {
        !self.draining.load(Ordering::SeqCst)
            && self.committed() + self.cfg.cpu_cost.room_composite_cpu_cost <= self.budget() + 1e-9
    }

    pub async fn start_room_composite(
        &self,
        req: proto::RoomCompositeEgressRequest,
    ) -> Result<proto::EgressInfo, EgressError> {
        self.start_request(proto::egress_info::Request::RoomComposite(req)).await
    }

    /// Starts any request of the Egress API: a room's id is looked up first (a page has none).
    async fn start_request(&self, request: proto::egress_info::Request) -> Result<proto::EgressInfo, EgressError> {
        let mut c = composite_request(&request)?;
        if c.web.is_none() {
            c.room_id = self.room_sid(&c.room_name).await;
        }
        self.start(c, request)
    }

    /// Starts a job a LiveKit server handed out (fleet mode): its egress id and room id are
    /// the server's, its every change goes to `reporter`, and the request's own webhooks are
    /// left to the server (it sends them from the EgressInfo it is given).
    pub(crate) fn start_dispatched(
        &self,
        dispatch: Dispatch,
        request: proto::egress_info::Request,
    ) -> Result<proto::EgressInfo, EgressError> {
        let mut c = composite_request(&request)?;
        c.room_id = dispatch.room_id.clone();
        self.start_as(c, request, Some(dispatch))
    }

    /// The cores a request would be admitted for, without starting anything (a fleet bid).
    pub(crate) fn quote(&self, request: &proto::egress_info::Request) -> Result<f64, EgressError> {
        let c = composite_request(request)?;
        let staging = self.output_dir.join(STAGING).join("quote");
        let plan = request::plan(&c, &self.plan_context(&self.output_dir, &staging))?;
        Ok(self.cost(&plan, source_type(&c) == proto::EgressSourceType::Sdk))
    }

    /// What a plan is made against: this service's directories, storage, layouts and key.
    fn plan_context<'a>(&'a self, local_dir: &'a std::path::Path, staging_dir: &'a std::path::Path) -> PlanContext<'a> {
        PlanContext {
            output_dir: &self.output_dir,
            local_dir,
            staging_dir,
            api_key: &self.cfg.api_key,
            layouts: &self.layout_names,
            now: chrono::Utc::now(),
            storage: self.storage_block.as_ref(),
            default_storage: self.default_storage.as_ref(),
            disallow_local: self.cfg.disallow_local_storage,
            follow_links: self.cfg.follow_links_out_of_output_dir,
        }
    }

    /// Cores free now.
    pub(crate) fn free(&self) -> f64 {
        (self.budget() - self.committed()).max(0.0)
    }

    pub async fn start_participant(
        &self,
        req: proto::ParticipantEgressRequest,
    ) -> Result<proto::EgressInfo, EgressError> {
        self.start_request(proto::egress_info::Request::Participant(req)).await
    }

    pub async fn start_track_composite(
        &self,
        req: proto::TrackCompositeEgressRequest,
    ) -> Result<proto::EgressInfo, EgressError> {
        self.start_request(proto::egress_info::Request::TrackComposite(req)).await
    }

    pub(crate) async fn start_web(&self, req: proto::WebEgressRequest) -> Result<proto::EgressInfo, EgressError> {
        self.start_request(proto::egress_info::Request::Web(req)).await
    }

    pub(crate) async fn start_egress(&self, req: proto::StartEgressRequest) -> Result<proto::EgressInfo, EgressError> {
        self.start_request(proto::egress_info::Request::Egress(req)).await
    }

    /// The room's sid from the server (`ws_url`'s RoomService), as LiveKit's server knows it
    /// when it hands out an egress; empty when the room is not open yet or the server does
    /// not answer within a second (the recorder learns it on joining).
    async fn room_sid(&self, room: &str) -> String {
        if room.trim().is_empty() {
            return String::new();
        }
        let c = &self.cfg;
        let lookup = room_service::room_sid(&c.ws_url, &c.api_key, &c.api_secret, room);
        match tokio::time::timeout(Duration::from_secs(1), lookup).await {
            Ok(Ok(Some(sid))) => sid,
            Ok(Ok(None)) => {
                tracing::debug!(room, "the room is not open yet: its id comes when the recorder joins");
                String::new()
            }
            Ok(Err(e)) => {
                tracing::debug!(room, error = %e, "cannot look the room's id up");
                String::new()
            }
            Err(_) => String::new(),
        }
    }

    /// StartTrackEgress: one track written as it was sent, or its audio to a websocket.
    pub async fn start_track(&self, req: proto::TrackEgressRequest) -> Result<proto::EgressInfo, EgressError> {
        self.start_request(proto::egress_info::Request::Track(req)).await
    }

    /// Plans the request, admits it, then builds its outputs and starts it. Everything that
    /// can refuse it (the plan, admission, the layout, the token, stream URLs, directories)
    /// comes before anything is started, so a refused request leaves nothing behind.
    fn start(
        &self,
        c: CompositeRequest,
        request: proto::egress_info::Request,
    ) -> Result<proto::EgressInfo, EgressError> {
        self.start_as(c, request, None)
    }

    fn start_as(
        &self,
        c: CompositeRequest,
        request: proto::egress_info::Request,
        dispatch: Option<Dispatch>,
    ) -> Result<proto::EgressInfo, EgressError> {
        if self.draining.load(Ordering::SeqCst) {
            return Err(EgressError::Draining);
        }
        let id = dispatch.as_ref().map(|d| d.egress_id.clone()).unwrap_or_else(new_egress_id);
        // The job list stays held from admission to the job's registration, so that two
        // requests can neither take the same local names nor both take the last cores.
        let (plan, cost, mut jobs) = self.admit(&c, &id)?;
        let (job, recording, info) = self.build(&id, &c, request, &plan, cost, dispatch)?;
        self.forget_old(&mut jobs);
        jobs.push(job.clone());
        drop(jobs);
        self.counters.started.fetch_add(1, Ordering::Relaxed);
        let file = plan.file.as_ref().map(|f| f.filename.as_str()).unwrap_or("-");
        let redacted: Vec<String> = plan.streams.iter().map(|u| crate::secrets::redact(u)).collect();
        tracing::info!(egress_id = %id, room = %plan.room_name, layout = %plan.layout, file, streams = ?redacted, "egress starting");
        tokio::spawn(job.run(recording, self.session_limit(&plan)));
        Ok(info)
    }

    /// Plans the request and admits it: its local names free, its cores within the budget.
    /// Returns the plan, its cost and the job list, still held.
    fn admit(&self, c: &CompositeRequest, id: &str) -> Result<(request::Plan, f64, JobList<'_>), EgressError> {
        // Outputs that are uploaded are written first in a directory of this egress's own
        // (LiveKit's per-egress directory), so two egresses given the same names never share
        // a local file; their objects still get the asked keys.
        let staging_dir = self.output_dir.join(STAGING).join(id);
        let own_dir = self.output_dir.join(id);
        let ctx = |local_dir| self.plan_context(local_dir, &staging_dir);
        let mut plan = request::plan(c, &ctx(&self.output_dir))?;
        let jobs = self.jobs();
        // A server retrying a StartEgress sends the same egress id again.
        if jobs.iter().any(|j| j.id == id) {
            return Err(EgressError::AlreadyExists(id.into()));
        }
        let claims = plan.local_claims();
        if let Some(other) = jobs.iter().find(|j| j.is_active() && j.claims.iter().any(|p| claims.contains(p))) {
            // A running egress writes these names already: this one writes under its own id.
            tracing::info!(egress_id = %id, other = %other.id, dir = %own_dir.display(), "local output names in use; writing in the egress's own directory");
            plan = request::plan(c, &ctx(&own_dir))?;
        }
        let cost = self.cost(&plan, source_type(c) == proto::EgressSourceType::Sdk);
        let committed = committed_by(&jobs);
        let budget = self.budget();
        if committed + cost > budget + 1e-9 {
            self.counters.refused.fetch_add(1, Ordering::Relaxed);
            return Err(EgressError::Exhausted { need: cost, free: (budget - committed).max(0.0), budget });
        }
        Ok((plan, cost, jobs))
    }

    /// Builds an admitted job: what it records, its outputs (the first things that start
    /// workers come after everything that can still refuse it), its EgressInfo.
    fn build(
        &self,
        id: &str,
        c: &CompositeRequest,
        request: proto::egress_info::Request,
        plan: &request::Plan,
        cost: f64,
        dispatch: Option<Dispatch>,
    ) -> Result<(Arc<Job>, Recording, proto::EgressInfo), EgressError> {
        let source = self.source(plan, id)?;
        // Thread names hold 15 bytes: "EG_" and 12 characters.
        let thread_name: String = id.chars().take(15).collect();
        let streams = StreamSet::new(&plan.streams, &thread_name)
            .map_err(|e| RequestError::Invalid { field: "stream_outputs", why: e.to_string() })?;
        if let Some(dir) = plan.file.as_ref().and_then(|f| f.path.parent()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| EgressError::Internal(format!("cannot create {}: {e}", dir.display())))?;
        }

        // Admitted and valid: build the outputs (these start workers) and the job.
        let uploader = |spec: &Option<StorageSpec>| {
            spec.clone().map(|s| Uploader::start(s, self.backup_storage.clone(), &plan.staging_dir, id))
        };
        let uploads = job::Uploads {
            file: uploader(&plan.file_storage),
            segments: uploader(&plan.segments_storage),
            images: plan.images_storage.iter().map(uploader).collect(),
        };
        let mut sinks: Vec<Arc<dyn crate::output::stream::PacketSink>> = vec![streams.clone()];
        let segments =
            plan.segments.clone().map(|g| Arc::new(SegmentSink::new(g, upload_on_written(&uploads.segments))));
        if let Some(g) = &segments {
            sinks.push(g.clone());
        }
        let images: Vec<_> = plan
            .images
            .iter()
            .zip(&uploads.images)
            .map(|(i, u)| ImageSink::new(i.clone(), &thread_name, upload_on_written(u)))
            .collect();
        let limit = self.session_limit(plan);
        let spec = RecordingSpec {
            encoding: plan.encoding.clone(),
            media: Media::from_flags(plan.audio_only, plan.video_only),
            limit,
            outputs: Outputs { file: plan.file.as_ref().map(|f| f.path.clone()), sinks, images: images.clone() },
        };
        let run = RunContext::named(&thread_name);
        let recording = match source {
            Source::Track { token, track } => {
                let mut t = TrackJob::new(&self.cfg.ws_url, &token, &track.track_id);
                t.file = plan.file.as_ref().map(|f| f.path.clone());
                t.websocket = track.websocket;
                t.limit = limit;
                t.run = run;
                t.network = self.cfg.rtc.network();
                t.max_wait = self.cfg.latency.jitter_buffer_latency.unwrap_or(t.max_wait);
                Recording::Track(t)
            }
            Source::Room { token, layout } => {
                let mut rec = RecordJob::with_spec(&self.cfg.ws_url, &token, layout, spec);
                rec.run = run;
                rec.backend = self.backend;
                rec.network = self.cfg.rtc.network();
                rec.layouts = Some(self.layouts.clone());
                rec.mixing = plan.mixing;
                if plan.subject != Subject::Room {
                    // A participant or track egress has no room layout to switch.
                    rec.subject = plan.subject.clone();
                    rec.layouts = None;
                }
                let l = &self.cfg.latency;
                rec.max_wait = l.jitter_buffer_latency.unwrap_or(rec.max_wait);
                rec.audio_delay = l.audio_mixer_latency.unwrap_or(rec.audio_delay);
                rec.video_delay = l.pipeline_latency.unwrap_or(rec.video_delay);
                Recording::Room(rec)
            }
            Source::Page { url, await_start_signal } => Recording::Browser(BrowserJob {
                url,
                await_start_signal,
                start_signal_timeout: self.cfg.browser.start_timeout,
                spec,
                run,
                insecure: self.cfg.insecure,
                work_dir: std::env::temp_dir().join(format!("tessera-{id}")),
            }),
        };
        // The request leaves the service only inside EgressInfo, so it is redacted here, once.
        let request = redact::request(request);
        let now = unix_ns();
        let file = plan.file.as_ref().map(|f| proto::FileInfo { filename: f.filename.clone(), ..Default::default() });
        let stream_results: Vec<_> = streams.progress().into_iter().map(job::stream_info).collect();
        let segment_results: Vec<_> =
            segments.iter().map(|g| job::segments_info(g.progress(), uploads.segments.as_ref())).collect();
        #[allow(deprecated)]
        let result = match (&file, segment_results.first()) {
            (Some(f), _) => Some(proto::egress_info::Result::File(f.clone())),
            (None, Some(g)) => Some(proto::egress_info::Result::Segments(g.clone())),
            (None, None) => {
                Some(proto::egress_info::Result::Stream(proto::StreamInfoList { info: stream_results.clone() }))
            }
        };
        #[allow(deprecated)]
        let info = proto::EgressInfo {
            egress_id: id.to_string(),
            room_name: plan.room_name.clone(),
            room_id: c.room_id.clone(),
            source_type: source_type(c) as i32,
            status: proto::EgressStatus::EgressStarting as i32,
            // LiveKit's started_at is when the egress was accepted; each output has its own.
            started_at: now,
            updated_at: now,
            file_results: file.into_iter().collect(),
            stream_results,
            segment_results,
            image_results: images.iter().map(|i| job::images_info(i.progress())).collect(),
            result,
            request: Some(request),
            ..Default::default()
        };
        let notifier = match dispatch {
            // The dispatching server sends the request's own webhooks.
            Some(d) => self.webhooks.clone().with_reporter(d.reporter),
            None => self.webhooks.clone().with(webhook::Notifier::start_filtered(
                &plan.webhooks,
                &self.cfg.api_key,
                &self.cfg.api_secret,
            )),
        };
        let outputs = job::JobOutputs { streams, segments, images, uploads };
        let job = Job::new(info.clone(), plan, &recording, outputs, cost, notifier);
        Ok((job, recording, info))
    }

    /// What the job records, resolved before anything starts: the room with its token and
    /// layout, or a page (a template's URL carries the layout, the server URL and a token).
    fn source(&self, plan: &request::Plan, id: &str) -> Result<Source, EgressError> {
        let token = || {
            token::mint(&self.cfg.api_key, &self.cfg.api_secret, &plan.room_name, id)
                .map_err(|e| EgressError::Internal(e.to_string()))
        };
        if let Some(track) = &plan.track {
            return Ok(Source::Track { token: token()?, track: track.clone() });
        }
        Ok(match &plan.source {
            PlanSource::Native if plan.subject != Subject::Room => Source::Room {
                token: token()?,
                layout: crate::layout::LayoutSet::participant().map_err(|e| EgressError::Internal(e.to_string()))?,
            },
            PlanSource::Native => Source::Room {
                token: token()?,
                layout: self
                    .layouts
                    .resolve(&plan.layout)
                    .map_err(|e| RequestError::Invalid { field: "layout", why: e.to_string() })?,
            },
            // LiveKit's template contract: layout, url and token appended.
            PlanSource::Template { base_url } => Source::Page {
                url: template_url(base_url, &plan.layout, &self.cfg.ws_url, &token()?)?,
                await_start_signal: true,
            },
            PlanSource::Web { url, await_start_signal } => {
                Source::Page { url: url.clone(), await_start_signal: *await_start_signal }
            }
        })
    }

    /// The shortest session limit among the plan's outputs.
    fn session_limit(&self, plan: &request::Plan) -> Option<Duration> {
        let l = &self.cfg.session_limits;
        let file = plan.file.as_ref().and(l.file_output_max_duration);
        let stream = if plan.streams.is_empty() { None } else { l.stream_output_max_duration };
        let segments = plan.segments.as_ref().and(l.segment_output_max_duration);
        let images = if plan.images.is_empty() { None } else { l.image_output_max_duration };
        [file, stream, segments, images].into_iter().flatten().min()
    }

    /// Tessera's measured cost: the configured room composite cost at 720p30 (a page in
    /// Chromium: the web cost), scaled by pixels per second.
    fn cost(&self, plan: &request::Plan, sdk: bool) -> f64 {
        let c = &self.cfg.cpu_cost;
        if plan.track.is_some() {
            return c.track_cpu_cost;
        }
        let browser = plan.source != PlanSource::Native;
        if plan.audio_only {
            return match (browser, sdk) {
                (true, _) => c.audio_web_cpu_cost,
                (false, true) => c.sdk_audio_room_composite_cpu_cost.unwrap_or(c.audio_room_composite_cpu_cost),
                (false, false) => c.audio_room_composite_cpu_cost,
            };
        }
        let e = &plan.encoding;
        let scale = (e.width as f64 * e.height as f64 * e.framerate as f64) / (1280.0 * 720.0 * 30.0);
        let at_720p30 = match (&plan.subject, browser) {
            (_, true) => c.web_cpu_cost,
            (Subject::Room, false) => c.room_composite_cpu_cost,
            (Subject::Participant { .. } | Subject::Media { .. }, false) => c.participant_cpu_cost,
            (Subject::Tracks { .. }, false) => c.track_composite_cpu_cost,
        };
        at_720p30 * scale.max(0.25)
    }

    /// Drops finished jobs older than `keep_finished`.
    fn forget_old(&self, jobs: &mut Vec<Arc<Job>>) {
        let keep = self.cfg.keep_finished.unwrap_or(Duration::ZERO).as_nanos() as i64;
        let now = unix_ns();
        jobs.retain(|j| j.is_active() || now - j.info().ended_at < keep);
    }

    fn find(&self, id: &str) -> Result<Arc<Job>, EgressError> {
        if id.is_empty() {
            return Err(RequestError::Invalid { field: "egress_id", why: "is required".into() }.into());
        }
        self.jobs().iter().find(|j| j.id == id).cloned().ok_or_else(|| EgressError::NotFound(id.into()))
    }

    fn find_active(&self, id: &str, what: &'static str) -> Result<Arc<Job>, EgressError> {
        let job = self.find(id)?;
        if !job.is_active() {
            return Err(EgressError::NotActive { id: id.into(), status: job.status().as_str_name(), what });
        }
        Ok(job)
    }

    /// Switches a native recording at its next frame. A custom template is told as LiveKit's
    /// server tells it: the recorder participant's metadata becomes `{"layout": ...}` (the
    /// page's layouts are its own, so any name goes). A web page has no layout.
    pub async fn update_layout(&self, req: proto::UpdateLayoutRequest) -> Result<proto::EgressInfo, EgressError> {
        let job = self.find_active(&req.egress_id, "its layout cannot change")?;
        if job.layout.is_none() {
            let room = job.info().room_name;
            if matches!(job.source, PlanSource::Web { .. }) {
                return Err(RequestError::Invalid {
                    field: "egress_id",
                    why: format!("egress {} records a web page, which has no layout", job.id),
                }
                .into());
            }
            let c = &self.cfg;
            room_service::set_template_layout(&c.ws_url, &c.api_key, &c.api_secret, &room, &job.id, &req.layout)
                .await
                .map_err(|e| EgressError::Internal(format!("cannot hand the template its layout: {e}")))?;
            tracing::info!(egress_id = %job.id, layout = %req.layout, "template's layout updated");
            return Ok(job.set_layout(&req.layout, None));
        }
        let name = if req.layout.is_empty() { "grid".to_string() } else { req.layout.clone() };
        let layout = self.layouts.resolve(&name).map_err(|_| RequestError::Invalid {
            field: "layout",
            why: format!("{name:?} is unknown; valid layouts: {}", self.layout_names.join(", ")),
        })?;
        tracing::info!(egress_id = %job.id, layout = %name, "layout updated");
        Ok(job.set_layout(&name, Some(layout)))
    }

    pub fn update_stream(&self, req: proto::UpdateStreamRequest) -> Result<proto::EgressInfo, EgressError> {
        let job = self.find_active(&req.egress_id, "its streams cannot change")?;
        let info = job.update_streams(&req.add_output_urls, &req.remove_output_urls)?;
        tracing::info!(egress_id = %job.id, added = req.add_output_urls.len(), removed = req.remove_output_urls.len(), "streams updated");
        Ok(info)
    }

    /// Every egress in one page (a page token this service never gave is refused).
    pub fn list(&self, req: &proto::ListEgressRequest) -> Result<proto::ListEgressResponse, EgressError> {
        if req.page_token.as_ref().is_some_and(|t| !t.token.is_empty()) {
            return Err(RequestError::Invalid {
                field: "page_token",
                why: "this service answers ListEgress in one page and gives no page tokens".into(),
            }
            .into());
        }
        let items = self
            .jobs()
            .iter()
            .filter(|j| req.egress_id.is_empty() || j.id == req.egress_id)
            .filter(|j| !req.active || j.is_active())
            .map(|j| j.info())
            .filter(|i| req.room_name.is_empty() || i.room_name == req.room_name)
            .collect();
        Ok(proto::ListEgressResponse { items, next_page_token: None })
    }

    pub fn stop(&self, req: &proto::StopEgressRequest) -> Result<proto::EgressInfo, EgressError> {
        let job = self.find_active(&req.egress_id, "it cannot be stopped")?;
        tracing::info!(egress_id = %job.id, "stop requested");
        Ok(job.request_stop(outcome::StopReason::Api))
    }

    /// Takes no new jobs from now on.
    pub(crate) fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Stops every running job.
    pub(crate) fn stop_all(&self) {
        for j in self.jobs().iter().filter(|j| j.is_active()) {
            j.request_stop(outcome::StopReason::ProcessKilled);
        }
    }

    /// Waits until no job runs.
    pub(crate) async fn all_ended(&self) {
        let running: Vec<_> = self.jobs().iter().filter(|j| j.is_active()).cloned().collect();
        for j in running {
            j.ended().await;
        }
    }
}

/// LiveKit's source type: a room composite recorded from the SDK (audio only, no layout, no
/// template) is SDK-sourced; the rest of room composites and web egress run a page: WEB.
fn source_type(c: &CompositeRequest) -> proto::EgressSourceType {
    if c.subject != Subject::Room || c.track.is_some() {
        return proto::EgressSourceType::Sdk;
    }
    if c.web.is_none() && c.audio_only && c.layout.is_empty() && c.custom_base_url.is_empty() {
        proto::EgressSourceType::Sdk
    } else {
        proto::EgressSourceType::Web
    }
}

/// The directory under `output_dir` where uploaded outputs are staged, one directory per egress.
pub(crate) const STAGING: &str = ".staging";

/// A custom template's URL: the base with `layout`, `url` (the LiveKit server) and `token`
/// (a hidden recorder's) set in its query, the base's own parameters kept.
fn template_url(base: &str, layout: &str, ws_url: &str, token: &str) -> Result<String, EgressError> {
    let mut u = reqwest::Url::parse(base)
        .map_err(|e| RequestError::Invalid { field: "custom_base_url", why: format!("{base:?}: {e}") })?;
    let kept: Vec<(String, String)> = u
        .query_pairs()
        .filter(|(k, _)| !matches!(k.as_ref(), "layout" | "url" | "token"))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    u.query_pairs_mut()
        .clear()
        .extend_pairs(kept)
        .append_pair("layout", layout)
        .append_pair("url", ws_url)
        .append_pair("token", token);
    Ok(u.into())
}

/// `EG_` and 12 random characters, as LiveKit's egress ids.
/// What an output's finished files do: go to its uploader (their last versions are then
/// removed locally once up), if it has one.
fn upload_on_written(uploader: &Option<Uploader>) -> Option<crate::output::OnWritten> {
    let u = uploader.clone()?;
    Some(Arc::new(move |path: &std::path::Path, last: bool| u.put(path, last)))
}

/// A job's source, resolved.
enum Source {
    Room { token: String, layout: crate::layout::Layout },
    Track { token: String, track: request::TrackPlan },
    Page { url: String, await_start_signal: bool },
}

/// Cores held by the running jobs of `jobs`.
fn committed_by(jobs: &[Arc<Job>]) -> f64 {
    jobs.iter().filter(|j| j.is_active()).map(|j| j.cost).fold(0.0, |a, b| a + b)
}

/// The job list, held (see `Manager::admit`).
type JobList<'a> = std::sync::MutexGuard<'a, Vec<Arc<Job>>>;

/// A job handed out by a LiveKit server (fleet mode).
pub(crate) struct Dispatch {
    pub egress_id: String,
    pub room_id: String,
    /// Receives the job's EgressInfo at every change.
    pub reporter: tokio::sync::mpsc::UnboundedSender<proto::EgressInfo>,
}

/// What a request asks to record, for the kinds this service records.
fn composite_request(request: &proto::egress_info::Request) -> Result<CompositeRequest, EgressError> {
    use proto::egress_info::Request as R;
    Ok(match request {
        R::RoomComposite(r) => CompositeRequest::from_room_composite(r)?,
        R::Web(r) => CompositeRequest::from_web(r)?,
        R::Egress(r) => CompositeRequest::from_start_egress(r)?,
        R::Participant(r) => CompositeRequest::from_participant(r)?,
        R::TrackComposite(r) => CompositeRequest::from_track_composite(r)?,
        R::Track(r) => CompositeRequest::from_track(r)?,
        _ => {
            return Err(RequestError::Unimplemented(
                "replay export is not implemented; this service records rooms, tracks and web pages".into(),
            )
            .into());
        }
    })
}

pub fn new_egress_id() -> String {
    format!("EG_{}", random_id(12))
}

pub(crate) fn random_id(n: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..n).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file and folder under `dir`.
    fn everything_in(dir: &std::path::Path) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            found.push(e.path());
            if e.path().is_dir() {
                found.extend(everything_in(&e.path()));
            }
        }
        found
    }

    /// Threads of this process named after an egress.
    fn egress_threads() -> usize {
        std::fs::read_dir("/proc/self/task")
            .into_iter()
            .flatten()
            .flatten()
            .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|n| n.starts_with("EG_")))
            .count()
    }

    /// A job from a LiveKit server keeps the server's ids, reports its changes, and a second
    /// StartEgress for the same id (the server retrying) is `already_exists`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dispatched_job_keeps_the_servers_ids_and_a_retry_of_it_already_exists() {
        let dir = std::env::temp_dir().join(format!("tessera-dispatched-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // Nobody at ws_url: the job fails once it runs, which is after what is checked here.
        let yaml =
            format!("api_key: devkey\napi_secret: secret\nws_url: ws://127.0.0.1:9\noutput_dir: {}\n", dir.display());
        let m = Manager::new(ServiceConfig::parse(&yaml).unwrap().config, LayoutSet::builtin().unwrap()).unwrap();
        let request = || {
            proto::egress_info::Request::RoomComposite(proto::RoomCompositeEgressRequest {
                room_name: "r".into(),
                file_outputs: vec![proto::EncodedFileOutput { filepath: "d.mp4".into(), ..Default::default() }],
                ..Default::default()
            })
        };
        assert!(m.quote(&request()).unwrap() > 0.0);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let dispatch = |tx| Dispatch { egress_id: "EG_fromServer01".into(), room_id: "RM_server".into(), reporter: tx };
        let info = m.start_dispatched(dispatch(tx.clone()), request()).unwrap();
        assert_eq!((info.egress_id.as_str(), info.room_id.as_str()), ("EG_fromServer01", "RM_server"));
        let first = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
        assert_eq!(
            (first.egress_id.as_str(), first.status()),
            ("EG_fromServer01", proto::EgressStatus::EgressStarting)
        );
        let again = m.start_dispatched(dispatch(tx), request()).unwrap_err();
        assert!(matches!(again, EgressError::AlreadyExists(ref id) if id == "EG_fromServer01"), "{again}");
        m.stop_all();
        m.all_ended().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_refused_request_leaves_nothing_behind() {
        let dir = std::env::temp_dir().join(format!("tessera-refused-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let yaml = format!(
            "api_key: devkey\napi_secret: secret\noutput_dir: {}\n\
             cpu_cost: {{cpus: 1, max_cpu_utilization: 1.0, room_composite_cpu_cost: 5}}\n\
             storage: {{s3: {{access_key: a, secret: s, region: eu-west-1, endpoint: 'http://127.0.0.1:9', bucket: b}}}}\n",
            dir.display()
        );
        let m = Manager::new(ServiceConfig::parse(&yaml).unwrap().config, LayoutSet::builtin().unwrap()).unwrap();
        let threads = egress_threads();
        // A file, HLS, images and a stream, all uploaded: each would start workers and directories.
        let request = |layout: &str| proto::RoomCompositeEgressRequest {
            room_name: "r".into(),
            layout: layout.into(),
            file_outputs: vec![proto::EncodedFileOutput { filepath: "a/b.mp4".into(), ..Default::default() }],
            segment_outputs: vec![proto::SegmentedFileOutput {
                filename_prefix: "hls/x".into(),
                playlist_name: "x.m3u8".into(),
                ..Default::default()
            }],
            image_outputs: vec![proto::ImageOutput {
                capture_interval: 2,
                filename_prefix: "img/s".into(),
                ..Default::default()
            }],
            stream_outputs: vec![proto::StreamOutput {
                urls: vec!["rtmp://127.0.0.1/live/k".into()],
                ..Default::default()
            }],
            ..Default::default()
        };
        // Over the budget (5 cores asked of 1).
        let e = m.start_room_composite(request("grid")).await.unwrap_err();
        assert!(matches!(e, EgressError::Exhausted { .. }), "{e}");
        assert_eq!(m.committed(), 0.0);
        assert!(m.list(&Default::default()).unwrap().items.is_empty());
        assert_eq!(everything_in(&dir), Vec::<PathBuf>::new(), "left behind");
        assert_eq!(egress_threads(), threads, "threads left behind");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
