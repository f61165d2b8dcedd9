//! Every field of every request the Egress API takes, honoured or refused, nothing silent.
//!
//! The fields come from the `.proto` files the `livekit-protocol` crate ships (found through
//! `cargo metadata`): the messages reachable from the inputs of `service Egress`. Each one is
//! classified in `TABLE`, and a field the crate gains fails this test until it is classified.
//! - **Honoured**: its check sets the field on an otherwise plain request and asserts its
//!   effect on what the job will run (the plan: encoding, names, storage, sources, webhooks)
//!   or on the result (EgressInfo, through a running service with devroom for the calls that
//!   act on a running egress).
//! - **Refused**: its check sets the field and returns the error, which must name the field.

mod common;

use livekit_protocol as proto;
use proto::direct_file_output::Output as DO;
use proto::room_composite_egress_request as rc;
use proto::track_egress_request::Output as TO;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use tessera::egress::request::{
    self, CompositeRequest, ManifestVia, Plan, PlanContext, PlanSource, RequestError, Subject,
};
use tessera::egress::{EgressError, Manager};
use tessera::encode::H264Profile;
use tessera::recording::{AudioPick, AudioRoute, Channel, RouteMatch, VideoPick};

// --- the fields, read from the crate's .proto files ---

/// `Message.field` for every field of the messages `service Egress` takes, transitively.
fn request_fields() -> BTreeSet<String> {
    let dir = protobufs_dir();
    let mut messages: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut rpc_inputs = Vec::new();
    for file in ["livekit_models.proto", "livekit_egress.proto"] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        parse_proto(&text, &mut messages, &mut rpc_inputs);
    }
    assert!(rpc_inputs.len() >= 10, "service Egress not found: {rpc_inputs:?}");
    let mut seen = BTreeSet::new();
    let mut todo = rpc_inputs;
    let mut fields = BTreeSet::new();
    while let Some(m) = todo.pop() {
        if !seen.insert(m.clone()) {
            continue;
        }
        for (ty, name) in messages.get(&m).unwrap_or_else(|| panic!("message {m} not parsed")) {
            fields.insert(format!("{m}.{name}"));
            if messages.contains_key(ty) {
                todo.push(ty.clone());
            }
        }
    }
    fields
}

/// livekit-protocol's `protocol/protobufs`, wherever cargo unpacked the crate.
fn protobufs_dir() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let metadata = |offline: bool| {
        let mut c = std::process::Command::new(&cargo);
        c.args(["metadata", "--format-version", "1", "--manifest-path"])
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"));
        if offline {
            c.arg("--offline");
        }
        c.output().expect("cargo metadata runs")
    };
    // The build has every crate unpacked already; online only if it somehow has not.
    let mut out = metadata(true);
    if !out.status.success() {
        out = metadata(false);
    }
    assert!(out.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let manifest = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "livekit-protocol")
        .and_then(|p| p["manifest_path"].as_str())
        .expect("livekit-protocol in the dependency graph");
    Path::new(manifest).parent().unwrap().join("protocol/protobufs")
}

/// A small reader of proto3: messages (nested ones as `Outer.Inner`), their fields with
/// their types (oneof members included), and the input types of `service Egress`.
fn parse_proto(text: &str, messages: &mut BTreeMap<String, Vec<(String, String)>>, rpc_inputs: &mut Vec<String>) {
    let mut stack: Vec<(String, String)> = Vec::new();
    for raw in text.lines() {
        let line = raw.split("//").next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if line.ends_with('{') && matches!(words[0], "message" | "enum" | "oneof" | "service") {
            stack.push((words[0].to_string(), words[1].trim_end_matches('{').to_string()));
            if words[0] == "message" {
                messages.entry(message_path(&stack)).or_default();
            }
            continue;
        }
        if line.starts_with('}') {
            stack.pop();
            continue;
        }
        match stack.last().map(|(k, n)| (k.as_str(), n.as_str())) {
            Some(("service", "Egress")) if words[0] == "rpc" => {
                let input = line.split('(').nth(1).and_then(|r| r.split(')').next()).unwrap_or("");
                rpc_inputs.push(input.trim().to_string());
            }
            Some(("message" | "oneof", _)) => {
                let decl = line.split('=').next().unwrap_or("");
                let parts: Vec<&str> =
                    decl.split_whitespace().filter(|w| *w != "repeated" && *w != "optional").collect();
                if line.contains('=') && parts.len() == 2 && !matches!(parts[0], "reserved" | "option") {
                    let ty = parts[0].to_string();
                    messages.get_mut(&message_path(&stack)).unwrap().push((ty, parts[1].to_string()));
                } else if line.contains('=') && line.starts_with("map<") {
                    let name = decl.rsplit('>').next().unwrap_or("").trim().to_string();
                    messages.get_mut(&message_path(&stack)).unwrap().push(("map".into(), name));
                }
            }
            _ => {}
        }
    }
}

fn message_path(stack: &[(String, String)]) -> String {
    stack.iter().filter(|(k, _)| k == "message").map(|(_, n)| n.as_str()).collect::<Vec<_>>().join(".")
}

// --- the rig: plans, and a running service for the calls on a running egress ---

struct Rig {
    dir: PathBuf,
    layouts: Vec<String>,
    rt: tokio::runtime::Runtime,
    service: OnceLock<(Arc<Manager>, tessera::devroom::DevRoom)>,
}

impl Rig {
    fn new() -> Rig {
        let dir = common::workdir("conformance");
        Rig {
            dir,
            layouts: tessera::layout::LayoutSet::builtin().unwrap().names(),
            rt: tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap(),
            service: OnceLock::new(),
        }
    }

    fn ctx(&self) -> PlanContext<'_> {
        PlanContext {
            output_dir: &self.dir,
            local_dir: &self.dir,
            staging_dir: Box::leak(self.dir.join(".staging/EG_test").into_boxed_path()),
            api_key: common::service::KEY,
            layouts: &self.layouts,
            now: chrono::Utc::now(),
            storage: None,
            default_storage: None,
            disallow_local: false,
            follow_links: false,
        }
    }

    /// A room composite to `a.mp4`, changed by `f`, planned.
    fn rc(&self, f: impl FnOnce(&mut proto::RoomCompositeEgressRequest)) -> Result<Plan, RequestError> {
        let mut r = proto::RoomCompositeEgressRequest {
            room_name: "room".into(),
            file_outputs: vec![proto::EncodedFileOutput { filepath: "a.mp4".into(), ..Default::default() }],
            ..Default::default()
        };
        f(&mut r);
        request::plan(&CompositeRequest::from_room_composite(&r)?, &self.ctx())
    }

    fn web(&self, f: impl FnOnce(&mut proto::WebEgressRequest)) -> Result<Plan, RequestError> {
        let mut r = proto::WebEgressRequest {
            url: "http://127.0.0.1:1/page".into(),
            file_outputs: vec![proto::EncodedFileOutput { filepath: "w.mp4".into(), ..Default::default() }],
            ..Default::default()
        };
        f(&mut r);
        request::plan(&CompositeRequest::from_web(&r)?, &self.ctx())
    }

    /// A participant egress of `alice` to `a.mp4`, changed by `f`, planned.
    fn participant(&self, f: impl FnOnce(&mut proto::ParticipantEgressRequest)) -> Result<Plan, RequestError> {
        let mut r = proto::ParticipantEgressRequest {
            room_name: "room".into(),
            identity: "alice".into(),
            file_outputs: vec![proto::EncodedFileOutput { filepath: "a.mp4".into(), ..Default::default() }],
            ..Default::default()
        };
        f(&mut r);
        request::plan(&CompositeRequest::from_participant(&r)?, &self.ctx())
    }

    /// A track composite of `TR_a` and `TR_v` to `a.mp4`, changed by `f`, planned.
    fn track(&self, f: impl FnOnce(&mut proto::TrackEgressRequest)) -> Result<Plan, RequestError> {
        let mut r = proto::TrackEgressRequest {
            room_name: "room".into(),
            track_id: "TR_a".into(),
            output: Some(TO::File(proto::DirectFileOutput { filepath: "t-{track_id}".into(), ..Default::default() })),
            ..Default::default()
        };
        f(&mut r);
        request::plan(&CompositeRequest::from_track(&r)?, &self.ctx())
    }

    fn tc(&self, f: impl FnOnce(&mut proto::TrackCompositeEgressRequest)) -> Result<Plan, RequestError> {
        let mut r = proto::TrackCompositeEgressRequest {
            room_name: "room".into(),
            audio_track_id: "TR_a".into(),
            video_track_id: "TR_v".into(),
            file_outputs: vec![proto::EncodedFileOutput { filepath: "a.mp4".into(), ..Default::default() }],
            ..Default::default()
        };
        f(&mut r);
        request::plan(&CompositeRequest::from_track_composite(&r)?, &self.ctx())
    }

    /// A v2 StartEgress with a template source and a file output, changed by `f`.
    fn v2(&self, f: impl FnOnce(&mut proto::StartEgressRequest)) -> Result<Plan, RequestError> {
        let mut r = proto::StartEgressRequest {
            room_name: "room".into(),
            source: Some(proto::start_egress_request::Source::Template(proto::TemplateSource::default())),
            outputs: vec![output(proto::output::Config::File(proto::FileOutput {
                filepath: "v.mp4".into(),
                ..Default::default()
            }))],
            ..Default::default()
        };
        f(&mut r);
        request::plan(&CompositeRequest::from_start_egress(&r)?, &self.ctx())
    }

    /// A `tessera serve` manager in this process, recording a devroom room nobody publishes
    /// in (so its egresses stay running until stopped).
    fn manager(&self) -> &Arc<Manager> {
        &self
            .service
            .get_or_init(|| {
                self.rt.block_on(async {
                    let room = common::service::devroom().await;
                    let yaml = format!(
                        "api_key: {}\napi_secret: {}\nws_url: {}\noutput_dir: {}\nrenderer: cpu\ncpu_cost:\n  cpus: 64\n",
                        common::service::KEY,
                        common::service::SECRET,
                        room.url(),
                        self.dir.join("service").display()
                    );
                    let cfg = tessera::config::ServiceConfig::parse(&yaml).unwrap().config;
                    (Manager::new(cfg, tessera::layout::LayoutSet::builtin().unwrap()).unwrap(), room)
                })
            })
            .0
    }

    /// A running room composite of `room`, streaming to a port nobody listens on.
    fn running(&self, room: &str) -> proto::EgressInfo {
        let m = self.manager().clone();
        self.rt
            .block_on(m.start_room_composite(proto::RoomCompositeEgressRequest {
                room_name: room.into(),
                stream_outputs: vec![proto::StreamOutput {
                    urls: vec!["rtmp://127.0.0.1:9/live/one".into()],
                    ..Default::default()
                }],
                file_outputs: vec![proto::EncodedFileOutput { filepath: format!("{room}.mp4"), ..Default::default() }],
                ..Default::default()
            }))
            .unwrap()
    }
}

/// A room composite of an open room (its sid known, as the service looks it up), planned.
fn rc_in_room(rig: &Rig, f: impl FnOnce(&mut proto::RoomCompositeEgressRequest)) -> Result<Plan, RequestError> {
    let mut r = proto::RoomCompositeEgressRequest { room_name: "room".into(), ..Default::default() };
    f(&mut r);
    let mut c = CompositeRequest::from_room_composite(&r)?;
    c.room_id = "RM_open".into();
    request::plan(&c, &rig.ctx())
}

fn output(config: proto::output::Config) -> proto::Output {
    proto::Output { config: Some(config), storage: None }
}

fn s3(bucket: &str) -> proto::S3Upload {
    proto::S3Upload {
        access_key: "AK".into(),
        secret: "SK".into(),
        region: "eu-west-1".into(),
        bucket: bucket.into(),
        ..Default::default()
    }
}

fn file_with(o: rc::Output) -> impl FnOnce(&mut proto::RoomCompositeEgressRequest) {
    move |r| {
        r.file_outputs.clear();
        r.output = Some(o);
    }
}

/// The error of a plan that must fail.
fn err(r: Result<Plan, RequestError>) -> String {
    match r {
        Err(e) => e.to_string(),
        Ok(p) => panic!("accepted: {p:?}"),
    }
}

fn egress_err(r: Result<proto::EgressInfo, EgressError>) -> String {
    match r {
        Err(e) => e.to_string(),
        Ok(i) => panic!("accepted: {i:?}"),
    }
}

fn s3_of(p: &Plan) -> &tessera::upload::config::S3Config {
    match &p.file_storage.as_ref().expect("a storage").provider {
        tessera::upload::config::Provider::S3(c) => c,
        other => panic!("not S3: {other:?}"),
    }
}

/// A room composite whose file goes to S3 with `f` applied to the upload.
fn rc_s3(rig: &Rig, f: impl FnOnce(&mut proto::S3Upload)) -> Result<Plan, RequestError> {
    let mut u = s3("b");
    f(&mut u);
    rig.rc(|r| r.file_outputs[0].output = Some(proto::encoded_file_output::Output::S3(u)))
}

fn rc_storage(rig: &Rig, o: proto::encoded_file_output::Output) -> Result<Plan, RequestError> {
    rig.rc(|r| r.file_outputs[0].output = Some(o))
}

fn gcp_of(p: &Plan) -> &tessera::upload::config::GcpConfig {
    match &p.file_storage.as_ref().unwrap().provider {
        tessera::upload::config::Provider::Gcp(c) => c,
        other => panic!("not GCS: {other:?}"),
    }
}

fn azure_of(p: &Plan) -> &tessera::upload::config::AzureConfig {
    match &p.file_storage.as_ref().unwrap().provider {
        tessera::upload::config::Provider::Azure(c) => c,
        other => panic!("not Azure: {other:?}"),
    }
}

fn segments(g: proto::SegmentedFileOutput) -> impl FnOnce(&mut proto::RoomCompositeEgressRequest) {
    move |r| {
        r.file_outputs.clear();
        r.segment_outputs = vec![g];
    }
}

fn images(i: proto::ImageOutput) -> impl FnOnce(&mut proto::RoomCompositeEgressRequest) {
    move |r| r.image_outputs = vec![i]
}

fn advanced(a: proto::EncodingOptions) -> impl FnOnce(&mut proto::RoomCompositeEgressRequest) {
    move |r| r.options = Some(rc::Options::Advanced(a))
}

fn hook(w: proto::WebhookConfig) -> impl FnOnce(&mut proto::RoomCompositeEgressRequest) {
    move |r| r.webhooks = vec![w]
}

fn url_hook() -> proto::WebhookConfig {
    proto::WebhookConfig { url: "http://127.0.0.1:9/hook".into(), ..Default::default() }
}

/// A track egress whose file has the storage `o`, planned.
fn track_storage(rig: &Rig, o: DO) -> Result<Plan, RequestError> {
    rig.track(|r| {
        r.output =
            Some(TO::File(proto::DirectFileOutput { filepath: "t".into(), output: Some(o), ..Default::default() }))
    })
}

/// A v2 StartEgress with a media source changed by `f`, planned.
fn media(rig: &Rig, f: impl FnOnce(&mut proto::MediaSource)) -> Result<Plan, RequestError> {
    let mut m = proto::MediaSource::default();
    f(&mut m);
    rig.v2(|r| r.source = Some(proto::start_egress_request::Source::Media(m)))
}

fn routes(p: Plan) -> Vec<AudioRoute> {
    match p.subject {
        Subject::Media { audio, .. } => audio.routes,
        other => panic!("not a media source: {other:?}"),
    }
}

fn route(f: impl FnOnce(&mut proto::AudioRoute)) -> impl FnOnce(&mut proto::MediaSource) {
    move |m| {
        let mut r = proto::AudioRoute::default();
        f(&mut r);
        m.audio = Some(proto::AudioConfig { capture_all: false, routes: vec![r] })
    }
}

enum Class {
    /// The check asserts the field's effect.
    Honoured(fn(&Rig)),
    /// The check returns the refusal, which must name `names`.
    Refused(&'static str, fn(&Rig) -> String),
}
use Class::{Honoured as H, Refused as R};

#[rustfmt::skip]
fn table() -> Vec<(&'static str, Class)> {
    use proto::encoded_file_output::Output as FO;
    vec![
        // --- StartEgressRequest (v2) ---
        ("StartEgressRequest.room_name", H(|rig| {
            assert_eq!(rig.v2(|r| r.room_name = "other".into()).unwrap().room_name, "other");
            // A web egress keeps the room it names.
            let p = rig.v2(|r| { r.room_name = "kept".into(); r.source = Some(proto::start_egress_request::Source::Web(proto::WebSource { url: "http://127.0.0.1:1/".into(), ..Default::default() })); }).unwrap();
            assert_eq!(p.room_name, "kept");
        })),
        ("StartEgressRequest.template", H(|rig| {
            let p = rig.v2(|r| r.source = Some(proto::start_egress_request::Source::Template(proto::TemplateSource { layout: "speaker".into(), ..Default::default() }))).unwrap();
            assert_eq!((p.source, p.layout.as_str()), (PlanSource::Native, "speaker"));
        })),
        ("StartEgressRequest.web", H(|rig| {
            let p = rig.v2(|r| r.source = Some(proto::start_egress_request::Source::Web(proto::WebSource { url: "http://127.0.0.1:1/x".into(), ..Default::default() }))).unwrap();
            assert!(matches!(p.source, PlanSource::Web { ref url, .. } if url == "http://127.0.0.1:1/x"));
        })),
        ("StartEgressRequest.media", H(|rig| {
            assert!(media(rig, |m| m.video = Some(proto::media_source::Video::VideoTrackId("TR_v".into()))).is_ok());
            assert!(err(media(rig, |_| {})).contains("media"));
        })),
        ("StartEgressRequest.preset", H(|rig| {
            let p = rig.v2(|r| r.encoding = Some(proto::start_egress_request::Encoding::Preset(proto::EncodingOptionsPreset::H2641080p60 as i32))).unwrap();
            assert_eq!((p.encoding.width, p.encoding.framerate, p.encoding.video_bitrate_kbps), (1920, 60, 6000));
        })),
        ("StartEgressRequest.advanced", H(|rig| {
            let p = rig.v2(|r| r.encoding = Some(proto::start_egress_request::Encoding::Advanced(proto::EncodingOptions { framerate: 24, ..Default::default() }))).unwrap();
            assert_eq!(p.encoding.framerate, 24);
        })),
        ("StartEgressRequest.outputs", H(|rig| {
            let p = rig.v2(|r| r.outputs.push(output(proto::output::Config::Images(proto::ImageOutput { capture_interval: 3, ..Default::default() })))).unwrap();
            assert_eq!((p.file.unwrap().filename.as_str(), p.images[0].interval_s), ("v.mp4", 3));
        })),
        ("StartEgressRequest.storage", H(|rig| {
            // The request's storage serves every output without its own.
            let p = rig.v2(|r| r.storage = Some(proto::StorageConfig { provider: Some(proto::storage_config::Provider::S3(s3("req"))) })).unwrap();
            assert_eq!(s3_of(&p).bucket, "req");
        })),
        ("StartEgressRequest.webhooks", H(|rig| {
            let p = rig.v2(|r| r.webhooks = vec![url_hook()]).unwrap();
            assert_eq!(p.webhooks[0].0, "http://127.0.0.1:9/hook");
        })),
        // --- the calls on a running egress ---
        ("UpdateLayoutRequest.egress_id", H(|rig| {
            let m = rig.manager().clone();
            let e = rig.rt.block_on(m.update_layout(proto::UpdateLayoutRequest { egress_id: "EG_none".into(), layout: "grid".into() }));
            assert!(matches!(e, Err(EgressError::NotFound(_))), "{e:?}");
        })),
        ("UpdateLayoutRequest.layout", H(|rig| {
            let id = rig.running("layouts").egress_id;
            let m = rig.manager().clone();
            let i = rig.rt.block_on(m.update_layout(proto::UpdateLayoutRequest { egress_id: id.clone(), layout: "speaker".into() })).unwrap();
            let Some(proto::egress_info::Request::RoomComposite(r)) = i.request else { panic!() };
            assert_eq!(r.layout, "speaker");
            let bad = rig.rt.block_on(m.update_layout(proto::UpdateLayoutRequest { egress_id: id.clone(), layout: "nope".into() }));
            assert!(bad.unwrap_err().to_string().contains("layout"));
            m.stop(&proto::StopEgressRequest { egress_id: id }).unwrap();
        })),
        ("UpdateStreamRequest.egress_id", H(|rig| {
            let e = rig.manager().update_stream(proto::UpdateStreamRequest { egress_id: "EG_none".into(), ..Default::default() });
            assert!(matches!(e, Err(EgressError::NotFound(_))), "{e:?}");
        })),
        ("UpdateStreamRequest.add_output_urls", H(|rig| {
            let id = rig.running("streams-add").egress_id;
            let m = rig.manager().clone();
            let _in = rig.rt.enter();
            let i = m.update_stream(proto::UpdateStreamRequest { egress_id: id.clone(), add_output_urls: vec!["rtmp://127.0.0.1:9/live/two".into()], ..Default::default() }).unwrap();
            assert_eq!(i.stream_results.len(), 2, "{i:?}");
            m.stop(&proto::StopEgressRequest { egress_id: id }).unwrap();
        })),
        ("UpdateStreamRequest.remove_output_urls", H(|rig| {
            let id = rig.running("streams-remove").egress_id;
            let m = rig.manager().clone();
            let _in = rig.rt.enter();
            let i = m.update_stream(proto::UpdateStreamRequest { egress_id: id.clone(), remove_output_urls: vec!["rtmp://127.0.0.1:9/live/one".into()], ..Default::default() }).unwrap();
            assert_eq!(i.stream_results[0].status, proto::stream_info::Status::Finished as i32, "{i:?}");
            m.stop(&proto::StopEgressRequest { egress_id: id }).unwrap();
        })),
        ("ListEgressRequest.room_name", H(|rig| {
            let id = rig.running("listed").egress_id;
            let l = rig.manager().list(&proto::ListEgressRequest { room_name: "listed".into(), ..Default::default() }).unwrap();
            assert!(l.items.iter().all(|i| i.room_name == "listed") && l.items.iter().any(|i| i.egress_id == id));
        })),
        ("ListEgressRequest.egress_id", H(|rig| {
            let id = rig.running("by-id").egress_id;
            let l = rig.manager().list(&proto::ListEgressRequest { egress_id: id.clone(), ..Default::default() }).unwrap();
            assert_eq!(l.items.iter().map(|i| i.egress_id.as_str()).collect::<Vec<_>>(), [id.as_str()]);
        })),
        ("ListEgressRequest.active", H(|rig| {
            let m = rig.manager().clone();
            let id = rig.running("ended").egress_id;
            m.stop(&proto::StopEgressRequest { egress_id: id.clone() }).unwrap();
            let job = m.all_jobs().into_iter().find(|j| j.id == id).unwrap();
            rig.rt.block_on(job.ended());
            let l = m.list(&proto::ListEgressRequest { active: true, ..Default::default() }).unwrap();
            assert!(l.items.iter().all(|i| i.egress_id != id));
        })),
        ("ListEgressRequest.page_token", R("page_token", |rig| {
            egress_err(rig.manager().list(&proto::ListEgressRequest { page_token: Some(proto::TokenPagination { token: "x".into() }), ..Default::default() }).map(|_| proto::EgressInfo::default()))
        })),
        ("TokenPagination.token", R("page_token", |rig| {
            egress_err(rig.manager().list(&proto::ListEgressRequest { page_token: Some(proto::TokenPagination { token: "next".into() }), ..Default::default() }).map(|_| proto::EgressInfo::default()))
        })),
        ("StopEgressRequest.egress_id", H(|rig| {
            let id = rig.running("stopped").egress_id;
            let i = rig.manager().stop(&proto::StopEgressRequest { egress_id: id }).unwrap();
            assert_eq!(i.status, proto::EgressStatus::EgressEnding as i32);
        })),
        // --- RoomCompositeEgressRequest ---
        ("RoomCompositeEgressRequest.room_name", H(|rig| assert_eq!(rig.rc(|r| r.room_name = "x".into()).unwrap().room_name, "x"))),
        ("RoomCompositeEgressRequest.layout", H(|rig| assert_eq!(rig.rc(|r| r.layout = "speaker-light".into()).unwrap().layout, "speaker-light"))),
        ("RoomCompositeEgressRequest.audio_only", H(|rig| assert!(rig.rc(|r| { r.audio_only = true; r.file_outputs[0].filepath = "a.ogg".into(); }).unwrap().audio_only))),
        ("RoomCompositeEgressRequest.audio_mixing", H(|rig| {
            use tessera::egress::request::ChannelMixing;
            assert_eq!(rig.rc(|r| r.audio_mixing = proto::AudioMixing::DualChannelAgent as i32).unwrap().mixing, ChannelMixing::AgentLeft);
            assert_eq!(rig.rc(|r| r.audio_mixing = proto::AudioMixing::DualChannelAlternate as i32).unwrap().mixing, ChannelMixing::Alternate);
            assert!(err(rig.rc(|r| r.audio_mixing = 7)).contains("audio_mixing"));
            assert!(err(rig.rc(|r| { r.audio_mixing = 1; r.custom_base_url = "http://h/t".into(); })).contains("audio_mixing"));
        })),
        ("RoomCompositeEgressRequest.video_only", H(|rig| assert!(rig.rc(|r| r.video_only = true).unwrap().video_only))),
        ("RoomCompositeEgressRequest.custom_base_url", H(|rig| {
            let p = rig.rc(|r| r.custom_base_url = "http://127.0.0.1:1/t".into()).unwrap();
            assert_eq!(p.source, PlanSource::Template { base_url: "http://127.0.0.1:1/t".into() });
        })),
        ("RoomCompositeEgressRequest.file", H(|rig| {
            #[allow(deprecated)]
            let p = rig.rc(file_with(rc::Output::File(proto::EncodedFileOutput { filepath: "legacy.mp4".into(), ..Default::default() }))).unwrap();
            assert_eq!(p.file.unwrap().filename, "legacy.mp4");
        })),
        ("RoomCompositeEgressRequest.stream", H(|rig| {
            #[allow(deprecated)]
            let p = rig.rc(file_with(rc::Output::Stream(proto::StreamOutput { urls: vec!["rtmp://h/app/k".into()], ..Default::default() }))).unwrap();
            assert_eq!(p.streams, ["rtmp://h/app/k"]);
        })),
        ("RoomCompositeEgressRequest.segments", H(|rig| {
            #[allow(deprecated)]
            let p = rig.rc(file_with(rc::Output::Segments(proto::SegmentedFileOutput { filename_prefix: "s/seg".into(), ..Default::default() }))).unwrap();
            assert_eq!(p.segments.unwrap().prefix, "seg");
        })),
        ("RoomCompositeEgressRequest.preset", H(|rig| {
            let p = rig.rc(|r| r.options = Some(rc::Options::Preset(proto::EncodingOptionsPreset::PortraitH264720p30 as i32))).unwrap();
            assert_eq!((p.encoding.width, p.encoding.height), (720, 1280));
        })),
        ("RoomCompositeEgressRequest.advanced", H(|rig| assert_eq!(rig.rc(advanced(proto::EncodingOptions { video_bitrate: 1500, ..Default::default() })).unwrap().encoding.video_bitrate_kbps, 1500))),
        ("RoomCompositeEgressRequest.file_outputs", H(|rig| assert_eq!(rig.rc(|_| {}).unwrap().file.unwrap().path, rig.dir.join("a.mp4")))),
        ("RoomCompositeEgressRequest.stream_outputs", H(|rig| {
            let p = rig.rc(|r| r.stream_outputs = vec![proto::StreamOutput { urls: vec!["srt://127.0.0.1:9000".into()], ..Default::default() }]).unwrap();
            assert_eq!(p.streams, ["srt://127.0.0.1:9000"]);
        })),
        ("RoomCompositeEgressRequest.segment_outputs", H(|rig| assert!(rig.rc(segments(Default::default())).unwrap().segments.is_some()))),
        ("RoomCompositeEgressRequest.image_outputs", H(|rig| assert_eq!(rig.rc(images(Default::default())).unwrap().images.len(), 1))),
        ("RoomCompositeEgressRequest.webhooks", H(|rig| assert_eq!(rig.rc(hook(url_hook())).unwrap().webhooks.len(), 1))),
        // --- WebEgressRequest ---
        ("WebEgressRequest.url", H(|rig| assert!(matches!(rig.web(|r| r.url = "https://example.test/p".into()).unwrap().source, PlanSource::Web { url, .. } if url == "https://example.test/p")))),
        ("WebEgressRequest.audio_only", H(|rig| assert!(rig.web(|r| { r.audio_only = true; r.file_outputs[0].filepath = "w.ogg".into(); }).unwrap().audio_only))),
        ("WebEgressRequest.video_only", H(|rig| assert!(rig.web(|r| r.video_only = true).unwrap().video_only))),
        ("WebEgressRequest.await_start_signal", H(|rig| assert!(matches!(rig.web(|r| r.await_start_signal = true).unwrap().source, PlanSource::Web { await_start_signal: true, .. })))),
        ("WebEgressRequest.file", H(|rig| {
            #[allow(deprecated)]
            let p = rig.web(|r| { r.file_outputs.clear(); r.output = Some(proto::web_egress_request::Output::File(proto::EncodedFileOutput { filepath: "wl.mp4".into(), ..Default::default() })); }).unwrap();
            assert_eq!(p.file.unwrap().filename, "wl.mp4");
        })),
        ("WebEgressRequest.stream", H(|rig| {
            #[allow(deprecated)]
            let p = rig.web(|r| { r.file_outputs.clear(); r.output = Some(proto::web_egress_request::Output::Stream(proto::StreamOutput { urls: vec!["rtmps://h/app/key".into()], ..Default::default() })); }).unwrap();
            assert_eq!(p.streams, ["rtmps://h/app/key"]);
        })),
        ("WebEgressRequest.segments", H(|rig| {
            #[allow(deprecated)]
            let p = rig.web(|r| { r.file_outputs.clear(); r.output = Some(proto::web_egress_request::Output::Segments(Default::default())); }).unwrap();
            assert!(p.segments.unwrap().prefix.starts_with("web-"));
        })),
        ("WebEgressRequest.preset", H(|rig| assert_eq!(rig.web(|r| r.options = Some(proto::web_egress_request::Options::Preset(proto::EncodingOptionsPreset::H2641080p30 as i32))).unwrap().encoding.height, 1080))),
        ("WebEgressRequest.advanced", H(|rig| assert_eq!(rig.web(|r| r.options = Some(proto::web_egress_request::Options::Advanced(proto::EncodingOptions { framerate: 15, ..Default::default() }))).unwrap().encoding.framerate, 15))),
        ("WebEgressRequest.file_outputs", H(|rig| assert!(rig.web(|_| {}).unwrap().file.unwrap().filename.ends_with("w.mp4")))),
        ("WebEgressRequest.stream_outputs", H(|rig| assert_eq!(rig.web(|r| r.stream_outputs = vec![proto::StreamOutput { urls: vec!["rtmp://h/app/k".into()], ..Default::default() }]).unwrap().streams.len(), 1))),
        ("WebEgressRequest.segment_outputs", H(|rig| assert!(rig.web(|r| r.segment_outputs = vec![Default::default()]).unwrap().segments.is_some()))),
        ("WebEgressRequest.image_outputs", H(|rig| assert_eq!(rig.web(|r| r.image_outputs = vec![Default::default()]).unwrap().images.len(), 1))),
        ("WebEgressRequest.webhooks", H(|rig| assert_eq!(rig.web(|r| r.webhooks = vec![url_hook()]).unwrap().webhooks.len(), 1))),
        // --- sources of the v2 request ---
        ("TemplateSource.layout", H(|rig| assert_eq!(rig.v2(|r| r.source = Some(proto::start_egress_request::Source::Template(proto::TemplateSource { layout: "single-speaker".into(), ..Default::default() }))).unwrap().layout, "single-speaker"))),
        ("TemplateSource.audio_only", H(|rig| {
            let p = rig.v2(|r| { r.source = Some(proto::start_egress_request::Source::Template(proto::TemplateSource { audio_only: true, ..Default::default() })); r.outputs[0] = output(proto::output::Config::File(proto::FileOutput { filepath: "v.ogg".into(), ..Default::default() })); }).unwrap();
            assert!(p.audio_only);
        })),
        ("TemplateSource.video_only", H(|rig| assert!(rig.v2(|r| r.source = Some(proto::start_egress_request::Source::Template(proto::TemplateSource { video_only: true, ..Default::default() }))).unwrap().video_only))),
        ("TemplateSource.custom_base_url", H(|rig| assert!(matches!(rig.v2(|r| r.source = Some(proto::start_egress_request::Source::Template(proto::TemplateSource { custom_base_url: "http://127.0.0.1:1/t".into(), ..Default::default() }))).unwrap().source, PlanSource::Template { .. })))),
        ("WebSource.url", H(|rig| assert!(matches!(rig.v2(|r| r.source = Some(proto::start_egress_request::Source::Web(proto::WebSource { url: "http://127.0.0.1:1/w".into(), ..Default::default() }))).unwrap().source, PlanSource::Web { url, .. } if url.ends_with("/w"))))),
        ("WebSource.audio_only", H(|rig| {
            let p = rig.v2(|r| { r.source = Some(proto::start_egress_request::Source::Web(proto::WebSource { url: "http://127.0.0.1:1/".into(), audio_only: true, ..Default::default() })); r.outputs[0] = output(proto::output::Config::File(proto::FileOutput { filepath: "v.ogg".into(), ..Default::default() })); }).unwrap();
            assert!(p.audio_only);
        })),
        ("WebSource.video_only", H(|rig| assert!(rig.v2(|r| r.source = Some(proto::start_egress_request::Source::Web(proto::WebSource { url: "http://127.0.0.1:1/".into(), video_only: true, ..Default::default() }))).unwrap().video_only))),
        ("WebSource.await_start_signal", H(|rig| assert!(matches!(rig.v2(|r| r.source = Some(proto::start_egress_request::Source::Web(proto::WebSource { url: "http://127.0.0.1:1/".into(), await_start_signal: true, ..Default::default() }))).unwrap().source, PlanSource::Web { await_start_signal: true, .. })))),
        ("MediaSource.video_track_id", H(|rig| {
            let p = media(rig, |m| m.video = Some(proto::media_source::Video::VideoTrackId("TR_v".into()))).unwrap();
            assert_eq!(p.subject, Subject::Media { video: Some(VideoPick::Track("TR_v".into())), audio: AudioPick::default() });
            assert!(p.video_only && p.layout == "participant");
        })),
        ("MediaSource.participant_video", H(|rig| {
            let p = media(rig, |m| m.video = Some(proto::media_source::Video::ParticipantVideo(proto::ParticipantVideo { identity: "alice".into(), prefer_screen_share: false }))).unwrap();
            assert!(matches!(p.subject, Subject::Media { video: Some(VideoPick::Participant { .. }), .. }));
        })),
        ("MediaSource.audio", H(|rig| {
            let p = media(rig, |m| m.audio = Some(proto::AudioConfig { capture_all: true, routes: vec![] })).unwrap();
            assert!(p.audio_only);
            assert!(err(media(rig, |m| m.audio = Some(Default::default()))).contains("media"));
        })),
        ("ParticipantVideo.identity", H(|rig| {
            let p = media(rig, |m| m.video = Some(proto::media_source::Video::ParticipantVideo(proto::ParticipantVideo { identity: "alice".into(), prefer_screen_share: false }))).unwrap();
            assert!(matches!(&p.subject, Subject::Media { video: Some(VideoPick::Participant { identity, .. }), .. } if identity == "alice"));
            assert!(err(media(rig, |m| m.video = Some(proto::media_source::Video::ParticipantVideo(Default::default())))).contains("participant_video.identity"));
        })),
        ("ParticipantVideo.prefer_screen_share", H(|rig| {
            let p = media(rig, |m| m.video = Some(proto::media_source::Video::ParticipantVideo(proto::ParticipantVideo { identity: "alice".into(), prefer_screen_share: true }))).unwrap();
            assert!(matches!(p.subject, Subject::Media { video: Some(VideoPick::Participant { prefer_screen_share: true, .. }), .. }));
        })),
        ("AudioConfig.capture_all", H(|rig| {
            let p = media(rig, |m| m.audio = Some(proto::AudioConfig { capture_all: true, routes: vec![] })).unwrap();
            assert!(matches!(p.subject, Subject::Media { audio: AudioPick { capture_all: true, .. }, .. }));
        })),
        ("AudioConfig.routes", H(|rig| {
            assert_eq!(routes(media(rig, route(|r| r.r#match = Some(proto::audio_route::Match::TrackId("TR_a".into())))).unwrap()).len(), 1);
            assert!(err(media(rig, route(|_| {}))).contains("audio.routes"));
        })),
        ("AudioRoute.track_id", H(|rig| {
            let r = routes(media(rig, route(|r| r.r#match = Some(proto::audio_route::Match::TrackId("TR_a".into())))).unwrap());
            assert_eq!(r[0].matches, RouteMatch::Track("TR_a".into()));
        })),
        ("AudioRoute.participant_identity", H(|rig| {
            let r = routes(media(rig, route(|r| r.r#match = Some(proto::audio_route::Match::ParticipantIdentity("bob".into())))).unwrap());
            assert_eq!(r[0].matches, RouteMatch::Identity("bob".into()));
        })),
        ("AudioRoute.participant_kind", H(|rig| {
            let r = routes(media(rig, route(|r| r.r#match = Some(proto::audio_route::Match::ParticipantKind(4)))).unwrap());
            assert_eq!(r[0].matches, RouteMatch::Kind(4));
        })),
        ("AudioRoute.channel", H(|rig| {
            let r = routes(media(rig, route(|r| { r.r#match = Some(proto::audio_route::Match::ParticipantKind(4)); r.channel = proto::AudioChannel::Left as i32; })).unwrap());
            assert_eq!(r[0].channel, Channel::Left);
            assert!(err(media(rig, route(|r| { r.r#match = Some(proto::audio_route::Match::ParticipantKind(4)); r.channel = 9; }))).contains("audio.routes"));
        })),
        // --- EncodingOptions ---
        ("EncodingOptions.width", H(|rig| {
            // Alone, as LiveKit takes it: the height stays the default's.
            let e = rig.rc(advanced(proto::EncodingOptions { width: 1920, ..Default::default() })).unwrap().encoding;
            assert_eq!((e.width, e.height), (1920, 720));
            assert!(err(rig.rc(advanced(proto::EncodingOptions { width: 641, ..Default::default() }))).contains("advanced.width"));
        })),
        ("EncodingOptions.height", H(|rig| {
            let e = rig.rc(advanced(proto::EncodingOptions { height: 1080, ..Default::default() })).unwrap().encoding;
            assert_eq!((e.width, e.height), (1280, 1080));
        })),
        ("EncodingOptions.depth", R("advanced.depth", |rig| err(rig.rc(advanced(proto::EncodingOptions { depth: 16, ..Default::default() }))))),
        ("EncodingOptions.framerate", H(|rig| assert_eq!(rig.rc(advanced(proto::EncodingOptions { framerate: 60, ..Default::default() })).unwrap().encoding.framerate, 60))),
        ("EncodingOptions.audio_codec", H(|rig| {
            // Opus in MP4 (LiveKit takes it); refused where it cannot go.
            assert!(rig.rc(advanced(proto::EncodingOptions { audio_codec: proto::AudioCodec::Opus as i32, ..Default::default() })).unwrap().encoding.opus_in_mp4);
            let hls = |rig: &Rig| err(rig.rc(|r| { r.options = Some(rc::Options::Advanced(proto::EncodingOptions { audio_codec: proto::AudioCodec::Opus as i32, ..Default::default() })); r.segment_outputs = vec![Default::default()]; }));
            assert!(hls(rig).contains("advanced.audio_codec"));
        })),
        ("EncodingOptions.audio_bitrate", H(|rig| assert_eq!(rig.rc(advanced(proto::EncodingOptions { audio_bitrate: 96, ..Default::default() })).unwrap().encoding.audio_bitrate_kbps, 96))),
        ("EncodingOptions.audio_frequency", H(|rig| {
            assert_eq!(rig.rc(advanced(proto::EncodingOptions { audio_frequency: 22050, ..Default::default() })).unwrap().encoding.audio_frequency, 22050);
            assert!(err(rig.rc(advanced(proto::EncodingOptions { audio_frequency: 12345, ..Default::default() }))).contains("advanced.audio_frequency"));
        })),
        ("EncodingOptions.video_codec", H(|rig| {
            assert_eq!(rig.rc(advanced(proto::EncodingOptions { video_codec: proto::VideoCodec::H264Baseline as i32, ..Default::default() })).unwrap().encoding.profile, H264Profile::Baseline);
            assert!(err(rig.rc(advanced(proto::EncodingOptions { video_codec: proto::VideoCodec::Vp8 as i32, ..Default::default() }))).contains("VP8"));
        })),
        ("EncodingOptions.video_bitrate", H(|rig| assert_eq!(rig.rc(advanced(proto::EncodingOptions { video_bitrate: 2000, ..Default::default() })).unwrap().encoding.video_bitrate_kbps, 2000))),
        ("EncodingOptions.key_frame_interval", H(|rig| assert_eq!(rig.rc(advanced(proto::EncodingOptions { key_frame_interval: 1.5, ..Default::default() })).unwrap().encoding.key_frame_interval, 1.5))),
        #[allow(deprecated)]
        ("EncodingOptions.audio_quality", R("advanced.audio_quality", |rig| err(rig.rc(advanced(proto::EncodingOptions { audio_quality: 5, ..Default::default() }))))),
        #[allow(deprecated)]
        ("EncodingOptions.video_quality", R("advanced.video_quality", |rig| err(rig.rc(advanced(proto::EncodingOptions { video_quality: 5, ..Default::default() }))))),
        // --- v2 outputs ---
        ("Output.file", H(|rig| assert_eq!(rig.v2(|_| {}).unwrap().file.unwrap().filename, "v.mp4"))),
        ("Output.stream", H(|rig| assert_eq!(rig.v2(|r| r.outputs.push(output(proto::output::Config::Stream(proto::StreamOutput { urls: vec!["rtmp://h/app/k".into()], ..Default::default() })))).unwrap().streams.len(), 1))),
        ("Output.segments", H(|rig| assert!(rig.v2(|r| r.outputs.push(output(proto::output::Config::Segments(Default::default())))).unwrap().segments.is_some()))),
        ("Output.images", H(|rig| assert_eq!(rig.v2(|r| r.outputs.push(output(proto::output::Config::Images(Default::default())))).unwrap().images.len(), 1))),
        ("Output.storage", H(|rig| {
            // An output's own storage wins over the request's.
            let p = rig.v2(|r| {
                r.storage = Some(proto::StorageConfig { provider: Some(proto::storage_config::Provider::S3(s3("req"))) });
                r.outputs[0].storage = Some(proto::StorageConfig { provider: Some(proto::storage_config::Provider::S3(s3("own"))) });
            }).unwrap();
            assert_eq!(s3_of(&p).bucket, "own");
        })),
        ("FileOutput.file_type", H(|rig| assert_eq!(rig.v2(|r| r.outputs[0] = output(proto::output::Config::File(proto::FileOutput { filepath: "noext".into(), file_type: proto::EncodedFileType::Mp4 as i32, ..Default::default() }))).unwrap().file.unwrap().filename, "noext.mp4"))),
        ("FileOutput.filepath", H(|rig| assert_eq!(rig.v2(|r| r.outputs[0] = output(proto::output::Config::File(proto::FileOutput { filepath: "d/{room_name}.mp4".into(), ..Default::default() }))).unwrap().file.unwrap().filename, "d/room.mp4"))),
        ("FileOutput.disable_manifest", H(|rig| {
            assert!(rig.v2(|_| {}).unwrap().manifest.is_some());
            assert!(rig.v2(|r| r.outputs[0] = output(proto::output::Config::File(proto::FileOutput { filepath: "v.mp4".into(), disable_manifest: true, ..Default::default() }))).unwrap().manifest.is_none());
        })),
        // --- storage ---
        ("StorageConfig.s3", H(|rig| assert_eq!(s3_of(&rig.v2(|r| r.storage = Some(proto::StorageConfig { provider: Some(proto::storage_config::Provider::S3(s3("x"))) })).unwrap()).bucket, "x"))),
        ("StorageConfig.gcp", H(|rig| {
            let p = rig.v2(|r| r.storage = Some(proto::StorageConfig { provider: Some(proto::storage_config::Provider::Gcp(proto::GcpUpload { bucket: "g".into(), ..Default::default() })) })).unwrap();
            assert_eq!(gcp_of(&p).bucket, "g");
        })),
        ("StorageConfig.azure", H(|rig| {
            let p = rig.v2(|r| r.storage = Some(proto::StorageConfig { provider: Some(proto::storage_config::Provider::Azure(proto::AzureBlobUpload { account_name: "n".into(), account_key: "k".into(), container_name: "c".into() })) })).unwrap();
            assert_eq!(azure_of(&p).container_name, "c");
        })),
        ("StorageConfig.aliOSS", R("aliOSS", |rig| err(rig.v2(|r| r.storage = Some(proto::StorageConfig { provider: Some(proto::storage_config::Provider::AliOss(Default::default())) }))))),
        ("S3Upload.access_key", H(|rig| assert_eq!(s3_of(&rc_s3(rig, |u| u.access_key = "AKX".into()).unwrap()).access_key.expose(), "AKX"))),
        ("S3Upload.secret", H(|rig| assert_eq!(s3_of(&rc_s3(rig, |u| u.secret = "SKX".into()).unwrap()).secret.expose(), "SKX"))),
        ("S3Upload.session_token", H(|rig| assert_eq!(s3_of(&rc_s3(rig, |u| u.session_token = "T".into()).unwrap()).session_token.expose(), "T"))),
        ("S3Upload.assume_role_arn", R("assume_role_arn", |rig| err(rc_s3(rig, |u| u.assume_role_arn = "arn:aws:iam::1:role/r".into())))),
        ("S3Upload.assume_role_external_id", R("assume_role_external_id", |rig| err(rc_s3(rig, |u| u.assume_role_external_id = "ext".into())))),
        ("S3Upload.region", H(|rig| assert_eq!(s3_of(&rc_s3(rig, |u| u.region = "ap-south-1".into()).unwrap()).region, "ap-south-1"))),
        ("S3Upload.endpoint", H(|rig| assert_eq!(s3_of(&rc_s3(rig, |u| u.endpoint = "http://127.0.0.1:9000".into()).unwrap()).endpoint, "http://127.0.0.1:9000"))),
        ("S3Upload.bucket", H(|rig| assert_eq!(s3_of(&rc_s3(rig, |u| u.bucket = "bk".into()).unwrap()).bucket, "bk"))),
        ("S3Upload.force_path_style", H(|rig| assert!(s3_of(&rc_s3(rig, |u| u.force_path_style = true).unwrap()).force_path_style))),
        ("S3Upload.metadata", H(|rig| assert_eq!(s3_of(&rc_s3(rig, |u| { u.metadata.insert("k".into(), "v".into()); }).unwrap()).metadata["k"], "v"))),
        ("S3Upload.tagging", H(|rig| assert_eq!(s3_of(&rc_s3(rig, |u| u.tagging = "a=b".into()).unwrap()).tagging, "a=b"))),
        ("S3Upload.content_disposition", H(|rig| assert_eq!(s3_of(&rc_s3(rig, |u| u.content_disposition = "inline".into()).unwrap()).content_disposition, "inline"))),
        ("S3Upload.proxy", R("proxy", |rig| err(rc_s3(rig, |u| u.proxy = Some(Default::default()))))),
        ("ProxyConfig.url", R("proxy", |rig| err(rc_s3(rig, |u| u.proxy = Some(proto::ProxyConfig { url: "http://p:1".into(), ..Default::default() }))))),
        ("ProxyConfig.username", R("proxy", |rig| err(rc_s3(rig, |u| u.proxy = Some(proto::ProxyConfig { username: "u".into(), ..Default::default() }))))),
        ("ProxyConfig.password", R("proxy", |rig| err(rc_s3(rig, |u| u.proxy = Some(proto::ProxyConfig { password: "p".into(), ..Default::default() }))))),
        ("GCPUpload.credentials", H(|rig| assert_eq!(gcp_of(&rc_storage(rig, FO::Gcp(proto::GcpUpload { credentials: "{}".into(), bucket: "g".into(), ..Default::default() })).unwrap()).credentials_json.expose(), "{}"))),
        ("GCPUpload.bucket", H(|rig| assert_eq!(gcp_of(&rc_storage(rig, FO::Gcp(proto::GcpUpload { bucket: "gb".into(), ..Default::default() })).unwrap()).bucket, "gb"))),
        ("GCPUpload.proxy", R("proxy", |rig| err(rc_storage(rig, FO::Gcp(proto::GcpUpload { bucket: "g".into(), proxy: Some(Default::default()), ..Default::default() }))))),
        ("AzureBlobUpload.account_name", H(|rig| assert_eq!(azure_of(&rc_storage(rig, FO::Azure(proto::AzureBlobUpload { account_name: "acct".into(), account_key: "k".into(), container_name: "c".into() })).unwrap()).account_name, "acct"))),
        ("AzureBlobUpload.account_key", H(|rig| assert_eq!(azure_of(&rc_storage(rig, FO::Azure(proto::AzureBlobUpload { account_name: "a".into(), account_key: "key".into(), container_name: "c".into() })).unwrap()).account_key.expose(), "key"))),
        ("AzureBlobUpload.container_name", H(|rig| assert_eq!(azure_of(&rc_storage(rig, FO::Azure(proto::AzureBlobUpload { account_name: "a".into(), account_key: "k".into(), container_name: "box".into() })).unwrap()).container_name, "box"))),
        ("AliOSSUpload.access_key", R("aliOSS", |rig| err(rc_storage(rig, FO::AliOss(proto::AliOssUpload { access_key: "a".into(), ..Default::default() }))))),
        ("AliOSSUpload.secret", R("aliOSS", |rig| err(rc_storage(rig, FO::AliOss(proto::AliOssUpload { secret: "s".into(), ..Default::default() }))))),
        ("AliOSSUpload.region", R("aliOSS", |rig| err(rc_storage(rig, FO::AliOss(proto::AliOssUpload { region: "r".into(), ..Default::default() }))))),
        ("AliOSSUpload.endpoint", R("aliOSS", |rig| err(rc_storage(rig, FO::AliOss(proto::AliOssUpload { endpoint: "http://e".into(), ..Default::default() }))))),
        ("AliOSSUpload.bucket", R("aliOSS", |rig| err(rc_storage(rig, FO::AliOss(proto::AliOssUpload { bucket: "b".into(), ..Default::default() }))))),
        // --- EncodedFileOutput ---
        ("EncodedFileOutput.file_type", H(|rig| {
            let p = rig.rc(|r| { r.audio_only = true; r.file_outputs[0] = proto::EncodedFileOutput { filepath: "x".into(), file_type: proto::EncodedFileType::Mp3 as i32, ..Default::default() }; }).unwrap();
            assert_eq!(p.file.unwrap().filename, "x.mp3");
        })),
        ("EncodedFileOutput.filepath", H(|rig| {
            assert_eq!(rig.rc(|r| r.file_outputs[0].filepath = "{room_name}/f.mp4".into()).unwrap().file.unwrap().filename, "room/f.mp4");
            let p = rc_in_room(rig, |r| r.file_outputs = vec![proto::EncodedFileOutput { filepath: "{room_id}.mp4".into(), ..Default::default() }]).unwrap();
            assert_eq!(p.file.unwrap().filename, "RM_open.mp4");
        })),
        ("EncodedFileOutput.disable_manifest", H(|rig| {
            // The manifest goes with the next output that keeps it (here: the images).
            let p = rig.rc(|r| { r.file_outputs[0].disable_manifest = true; r.image_outputs = vec![proto::ImageOutput { filename_prefix: "i/img".into(), ..Default::default() }]; }).unwrap();
            assert_eq!(p.manifest, Some((rig.dir.join("i"), ManifestVia::Images(0))));
        })),
        ("EncodedFileOutput.s3", H(|rig| assert_eq!(s3_of(&rc_storage(rig, FO::S3(s3("f"))).unwrap()).bucket, "f"))),
        ("EncodedFileOutput.gcp", H(|rig| assert_eq!(gcp_of(&rc_storage(rig, FO::Gcp(proto::GcpUpload { bucket: "fg".into(), ..Default::default() })).unwrap()).bucket, "fg"))),
        ("EncodedFileOutput.azure", H(|rig| assert_eq!(azure_of(&rc_storage(rig, FO::Azure(proto::AzureBlobUpload { account_name: "a".into(), account_key: "k".into(), container_name: "fa".into() })).unwrap()).container_name, "fa"))),
        ("EncodedFileOutput.aliOSS", R("aliOSS", |rig| err(rc_storage(rig, FO::AliOss(Default::default()))))),
        // --- StreamOutput ---
        ("StreamOutput.protocol", H(|rig| {
            let with = |rig: &Rig, protocol: proto::StreamProtocol, url: &str| rig.rc(|r| r.stream_outputs = vec![proto::StreamOutput { protocol: protocol as i32, urls: vec![url.into()] }]);
            assert_eq!(with(rig, proto::StreamProtocol::Srt, "srt://h:1").unwrap().streams, ["srt://h:1"]);
            // A scheme that is not the protocol's is refused, as LiveKit refuses it.
            assert!(err(with(rig, proto::StreamProtocol::Rtmp, "srt://h:1")).contains("stream_outputs.protocol"));
        })),
        ("StreamOutput.urls", H(|rig| {
            let p = rig.rc(|r| r.stream_outputs = vec![proto::StreamOutput { urls: vec!["mux://key123".into(), "rtmp://h/app/k live=1".into()], ..Default::default() }]).unwrap();
            assert_eq!(p.streams, ["rtmps://global-live.mux.com:443/app/key123", "rtmp://h/app/k"]);
        })),
        // --- SegmentedFileOutput ---
        ("SegmentedFileOutput.protocol", H(|rig| {
            assert!(rig.rc(segments(proto::SegmentedFileOutput { protocol: proto::SegmentedFileProtocol::HlsProtocol as i32, ..Default::default() })).unwrap().segments.is_some());
            assert!(err(rig.rc(segments(proto::SegmentedFileOutput { protocol: 7, ..Default::default() }))).contains("segment_outputs.protocol"));
        })),
        ("SegmentedFileOutput.filename_prefix", H(|rig| {
            let g = rig.rc(segments(proto::SegmentedFileOutput { filename_prefix: "livekit-demo/room-composite-test-".into(), playlist_name: "room-composite-test.m3u8".into(), ..Default::default() })).unwrap().segments.unwrap();
            assert_eq!((g.dir.clone(), g.prefix.as_str(), g.playlist_name.as_str()), (rig.dir.join("livekit-demo"), "room-composite-test-", "livekit-demo/room-composite-test.m3u8"));
            // `{room_id}` once the room's id is known; refused before (it would stay in the name).
            let g = rc_in_room(rig, segments(proto::SegmentedFileOutput { filename_prefix: "{room_id}/seg".into(), ..Default::default() })).unwrap().segments.unwrap();
            assert_eq!(g.dir, rig.dir.join("RM_open"));
            assert!(err(rig.rc(segments(proto::SegmentedFileOutput { filename_prefix: "{room_id}/seg".into(), ..Default::default() }))).contains("filename_prefix"));
        })),
        ("SegmentedFileOutput.playlist_name", H(|rig| {
            // The playlist's directory is the output's; an empty prefix is the playlist's name.
            let g = rig.rc(segments(proto::SegmentedFileOutput { playlist_name: "shows/{room_name}.m3u8".into(), ..Default::default() })).unwrap().segments.unwrap();
            assert_eq!((g.dir.clone(), g.prefix.as_str(), g.playlist.as_str()), (rig.dir.join("shows"), "room", "room.m3u8"));
        })),
        ("SegmentedFileOutput.live_playlist_name", H(|rig| {
            let g = rig.rc(segments(proto::SegmentedFileOutput { filename_prefix: "s/seg".into(), live_playlist_name: "live".into(), ..Default::default() })).unwrap().segments.unwrap();
            assert_eq!(g.live_playlist_name, "s/live.m3u8");
            assert!(err(rig.rc(segments(proto::SegmentedFileOutput { playlist_name: "a/p.m3u8".into(), live_playlist_name: "b/l.m3u8".into(), ..Default::default() }))).contains("live_playlist_name"));
        })),
        ("SegmentedFileOutput.segment_duration", H(|rig| {
            assert_eq!(rig.rc(segments(Default::default())).unwrap().segments.unwrap().duration_s, 6, "the seed's default");
            assert_eq!(rig.rc(segments(proto::SegmentedFileOutput { segment_duration: 2, ..Default::default() })).unwrap().segments.unwrap().duration_s, 2);
        })),
        ("SegmentedFileOutput.filename_suffix", H(|rig| {
            assert!(rig.rc(segments(proto::SegmentedFileOutput { filename_suffix: proto::SegmentedFileSuffix::Timestamp as i32, ..Default::default() })).unwrap().segments.unwrap().timestamp_names);
            assert!(err(rig.rc(segments(proto::SegmentedFileOutput { filename_suffix: 9, ..Default::default() }))).contains("filename_suffix"));
        })),
        ("SegmentedFileOutput.disable_manifest", H(|rig| assert!(rig.rc(segments(proto::SegmentedFileOutput { disable_manifest: true, ..Default::default() })).unwrap().manifest.is_none()))),
        ("SegmentedFileOutput.s3", H(|rig| assert!(rig.rc(segments(proto::SegmentedFileOutput { output: Some(proto::segmented_file_output::Output::S3(s3("h"))), ..Default::default() })).unwrap().segments_storage.is_some()))),
        ("SegmentedFileOutput.gcp", H(|rig| assert!(rig.rc(segments(proto::SegmentedFileOutput { output: Some(proto::segmented_file_output::Output::Gcp(proto::GcpUpload { bucket: "g".into(), ..Default::default() })), ..Default::default() })).unwrap().segments_storage.is_some()))),
        ("SegmentedFileOutput.azure", H(|rig| assert!(rig.rc(segments(proto::SegmentedFileOutput { output: Some(proto::segmented_file_output::Output::Azure(proto::AzureBlobUpload { account_name: "a".into(), account_key: "k".into(), container_name: "c".into() })), ..Default::default() })).unwrap().segments_storage.is_some()))),
        ("SegmentedFileOutput.aliOSS", R("aliOSS", |rig| err(rig.rc(segments(proto::SegmentedFileOutput { output: Some(proto::segmented_file_output::Output::AliOss(Default::default())), ..Default::default() }))))),
        // --- ImageOutput ---
        ("ImageOutput.capture_interval", H(|rig| assert_eq!(rig.rc(images(proto::ImageOutput { capture_interval: 4, ..Default::default() })).unwrap().images[0].interval_s, 4))),
        ("ImageOutput.width", H(|rig| assert_eq!(rig.rc(images(proto::ImageOutput { width: 320, ..Default::default() })).unwrap().images[0].width, 320))),
        ("ImageOutput.height", H(|rig| assert_eq!(rig.rc(images(proto::ImageOutput { height: 240, ..Default::default() })).unwrap().images[0].height, 240))),
        ("ImageOutput.filename_prefix", H(|rig| {
            assert_eq!(rig.rc(images(proto::ImageOutput { filename_prefix: "thumbs/{room_name}".into(), ..Default::default() })).unwrap().images[0].filename_prefix, "thumbs/room");
            assert_eq!(rc_in_room(rig, images(proto::ImageOutput { filename_prefix: "t/{room_id}".into(), ..Default::default() })).unwrap().images[0].filename_prefix, "t/RM_open");
        })),
        ("ImageOutput.filename_suffix", H(|rig| {
            let p = rig.rc(images(proto::ImageOutput { filename_suffix: proto::ImageFileSuffix::ImageSuffixNoneOverwrite as i32, ..Default::default() })).unwrap();
            assert_eq!(p.images[0].naming, tessera::output::images::ImageNaming::Overwrite);
            assert!(err(rig.rc(images(proto::ImageOutput { filename_suffix: 9, ..Default::default() }))).contains("filename_suffix"));
        })),
        ("ImageOutput.image_codec", H(|rig| {
            assert!(rig.rc(images(proto::ImageOutput { image_codec: proto::ImageCodec::IcJpeg as i32, ..Default::default() })).is_ok());
            assert!(err(rig.rc(images(proto::ImageOutput { image_codec: 9, ..Default::default() }))).contains("image_codec"));
        })),
        ("ImageOutput.disable_manifest", H(|rig| {
            let p = rig.rc(|r| { r.file_outputs.clear(); r.image_outputs = vec![proto::ImageOutput { disable_manifest: true, ..Default::default() }]; }).unwrap();
            assert!(p.manifest.is_none());
        })),
        ("ImageOutput.s3", H(|rig| assert!(rig.rc(images(proto::ImageOutput { output: Some(proto::image_output::Output::S3(s3("i"))), ..Default::default() })).unwrap().images_storage[0].is_some()))),
        ("ImageOutput.gcp", H(|rig| assert!(rig.rc(images(proto::ImageOutput { output: Some(proto::image_output::Output::Gcp(proto::GcpUpload { bucket: "g".into(), ..Default::default() })), ..Default::default() })).unwrap().images_storage[0].is_some()))),
        ("ImageOutput.azure", H(|rig| assert!(rig.rc(images(proto::ImageOutput { output: Some(proto::image_output::Output::Azure(proto::AzureBlobUpload { account_name: "a".into(), account_key: "k".into(), container_name: "c".into() })), ..Default::default() })).unwrap().images_storage[0].is_some()))),
        ("ImageOutput.aliOSS", R("aliOSS", |rig| err(rig.rc(images(proto::ImageOutput { output: Some(proto::image_output::Output::AliOss(Default::default())), ..Default::default() }))))),
        // --- webhooks ---
        ("WebhookConfig.url", H(|rig| {
            assert_eq!(rig.rc(hook(url_hook())).unwrap().webhooks[0].0, "http://127.0.0.1:9/hook");
            assert!(err(rig.rc(hook(proto::WebhookConfig { url: "ftp://x".into(), ..Default::default() }))).contains("webhooks.url"));
        })),
        ("WebhookConfig.signing_key", H(|rig| {
            // Signed with this service's key (the only one it has a secret for); another is refused.
            assert!(rig.rc(hook(proto::WebhookConfig { signing_key: common::service::KEY.into(), ..url_hook() })).is_ok());
            assert!(err(rig.rc(hook(proto::WebhookConfig { signing_key: "other".into(), ..url_hook() }))).contains("webhooks.signing_key"));
        })),
        ("WebhookConfig.filter_params", H(|rig| {
            let p = rig.rc(hook(proto::WebhookConfig { filter_params: Some(proto::FilterParams { include_events: vec!["egress_ended".into()], exclude_events: vec![] }), ..url_hook() })).unwrap();
            assert!(p.webhooks[0].1.allows("egress_ended") && !p.webhooks[0].1.allows("egress_started"));
        })),
        ("FilterParams.include_events", H(|rig| {
            let p = rig.rc(hook(proto::WebhookConfig { filter_params: Some(proto::FilterParams { include_events: vec!["egress_started".into()], exclude_events: vec![] }), ..url_hook() })).unwrap();
            assert!(!p.webhooks[0].1.allows("egress_updated"));
            assert!(err(rig.rc(hook(proto::WebhookConfig { filter_params: Some(proto::FilterParams { include_events: vec!["egress_done".into()], exclude_events: vec![] }), ..url_hook() }))).contains("include_events"));
        })),
        ("FilterParams.exclude_events", H(|rig| {
            let p = rig.rc(hook(proto::WebhookConfig { filter_params: Some(proto::FilterParams { include_events: vec![], exclude_events: vec!["egress_updated".into()] }), ..url_hook() })).unwrap();
            assert!(!p.webhooks[0].1.allows("egress_updated") && p.webhooks[0].1.allows("egress_ended"));
        })),
        // --- participant and track composite egress: the same plan, of one subject ---
        ("ParticipantEgressRequest.room_name", H(|rig| assert_eq!(rig.participant(|r| r.room_name = "x".into()).unwrap().room_name, "x"))),
        ("ParticipantEgressRequest.identity", H(|rig| {
            let p = rig.participant(|r| r.identity = "bob".into()).unwrap();
            assert_eq!(p.subject, Subject::Participant { identity: "bob".into(), screen_share: false });
            assert!(err(rig.participant(|r| r.identity.clear())).contains("identity"));
        })),
        ("ParticipantEgressRequest.screen_share", H(|rig| {
            let p = rig.participant(|r| r.screen_share = true).unwrap();
            assert_eq!(p.subject, Subject::Participant { identity: "alice".into(), screen_share: true });
        })),
        ("ParticipantEgressRequest.preset", H(|rig| {
            let p = rig.participant(|r| r.options = Some(proto::participant_egress_request::Options::Preset(proto::EncodingOptionsPreset::H264720p60 as i32))).unwrap();
            assert_eq!(p.encoding.framerate, 60);
        })),
        ("ParticipantEgressRequest.advanced", H(|rig| {
            let a = proto::EncodingOptions { width: 640, height: 360, ..Default::default() };
            let p = rig.participant(|r| r.options = Some(proto::participant_egress_request::Options::Advanced(a))).unwrap();
            assert_eq!((p.encoding.width, p.encoding.height), (640, 360));
        })),
        ("ParticipantEgressRequest.file_outputs", H(|rig| {
            let p = rig.participant(|r| r.file_outputs[0].filepath = "{publisher_identity}/{room_name}.mp4".into()).unwrap();
            assert_eq!(p.file.unwrap().filename, "alice/room.mp4");
        })),
        ("ParticipantEgressRequest.stream_outputs", H(|rig| {
            let p = rig.participant(|r| r.stream_outputs = vec![proto::StreamOutput { urls: vec!["rtmp://h/app/k".into()], ..Default::default() }]).unwrap();
            assert_eq!(p.streams, ["rtmp://h/app/k"]);
        })),
        ("ParticipantEgressRequest.segment_outputs", H(|rig| {
            let p = rig.participant(|r| r.segment_outputs = vec![proto::SegmentedFileOutput { filename_prefix: "p/seg".into(), ..Default::default() }]).unwrap();
            assert_eq!(p.segments.unwrap().prefix, "seg");
        })),
        ("ParticipantEgressRequest.image_outputs", H(|rig| {
            let p = rig.participant(|r| r.image_outputs = vec![proto::ImageOutput { capture_interval: 5, ..Default::default() }]).unwrap();
            assert_eq!(p.images.len(), 1);
        })),
        ("ParticipantEgressRequest.webhooks", H(|rig| assert_eq!(rig.participant(|r| r.webhooks = vec![url_hook()]).unwrap().webhooks.len(), 1))),
        ("TrackCompositeEgressRequest.room_name", H(|rig| assert_eq!(rig.tc(|r| r.room_name = "x".into()).unwrap().room_name, "x"))),
        ("TrackCompositeEgressRequest.audio_track_id", H(|rig| {
            let p = rig.tc(|r| r.video_track_id.clear()).unwrap();
            assert_eq!(p.subject, Subject::Tracks { audio: Some("TR_a".into()), video: None });
            assert!(p.audio_only);
        })),
        ("TrackCompositeEgressRequest.video_track_id", H(|rig| {
            let p = rig.tc(|r| r.audio_track_id.clear()).unwrap();
            assert_eq!(p.subject, Subject::Tracks { audio: None, video: Some("TR_v".into()) });
            assert!(p.video_only);
            assert!(err(rig.tc(|r| { r.audio_track_id.clear(); r.video_track_id.clear(); })).contains("video_track_id"));
        })),
        ("TrackCompositeEgressRequest.file", H(|rig| {
            let p = rig.tc(|r| { r.file_outputs.clear(); #[allow(deprecated)] { r.output = Some(proto::track_composite_egress_request::Output::File(proto::EncodedFileOutput { filepath: "l.mp4".into(), ..Default::default() })); } }).unwrap();
            assert_eq!(p.file.unwrap().filename, "l.mp4");
        })),
        ("TrackCompositeEgressRequest.stream", H(|rig| {
            let p = rig.tc(|r| { r.file_outputs.clear(); #[allow(deprecated)] { r.output = Some(proto::track_composite_egress_request::Output::Stream(proto::StreamOutput { urls: vec!["rtmp://h/app/k".into()], ..Default::default() })); } }).unwrap();
            assert_eq!(p.streams, ["rtmp://h/app/k"]);
        })),
        ("TrackCompositeEgressRequest.segments", H(|rig| {
            let p = rig.tc(|r| { r.file_outputs.clear(); #[allow(deprecated)] { r.output = Some(proto::track_composite_egress_request::Output::Segments(proto::SegmentedFileOutput { filename_prefix: "t/seg".into(), ..Default::default() })); } }).unwrap();
            assert_eq!(p.segments.unwrap().prefix, "seg");
        })),
        ("TrackCompositeEgressRequest.preset", H(|rig| {
            let p = rig.tc(|r| r.options = Some(proto::track_composite_egress_request::Options::Preset(proto::EncodingOptionsPreset::H264720p60 as i32))).unwrap();
            assert_eq!(p.encoding.framerate, 60);
        })),
        ("TrackCompositeEgressRequest.advanced", H(|rig| {
            let a = proto::EncodingOptions { width: 640, height: 360, ..Default::default() };
            let p = rig.tc(|r| r.options = Some(proto::track_composite_egress_request::Options::Advanced(a))).unwrap();
            assert_eq!((p.encoding.width, p.encoding.height), (640, 360));
        })),
        ("TrackCompositeEgressRequest.file_outputs", H(|rig| assert_eq!(rig.tc(|_| {}).unwrap().file.unwrap().filename, "a.mp4"))),
        ("TrackCompositeEgressRequest.stream_outputs", H(|rig| {
            let p = rig.tc(|r| r.stream_outputs = vec![proto::StreamOutput { urls: vec!["rtmp://h/app/k".into()], ..Default::default() }]).unwrap();
            assert_eq!(p.streams, ["rtmp://h/app/k"]);
        })),
        ("TrackCompositeEgressRequest.segment_outputs", H(|rig| {
            let p = rig.tc(|r| r.segment_outputs = vec![proto::SegmentedFileOutput { filename_prefix: "t/seg".into(), ..Default::default() }]).unwrap();
            assert!(p.segments.is_some());
        })),
        ("TrackCompositeEgressRequest.image_outputs", H(|rig| {
            let p = rig.tc(|r| r.image_outputs = vec![proto::ImageOutput { capture_interval: 5, ..Default::default() }]).unwrap();
            assert_eq!(p.images.len(), 1);
        })),
        ("TrackCompositeEgressRequest.webhooks", H(|rig| assert_eq!(rig.tc(|r| r.webhooks = vec![url_hook()]).unwrap().webhooks.len(), 1))),
        // --- TrackEgressRequest: one track written as sent ---
        ("TrackEgressRequest.room_name", H(|rig| {
            assert_eq!(rig.track(|r| r.room_name = "other".into()).unwrap().room_name, "other");
            assert!(err(rig.track(|r| r.room_name.clear())).contains("room_name"));
        })),
        ("TrackEgressRequest.track_id", H(|rig| {
            assert_eq!(rig.track(|r| r.track_id = "TR_b".into()).unwrap().track.unwrap().track_id, "TR_b");
            assert!(err(rig.track(|r| r.track_id = " ".into())).contains("track_id"));
        })),
        ("TrackEgressRequest.file", H(|rig| {
            let p = rig.track(|_| {}).unwrap();
            // The extension comes with the track's codec, once it is known.
            assert_eq!(p.file.unwrap().filename, "t-TR_a");
            assert!(err(rig.track(|r| r.output = None)).contains("output"));
        })),
        ("TrackEgressRequest.websocket_url", H(|rig| {
            let p = rig.track(|r| r.output = Some(TO::WebsocketUrl("ws://h/x".into()))).unwrap();
            assert_eq!(p.track.unwrap().websocket.as_deref(), Some("ws://h/x"));
            assert!(p.file.is_none());
            assert!(err(rig.track(|r| r.output = Some(TO::WebsocketUrl("http://h/x".into())))).contains("websocket_url"));
        })),
        ("TrackEgressRequest.webhooks", H(|rig| assert_eq!(rig.track(|r| r.webhooks = vec![url_hook()]).unwrap().webhooks.len(), 1))),
        ("DirectFileOutput.filepath", H(|rig| {
            let p = rig.track(|r| r.output = Some(TO::File(proto::DirectFileOutput { filepath: "{room_name}/{publisher_identity}.webm".into(), ..Default::default() }))).unwrap();
            assert_eq!(p.file.unwrap().filename, "room/{publisher_identity}.webm");
            // LiveKit's default name.
            let p = rig.track(|r| r.output = Some(TO::File(proto::DirectFileOutput::default()))).unwrap();
            assert!(p.file.unwrap().filename.starts_with("TR_a-"));
        })),
        ("DirectFileOutput.disable_manifest", H(|rig| {
            assert!(rig.track(|_| {}).unwrap().manifest.is_some());
            let p = rig.track(|r| r.output = Some(TO::File(proto::DirectFileOutput { filepath: "t".into(), disable_manifest: true, ..Default::default() }))).unwrap();
            assert!(p.manifest.is_none());
        })),
        ("DirectFileOutput.s3", H(|rig| assert_eq!(s3_of(&track_storage(rig, DO::S3(s3("d"))).unwrap()).bucket, "d"))),
        ("DirectFileOutput.gcp", H(|rig| assert_eq!(gcp_of(&track_storage(rig, DO::Gcp(proto::GcpUpload { bucket: "dg".into(), ..Default::default() })).unwrap()).bucket, "dg"))),
        ("DirectFileOutput.azure", H(|rig| assert_eq!(azure_of(&track_storage(rig, DO::Azure(proto::AzureBlobUpload { account_name: "a".into(), account_key: "k".into(), container_name: "da".into() })).unwrap()).container_name, "da"))),
        ("DirectFileOutput.aliOSS", R("aliOSS", |rig| err(track_storage(rig, DO::AliOss(Default::default()))))),
    ]
}

#[test]
fn every_request_field_is_honoured_or_refused() {
    let fields = request_fields();
    let table = table();
    let classified: BTreeSet<String> = table.iter().map(|(f, _)| f.to_string()).collect();
    let unclassified: Vec<_> = fields.difference(&classified).collect();
    let stale: Vec<_> = classified.difference(&fields).collect();
    assert!(unclassified.is_empty(), "fields nobody classified (honour or refuse them): {unclassified:?}");
    assert!(stale.is_empty(), "classified fields the protocol no longer has: {stale:?}");
    let rig = Rig::new();
    let (mut honoured, mut refused) = (0, 0);
    for (field, class) in &table {
        match class {
            Class::Honoured(check) => {
                check(&rig);
                honoured += 1;
            }
            Class::Refused(names, check) => {
                let e = check(&rig);
                assert!(e.contains(names), "{field}: the refusal does not name {names:?}: {e}");
                refused += 1;
            }
        }
    }
    println!("{} fields: {honoured} honoured, {refused} refused", fields.len());
}
