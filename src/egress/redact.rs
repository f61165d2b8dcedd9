//! Redaction at the edge: every request that leaves the service (Start answers, ListEgress,
//! webhooks, the manifest, logs) goes through `request` first, as LiveKit's egress redacts
//! it. Storage credentials become `{name}` placeholders in LiveKit's form, stream keys and
//! SRT secrets are hidden in every URL (`secrets::redact`). Webhook signing keys (an
//! API key's name in LiveKit, which keeps them) and proxy passwords are hidden as well. Fields that are empty stay empty, so a reader can
//! still tell whether a credential was given.

use crate::secrets::redact as redact_url;
use livekit_protocol as proto;

/// What a hidden value shows instead: `{access_key}`, `{secret}`, ... (LiveKit's visible form).
fn hide(value: &mut String, name: &str) {
    if !value.is_empty() {
        *value = format!("{{{name}}}");
    }
}

fn s3(u: &mut proto::S3Upload) {
    hide(&mut u.access_key, "access_key");
    hide(&mut u.secret, "secret");
    hide(&mut u.session_token, "session_token");
    hide(&mut u.assume_role_external_id, "external_id");
    if let Some(p) = &mut u.proxy {
        proxy(p);
    }
}

fn gcp(u: &mut proto::GcpUpload) {
    hide(&mut u.credentials, "credentials");
    if let Some(p) = &mut u.proxy {
        proxy(p);
    }
}

fn azure(u: &mut proto::AzureBlobUpload) {
    hide(&mut u.account_name, "account_name");
    hide(&mut u.account_key, "account_key");
}

fn ali(u: &mut proto::AliOssUpload) {
    hide(&mut u.access_key, "access_key");
    hide(&mut u.secret, "secret");
}

/// LiveKit leaves a proxy's password as it is; it is a credential, so it goes too.
fn proxy(p: &mut proto::ProxyConfig) {
    hide(&mut p.password, "password");
}

/// Each output kind has its own oneof of the same four providers.
macro_rules! storage_oneof {
    ($name:ident, $path:path) => {
        fn $name(o: &mut $path) {
            use $path as O;
            match o {
                O::S3(u) => s3(u),
                O::Gcp(u) => gcp(u),
                O::Azure(u) => azure(u),
                O::AliOss(u) => ali(u),
            }
        }
    };
}
storage_oneof!(file_storage, proto::encoded_file_output::Output);
storage_oneof!(segments_storage, proto::segmented_file_output::Output);
storage_oneof!(images_storage, proto::image_output::Output);
storage_oneof!(direct_storage, proto::direct_file_output::Output);
storage_oneof!(provider, proto::storage_config::Provider);

fn storage(s: &mut proto::StorageConfig) {
    if let Some(p) = &mut s.provider {
        provider(p);
    }
}

fn file(f: &mut proto::EncodedFileOutput) {
    if let Some(o) = &mut f.output {
        file_storage(o);
    }
}

fn segments(g: &mut proto::SegmentedFileOutput) {
    if let Some(o) = &mut g.output {
        segments_storage(o);
    }
}

fn images(i: &mut proto::ImageOutput) {
    if let Some(o) = &mut i.output {
        images_storage(o);
    }
}

fn stream(s: &mut proto::StreamOutput) {
    s.urls.iter_mut().for_each(|u| *u = redact_url(u));
}

fn webhooks(w: &mut [proto::WebhookConfig]) {
    w.iter_mut().for_each(|w| hide(&mut w.signing_key, "signing_key"));
}

/// The v1 requests' outputs: the repeated lists and the legacy single output.
macro_rules! v1_outputs {
    ($r:expr, $kind:ident) => {{
        use proto::$kind::Output as Out;
        $r.file_outputs.iter_mut().for_each(file);
        $r.stream_outputs.iter_mut().for_each(stream);
        $r.segment_outputs.iter_mut().for_each(segments);
        $r.image_outputs.iter_mut().for_each(images);
        webhooks(&mut $r.webhooks);
        #[allow(deprecated)]
        match &mut $r.output {
            Some(Out::File(f)) => file(f),
            Some(Out::Stream(s)) => stream(s),
            Some(Out::Segments(g)) => segments(g),
            None => {}
        }
    }};
}

/// The v2 request's (and replay's) outputs, each with its own storage, and the request's storage.
fn v2_outputs(
    outputs: &mut [proto::Output],
    shared: Option<&mut proto::StorageConfig>,
    hooks: &mut [proto::WebhookConfig],
) {
    use proto::output::Config;
    for o in outputs {
        match &mut o.config {
            Some(Config::Stream(s)) => stream(s),
            Some(Config::File(_) | Config::Segments(_) | Config::Images(_)) | None => {}
        }
        if let Some(s) = &mut o.storage {
            storage(s);
        }
    }
    if let Some(s) = shared {
        storage(s);
    }
    webhooks(hooks);
}

/// The request with every credential and stream key hidden. Every request kind LiveKit
/// defines is covered, including those Tessera refuses, so nothing echoes a secret.
pub(crate) fn request(mut r: proto::egress_info::Request) -> proto::egress_info::Request {
    use proto::egress_info::Request as R;
    match &mut r {
        R::RoomComposite(x) => v1_outputs!(x, room_composite_egress_request),
        R::Web(x) => v1_outputs!(x, web_egress_request),
        R::TrackComposite(x) => v1_outputs!(x, track_composite_egress_request),
        R::Participant(x) => {
            x.file_outputs.iter_mut().for_each(file);
            x.stream_outputs.iter_mut().for_each(stream);
            x.segment_outputs.iter_mut().for_each(segments);
            x.image_outputs.iter_mut().for_each(images);
            webhooks(&mut x.webhooks);
        }
        R::Track(x) => {
            use proto::track_egress_request::Output as Out;
            match &mut x.output {
                Some(Out::File(f)) => {
                    if let Some(o) = &mut f.output {
                        direct_storage(o);
                    }
                }
                Some(Out::WebsocketUrl(u)) => *u = redact_url(u),
                None => {}
            }
            webhooks(&mut x.webhooks);
        }
        R::Egress(x) => v2_outputs(&mut x.outputs, x.storage.as_mut(), &mut x.webhooks),
        R::Replay(x) => v2_outputs(&mut x.outputs, x.storage.as_mut(), &mut x.webhooks),
    }
    r
}

/// An EgressInfo as it may leave the service: its request redacted, and every stream URL
/// in its results too (they are the URLs the job pushes to).
pub(crate) fn info(mut i: proto::EgressInfo) -> proto::EgressInfo {
    i.request = i.request.map(request);
    for s in &mut i.stream_results {
        s.url = redact_url(&s.url);
    }
    #[allow(deprecated)]
    if let Some(proto::egress_info::Result::Stream(l)) = &mut i.result {
        for s in &mut l.info {
            s.url = redact_url(&s.url);
        }
    }
    i
}
