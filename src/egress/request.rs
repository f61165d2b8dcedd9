//! Turns an API request into a plan a job can run, checking it the way LiveKit's
//! egress does: outputs resolved (the repeated lists win over the legacy single
//! output), encoding from a preset or checked advanced options, the layout known,
//! the file type inferred and the file name expanded and kept inside the output
//! directory.

pub use crate::egress::webhook::EventFilter;
use crate::encode::{EncodingOptions, H264Profile, Preset};
use crate::output::FileFormat;
pub use crate::recording::{ChannelMixing, Subject};
use crate::upload::config::{StorageConfig, StorageSpec};
use livekit_protocol as proto;
use std::path::{Component, Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// The request is wrong; `field` names the field (as the JSON API spells it).
    #[error("{field}: {why}")]
    Invalid { field: &'static str, why: String },
    /// The request asks for something Tessera does not do yet.
    #[error("{0}")]
    Unimplemented(String),
}

fn invalid(field: &'static str, why: impl Into<String>) -> RequestError {
    RequestError::Invalid { field, why: why.into() }
}

/// A room composite as both request shapes (RoomCompositeEgressRequest and the
/// unified StartEgressRequest with a template source) describe it.
#[derive(Debug, Clone, Default)]
pub struct CompositeRequest {
    pub room_name: String,
    /// The room's sid when the server knows the room (it names `{room_id}`); empty: not yet.
    pub room_id: String,
    pub layout: String,
    pub audio_only: bool,
    pub video_only: bool,
    pub custom_base_url: String,
    pub files: Vec<FileRequest>,
    /// Each stream output's protocol and URLs.
    pub streams: Vec<(i32, Vec<String>)>,
    pub segments: Vec<proto::SegmentedFileOutput>,
    /// Each segments output's own storage.
    pub segments_storage: Vec<Option<proto::StorageConfig>>,
    pub images: Vec<proto::ImageOutput>,
    /// Each images output's own storage.
    pub images_storage: Vec<Option<proto::StorageConfig>>,
    pub preset: Option<i32>,
    pub advanced: Option<proto::EncodingOptions>,
    /// Extra webhooks for this egress.
    pub webhooks: Vec<proto::WebhookConfig>,
    pub audio_mixing: i32,
    /// A web egress: the page, instead of a room.
    pub web: Option<WebSource>,
    /// Whose media: the room (a room composite), one participant or chosen tracks.
    pub subject: Subject,
    /// A track egress: one track written as sent, instead of a composite.
    pub track: Option<TrackRequest>,
}

/// A track egress's track and its websocket output (its file is in `files`).
#[derive(Debug, Clone, Default)]
pub struct TrackRequest {
    pub track_id: String,
    pub websocket_url: Option<String>,
}

/// A file output, from either request shape.
#[derive(Debug, Clone, Default)]
pub struct FileRequest {
    pub file_type: i32,
    pub filepath: String,
    /// The request's own storage for it.
    pub storage: Option<proto::StorageConfig>,
    pub disable_manifest: bool,
}

#[derive(Debug, Clone, Default)]
pub struct WebSource {
    pub url: String,
    pub await_start_signal: bool,
}

/// The outputs and encoding of a v1 request (room composite and web alike): the repeated
/// lists, the legacy single output, the preset or advanced options.
struct V1Outputs<'a> {
    legacy_file: Option<&'a proto::EncodedFileOutput>,
    legacy_stream: Option<&'a proto::StreamOutput>,
    legacy_segments: Option<&'a proto::SegmentedFileOutput>,
    file_outputs: &'a [proto::EncodedFileOutput],
    stream_outputs: &'a [proto::StreamOutput],
    segment_outputs: &'a [proto::SegmentedFileOutput],
    image_outputs: &'a [proto::ImageOutput],
    preset: Option<i32>,
    advanced: Option<proto::EncodingOptions>,
    webhooks: &'a [proto::WebhookConfig],
}

impl V1Outputs<'_> {
    fn into_request(self) -> CompositeRequest {
        // The repeated lists win; the legacy single output counts only when its list is empty
        // (LiveKit's SDKs send a bare file both ways). Two of one kind is an error.
        let files: Vec<_> = if self.file_outputs.is_empty() {
            self.legacy_file.into_iter().collect()
        } else {
            self.file_outputs.iter().collect()
        };
        let segments: Vec<proto::SegmentedFileOutput> = if self.segment_outputs.is_empty() {
            self.legacy_segments.cloned().into_iter().collect()
        } else {
            self.segment_outputs.to_vec()
        };
        CompositeRequest {
            files: files
                .iter()
                .map(|f| FileRequest {
                    file_type: f.file_type,
                    filepath: f.filepath.clone(),
                    storage: f.output.clone().map(file_storage),
                    disable_manifest: f.disable_manifest,
                })
                .collect(),
            streams: if self.stream_outputs.is_empty() {
                self.legacy_stream.iter().map(|s| (s.protocol, s.urls.clone())).collect()
            } else {
                self.stream_outputs.iter().map(|s| (s.protocol, s.urls.clone())).collect()
            },
            segments_storage: segments.iter().map(|g| g.output.clone().map(segments_storage)).collect(),
            segments,
            images: self.image_outputs.to_vec(),
            images_storage: self.image_outputs.iter().map(|i| i.output.clone().map(image_storage)).collect(),
            preset: self.preset,
            advanced: self.advanced,
            webhooks: self.webhooks.to_vec(),
            ..CompositeRequest::default()
        }
    }
}

/// A v1 request's outputs and encoding. Room composite and web requests have the same
/// fields, each with oneof types of its own (`$kind` is the request's proto module).
macro_rules! v1_outputs {
    ($r:expr, $kind:ident) => {{
        use proto::$kind::{Options as O, Output as Out};
        #[allow(deprecated)]
        let (legacy_file, legacy_stream, legacy_segments) = match &$r.output {
            Some(Out::File(f)) => (Some(f), None, None),
            Some(Out::Stream(s)) => (None, Some(s), None),
            Some(Out::Segments(s)) => (None, None, Some(s)),
            None => (None, None, None),
        };
        let (preset, advanced) = match &$r.options {
            Some(O::Preset(p)) => (Some(*p), None),
            Some(O::Advanced(a)) => (None, Some(*a)),
            None => (None, None),
        };
        V1Outputs {
            legacy_file,
            legacy_stream,
            legacy_segments,
            file_outputs: &$r.file_outputs,
            stream_outputs: &$r.stream_outputs,
            segment_outputs: &$r.segment_outputs,
            image_outputs: &$r.image_outputs,
            preset,
            advanced,
            webhooks: &$r.webhooks,
        }
    }};
}

impl CompositeRequest {
    pub fn from_room_composite(r: &proto::RoomCompositeEgressRequest) -> Result<Self, RequestError> {
        Ok(Self {
            room_name: r.room_name.clone(),
            layout: r.layout.clone(),
            audio_only: r.audio_only,
            video_only: r.video_only,
            custom_base_url: r.custom_base_url.clone(),
            audio_mixing: r.audio_mixing,
            ..v1_outputs!(r, room_composite_egress_request).into_request()
        })
    }

    /// StartParticipantEgress: one participant, full frame.
    pub fn from_participant(r: &proto::ParticipantEgressRequest) -> Result<Self, RequestError> {
        let (preset, advanced) = match &r.options {
            Some(proto::participant_egress_request::Options::Preset(p)) => (Some(*p), None),
            Some(proto::participant_egress_request::Options::Advanced(a)) => (None, Some(*a)),
            None => (None, None),
        };
        let outputs = V1Outputs {
            legacy_file: None,
            legacy_stream: None,
            legacy_segments: None,
            file_outputs: &r.file_outputs,
            stream_outputs: &r.stream_outputs,
            segment_outputs: &r.segment_outputs,
            image_outputs: &r.image_outputs,
            preset,
            advanced,
            webhooks: &r.webhooks,
        };
        Ok(Self {
            room_name: r.room_name.clone(),
            subject: Subject::Participant { identity: r.identity.clone(), screen_share: r.screen_share },
            ..outputs.into_request()
        })
    }

    /// StartTrackCompositeEgress: one audio and one video track by id; with only one of
    /// them, an audio-only or video-only recording.
    pub fn from_track_composite(r: &proto::TrackCompositeEgressRequest) -> Result<Self, RequestError> {
        let id = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_string());
        let (audio, video) = (id(&r.audio_track_id), id(&r.video_track_id));
        Ok(Self {
            room_name: r.room_name.clone(),
            audio_only: audio.is_some() && video.is_none(),
            video_only: video.is_some() && audio.is_none(),
            subject: Subject::Tracks { audio, video },
            ..v1_outputs!(r, track_composite_egress_request).into_request()
        })
    }

    /// StartTrackEgress: one track written without transcoding, to a file or (audio) a websocket.
    pub fn from_track(r: &proto::TrackEgressRequest) -> Result<Self, RequestError> {
        use proto::track_egress_request::Output;
        let mut c = Self {
            room_name: r.room_name.clone(),
            webhooks: r.webhooks.clone(),
            track: Some(TrackRequest { track_id: r.track_id.trim().to_string(), websocket_url: None }),
            ..Self::default()
        };
        match &r.output {
            Some(Output::File(f)) => c.files.push(FileRequest {
                file_type: 0,
                filepath: f.filepath.clone(),
                storage: f.output.clone().map(direct_storage),
                disable_manifest: f.disable_manifest,
            }),
            Some(Output::WebsocketUrl(u)) => {
                c.track = Some(TrackRequest { track_id: r.track_id.trim().to_string(), websocket_url: Some(u.clone()) })
            }
            None => {}
        }
        Ok(c)
    }

    /// StartWebEgress: any page, through Chromium.
    pub fn from_web(r: &proto::WebEgressRequest) -> Result<Self, RequestError> {
        Ok(Self {
            web: Some(WebSource { url: r.url.clone(), await_start_signal: r.await_start_signal }),
            audio_only: r.audio_only,
            video_only: r.video_only,
            ..v1_outputs!(r, web_egress_request).into_request()
        })
    }

    /// A unified StartEgressRequest: a template source (a room composite) or a web page.
    pub fn from_start_egress(r: &proto::StartEgressRequest) -> Result<Self, RequestError> {
        use proto::start_egress_request::Source;
        let c = match &r.source {
            Some(Source::Template(t)) => Self {
                room_name: r.room_name.clone(),
                layout: t.layout.clone(),
                audio_only: t.audio_only,
                video_only: t.video_only,
                custom_base_url: t.custom_base_url.clone(),
                ..Self::default()
            },
            Some(Source::Web(w)) => Self {
                // A v2 web egress may name a room (LiveKit keeps it in EgressInfo).
                room_name: r.room_name.clone(),
                web: Some(WebSource { url: w.url.clone(), await_start_signal: w.await_start_signal }),
                audio_only: w.audio_only,
                video_only: w.video_only,
                ..Self::default()
            },
            Some(Source::Media(m)) => {
                let (video, audio) = media_source(m)?;
                let no_audio = audio.routes.is_empty() && !audio.capture_all;
                if video.is_none() && no_audio {
                    return Err(invalid("media", "give a video (video_track_id or participant_video), audio, or both"));
                }
                Self {
                    room_name: r.room_name.clone(),
                    audio_only: video.is_none(),
                    video_only: no_audio,
                    subject: Subject::Media { video, audio },
                    ..Self::default()
                }
            }
            None => return Err(invalid("source", "give a template source (a room composite) or a web source")),
        };
        c.with_v2_outputs(r)
    }

    /// The v2 request's encoding, outputs (each with its storage, else the request's) and webhooks.
    fn with_v2_outputs(mut self, r: &proto::StartEgressRequest) -> Result<Self, RequestError> {
        use proto::output::Config;
        use proto::start_egress_request::Encoding;
        self.webhooks = r.webhooks.clone();
        match r.encoding {
            Some(Encoding::Preset(p)) => self.preset = Some(p),
            Some(Encoding::Advanced(a)) => self.advanced = Some(a),
            None => {}
        }
        for o in &r.outputs {
            let storage = o.storage.clone().or_else(|| r.storage.clone());
            match &o.config {
                Some(Config::File(f)) => self.files.push(FileRequest {
                    file_type: f.file_type,
                    filepath: f.filepath.clone(),
                    storage,
                    disable_manifest: f.disable_manifest,
                }),
                Some(Config::Stream(st)) => self.streams.push((st.protocol, st.urls.clone())),
                Some(Config::Segments(g)) => {
                    self.segments.push(g.clone());
                    self.segments_storage.push(storage);
                }
                Some(Config::Images(i)) => {
                    self.images.push(i.clone());
                    self.images_storage.push(storage);
                }
                None => return Err(invalid("outputs", "an output has no file, stream, segments or images")),
            }
        }
        Ok(self)
    }
}

/// A v2 media source's video and audio routes, checked.
fn media_source(
    m: &proto::MediaSource,
) -> Result<(Option<crate::recording::VideoPick>, crate::recording::AudioPick), RequestError> {
    use crate::recording::{AudioPick, AudioRoute, Channel, RouteMatch, VideoPick};
    use proto::media_source::Video;
    let video = match &m.video {
        Some(Video::VideoTrackId(t)) if t.trim().is_empty() => {
            return Err(invalid("video_track_id", "is empty: give the video track's id"));
        }
        Some(Video::VideoTrackId(t)) => Some(VideoPick::Track(t.trim().to_string())),
        Some(Video::ParticipantVideo(p)) if p.identity.trim().is_empty() => {
            return Err(invalid("participant_video.identity", "is required: the participant whose video to record"));
        }
        Some(Video::ParticipantVideo(p)) => {
            Some(VideoPick::Participant { identity: p.identity.clone(), prefer_screen_share: p.prefer_screen_share })
        }
        None => None,
    };
    let mut audio = AudioPick::default();
    if let Some(a) = &m.audio {
        audio.capture_all = a.capture_all;
        for (i, r) in a.routes.iter().enumerate() {
            use proto::audio_route::Match;
            let matches = match &r.r#match {
                Some(Match::TrackId(t)) if !t.trim().is_empty() => RouteMatch::Track(t.trim().to_string()),
                Some(Match::ParticipantIdentity(id)) if !id.trim().is_empty() => RouteMatch::Identity(id.clone()),
                Some(Match::ParticipantKind(k)) => RouteMatch::Kind(*k),
                _ => {
                    return Err(invalid(
                        "audio.routes",
                        format!("route {i} matches nothing: give track_id, participant_identity or participant_kind"),
                    ));
                }
            };
            let channel = match proto::AudioChannel::try_from(r.channel) {
                Ok(proto::AudioChannel::Both) => Channel::Both,
                Ok(proto::AudioChannel::Left) => Channel::Left,
                Ok(proto::AudioChannel::Right) => Channel::Right,
                Err(_) => return Err(invalid("audio.routes", format!("route {i}: {} is not a channel", r.channel))),
            };
            audio.routes.push(AudioRoute { matches, channel });
        }
    }
    Ok((video, audio))
}

/// The v1 outputs' storage oneofs (one enum per output kind, each with the same four
/// providers), as the v2 StorageConfig.
macro_rules! v1_storage {
    ($name:ident, $kind:ident) => {
        fn $name(o: proto::$kind::Output) -> proto::StorageConfig {
            use proto::storage_config::Provider as P;
            let provider = match o {
                proto::$kind::Output::S3(u) => P::S3(u),
                proto::$kind::Output::Gcp(u) => P::Gcp(u),
                proto::$kind::Output::Azure(u) => P::Azure(u),
                proto::$kind::Output::AliOss(u) => P::AliOss(u),
            };
            proto::StorageConfig { provider: Some(provider) }
        }
    };
}
v1_storage!(file_storage, encoded_file_output);
v1_storage!(segments_storage, segmented_file_output);
v1_storage!(image_storage, image_output);
v1_storage!(direct_storage, direct_file_output);

/// What the service gives every plan.
pub struct PlanContext<'a> {
    pub output_dir: &'a Path,
    /// Where local outputs (those not uploaded) are written: the output directory, or a
    /// directory of the egress's own when a running egress already writes the same names.
    pub local_dir: &'a Path,
    /// Where uploaded outputs are written until they are up; their keys are relative to it.
    pub staging_dir: &'a Path,
    /// The API key webhooks can be signed with.
    pub api_key: &'a str,
    pub layouts: &'a [String],
    pub now: chrono::DateTime<chrono::Utc>,
    /// The service's storage block (a request's own storage is completed from it) and
    /// where outputs go when a request names none.
    pub storage: Option<&'a StorageConfig>,
    pub default_storage: Option<&'a StorageSpec>,
    /// LiveKit's `disallow_local_storage`: every file, segments and images output must upload.
    pub disallow_local: bool,
    /// The service's `follow_links_out_of_output_dir`.
    pub follow_links: bool,
}

/// What is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanSource {
    /// The room, composited by Tessera's own layouts.
    Native,
    /// The room, through a custom template page in Chromium.
    Template { base_url: String },
    /// Any web page, in Chromium.
    Web { url: String, await_start_signal: bool },
}

/// An http(s) URL a browser can open.
fn check_http(url: &str, field: &'static str) -> Result<(), RequestError> {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
            if let Some(why) = metadata_service(&u) {
                return Err(invalid(
                    field,
                    format!("{} is {why}: Tessera does not fetch it", crate::secrets::redact(url)),
                ));
            }
            Ok(())
        }
        _ => Err(invalid(field, format!("{:?} is not an http:// or https:// URL", crate::secrets::redact(url)))),
    }
}

/// Why a URL must not be fetched on a request's word: a cloud's instance metadata service
/// (link-local 169.254.0.0/16 and fe80::/10, AWS's fd00:ec2::254, GCP's metadata names)
/// hands out the machine's own credentials to whoever asks from it. Loopback stays allowed:
/// templates and webhook receivers often run beside the recorder.
fn metadata_service(u: &url::Url) -> Option<&'static str> {
    match u.host()? {
        url::Host::Ipv4(ip) if ip.is_link_local() => Some("a link-local address (instance metadata)"),
        url::Host::Ipv6(ip) if (ip.segments()[0] & 0xffc0) == 0xfe80 => Some("a link-local address"),
        url::Host::Ipv6(ip) if ip == std::net::Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) => {
            Some("AWS's instance metadata address")
        }
        url::Host::Domain(d) if matches!(d.trim_end_matches('.'), "metadata.google.internal" | "metadata") => {
            Some("a cloud's instance metadata service")
        }
        _ => None,
    }
}

/// A checked egress, ready to run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub room_name: String,
    pub source: PlanSource,
    /// Whose media a room recording holds.
    pub subject: Subject,
    /// Which channel each participant's audio goes to.
    pub mixing: ChannelMixing,
    pub layout: String,
    pub audio_only: bool,
    pub video_only: bool,
    pub encoding: EncodingOptions,
    pub file: Option<FilePlan>,
    /// Where each output is uploaded (None: it stays in the output directory).
    pub file_storage: Option<StorageSpec>,
    pub segments_storage: Option<StorageSpec>,
    pub images_storage: Vec<Option<StorageSpec>>,
    /// Stream URLs (with their keys: never log them; see `secrets::redact`).
    pub streams: Vec<String>,
    pub segments: Option<crate::output::segments::SegmentsPlan>,
    pub images: Vec<crate::output::images::ImagesPlan>,
    /// Where `{egress_id}.json` goes and the output whose storage takes it: the first output
    /// that keeps its manifest (none when every output disables it, or there are only streams).
    pub manifest: Option<(PathBuf, ManifestVia)>,
    /// The request's own webhooks: (URL, the events to send or all).
    pub webhooks: Vec<(String, EventFilter)>,
    /// Where uploaded outputs are staged (the uploads' keys are relative to it).
    pub staging_dir: PathBuf,
    /// Where local outputs are written, and where a staged file whose upload was given up is
    /// kept (at the same relative path).
    pub local_dir: PathBuf,
    /// A track egress: the track, written as sent.
    pub track: Option<TrackPlan>,
}

/// A track egress's track and websocket (its file is the plan's `file`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackPlan {
    pub track_id: String,
    pub websocket: Option<String>,
}

impl Plan {
    /// The local names this plan writes outside its staging directory: its file, and its
    /// segments' and images' prefixes and playlists. Two running egresses may not share one.
    pub(crate) fn local_claims(&self) -> Vec<PathBuf> {
        let local = |p: &Path| !p.starts_with(&self.staging_dir);
        let mut claims: Vec<PathBuf> = self.file.iter().map(|f| f.path.clone()).collect();
        if let Some(g) = &self.segments {
            claims.push(g.dir.join(&g.prefix));
            claims.push(g.dir.join(&g.playlist));
            claims.extend(g.live_playlist.as_ref().map(|l| g.dir.join(l)));
        }
        claims.extend(self.images.iter().map(|i| i.dir.join(&i.prefix)));
        claims.retain(|p| local(p));
        claims
    }
}

/// The output a manifest is uploaded with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestVia {
    File,
    Segments,
    Images(usize),
}

#[derive(Debug, Clone)]
pub struct FilePlan {
    /// None for a track egress: its container follows the track's codec.
    pub file_type: Option<FileFormat>,
    /// The name reported in FileInfo (relative to the output directory; `{room_id}` still
    /// in it until the room is joined).
    pub filename: String,
    /// Where it is written.
    pub path: PathBuf,
}

pub fn plan(c: &CompositeRequest, ctx: &PlanContext) -> Result<Plan, RequestError> {
    if let Some(t) = &c.track {
        return track_plan(c, t, ctx);
    }
    if c.audio_only && c.video_only {
        return Err(invalid("audio_only", "audio_only and video_only cannot both be set"));
    }
    let source = match &c.web {
        Some(w) => {
            check_http(&w.url, "url")?;
            PlanSource::Web { url: w.url.clone(), await_start_signal: w.await_start_signal }
        }
        None => {
            if c.room_name.trim().is_empty() {
                return Err(invalid("room_name", "is required: the room to record"));
            }
            if c.custom_base_url.is_empty() {
                PlanSource::Native
            } else {
                check_http(&c.custom_base_url, "custom_base_url")?;
                PlanSource::Template { base_url: c.custom_base_url.clone() }
            }
        }
    };
    match &c.subject {
        Subject::Participant { identity, .. } if identity.trim().is_empty() => {
            return Err(invalid("identity", "is required: the participant to record"));
        }
        Subject::Tracks { audio: None, video: None } => {
            return Err(invalid("video_track_id", "give video_track_id, audio_track_id or both: the tracks to record"));
        }
        _ => {}
    }
    // The room EgressInfo names (a v2 web egress may give one).
    let room_name = c.room_name.clone();
    // A web egress has no room: its files are named `web-{time}`, as LiveKit names them.
    let web_named;
    let c = if c.web.is_some() {
        web_named = CompositeRequest { room_name: "web".into(), ..c.clone() };
        &web_named
    } else {
        c
    };
    let layout = match (&c.subject, c.layout.is_empty()) {
        // Not a room layout: one video, full frame (`Layout::participant`).
        (Subject::Participant { .. } | Subject::Tracks { .. } | Subject::Media { .. }, _) => "participant".to_string(),
        (Subject::Room, true) => "grid".to_string(),
        (Subject::Room, false) => c.layout.clone(),
    };
    // A custom template takes any layout name (it is the page's to read).
    if source == PlanSource::Native && c.subject == Subject::Room && !c.audio_only && !ctx.layouts.contains(&layout) {
        return Err(invalid("layout", format!("{layout:?} is unknown; valid layouts: {}", ctx.layouts.join(", "))));
    }
    if c.files.is_empty() && c.streams.is_empty() && c.segments.is_empty() && c.images.is_empty() {
        return Err(invalid(
            "file_outputs",
            "the request has no outputs: give file_outputs, stream_outputs, segment_outputs or image_outputs",
        ));
    }
    if c.files.len() > 1 {
        return Err(invalid("file_outputs", format!("{} file outputs given; at most one is allowed", c.files.len())));
    }
    let streams = stream_urls(&c.streams)?;
    if c.segments.len() > 1 {
        return Err(invalid(
            "segment_outputs",
            format!("{} segment outputs given; at most one is allowed", c.segments.len()),
        ));
    }
    if c.audio_only && !c.images.is_empty() {
        return Err(invalid("image_outputs", "an audio-only egress has no pictures to take"));
    }
    let storage =
        |own: Option<&proto::StorageConfig>, field: &'static str| -> Result<Option<StorageSpec>, RequestError> {
            match own {
                Some(s) => crate::upload::config::from_request(s, ctx.storage, field)
                    .map(Some)
                    .map_err(|e| RequestError::Invalid { field, why: e.to_string() }),
                None => Ok(ctx.default_storage.cloned()),
            }
        };
    let file_storage = match c.files.first() {
        Some(f) => storage(f.storage.as_ref(), "file_outputs")?,
        None => None,
    };
    let segments_storage = match c.segments_storage.first() {
        Some(own) => storage(own.as_ref(), "segment_outputs")?,
        None if !c.segments.is_empty() => storage(None, "segment_outputs")?,
        None => None,
    };
    let images_storage = (0..c.images.len())
        .map(|i| storage(c.images_storage.get(i).and_then(|s| s.as_ref()), "image_outputs"))
        .collect::<Result<Vec<_>, _>>()?;
    if ctx.disallow_local {
        let local = [("file_outputs", !c.files.is_empty() && file_storage.is_none())]
            .into_iter()
            .chain([("segment_outputs", !c.segments.is_empty() && segments_storage.is_none())])
            .chain(images_storage.iter().map(|s| ("image_outputs", s.is_none())));
        if let Some((field, _)) = local.into_iter().find(|(_, l)| *l) {
            return Err(invalid(
                field,
                "this service keeps no recordings locally (disallow_local_storage): give it a storage",
            ));
        }
    }
    let mixing = match proto::AudioMixing::try_from(c.audio_mixing) {
        Ok(proto::AudioMixing::DefaultMixing) => ChannelMixing::Both,
        Ok(proto::AudioMixing::DualChannelAgent) => ChannelMixing::AgentLeft,
        Ok(proto::AudioMixing::DualChannelAlternate) => ChannelMixing::Alternate,
        Err(_) => {
            return Err(invalid(
                "audio_mixing",
                format!(
                    "{} is not a mixing (DEFAULT_MIXING, DUAL_CHANNEL_AGENT, DUAL_CHANNEL_ALTERNATE)",
                    c.audio_mixing
                ),
            ));
        }
    };
    if mixing != ChannelMixing::Both && source != PlanSource::Native {
        return Err(invalid(
            "audio_mixing",
            "dual-channel mixing is done by Tessera's own compositor; a custom template places its own audio",
        ));
    }
    let webhooks = c.webhooks.iter().map(|w| webhook(w, ctx.api_key)).collect::<Result<Vec<_>, _>>()?;
    let encoding = encoding(c)?;
    // Each output is written where it lives for good (the local directory), or staged in the
    // egress's own directory until it is uploaded.
    let root = |s: &Option<StorageSpec>| if s.is_some() { ctx.staging_dir } else { ctx.local_dir };
    let file = match c.files.first() {
        Some(f) => Some(file_plan(c, ctx, root(&file_storage), f.file_type, &f.filepath)?),
        None => None,
    };
    if let Some(f) = &file
        && f.file_type != Some(FileFormat::Mp4)
        && !streams.is_empty()
    {
        return Err(invalid(
            "stream_outputs",
            format!(
                "streams carry AAC audio, which {:?} files cannot hold; record streams with an MP4 file",
                f.file_type.unwrap_or(FileFormat::Mp4)
            ),
        ));
    }
    if encoding.opus_in_mp4 && !streams.is_empty() {
        return Err(invalid(
            "advanced.audio_codec",
            "OPUS cannot go in RTMP or SRT streams (they carry AAC); use AAC or leave it unset",
        ));
    }
    if c.room_id.is_empty() && c.web.is_none() {
        let prefixes = c.segments.iter().flat_map(|g| [&g.filename_prefix, &g.playlist_name, &g.live_playlist_name]);
        if prefixes.chain(c.images.iter().map(|i| &i.filename_prefix)).any(|p| p.contains("{room_id}")) {
            return Err(invalid(
                "filename_prefix",
                "{room_id} names the room's id, and the room is not open yet; start the egress once it is",
            ));
        }
    }
    let images: Vec<_> =
        c.images.iter().zip(&images_storage).map(|(i, s)| images_plan(c, ctx, root(s), i)).collect::<Result<_, _>>()?;
    let segments = match c.segments.first() {
        Some(g) => {
            if let Some(a) = &c.advanced
                && a.audio_codec == proto::AudioCodec::Opus as i32
            {
                return Err(invalid(
                    "advanced.audio_codec",
                    "OPUS cannot go in HLS segments (MPEG-TS carries AAC here, as in LiveKit); use AAC or leave it unset",
                ));
            }
            Some(segments_plan(c, ctx, root(&segments_storage), g)?)
        }
        None => None,
    };
    // LiveKit writes `{egress_id}.json` beside the outputs that keep their manifest; it goes
    // beside the first of them, and up through that output's storage only.
    let manifest = file_manifest(c, file.as_ref())
        .or_else(|| {
            c.segments
                .first()
                .zip(segments.as_ref())
                .filter(|(g, _)| !g.disable_manifest)
                .map(|(_, p)| (p.dir.clone(), ManifestVia::Segments))
        })
        .or_else(|| {
            c.images
                .iter()
                .zip(&images)
                .enumerate()
                .find(|(_, (i, _))| !i.disable_manifest)
                .map(|(n, (_, p))| (p.dir.clone(), ManifestVia::Images(n)))
        });
    Ok(Plan {
        manifest,
        staging_dir: ctx.staging_dir.to_path_buf(),
        local_dir: ctx.local_dir.to_path_buf(),
        room_name,
        source,
        subject: c.subject.clone(),
        mixing,
        layout,
        audio_only: c.audio_only,
        video_only: c.video_only,
        encoding,
        file,
        file_storage,
        segments_storage,
        images_storage,
        streams,
        images,
        segments,
        webhooks,
        track: None,
    })
}

/// The manifest's place beside the file, when the file keeps its manifest.
fn file_manifest(c: &CompositeRequest, file: Option<&FilePlan>) -> Option<(PathBuf, ManifestVia)> {
    c.files
        .first()
        .zip(file)
        .filter(|(f, _)| !f.disable_manifest)
        .and_then(|(_, p)| p.path.parent().map(|d| (d.to_path_buf(), ManifestVia::File)))
}

/// A track egress (LiveKit's TrackEgressRequest): the room and track, and one output, a file
/// (named `{track_id}-{time}` when no name is given; its extension comes with the track's
/// codec) or a websocket URL (ws:// or wss://) that takes the track's audio as PCM.
fn track_plan(c: &CompositeRequest, t: &TrackRequest, ctx: &PlanContext) -> Result<Plan, RequestError> {
    if c.room_name.trim().is_empty() {
        return Err(invalid("room_name", "is required: the room the track is in"));
    }
    if t.track_id.is_empty() {
        return Err(invalid("track_id", "is required: the track to record"));
    }
    if let Some(u) = &t.websocket_url {
        match url::Url::parse(u) {
            Ok(p) if matches!(p.scheme(), "ws" | "wss") && p.host().is_some() => {}
            _ => {
                let shown = crate::secrets::redact(u);
                return Err(invalid("websocket_url", format!("{shown:?} is not a ws:// or wss:// URL")));
            }
        }
    }
    let file = c.files.first();
    if file.is_none() && t.websocket_url.is_none() {
        return Err(invalid("output", "the request has no output: give a file or a websocket_url"));
    }
    let file_storage = match file.and_then(|f| f.storage.as_ref()) {
        Some(s) => Some(
            crate::upload::config::from_request(s, ctx.storage, "file")
                .map_err(|e| RequestError::Invalid { field: "file", why: e.to_string() })?,
        ),
        None if file.is_some() => ctx.default_storage.cloned(),
        None => None,
    };
    if ctx.disallow_local && file.is_some() && file_storage.is_none() {
        return Err(invalid(
            "file",
            "this service keeps no recordings locally (disallow_local_storage): give it a storage",
        ));
    }
    let root = if file_storage.is_some() { ctx.staging_dir } else { ctx.local_dir };
    let file = match file {
        Some(f) => {
            let mut name = f.filepath.trim().to_string();
            if name.is_empty() || name.ends_with('/') {
                name.push_str("{track_id}-{time}");
            }
            let name = expand(&name, c, ctx.now).replace("{track_id}", &t.track_id);
            let path = place(ctx, root, &name)?;
            let filename = path.strip_prefix(root).map(|p| p.to_string_lossy().into_owned()).unwrap_or(name);
            Some(FilePlan { file_type: None, filename, path })
        }
        None => None,
    };
    let manifest = file_manifest(c, file.as_ref());
    let webhooks = c.webhooks.iter().map(|w| webhook(w, ctx.api_key)).collect::<Result<Vec<_>, _>>()?;
    Ok(Plan {
        room_name: c.room_name.clone(),
        source: PlanSource::Native,
        subject: Subject::Room,
        mixing: ChannelMixing::Both,
        layout: String::new(),
        audio_only: false,
        video_only: false,
        encoding: EncodingOptions::default(),
        file,
        file_storage,
        segments_storage: None,
        images_storage: Vec::new(),
        streams: Vec::new(),
        segments: None,
        images: Vec::new(),
        manifest,
        webhooks,
        staging_dir: ctx.staging_dir.to_path_buf(),
        local_dir: ctx.local_dir.to_path_buf(),
        track: Some(TrackPlan { track_id: t.track_id.clone(), websocket: t.websocket_url.clone() }),
    })
}

/// The stream URLs, each checked against its output's protocol as LiveKit checks them (a
/// scheme that is not the protocol's is refused), `mux://` resolved to Mux's ingest.
fn stream_urls(outputs: &[(i32, Vec<String>)]) -> Result<Vec<String>, RequestError> {
    use proto::StreamProtocol as P;
    let mut urls = Vec::new();
    for (protocol, list) in outputs {
        let protocol = P::try_from(*protocol)
            .map_err(|_| invalid("stream_outputs.protocol", format!("{protocol} is not a stream protocol")))?;
        if list.is_empty() {
            return Err(invalid("stream_outputs.urls", "a stream output needs at least one URL"));
        }
        for url in list {
            let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase()).unwrap_or_default();
            let of_scheme = match scheme.as_str() {
                "rtmp" | "rtmps" | "mux" | "twitch" => Some(P::Rtmp),
                "srt" => Some(P::Srt),
                "ws" | "wss" => Some(P::Websocket),
                _ => None,
            };
            let shown = crate::secrets::redact(url);
            match (protocol, of_scheme) {
                (_, None) => {
                    return Err(invalid(
                        "stream_outputs.urls",
                        format!("invalid url {shown}: use rtmp://, rtmps://, srt://, mux:// or twitch://"),
                    ));
                }
                (P::DefaultProtocol, Some(_)) => {}
                (p, Some(s)) if p != s => {
                    return Err(invalid(
                        "stream_outputs.protocol",
                        format!("invalid url {shown}: invalid scheme for protocol {}", p.as_str_name()),
                    ));
                }
                _ => {}
            }
            if of_scheme == Some(P::Websocket) {
                return Err(RequestError::Unimplemented(
                    "websocket streams (raw audio) are not implemented; use rtmp://, rtmps:// or srt://".into(),
                ));
            }
            let url = crate::output::stream::resolve(url).map_err(|e| invalid("stream_outputs.urls", e.to_string()))?;
            crate::output::stream::check_url(&url).map_err(|e| invalid("stream_outputs.urls", e.to_string()))?;
            urls.push(url);
        }
    }
    Ok(urls)
}

/// A request's own webhook: an http(s) URL, signed with this service's key (the only one it
/// has a secret for), with LiveKit's event filter (`include_events` wins over `exclude_events`).
fn webhook(w: &proto::WebhookConfig, api_key: &str) -> Result<(String, EventFilter), RequestError> {
    if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
        return Err(invalid("webhooks.url", format!("{:?} must be an http:// or https:// URL", w.url)));
    }
    check_http(&w.url, "webhooks.url")?;
    if !w.signing_key.is_empty() && w.signing_key != api_key {
        return Err(invalid("webhooks.signing_key", "is not this service's API key (the only key it can sign with)"));
    }
    let filter = match &w.filter_params {
        Some(f) => {
            EventFilter::new(&f.include_events, &f.exclude_events).map_err(|e| invalid("webhooks.filter_params", e))?
        }
        None => EventFilter::default(),
    };
    Ok((w.url.clone(), filter))
}

fn file_plan(
    c: &CompositeRequest,
    ctx: &PlanContext,
    root: &Path,
    file_type: i32,
    filepath: &str,
) -> Result<FilePlan, RequestError> {
    let file_type = resolve_file_type(file_type, filepath, c.audio_only)?;
    // Each file type has its one audio codec: AAC in MP4, Opus in OGG, MP3 in MP3.
    let wanted = match file_type {
        FileFormat::Mp4 => proto::AudioCodec::Aac,
        FileFormat::Ogg => proto::AudioCodec::Opus,
        FileFormat::Mp3 => proto::AudioCodec::AcMp3,
    };
    if let Some(a) = &c.advanced
        && let Ok(codec) = proto::AudioCodec::try_from(a.audio_codec)
        && codec != proto::AudioCodec::DefaultAc
        && codec != wanted
        // Opus in MP4, as LiveKit allows.
        && !(file_type == FileFormat::Mp4 && codec == proto::AudioCodec::Opus)
    {
        return Err(invalid(
            "advanced.audio_codec",
            format!(
                "{} does not go in {:?} files; they take {}",
                codec.as_str_name(),
                file_type,
                match file_type {
                    FileFormat::Mp4 => "AAC or OPUS",
                    _ => wanted.as_str_name(),
                }
            ),
        ));
    }
    if c.video_only && file_type != FileFormat::Mp4 {
        return Err(invalid("file_type", "video_only needs an MP4 file"));
    }
    let filename = expand_filename(filepath, c, file_type, ctx.now)?;
    let path = place(ctx, root, &filename)?;
    let filename = path.strip_prefix(root).map(|p| p.to_string_lossy().into_owned()).unwrap_or(filename);
    Ok(FilePlan { file_type: Some(file_type), filename, path })
}

/// HLS naming as LiveKit's: the playlist's directory is where the egress writes (the
/// segments' when the playlist names none), a segment prefix in another directory is taken
/// relative to it, an empty prefix is the playlist's name, an empty playlist name the
/// prefix's (`{room_name}-{time}` when both are empty); segments `{prefix}_00000.ts`, or by
/// time with TIMESTAMP; a live playlist only when named, in the playlist's directory.
fn segments_plan(
    c: &CompositeRequest,
    ctx: &PlanContext,
    root: &Path,
    g: &proto::SegmentedFileOutput,
) -> Result<crate::output::segments::SegmentsPlan, RequestError> {
    // The seed document's 6 s (LiveKit's code now uses 4 s).
    let duration_s = if g.segment_duration == 0 { 6 } else { g.segment_duration };
    if duration_s > 600 {
        return Err(invalid("segment_duration", format!("{duration_s} s is longer than 600 s")));
    }
    if proto::SegmentedFileProtocol::try_from(g.protocol).is_err() {
        return Err(invalid("segment_outputs.protocol", format!("{} is not a protocol; HLS_PROTOCOL is", g.protocol)));
    }
    let timestamp_names = match proto::SegmentedFileSuffix::try_from(g.filename_suffix) {
        Ok(proto::SegmentedFileSuffix::Index) => false,
        Ok(proto::SegmentedFileSuffix::Timestamp) => true,
        Err(_) => {
            return Err(invalid(
                "segment_outputs.filename_suffix",
                format!("{} is not a suffix; use INDEX or TIMESTAMP", g.filename_suffix),
            ));
        }
    };
    // (directory, name without extension); a trailing `/` is a directory with no name.
    let split = |requested: &str| -> (String, String) {
        let n = expand(requested.trim(), c, ctx.now);
        let (dir, name) = n.rsplit_once('/').map_or((String::new(), n.clone()), |(d, f)| (format!("{d}/"), f.into()));
        let name = name.strip_suffix(".m3u8").or_else(|| name.strip_suffix(".ts")).unwrap_or(&name).to_string();
        (dir, name)
    };
    let (prefix_dir, mut prefix) = split(&g.filename_prefix);
    let (mut playlist_dir, mut playlist) = split(&g.playlist_name);
    if playlist.is_empty() {
        playlist = if prefix.is_empty() { expand("{room_name}-{time}", c, ctx.now) } else { prefix.clone() };
    }
    if prefix.is_empty() {
        prefix = playlist.clone();
    }
    // The segments' directory, relative to the playlist's.
    let segment_dir = if playlist_dir.is_empty() {
        playlist_dir = prefix_dir;
        String::new()
    } else if prefix_dir == playlist_dir {
        String::new()
    } else {
        prefix_dir
    };
    let live_playlist = if g.live_playlist_name.trim().is_empty() {
        None
    } else {
        let (dir, name) = split(&g.live_playlist_name);
        if !dir.is_empty() && dir != playlist_dir {
            return Err(invalid(
                "live_playlist_name",
                format!("must be in the playlist's directory ({:?})", playlist_dir.trim_end_matches('/')),
            ));
        }
        if name == playlist {
            return Err(invalid("live_playlist_name", "cannot be the same as playlist_name"));
        }
        Some(format!("{name}.m3u8"))
    };
    let dir = place(ctx, root, &format!("{playlist_dir}."))?;
    let prefix = format!("{segment_dir}{prefix}");
    if Path::new(&prefix).components().any(|c| c == Component::ParentDir) {
        return Err(invalid("filename_prefix", format!("{prefix:?} may not contain \"..\"")));
    }
    let playlist = format!("{playlist}.m3u8");
    let rel = |n: &str| dir.join(n).strip_prefix(root).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(crate::output::segments::SegmentsPlan {
        playlist_name: rel(&playlist),
        live_playlist_name: live_playlist.as_deref().map(rel).unwrap_or_default(),
        dir,
        prefix,
        playlist,
        live_playlist,
        duration_s,
        timestamp_names,
    })
}

/// Images as LiveKit names them: `{prefix}_00000.jpeg`, by time, or one file overwritten;
/// every `capture_interval` seconds (10 when unset), at the output's size unless given.
fn images_plan(
    c: &CompositeRequest,
    ctx: &PlanContext,
    root: &Path,
    i: &proto::ImageOutput,
) -> Result<crate::output::images::ImagesPlan, RequestError> {
    use crate::output::images::ImageNaming;
    if i.image_codec != proto::ImageCodec::IcDefault as i32 && i.image_codec != proto::ImageCodec::IcJpeg as i32 {
        return Err(invalid("image_codec", format!("{} is not an image codec; JPEG is", i.image_codec)));
    }
    let (w, h) = (i.width, i.height);
    for (field, v) in [("image_outputs.width", w), ("image_outputs.height", h)] {
        if v != 0 && (!(16..=4096).contains(&v) || v % 2 == 1) {
            return Err(invalid(
                field,
                format!("{v}: each given side must be even, from 16 to 4096 (0 follows the video)"),
            ));
        }
    }
    let (dir, base, full) = prefix_path(&i.filename_prefix, c, ctx, root, "image")?;
    let naming = match proto::ImageFileSuffix::try_from(i.filename_suffix) {
        Ok(proto::ImageFileSuffix::ImageSuffixIndex) => ImageNaming::Index,
        Ok(proto::ImageFileSuffix::ImageSuffixTimestamp) => ImageNaming::Timestamp,
        Ok(proto::ImageFileSuffix::ImageSuffixNoneOverwrite) => ImageNaming::Overwrite,
        Err(_) => {
            return Err(invalid(
                "image_outputs.filename_suffix",
                format!(
                    "{} is not a suffix; use IMAGE_SUFFIX_INDEX, IMAGE_SUFFIX_TIMESTAMP or IMAGE_SUFFIX_NONE_OVERWRITE",
                    i.filename_suffix
                ),
            ));
        }
    };
    Ok(crate::output::images::ImagesPlan {
        filename_prefix: full.strip_prefix(root).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default(),
        dir,
        prefix: base,
        interval_s: if i.capture_interval == 0 { 10 } else { i.capture_interval },
        width: w as u32,
        height: h as u32,
        naming,
    })
}

/// A segments or images prefix: `{room_name}-{time}` when empty (or a directory),
/// placeholders expanded, kept inside the output directory. Returns its directory,
/// its file-name part and the whole path.
fn prefix_path(
    requested: &str,
    c: &CompositeRequest,
    ctx: &PlanContext,
    root: &Path,
    fallback: &str,
) -> Result<(PathBuf, String, PathBuf), RequestError> {
    let requested = requested.trim();
    let prefix = if requested.is_empty() || requested.ends_with('/') {
        format!("{requested}{{room_name}}-{{time}}")
    } else {
        requested.to_string()
    };
    let full = place(ctx, root, &expand(&prefix, c, ctx.now))?;
    let dir = full.parent().unwrap_or(root).to_path_buf();
    let base = full.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| fallback.into());
    Ok((dir, base, full))
}

/// A requested name's place under `root` (the output directory, the egress's own or its
/// staging directory): confined to the output directory as asked, then moved under `root`.
fn place(ctx: &PlanContext, root: &Path, name: &str) -> Result<PathBuf, RequestError> {
    let p = confine(ctx.output_dir, name, ctx.follow_links)?;
    let rel = p.strip_prefix(ctx.output_dir).unwrap_or(&p);
    // `a/.` (a directory given by a name ending in `/`) is the directory itself.
    let rel: PathBuf = rel.components().filter(|c| *c != Component::CurDir).collect();
    Ok(root.join(rel))
}

/// The placeholders of file names; `{room_id}` once the room's sid is known (a file's is
/// otherwise filled in by the job when it joins).
fn expand(name: &str, c: &CompositeRequest, now: chrono::DateTime<chrono::Utc>) -> String {
    let local = now.with_timezone(&chrono::Local);
    let name = match &c.subject {
        Subject::Participant { identity, .. } => name.replace("{publisher_identity}", identity),
        _ => name.to_string(),
    };
    let name = name
        .replace("{room_name}", &c.room_name)
        .replace("{time}", &local.format("%Y-%m-%dT%H%M%S").to_string())
        .replace("{utc}", &now.format("%Y%m%d%H%M%S%3f").to_string());
    if c.room_id.is_empty() { name } else { name.replace("{room_id}", &c.room_id) }
}

fn resolve_file_type(requested: i32, filepath: &str, audio_only: bool) -> Result<FileFormat, RequestError> {
    let t = match proto::EncodedFileType::try_from(requested) {
        Ok(proto::EncodedFileType::DefaultFiletype) => {
            FileFormat::from_extension(filepath).unwrap_or(if audio_only { FileFormat::Ogg } else { FileFormat::Mp4 })
        }
        Ok(proto::EncodedFileType::Mp4) => FileFormat::Mp4,
        Ok(proto::EncodedFileType::Ogg) => FileFormat::Ogg,
        Ok(proto::EncodedFileType::Mp3) => FileFormat::Mp3,
        Err(_) => return Err(invalid("file_type", format!("{requested} is not a file type (MP4, OGG, MP3)"))),
    };
    if !audio_only && t != FileFormat::Mp4 {
        return Err(invalid("file_type", format!("{:?} holds audio only; set audio_only or use MP4", t)));
    }
    Ok(t)
}

/// The encoding options: a preset, advanced options (zero fields take the 720p30
/// default's values, as in LiveKit), or the default preset.
fn encoding(c: &CompositeRequest) -> Result<EncodingOptions, RequestError> {
    let mut o = match c.preset {
        None => Preset::H264_720P_30.options(),
        Some(p) => {
            let name = proto::EncodingOptionsPreset::try_from(p)
                .map_err(|_| invalid("preset", format!("{p} is not a preset")))?
                .as_str_name();
            name.parse::<Preset>().map_err(|e| invalid("preset", e.to_string()))?.options()
        }
    };
    if let Some(a) = &c.advanced {
        let positive = |field: &'static str, v: i32| {
            if v < 0 { Err(invalid(field, format!("{v} is negative"))) } else { Ok(v as u32) }
        };
        // LiveKit takes either side alone; the other keeps the preset's (or default's) value.
        let (w, h) = (positive("advanced.width", a.width)?, positive("advanced.height", a.height)?);
        if w != 0 {
            o.width = w;
        }
        if h != 0 {
            o.height = h;
        }
        #[allow(deprecated)]
        for (field, v) in [("advanced.audio_quality", a.audio_quality), ("advanced.video_quality", a.video_quality)] {
            if v != 0 {
                return Err(invalid(field, "is deprecated and has no effect; set the bitrate instead"));
            }
        }
        if a.depth != 0 && a.depth != 24 {
            return Err(invalid("advanced.depth", format!("{} is not supported; use 24", a.depth)));
        }
        let or = |v: u32, default: u32| if v == 0 { default } else { v };
        o.framerate = or(positive("advanced.framerate", a.framerate)?, o.framerate);
        o.video_bitrate_kbps = or(positive("advanced.video_bitrate", a.video_bitrate)?, o.video_bitrate_kbps);
        o.audio_bitrate_kbps = or(positive("advanced.audio_bitrate", a.audio_bitrate)?, o.audio_bitrate_kbps);
        o.audio_frequency = or(positive("advanced.audio_frequency", a.audio_frequency)?, o.audio_frequency);
        o.key_frame_interval = a.key_frame_interval;
        o.profile = match proto::VideoCodec::try_from(a.video_codec) {
            Ok(proto::VideoCodec::DefaultVc | proto::VideoCodec::H264Main) => H264Profile::Main,
            Ok(proto::VideoCodec::H264Baseline) => H264Profile::Baseline,
            Ok(proto::VideoCodec::H264High) => H264Profile::High,
            Ok(other) => {
                return Err(RequestError::Unimplemented(format!(
                    "video codec {} is not implemented; use H264_BASELINE, H264_MAIN or H264_HIGH",
                    other.as_str_name()
                )));
            }
            Err(_) => return Err(invalid("advanced.video_codec", format!("{} is not a codec", a.video_codec))),
        };
        match proto::AudioCodec::try_from(a.audio_codec) {
            Err(_) => return Err(invalid("advanced.audio_codec", format!("{} is not a codec", a.audio_codec))),
            // Where Opus may go (an MP4 file alone) is checked with the outputs.
            Ok(proto::AudioCodec::Opus) => o.opus_in_mp4 = true,
            Ok(_) => {}
        }
    }
    o.validate().map_err(|e| {
        use crate::encode::OptionsError;
        let field = match &e {
            OptionsError::BadSize { .. } => "advanced.width",
            OptionsError::OutOfRange { field, .. } => match *field {
                "framerate" => "advanced.framerate",
                "video_bitrate" => "advanced.video_bitrate",
                "audio_bitrate" => "advanced.audio_bitrate",
                "audio_frequency" => "advanced.audio_frequency",
                "key_frame_interval" => "advanced.key_frame_interval",
                _ => "advanced",
            },
            OptionsError::UnknownPreset(..) => "preset",
        };
        invalid(field, e.to_string())
    })?;
    Ok(o)
}

/// LiveKit's file naming: `{room_name}`, `{time}` (local, 2006-01-02T150405), `{utc}`
/// (20060102150405 and milliseconds); `{room_id}` is left for the job, which learns it
/// on joining. An empty path, or one ending in `/`, gets `{room_name}-{time}`; a missing
/// extension is added.
pub(crate) fn expand_filename(
    filepath: &str,
    c: &CompositeRequest,
    file_type: FileFormat,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<String, RequestError> {
    let mut name = filepath.trim().to_string();
    if name.is_empty() || name.ends_with('/') {
        name.push_str("{room_name}-{time}");
    }
    name = expand(&name, c, now);
    // The extension says what the file is (the writer goes by it).
    if FileFormat::from_extension(&name) != Some(file_type) {
        name = format!("{name}.{}", file_type.extension());
    }
    Ok(name)
}

/// Keeps a file inside the output directory: relative paths are taken from it; an
/// absolute path must already be inside it; `..` is refused everywhere.
pub(crate) fn confine(output_dir: &Path, filename: &str, follow_links: bool) -> Result<PathBuf, RequestError> {
    let p = Path::new(filename);
    if filename.contains('\0') {
        return Err(invalid("filepath", "may not contain a NUL character"));
    }
    // Linux's limits: 255 bytes a name, 4096 a path.
    if filename.len() > 1024 || p.components().any(|c| c.as_os_str().len() > 255) {
        return Err(invalid("filepath", "is too long: at most 255 bytes a name and 1024 in all"));
    }
    if p.components().any(|c| c == Component::ParentDir) {
        return Err(invalid("filepath", format!("{filename:?} may not contain \"..\"")));
    }
    let full = if p.is_absolute() {
        if !p.starts_with(output_dir) {
            return Err(invalid(
                "filepath",
                format!("{filename:?} is outside the output directory {}; give a relative path", output_dir.display()),
            ));
        }
        p.to_path_buf()
    } else {
        output_dir.join(p)
    };
    if !follow_links && leaves_through_a_link(output_dir, &full) {
        return Err(invalid(
            "filepath",
            format!("{filename:?} leads out of the output directory through a symbolic link"),
        ));
    }
    Ok(full)
}

/// Whether the deepest part of `path` that exists already resolves outside `root` (a symbolic
/// link inside the output directory pointing elsewhere; a dangling one counts as outside).
fn leaves_through_a_link(root: &Path, path: &Path) -> bool {
    let real_root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    for a in path.ancestors().take_while(|a| a.starts_with(root) && *a != root) {
        if std::fs::symlink_metadata(a).is_ok() {
            return match a.canonicalize() {
                Ok(real) => !real.starts_with(&real_root),
                Err(_) => true,
            };
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::room_composite_egress_request::{Options, Output};

    fn ctx(dir: &Path) -> PlanContext<'_> {
        static LAYOUTS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
        let layouts = LAYOUTS.get_or_init(|| vec!["grid".into(), "speaker".into()]);
        PlanContext {
            output_dir: dir,
            api_key: "devkey",
            layouts,
            now: chrono::Utc::now(),
            storage: None,
            default_storage: None,
            disallow_local: false,
            follow_links: false,
            local_dir: dir,
            staging_dir: Path::new("/srv/rec/.staging/EG_test"),
        }
    }

    fn file_req(path: &str) -> proto::RoomCompositeEgressRequest {
        proto::RoomCompositeEgressRequest {
            room_name: "r1".into(),
            file_outputs: vec![proto::EncodedFileOutput { filepath: path.into(), ..Default::default() }],
            ..Default::default()
        }
    }

    fn plan_of(r: &proto::RoomCompositeEgressRequest) -> Result<Plan, RequestError> {
        plan(&CompositeRequest::from_room_composite(r)?, &ctx(Path::new("/srv/rec")))
    }

    #[test]
    fn names_and_paths_follow_livekit() {
        let p = plan_of(&file_req("{room_name}/take")).unwrap();
        assert_eq!(p.file.as_ref().unwrap().filename, "r1/take.mp4");
        assert_eq!(p.file.as_ref().unwrap().path, PathBuf::from("/srv/rec/r1/take.mp4"));
        let p = plan_of(&file_req("")).unwrap();
        assert!(
            p.file.as_ref().unwrap().filename.starts_with("r1-") && p.file.as_ref().unwrap().filename.ends_with(".mp4"),
            "{}",
            p.file.as_ref().unwrap().filename
        );
        let p = plan_of(&file_req("dir/")).unwrap();
        assert!(p.file.as_ref().unwrap().filename.starts_with("dir/r1-"), "{}", p.file.as_ref().unwrap().filename);
        let p = plan_of(&file_req("/srv/rec/abs.mp4")).unwrap();
        assert_eq!(p.file.as_ref().unwrap().filename, "abs.mp4");
        let p = plan_of(&file_req("x-{utc}.mp4")).unwrap();
        assert_eq!(
            p.file.as_ref().unwrap().filename.len(),
            "x-.mp4".len() + 17,
            "{}",
            p.file.as_ref().unwrap().filename
        );
    }

    #[test]
    fn paths_stay_inside_the_output_directory() {
        let root = std::env::temp_dir().join(format!("tessera-confine-{}", std::process::id()));
        let outside = root.with_extension("outside");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        let _ = std::os::unix::fs::symlink(&outside, root.join("out"));
        let _ = std::os::unix::fs::symlink(root.join("nowhere"), root.join("dangling"));
        assert_eq!(confine(&root, "a/b.mp4", false).unwrap(), root.join("a/b.mp4"));
        assert!(confine(&root, "out/x.mp4", true).is_ok());
        for (name, why) in [
            ("../x.mp4", ".."),
            ("/etc/x.mp4", "outside"),
            ("out/x.mp4", "symbolic link"),
            ("dangling", "symbolic link"),
            ("a\0b.mp4", "NUL"),
        ] {
            let e = confine(&root, name, false).unwrap_err().to_string();
            assert!(e.starts_with("filepath") && e.contains(why), "{name}: {e}");
        }
        assert!(confine(&root, &"n".repeat(256), false).unwrap_err().to_string().contains("too long"));
        assert!(confine(&root, &"d/".repeat(600), false).unwrap_err().to_string().contains("too long"));
        let _ = std::fs::remove_dir_all(&root);
        let _ = std::fs::remove_dir_all(&outside);
    }

    #[test]
    fn instance_metadata_is_never_fetched() {
        for url in [
            "http://169.254.169.254/latest/",
            "http://[fd00:ec2::254]/",
            "http://metadata.google.internal/x",
            "http://[fe80::1]/",
        ] {
            assert!(check_http(url, "url").is_err(), "{url}");
        }
        for url in ["http://127.0.0.1:8080/t", "https://example.com/t", "http://[::1]/t"] {
            assert!(check_http(url, "url").is_ok(), "{url}");
        }
    }

    #[test]
    fn bad_requests_name_the_field() {
        let mut two = file_req("a.mp4");
        two.file_outputs.push(two.file_outputs[0].clone());
        let mut no_room = file_req("a.mp4");
        no_room.room_name.clear();
        let mut odd = file_req("a.mp4");
        odd.options = Some(Options::Advanced(proto::EncodingOptions { width: 641, height: 480, ..Default::default() }));
        let mut layout = file_req("a.mp4");
        layout.layout = "mosaic".into();
        let mut preset = file_req("a.mp4");
        preset.options = Some(Options::Preset(99));
        let none = proto::RoomCompositeEgressRequest { room_name: "r".into(), ..Default::default() };
        for (r, field, words) in [
            (two, "file_outputs", "at most one"),
            (no_room, "room_name", "required"),
            (odd, "advanced.width", "even"),
            (layout, "layout", "grid, speaker"),
            (preset, "preset", "99"),
            (none, "file_outputs", "no outputs"),
            (file_req("../up.mp4"), "filepath", ".."),
            (file_req("/etc/x.mp4"), "filepath", "outside"),
        ] {
            match plan_of(&r) {
                Err(RequestError::Invalid { field: f, why }) => {
                    assert_eq!(f, field);
                    assert!(why.contains(words), "{field}: {why}");
                }
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn legacy_and_list_outputs_resolve_like_livekit() {
        // The node SDK sends a bare file both ways: one file, not two.
        let mut r = file_req("a.mp4");
        #[allow(deprecated)]
        {
            r.output = Some(Output::File(r.file_outputs[0].clone()));
        }
        assert_eq!(plan_of(&r).unwrap().file.unwrap().filename, "a.mp4");
        r.file_outputs.clear();
        assert_eq!(plan_of(&r).unwrap().file.unwrap().filename, "a.mp4");
        let mut s = file_req("a.mp4");
        s.stream_outputs.push(proto::StreamOutput { urls: vec!["http://x/y".into()], ..Default::default() });
        assert!(matches!(plan_of(&s), Err(RequestError::Invalid { field: "stream_outputs.urls", .. })));
        s.stream_outputs[0].urls = vec!["rtmp://127.0.0.1/live/key".into()];
        assert_eq!(plan_of(&s).unwrap().streams.len(), 1);
    }

    #[test]
    fn advanced_options_fill_from_the_default() {
        let mut r = file_req("a.mp4");
        r.options = Some(Options::Advanced(proto::EncodingOptions {
            framerate: 25,
            video_codec: proto::VideoCodec::H264High as i32,
            ..Default::default()
        }));
        let e = plan_of(&r).unwrap().encoding;
        assert_eq!((e.width, e.height, e.framerate, e.profile), (1280, 720, 25, H264Profile::High));
        r.options = Some(Options::Preset(proto::EncodingOptionsPreset::PortraitH2641080p30 as i32));
        let e = plan_of(&r).unwrap().encoding;
        assert_eq!((e.width, e.height, e.video_bitrate_kbps), (1080, 1920, 4500));
    }
}
