//! LiveKit's contract where a new user first meets it: credentials and stream keys never
//! leave the service, and two egresses given the seed document's very same names both
//! complete. `tessera serve` (the real binary) records devroom rooms to moto's S3 and
//! Azurite, streams to receivers that are not there, and is searched everywhere a request
//! can leave it: Start answers, ListEgress, every webhook body, the manifests, its whole
//! debug log and /metrics.

mod common;

use common::clouds::*;
use common::service::*;
use common::workdir;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Every secret the requests below carry; none may be found anywhere the service speaks.
const S3_KEY: &str = "AKIATESSERASECRET001";
const S3_SECRET: &str = "s3-secret-TESSERA-002";
const S3_TOKEN: &str = "s3-session-TESSERA-003";
const EXTERNAL_ID: &str = "external-id-TESSERA-004";
const GCS_PRIVATE_KEY: &str = "gcs-private-key-TESSERA-005";
const STREAM_KEY: &str = "live_stream_key_TESSERA_006";
const SRT_PASSPHRASE: &str = "srt-pass-TESSERA-007";
const SRT_STREAMID: &str = "srt-id-TESSERA-008";
const MUX_KEY: &str = "MUXKEY-TESSERA-009";
const TWITCH_KEY: &str = "TWITCHKEY-TESSERA-010";
const ADDED_KEY: &str = "added_stream_key_TESSERA_011";
const ALI_SECRET: &str = "alioss-secret-TESSERA-012";

fn secrets() -> Vec<&'static str> {
    vec![
        S3_KEY,
        S3_SECRET,
        S3_TOKEN,
        EXTERNAL_ID,
        GCS_PRIVATE_KEY,
        STREAM_KEY,
        SRT_PASSPHRASE,
        SRT_STREAMID,
        MUX_KEY,
        TWITCH_KEY,
        ADDED_KEY,
        ALI_SECRET,
        AZURITE_KEY,
    ]
}

fn s3(c: &Clouds, bucket: &str) -> Value {
    json!({ "accessKey": S3_KEY, "secret": S3_SECRET, "sessionToken": S3_TOKEN, "region": "us-east-1",
            "endpoint": c.s3, "bucket": bucket, "forcePathStyle": true })
}

fn azure(bucket: &str) -> Value {
    json!({ "accountName": "devstoreaccount1", "accountKey": AZURITE_KEY, "containerName": bucket })
}

fn gcs_credentials() -> String {
    json!({ "type": "service_account", "client_email": "rec@example.iam.gserviceaccount.com",
            "private_key": format!("-----BEGIN PRIVATE KEY-----\n{GCS_PRIVATE_KEY}\n-----END PRIVATE KEY-----\n") })
    .to_string()
}

/// Streams nobody receives: each retries, fails alone, and must not say its key.
fn dead_streams() -> Vec<String> {
    let port = free_port();
    vec![
        format!("rtmp://127.0.0.1:{port}/live/{STREAM_KEY}"),
        format!("srt://127.0.0.1:{port}?streamid={SRT_STREAMID}&passphrase={SRT_PASSPHRASE}"),
        format!("mux://{MUX_KEY}"),
        format!("twitch://{TWITCH_KEY}"),
    ]
}

struct Api {
    url: String,
    token: String,
}

impl Api {
    /// A JSON Twirp call: (HTTP status, the answer's text).
    async fn call(&self, method: &str, body: &Value) -> (u16, String) {
        let (status, _, bytes) =
            raw(&self.url, method, Some(&self.token), "application/json", body.to_string().into_bytes()).await;
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn start(&self, method: &str, body: Value) -> (String, String) {
        let (status, text) = self.call(method, &body).await;
        assert_eq!(status, 200, "{method}: {text}");
        let id = serde_json::from_str::<Value>(&text).unwrap()["egressId"].as_str().unwrap().to_string();
        (id, text)
    }

    async fn info(&self, id: &str) -> Value {
        let (_, text) = self.call("ListEgress", &json!({ "egressId": id })).await;
        serde_json::from_str::<Value>(&text).unwrap()["items"][0].clone()
    }

    async fn wait(&self, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        loop {
            let info = self.info(id).await;
            if pred(&info) {
                return info;
            }
            assert!(std::time::Instant::now() < deadline, "{id} never {what}: {info}");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    async fn wait_ended(&self, id: &str) -> Value {
        self.wait(id, "ended", |i| !matches!(status(i), "EGRESS_STARTING" | "EGRESS_ACTIVE" | "EGRESS_ENDING")).await
    }
}

fn api(serve: &Serve) -> Api {
    Api { url: serve.url.clone(), token: record_token(SECRET, recorder_grant(), Duration::from_secs(3600)) }
}

/// The webhook receiver (LiveKit's Python SDK verifying each one), and every line it prints
/// (each a webhook's body), read as they come.
async fn webhook_receiver() -> (tokio::process::Child, u16, Arc<Mutex<String>>) {
    use tokio::io::AsyncBufReadExt;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut hook = tokio::process::Command::new(root.join("target/peers-venv/bin/python"))
        .arg(root.join("tests/peers/webhook_receiver.py"))
        .args(["0", KEY, SECRET])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(hook.stdout.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap().unwrap();
    let port = serde_json::from_str::<Value>(&first).unwrap()["listening"].as_u64().unwrap() as u16;
    let seen = Arc::new(Mutex::new(String::new()));
    let into = seen.clone();
    tokio::spawn(async move {
        while let Ok(Some(l)) = lines.next_line().await {
            let mut s = into.lock().unwrap();
            s.push_str(&l);
            s.push('\n');
        }
    });
    (hook, port, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_credential_or_stream_key_leaves_the_service() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = workdir("contract-secrets");
    let clouds = Clouds::start(&dir);
    create("s3", &clouds.s3, "rec");
    create("azure", &clouds.azure, "rec");
    let room = devroom().await;
    let pubs = participants(&room, "secret-room", 2);
    let (_hook, hook_port, hooks) = webhook_receiver().await;
    let serve = Serve::start(
        &dir,
        &format!(
            "ws_url: {}\nwebhook:\n  urls: [\"http://127.0.0.1:{hook_port}/service\"]\nstorage:\n  azure:\n    account_name: devstoreaccount1\n    account_key: {AZURITE_KEY}\n    container_name: rec\n    endpoint: {}\n",
            room.url(),
            clouds.azure
        ),
    );
    let api = api(&serve);
    let small = json!({ "width": 640, "height": 360, "framerate": 15, "videoBitrate": 800 });
    let mut answers = Vec::new();

    // Every request kind, each with credentials and keys.
    let (composite, a) = api
        .start(
            "StartRoomCompositeEgress",
            json!({
                "roomName": "secret-room",
                "fileOutputs": [{ "filepath": "secret/{room_name}.mp4", "s3": s3(&clouds, "rec") }],
                "streamOutputs": [{ "urls": dead_streams() }],
                "segmentOutputs": [{ "filenamePrefix": "secret/seg", "playlistName": "secret.m3u8", "segmentDuration": 2, "azure": azure("rec") }],
                "imageOutputs": [{ "filenamePrefix": "secret/img", "captureInterval": 2, "s3": s3(&clouds, "rec") }],
                "webhooks": [{ "url": format!("http://127.0.0.1:{hook_port}/own"), "signingKey": KEY }],
                "advanced": small,
            }),
        )
        .await;
    // The room's id from the start, as LiveKit's server gives it.
    let started: Value = serde_json::from_str(&a).unwrap();
    assert!(started["roomId"].as_str().is_some_and(|r| r.starts_with("RM_")), "{started}");
    answers.push(a);
    let (unified, a) = api
        .start(
            "StartEgress",
            json!({
                "roomName": "secret-room",
                "template": { "layout": "speaker" },
                "outputs": [
                    { "file": { "filepath": "unified/{room_name}.mp4" }, "storage": { "s3": s3(&clouds, "rec") } },
                    { "stream": { "protocol": "RTMP", "urls": [format!("twitch://{TWITCH_KEY}")] } },
                ],
                // The request's own storage (here unused: the file has its own) is a secret too.
                "storage": { "gcp": { "credentials": gcs_credentials(), "bucket": "unused" } },
                "advanced": small,
            }),
        )
        .await;
    answers.push(a);
    let (web, a) = api
        .start(
            "StartWebEgress",
            json!({
                "url": format!("{}/", serve.url),
                "fileOutputs": [{ "filepath": "web/page.mp4", "s3": s3(&clouds, "rec") }],
                "streamOutputs": [{ "urls": [format!("rtmps://127.0.0.1:{}/app/{STREAM_KEY}", free_port())] }],
                "advanced": small,
            }),
        )
        .await;
    answers.push(a);
    // Requests refused: their errors must not echo what they carried.
    for (method, body) in [
        (
            "StartRoomCompositeEgress",
            json!({ "roomName": "r", "file": { "filepath": "x.mp4", "s3": {
            "accessKey": S3_KEY, "secret": S3_SECRET, "assumeRoleArn": "arn:aws:iam::1:role/r", "assumeRoleExternalId": EXTERNAL_ID, "bucket": "b" } } }),
        ),
        (
            "StartRoomCompositeEgress",
            json!({ "roomName": "r", "file": { "filepath": "x.mp4", "aliOSS": { "accessKey": S3_KEY, "secret": ALI_SECRET, "bucket": "b" } } }),
        ),
        (
            "StartRoomCompositeEgress",
            json!({ "roomName": "r", "streamOutputs": [{ "protocol": "SRT", "urls": [format!("rtmp://h/app/{STREAM_KEY}")] }] }),
        ),
        (
            "StartRoomCompositeEgress",
            json!({ "roomName": "r", "streamOutputs": [{ "urls": [format!("http://h/app/{STREAM_KEY}")] }] }),
        ),
        (
            "StartRoomCompositeEgress",
            json!({ "roomName": "r", "file": { "filepath": "x.mp4" }, "advanced": { "width": S3_SECRET } }),
        ),
        (
            "StartParticipantEgress",
            // No identity: refused, the storage and stream keys it carried not echoed.
            json!({ "roomName": "r", "identity": "", "fileOutputs": [{ "filepath": "p.mp4", "s3": s3(&clouds, "rec") }],
            "streamOutputs": [{ "urls": dead_streams() }] }),
        ),
        (
            "StartTrackCompositeEgress",
            // No track named.
            json!({ "roomName": "r", "segmentOutputs": [{ "azure": azure("rec") }] }),
        ),
        (
            "StartTrackEgress",
            // No track named.
            json!({ "roomName": "r", "trackId": "", "file": { "filepath": "t.ogg", "gcp": { "credentials": gcs_credentials(), "bucket": "b" } } }),
        ),
        (
            "StartTrackEgress",
            // A websocket URL that is not one (its token is still a secret).
            json!({ "roomName": "r", "trackId": "TR_a", "websocketUrl": format!("https://h/audio?token={STREAM_KEY}") }),
        ),
        (
            "StartEgress",
            // A media source that picks nothing.
            json!({ "roomName": "r", "media": {}, "outputs": [{ "file": { "filepath": "m.mp4" } }],
            "storage": { "s3": s3(&clouds, "rec") } }),
        ),
    ] {
        let (status, text) = api.call(method, &body).await;
        assert!(status >= 400, "{method} {body}: accepted: {text}");
        answers.push(text);
    }

    for id in [&composite, &unified, &web] {
        api.wait(id, "active", |i| status(i) == "EGRESS_ACTIVE").await;
    }
    // A stream added and one removed while it runs.
    let (code, text) = api
        .call(
            "UpdateStream",
            &json!({ "egressId": composite, "addOutputUrls": [format!("rtmp://127.0.0.1:{}/live/{ADDED_KEY}", free_port())],
                     "removeOutputUrls": [format!("mux://{MUX_KEY}")] }),
        )
        .await;
    assert_eq!(code, 200, "{text}");
    answers.push(text);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (_, listed_running) = api.call("ListEgress", &json!({})).await;
    let metrics = reqwest::get(format!("{}/metrics", serve.url)).await.unwrap().text().await.unwrap();
    for id in [&composite, &unified, &web] {
        let (code, text) = api.call("StopEgress", &json!({ "egressId": id })).await;
        assert_eq!(code, 200, "{text}");
        answers.push(text);
    }
    let mut ended = Vec::new();
    for id in [&composite, &unified, &web] {
        ended.push(api.wait_ended(id).await);
    }
    let (_, listed_ended) = api.call("ListEgress", &json!({})).await;
    // What the composite's request looks like now: LiveKit's placeholders.
    let request = &ended[0]["roomComposite"];
    let upload = &request["fileOutputs"][0]["s3"];
    assert_eq!(
        (upload["accessKey"].as_str(), upload["secret"].as_str(), upload["sessionToken"].as_str()),
        (Some("{access_key}"), Some("{secret}"), Some("{session_token}")),
        "{request}"
    );
    assert_eq!(request["segmentOutputs"][0]["azure"]["accountKey"], "{account_key}", "{request}");
    assert_eq!(request["segmentOutputs"][0]["azure"]["accountName"], "{account_name}", "{request}");
    let urls: Vec<&str> =
        request["streamOutputs"][0]["urls"].as_array().unwrap().iter().filter_map(|u| u.as_str()).collect();
    assert!(urls[0].ends_with("/live/{liv...006}"), "{urls:?}");
    assert!(urls[1].ends_with("?streamid={...}&passphrase={...}"), "{urls:?}");
    assert_eq!(urls[2], "mux://{MUX...009}", "{urls:?}");
    assert_eq!(ended[1]["egress"]["storage"]["gcp"]["credentials"], "{credentials}", "{}", ended[1]);
    // The recordings themselves went where they were asked, with those credentials.
    for info in &ended {
        assert!(matches!(status(info), "EGRESS_COMPLETE" | "EGRESS_FAILED"), "{info}");
        assert!(!info["fileResults"][0]["location"].as_str().unwrap_or("").is_empty(), "{info}");
    }
    assert_eq!(status(&ended[0]), "EGRESS_COMPLETE", "{}", ended[0]);

    // The manifests, read back from where they went.
    let mut manifests = Vec::new();
    for info in &ended {
        let Some(location) = info["manifestLocation"].as_str() else { continue };
        let key = location.split("/rec/").nth(1).unwrap_or(location);
        let local = dir.join(format!("manifest-{}.json", manifests.len()));
        let got = get("s3", &clouds.s3, "rec", key, &local).or_else(|| get("azure", &clouds.azure, "rec", key, &local));
        if got.is_some() {
            manifests.push(std::fs::read_to_string(&local).unwrap());
        } else if Path::new(location).exists() {
            manifests.push(std::fs::read_to_string(location).unwrap());
        }
    }
    assert!(!manifests.is_empty(), "no manifest found: {ended:?}");
    // The last webhooks may still be on their way.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while hooks.lock().unwrap().matches("\"egress_ended\"").count() < 4 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let webhooks = hooks.lock().unwrap().clone();
    assert!(webhooks.matches("\"egress_ended\"").count() >= 4, "webhooks: {webhooks}");
    drop(serve);
    let log = log(&dir);
    assert!(log.contains("DEBUG"), "the service logged at debug level");

    for (place, text) in [
        ("a Start, Update or Stop answer", answers.join("\n")),
        ("ListEgress", format!("{listed_running}\n{listed_ended}")),
        ("a webhook", webhooks),
        ("a manifest", manifests.join("\n")),
        ("the log", log),
        ("/metrics", metrics),
    ] {
        for s in secrets() {
            assert!(!text.contains(s), "{s:?} is in {place}:\n{}", around(&text, s));
        }
        // Azurite's account key also appears with JSON's escaping of '/'.
        assert!(!text.contains(&AZURITE_KEY.replace('/', "\\/")), "the Azure key is in {place}");
    }
    pubs.abort();
}

/// The lines around the first `needle` in `text`.
fn around(text: &str, needle: &str) -> String {
    let at = text.find(needle).unwrap_or(0);
    let start = text[..at].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let end = text[at..].find('\n').map(|i| at + i).unwrap_or(text.len());
    text[start..end].chars().take(600).collect()
}

/// The seed's file path and HLS names, in the seed's own words.
fn seed_outputs(storage: Option<Value>) -> Value {
    let mut file = json!({ "filepath": "livekit-demo/room-composite-test.mp4" });
    let mut segments = json!({ "filenamePrefix": "livekit-demo/room-composite-test-", "playlistName": "room-composite-test.m3u8", "segmentDuration": 2 });
    if let Some(s) = storage {
        file["s3"] = s.clone();
        segments["s3"] = s;
    }
    json!({ "roomName": "seed-room", "fileOutputs": [file], "segmentOutputs": [segments],
            "advanced": { "width": 640, "height": 360, "framerate": 15, "videoBitrate": 800 } })
}

/// A playlist (local path or downloaded) plays: its segments are there and decode.
fn check_playlist(playlist: &Path) {
    let text = std::fs::read_to_string(playlist).unwrap();
    let segs = playlist_segments(&text);
    assert!(segs.len() >= 2 && text.contains("#EXT-X-ENDLIST"), "{playlist:?}: {text}");
    for s in &segs {
        assert!(playlist.parent().unwrap().join(s).exists(), "{s} of {playlist:?} is missing");
    }
    let (ok, errors) = common::decode_errors(playlist);
    assert!(ok && errors.is_empty(), "{playlist:?}: {errors}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_egresses_given_the_seeds_same_names_both_complete() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = workdir("contract-same-names");
    let clouds = Clouds::start(&dir);
    create("s3", &clouds.s3, "seed");
    let room = devroom().await;
    let pubs = participants(&room, "seed-room", 2);
    let serve = Serve::start(&dir, &format!("ws_url: {}\n", room.url()));
    let api = api(&serve);
    let storage = json!({ "accessKey": "test", "secret": "test-secret", "region": "us-east-1", "endpoint": clouds.s3, "bucket": "seed", "forcePathStyle": true });
    // Two that upload and two that write locally, all four at once with the same names.
    let mut ids = Vec::new();
    for s in [Some(storage.clone()), Some(storage), None, None] {
        ids.push(api.start("StartRoomCompositeEgress", seed_outputs(s)).await.0);
    }
    for id in &ids {
        api.wait(id, "active", |i| status(i) == "EGRESS_ACTIVE").await;
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    for id in &ids {
        api.call("StopEgress", &json!({ "egressId": id })).await;
    }
    let mut infos = Vec::new();
    for id in &ids {
        let info = api.wait_ended(id).await;
        assert_eq!(status(&info), "EGRESS_COMPLETE", "{info}\n{}", log(&dir));
        // LiveKit's times: the egress's start is its acceptance, the file's its first media.
        let at = |v: &Value| v.as_str().and_then(|t| t.parse::<i64>().ok()).unwrap_or(0);
        assert!(
            0 < at(&info["startedAt"]) && at(&info["startedAt"]) <= at(&info["fileResults"][0]["startedAt"]),
            "{info}"
        );
        assert_eq!(info["details"], "End reason: StopEgress API", "{info}");
        infos.push(info);
    }
    // Uploaded: the asked keys hold a decodable file and a playable playlist.
    for info in &infos[..2] {
        let f = &info["fileResults"][0];
        assert_eq!(f["location"], format!("{}/seed/livekit-demo/room-composite-test.mp4", clouds.s3), "{info}");
        assert_eq!(
            info["segmentResults"][0]["playlistLocation"],
            format!("{}/seed/livekit-demo/room-composite-test.m3u8", clouds.s3)
        );
    }
    let local = dir.join("s3-copy");
    std::fs::create_dir_all(&local).unwrap();
    let mp4 = local.join("room-composite-test.mp4");
    get("s3", &clouds.s3, "seed", "livekit-demo/room-composite-test.mp4", &mp4).expect("the file is in the bucket");
    let (ok, errors) = common::decode_errors(&mp4);
    assert!(ok && errors.is_empty(), "{errors}");
    let playlist = local.join("room-composite-test.m3u8");
    get("s3", &clouds.s3, "seed", "livekit-demo/room-composite-test.m3u8", &playlist).expect("the playlist");
    for s in playlist_segments(&std::fs::read_to_string(&playlist).unwrap()) {
        get("s3", &clouds.s3, "seed", &format!("livekit-demo/{s}"), &local.join(&s)).unwrap_or_else(|| panic!("{s}"));
    }
    check_playlist(&playlist);
    // Written locally: the first where it was asked, the second in a directory of its own.
    let mut places: Vec<PathBuf> = Vec::new();
    for info in &infos[2..] {
        let f = &info["fileResults"][0];
        let path = PathBuf::from(f["location"].as_str().unwrap());
        assert!(path.ends_with("livekit-demo/room-composite-test.mp4"), "{info}");
        let (ok, errors) = common::decode_errors(&path);
        assert!(ok && errors.is_empty(), "{path:?}: {errors}");
        let pl = serve.out.join(info["segmentResults"][0]["playlistName"].as_str().unwrap());
        check_playlist(&pl);
        places.push(path);
    }
    assert_ne!(places[0], places[1]);
    assert!(places.contains(&serve.out.join("livekit-demo/room-composite-test.mp4")), "{places:?}");
    // Nothing staged is left behind.
    let staged = serve.out.join(".staging");
    assert!(!staged.exists() || std::fs::read_dir(&staged).unwrap().next().is_none(), "{staged:?} left");
    pubs.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_livekit_egress_config_starts_logs_json_lines_and_says_what_it_does_not_use() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = workdir("contract-config");
    // Keys from LiveKit egress's documented config, as a user would copy them.
    let serve = Serve::start(
        &dir,
        "logging:\n  level: debug\n  json: true\n  sample: true\ntemplate_base: http://localhost:7980/\ncluster_id: eu\n\
         max_upload_queue: 60\ncpu_cost:\n  sdk_audio_room_composite_cpu_cost: 0.2\n  max_memory: 4\n\
         disallow_local_storage: true\n",
    );
    // Honoured: nothing may stay on this machine.
    let (code, text) = api(&serve)
        .call("StartRoomCompositeEgress", &json!({ "roomName": "r", "file": { "filepath": "local.mp4" } }))
        .await;
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("file_outputs") && text.contains("disallow_local_storage"), "{text}");
    drop(serve);
    let log = log(&dir);
    // JSON lines, one object each, with no terminal colour codes.
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    assert!(!log.contains('\u{1b}'), "colour codes in a log file");
    assert!(lines.iter().any(|l| l["level"] == "DEBUG"), "logging.level: debug was not honoured");
    // Each LiveKit key that does nothing here is named, with why; none is "unknown".
    for key in ["template_base", "cluster_id", "max_upload_queue", "cpu_cost.max_memory", "logging.sample"] {
        let line = lines.iter().find(|l| l["key"] == key).unwrap_or_else(|| panic!("{key} not warned about: {log}"));
        assert_eq!(line["message"], "a LiveKit egress key with no effect in Tessera", "{line}");
        assert!(!line["why"].as_str().unwrap_or("").is_empty(), "{line}");
    }
    assert!(!log.contains("unknown configuration key"), "{log}");
    assert!(!log.contains("sdk_audio_room_composite_cpu_cost"), "a key Tessera reads was warned about: {log}");
}
