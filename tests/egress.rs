//! The Egress API end to end: `tessera serve` (the real binary) driven by LiveKit's
//! own server SDKs (Node `livekit-server-sdk` EgressClient and Python `livekit-api`,
//! through tests/peers/egress_node.mjs and egress_py.py), recording devroom rooms of
//! synthetic participants; webhooks checked by the Python SDK's WebhookReceiver;
//! every recording decoded with FFmpeg.

mod common;

use common::grid::{cells, centre, rects};
use common::rooms::Kind;
use common::service::*;
use common::{amplitude, audio_mono, decode_errors, frames, probe, stream, who, workdir};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One test at a time: each runs rooms, publishers and recordings, which on two
/// cores leave no room for a second.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A small recording (640x360 at 15 fps) of `room` to `file`.
fn start_args(room: &str, file: &str, layout: &str) -> Value {
    json!({
        "roomName": room,
        "layout": layout,
        "file": { "filepath": file },
        "advanced": { "width": 640, "height": 360, "framerate": 15, "videoBitrate": 1200 },
    })
}

fn rms(x: &[f32]) -> f32 {
    (x.iter().map(|v| v * v).sum::<f32>() / x.len().max(1) as f32).sqrt()
}

/// Checks a finished egress's file result against the file itself.
fn check_file(info: &Value, out: &Path, w: u32, h: u32) -> (PathBuf, f64) {
    check_file_with(info, out, w, h, true)
}

fn check_file_with(info: &Value, out: &Path, w: u32, h: u32, audio: bool) -> (PathBuf, f64) {
    let f = &info["fileResults"][0];
    let location = PathBuf::from(f["location"].as_str().unwrap_or_else(|| panic!("no location: {info}")));
    assert!(location.starts_with(out), "{location:?} outside {out:?}");
    assert_eq!(location, out.join(f["filename"].as_str().unwrap()), "{info}");
    let size: u64 = f["size"].as_str().unwrap().parse().unwrap();
    assert_eq!(size, std::fs::metadata(&location).unwrap().len(), "reported size");
    let p = probe(&location);
    let v = stream(&p, "video");
    assert_eq!(
        (v["codec_name"].as_str(), v["width"].as_u64(), v["height"].as_u64()),
        (Some("h264"), Some(w as u64), Some(h as u64))
    );
    let audio_streams = p["streams"].as_array().unwrap().iter().filter(|s| s["codec_type"] == "audio").count();
    assert_eq!(audio_streams, audio as usize, "audio streams in {location:?}: {info}");
    if audio {
        assert_eq!(stream(&p, "audio")["codec_name"], "aac");
    }
    let duration = common::f64_of(&p["format"]["duration"]);
    let reported = f["duration"].as_str().unwrap().parse::<f64>().unwrap() / 1e9;
    assert!((duration - reported).abs() < 0.5, "file {duration} s, reported {reported} s");
    let (ok, errors) = decode_errors(&location);
    assert!(ok && errors.is_empty(), "{errors}");
    (location, duration)
}

both!(livekit_sdks_start_list_switch_layout_and_stop_a_room_composite_with_webhooks);
async fn livekit_sdks_start_list_switch_layout_and_stop_a_room_composite_with_webhooks(kind: Kind) {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = workdir("egress-sdks");
    let room = server(kind, &dir).await;
    let pubs = participants(&room, "api-room", 2);
    // A webhook receiver that refuses its first delivery, so a retry is needed.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut hook = tokio::process::Command::new(root.join("target/peers-venv/bin/python"))
        .arg(root.join("tests/peers/webhook_receiver.py"))
        .args(["0", KEY, SECRET, "--fail-first", "1"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut hook_lines = tokio::io::BufReader::new(hook.stdout.take().unwrap());
    let mut first = String::new();
    tokio::io::AsyncBufReadExt::read_line(&mut hook_lines, &mut first).await.unwrap();
    let hook_port = serde_json::from_str::<Value>(&first).unwrap()["listening"].as_u64().unwrap();
    let serve = Serve::start(
        &dir,
        &format!("ws_url: {}\nwebhook:\n  urls: [\"http://127.0.0.1:{hook_port}/hook\"]\n", room.url()),
    );
    let url = serve.url.clone();
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Node starts a grid recording; Python another, of the same room, over protobuf.
    let node =
        call(Sdk::Node, &url, SECRET, "startRoomComposite", start_args("api-room", "{room_name}/node-{time}", "grid"))
            .await
            .unwrap();
    let node_id = node["egressId"].as_str().unwrap().to_string();
    assert!(node_id.starts_with("EG_") && node_id.len() == 15, "{node}");
    assert_eq!(status(&node), "EGRESS_STARTING");
    // Python sends a whole request: video only, and a webhook of its own (on another path).
    let mut py_args = start_args("api-room", "py/{room_id}.mp4", "speaker");
    py_args["videoOnly"] = json!(true);
    py_args["fileOutputs"] = json!([py_args["file"].clone()]);
    py_args.as_object_mut().unwrap().remove("file");
    py_args["webhooks"] = json!([{ "url": format!("http://127.0.0.1:{hook_port}/own") }]);
    let py_args = json!({ "request": py_args });
    let py = call(Sdk::Python, &url, SECRET, "startRoomComposite", py_args).await.unwrap();
    let py_id = py["egressId"].as_str().unwrap().to_string();
    wait_for(Sdk::Node, &url, &node_id, "active", |i| status(i) == "EGRESS_ACTIVE").await;
    wait_for(Sdk::Python, &url, &py_id, "active", |i| status(i) == "EGRESS_ACTIVE").await;

    // Listing: by room, active only, by id; both SDKs.
    for sdk in [Sdk::Node, Sdk::Python] {
        let by_room = call(sdk, &url, SECRET, "listEgress", json!({ "roomName": "api-room" })).await.unwrap();
        let mut ids: Vec<&str> = by_room.as_array().unwrap().iter().map(|i| i["egressId"].as_str().unwrap()).collect();
        ids.sort_unstable();
        let mut want = vec![node_id.as_str(), py_id.as_str()];
        want.sort_unstable();
        assert_eq!(ids, want, "{sdk:?}");
        let active = call(sdk, &url, SECRET, "listEgress", json!({ "active": true })).await.unwrap();
        assert_eq!(active.as_array().unwrap().len(), 2);
        let other = call(sdk, &url, SECRET, "listEgress", json!({ "roomName": "elsewhere" })).await.unwrap();
        assert_eq!(other.as_array().map(|a| a.len()).unwrap_or(0), 0);
    }

    // Grid for 5 s, then single-speaker for 5 s.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let switched =
        call(Sdk::Node, &url, SECRET, "updateLayout", json!({ "egressId": node_id, "layout": "single-speaker" }))
            .await
            .unwrap();
    let switched_at = tessera::time::unix_ns();
    assert_eq!(switched["roomComposite"]["layout"], "single-speaker");
    let bad = call(Sdk::Node, &url, SECRET, "updateLayout", json!({ "egressId": node_id, "layout": "mosaic" })).await;
    assert_eq!(bad.unwrap_err()["code"], "invalid_argument");
    let remove = json!({ "egressId": node_id, "remove": ["rtmp://127.0.0.1/live/key"] });
    let e = call(Sdk::Node, &url, SECRET, "updateStream", remove).await.unwrap_err();
    assert!(e["code"] == "invalid_argument" && e["message"].as_str().unwrap().contains("not one of"), "{e}");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let stop_sent = tessera::time::unix_ns();
    let stopping = call(Sdk::Node, &url, SECRET, "stopEgress", json!({ "egressId": node_id })).await.unwrap();
    let stop_answered = tessera::time::unix_ns();
    assert_eq!(status(&stopping), "EGRESS_ENDING");
    let stopping = call(Sdk::Python, &url, SECRET, "stopEgress", json!({ "egressId": py_id })).await.unwrap();
    assert_eq!(status(&stopping), "EGRESS_ENDING");
    let done = wait_for(Sdk::Node, &url, &node_id, "complete", |i| status(i) != "EGRESS_ENDING").await;
    let py_done = wait_for(Sdk::Python, &url, &py_id, "complete", |i| status(i) != "EGRESS_ENDING").await;
    assert_eq!(status(&done), "EGRESS_COMPLETE", "{done}");
    assert_eq!(status(&py_done), "EGRESS_COMPLETE", "{py_done}");
    let again = call(Sdk::Node, &url, SECRET, "stopEgress", json!({ "egressId": node_id })).await.unwrap_err();
    assert_eq!(again["code"], "failed_precondition", "{again}");

    // The files: what was reported is what is on disk, and the content is the room's.
    let (w, h) = (640, 360);
    let (node_file, secs) = check_file(&done, &serve.out, w, h);
    let filename = done["fileResults"][0]["filename"].as_str().unwrap();
    assert!(filename.starts_with("api-room/node-") && filename.ends_with(".mp4"), "{filename}");
    let room_id = py_done["roomId"].as_str().unwrap();
    assert_eq!(py_done["fileResults"][0]["filename"].as_str().unwrap(), format!("py/{room_id}.mp4"));
    // Python asked for video only: no audio track at all.
    check_file_with(&py_done, &serve.out, w, h, false);
    // The file's own start is when its media began (EgressInfo.started_at is when the egress was accepted).
    let started: i64 = done["fileResults"][0]["startedAt"].as_str().unwrap().parse().unwrap();
    // It lasts from its first frame to the stop, which arrived while the SDK's call was under way
    // (each call is an SDK process, slow on a loaded machine: the test's pauses and calls come to 11 to 19 s).
    let (earliest, latest) = ((stop_sent - started) as f64 / 1e9, (stop_answered - started) as f64 / 1e9);
    assert!(
        secs >= 9.0 && secs > earliest - 0.5 && secs < latest + 0.5,
        "recorded {secs} s, stopped {earliest:.1} to {latest:.1} s in"
    );
    let switch_s = (switched_at - started) as f64 / 1e9;
    let video = frames(&node_file, w, h);
    // Before the switch: the two participants side by side; after it: one fills the frame.
    let sw = common::grid::grid_then_single(&video, 15.0, switch_s, 0.5, w, h);
    assert!(sw.before.len() > 30 && sw.both >= 0.85, "grid before: {:?}", sw.before);
    let after = &sw.after;
    assert!(after.len() > 30 && sw.full >= 0.85, "single-speaker after {switch_s:.1} s: {after:?}");
    assert!(rms(&audio_mono(&node_file, 16_000)) > 0.02, "the room's audio is in the file");

    // Webhooks: started, updated (active, ending) and ended for each, validly signed, in order.
    let mut events: Vec<Value> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while events.iter().filter(|e| e["event"] == "egress_ended").count() < 3 {
        let mut line = String::new();
        let n = tokio::time::timeout(
            deadline.saturating_duration_since(Instant::now()),
            tokio::io::AsyncBufReadExt::read_line(&mut hook_lines, &mut line),
        )
        .await
        .unwrap_or_else(|_| panic!("webhooks so far: {events:?}"))
        .unwrap();
        assert!(n > 0, "webhook receiver ended");
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["failedOnPurpose"] == true {
            continue;
        }
        assert_eq!(v["valid"], true, "{v}");
        assert_eq!(v["contentType"], "application/webhook+json");
        events.push(v);
    }
    for (id, path) in [(&node_id, "/hook"), (&py_id, "/hook"), (&py_id, "/own")] {
        let mine: Vec<(String, String)> = events
            .iter()
            .filter(|e| e["egressId"] == id.as_str() && e["path"] == path)
            .map(|e| (e["event"].as_str().unwrap().to_string(), e["status"].as_str().unwrap_or("").to_string()))
            .collect();
        let want = [
            ("egress_started", "EGRESS_STARTING"),
            ("egress_updated", "EGRESS_ACTIVE"),
            ("egress_updated", "EGRESS_ENDING"),
            ("egress_ended", "EGRESS_COMPLETE"),
        ];
        let want: Vec<(String, String)> = want.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        assert_eq!(mine, want, "webhooks for {id} on {path}");
    }

    // Graceful shutdown: SIGTERM while a recording runs finalises it and exits.
    let last =
        call(Sdk::Node, &url, SECRET, "startRoomComposite", start_args("api-room", "last.mp4", "grid")).await.unwrap();
    let last_id = last["egressId"].as_str().unwrap().to_string();
    wait_for(Sdk::Node, &url, &last_id, "active", |i| status(i) == "EGRESS_ACTIVE").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut serve = serve;
    unsafe { libc::kill(serve.pid(), libc::SIGTERM) };
    let t0 = Instant::now();
    let code = loop {
        if let Some(s) = serve.child.try_wait().unwrap() {
            break s.code();
        }
        assert!(t0.elapsed() < Duration::from_secs(15), "serve did not exit on SIGTERM: {}", log(&dir));
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(code, Some(0), "{}", log(&dir));
    let p = probe(&serve.out.join("last.mp4"));
    assert!(common::f64_of(&p["format"]["duration"]) > 2.5, "{p}");
    assert!(log(&dir).contains("draining"), "{}", log(&dir));
    pubs.abort();
    let _ = hook.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_the_right_twirp_code_and_a_message_naming_the_problem() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = workdir("egress-errors");
    std::fs::create_dir_all(dir.join("rec")).unwrap();
    // Room for 0.3 cores: a 720p30 composite (0.5) is refused; no LiveKit server behind it.
    let serve = Serve::start(&dir, "ws_url: ws://127.0.0.1:9\ncpu_cost:\n  cpus: 0.3\n  max_cpu_utilization: 1.0\n");
    let url = serve.url.clone();
    let file = |p: &str| json!({ "filepath": p });
    let node_cases: Vec<(&str, Value, &str, &str)> = vec![
        ("no outputs", json!({ "roomName": "r", "outputs": {} }), "invalid_argument", "no outputs"),
        (
            "odd size",
            json!({ "roomName": "r", "file": file("a.mp4"), "advanced": { "width": 641, "height": 360 } }),
            "invalid_argument",
            "even",
        ),
        (
            "tiny size",
            json!({ "roomName": "r", "file": file("a.mp4"), "advanced": { "width": 8, "height": 8 } }),
            "invalid_argument",
            "at least 16",
        ),
        (
            "bad frame rate",
            json!({ "roomName": "r", "file": file("a.mp4"), "advanced": { "framerate": 240 } }),
            "invalid_argument",
            "framerate",
        ),
        (
            "unknown layout",
            json!({ "roomName": "r", "file": file("a.mp4"), "layout": "mosaic" }),
            "invalid_argument",
            "grid, grid-light",
        ),
        ("path escaping", json!({ "roomName": "r", "file": file("../../etc/x.mp4") }), "invalid_argument", "\"..\""),
        (
            "absolute path elsewhere",
            json!({ "roomName": "r", "file": file("/tmp/x.mp4") }),
            "invalid_argument",
            "outside the output directory",
        ),
        (
            "both only flags",
            json!({ "roomName": "r", "file": file("a.mp4"), "audioOnly": true, "videoOnly": true }),
            "invalid_argument",
            "audio_only",
        ),
        (
            "bad stream URL",
            json!({ "roomName": "r", "outputs": { "stream": { "urls": ["http://127.0.0.1/live/k"] } } }),
            "invalid_argument",
            "rtmp://",
        ),
        (
            "images of audio",
            json!({ "roomName": "r", "audioOnly": true, "outputs": { "file": file("a.ogg"), "images": { "captureInterval": 5 } } }),
            "invalid_argument",
            "image_outputs",
        ),
        (
            "custom template not on the web",
            json!({ "roomName": "r", "file": file("a.mp4"), "customBaseUrl": "ftp://127.0.0.1/t" }),
            "invalid_argument",
            "custom_base_url",
        ),
        (
            "storage without its bucket",
            json!({ "roomName": "r", "file": { "filepath": "a.mp4", "gcp": { "credentials": "{}" } } }),
            "invalid_argument",
            "gcp.bucket",
        ),
        ("over the CPU budget", json!({ "roomName": "r", "file": file("a.mp4") }), "resource_exhausted", "cores"),
    ];
    for (what, args, code, words) in node_cases {
        let e = call(Sdk::Node, &url, SECRET, "startRoomComposite", args).await.expect_err(what);
        assert_eq!(e["code"], code, "{what}: {e}");
        assert!(e["message"].as_str().unwrap().contains(words), "{what}: {e}");
    }
    for (what, method, args, code, words) in [
        ("unknown egress on stop", "stopEgress", json!({ "egressId": "EG_nothere" }), "not_found", "EG_nothere"),
        (
            "unknown egress on update",
            "updateLayout",
            json!({ "egressId": "EG_nothere", "layout": "grid" }),
            "not_found",
            "EG_nothere",
        ),
        (
            "web egress of no page",
            "startWeb",
            json!({ "url": "not a url", "file": file("w.mp4") }),
            "invalid_argument",
            "url",
        ),
        (
            "track egress of no track",
            "startTrack",
            json!({ "roomName": "r", "trackId": "", "filepath": "t.ogg" }),
            "invalid_argument",
            "track_id",
        ),
        (
            "track egress to a websocket that is not one",
            "startTrack",
            json!({ "roomName": "r", "trackId": "TR_x", "websocketUrl": "http://127.0.0.1:1/x" }),
            "invalid_argument",
            "websocket_url",
        ),
    ] {
        let e = call(Sdk::Node, &url, SECRET, method, args).await.expect_err(what);
        assert_eq!(e["code"], code, "{what}: {e}");
        assert!(e["message"].as_str().unwrap().contains(words), "{what}: {e}");
    }
    let e = call(Sdk::Node, &url, "not-the-secret-not-the-secret-000", "listEgress", json!({})).await.unwrap_err();
    assert_eq!((e["code"].as_str(), e["status"].as_u64()), (Some("unauthenticated"), Some(401)), "{e}");
    assert!(e["message"].as_str().unwrap().contains("signature"), "{e}");
    let e = call(Sdk::Python, &url, SECRET, "stopEgress", json!({ "egressId": "EG_nothere" })).await.unwrap_err();
    assert_eq!(e["code"], "not_found", "{e}");

    // Raw requests: two file outputs (no SDK sends them), tokens, bodies, routes.
    let good = record_token(SECRET, recorder_grant(), Duration::from_secs(600));
    let two = json!({ "roomName": "r", "fileOutputs": [file("a.mp4"), file("b.mp4")] }).to_string().into_bytes();
    let no_grant = record_token(
        SECRET,
        livekit_api::access_token::VideoGrants { room_join: true, room: "r".into(), ..Default::default() },
        Duration::from_secs(600),
    );
    let expired = {
        use jsonwebtoken::{EncodingKey, Header, encode};
        let now = tessera::time::unix_ns() / 1_000_000_000;
        let c = livekit_api::access_token::Claims {
            exp: (now - 3600) as usize,
            iss: KEY.into(),
            video: recorder_grant(),
            ..Default::default()
        };
        encode(&Header::default(), &c, &EncodingKey::from_secret(SECRET.as_bytes())).unwrap()
    };
    let json_ct = "application/json";
    let list = b"{}".to_vec();
    let start = "StartRoomCompositeEgress";
    let preset_proto = {
        use prost::Message;
        livekit_protocol::RoomCompositeEgressRequest {
            room_name: "r".into(),
            file_outputs: vec![livekit_protocol::EncodedFileOutput { filepath: "a.mp4".into(), ..Default::default() }],
            options: Some(livekit_protocol::room_composite_egress_request::Options::Preset(99)),
            ..Default::default()
        }
        .encode_to_vec()
    };
    for (what, method, token, ct, body, status, code, words) in [
        (
            "missing room",
            start,
            Some(good.as_str()),
            json_ct,
            br#"{"fileOutputs":[{"filepath":"a.mp4"}]}"#.to_vec(),
            400,
            "invalid_argument",
            "room_name",
        ),
        (
            "bad webhook",
            start,
            Some(&good),
            json_ct,
            br#"{"roomName":"r","fileOutputs":[{"filepath":"a.mp4"}],"webhooks":[{"url":"ftp://x"}]}"#.to_vec(),
            400,
            "invalid_argument",
            "webhooks",
        ),
        (
            "dual-channel mixing of a custom template",
            start,
            Some(&good),
            json_ct,
            br#"{"roomName":"r","fileOutputs":[{"filepath":"a.mp4"}],"audioMixing":"DUAL_CHANNEL_AGENT","customBaseUrl":"http://127.0.0.1:9/t"}"#.to_vec(),
            400,
            "invalid_argument",
            "audio_mixing",
        ),
        ("two file outputs", start, Some(&good), json_ct, two, 400, "invalid_argument", "at most one"),
        (
            "bad preset name",
            start,
            Some(&good),
            json_ct,
            br#"{"roomName":"r","preset":"H264_4K"}"#.to_vec(),
            400,
            "malformed",
            "preset",
        ),
        (
            "bad preset number",
            start,
            Some(&good),
            "application/protobuf",
            preset_proto,
            400,
            "invalid_argument",
            "99 is not a preset",
        ),
        ("no token", "ListEgress", None, json_ct, list.clone(), 401, "unauthenticated", "no access token"),
        ("expired token", "ListEgress", Some(&expired), json_ct, list.clone(), 401, "unauthenticated", "expired"),
        ("missing grant", "ListEgress", Some(&no_grant), json_ct, list.clone(), 403, "permission_denied", "roomRecord"),
        ("garbage JSON", start, Some(&good), json_ct, b"{{{ not json".to_vec(), 400, "malformed", "JSON"),
        (
            "garbage protobuf",
            start,
            Some(&good),
            "application/protobuf",
            vec![0xff, 0xff, 0xff, 0x0f],
            400,
            "malformed",
            "protobuf",
        ),
        ("wrong content type", "ListEgress", Some(&good), "text/plain", list.clone(), 404, "bad_route", "Content-Type"),
        ("unknown method", "Teleport", Some(&good), json_ct, list.clone(), 404, "bad_route", "Teleport"),
    ] {
        let (st, ct, body) = raw(&url, method, token, ct, body).await;
        let v: Value =
            serde_json::from_slice(&body).unwrap_or_else(|_| panic!("{what}: {}", String::from_utf8_lossy(&body)));
        assert_eq!((st, ct.as_str(), v["code"].as_str()), (status, "application/json", Some(code)), "{what}: {v}");
        assert!(v["msg"].as_str().unwrap().contains(words), "{what}: {v}");
    }
    // The unified StartEgress: a template source is a room composite, a web source a page in
    // Chromium, a media source a participant egress.
    let unified = json!({ "roomName": "r", "template": { "layout": "speaker" }, "outputs": [{ "file": { "filepath": "u.mp4" } }] });
    let (st, _, body) = raw(&url, "StartEgress", Some(&good), json_ct, unified.to_string().into_bytes()).await;
    assert_eq!(st, 429, "a 720p30 composite does not fit 0.3 cores: {}", String::from_utf8_lossy(&body));
    let web = json!({ "roomName": "r", "web": { "url": "http://127.0.0.1:1/" }, "outputs": [{ "file": { "filepath": "u.mp4" } }] });
    let (st, _, body) = raw(&url, "StartEgress", Some(&good), json_ct, web.to_string().into_bytes()).await;
    assert_eq!(st, 429, "a page in Chromium costs a core here: {}", String::from_utf8_lossy(&body));
    let media = json!({ "roomName": "r", "media": { "videoTrackId": "TR_x" }, "outputs": [{ "file": { "filepath": "u.mp4" } }] });
    let (st, _, body) = raw(&url, "StartEgress", Some(&good), json_ct, media.to_string().into_bytes()).await;
    assert_eq!(
        st,
        429,
        "a media source at 720p30 costs what a participant egress does: {}",
        String::from_utf8_lossy(&body)
    );
    let get = reqwest::get(format!("{url}/twirp/livekit.Egress/ListEgress")).await.unwrap();
    assert_eq!(get.status().as_u16(), 404);

    // An audio-only composite fits the budget; with no LiveKit server it fails, alone, with the reason.
    let a = call(
        Sdk::Node,
        &url,
        SECRET,
        "startRoomComposite",
        json!({ "roomName": "r", "audioOnly": true, "file": file("a.mp4") }),
    )
    .await
    .unwrap();
    let id = a["egressId"].as_str().unwrap();
    let failed = wait_for(Sdk::Node, &url, id, "failed", |i| status(i) == "EGRESS_FAILED").await;
    assert!(failed["error"].as_str().unwrap().contains("cannot join"), "{failed}");

    // Still serving. (Refused so far: the composite over the budget, and the three unified requests.)
    let health = reqwest::get(format!("{url}/health")).await.unwrap();
    assert_eq!(health.status().as_u16(), 503, "0.3 cores cannot take a default composite");
    let (st, _, body) = raw(&url, "ListEgress", Some(&good), json_ct, list).await;
    assert_eq!(st, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["items"].as_array().unwrap().len(), 1, "{v}");
    let metrics = reqwest::get(format!("{url}/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("tessera_egress_jobs{status=\"EGRESS_FAILED\"} 1"), "{metrics}");
    assert!(metrics.contains("tessera_egress_refused_total 4"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_rooms_record_at_once_and_a_failing_job_leaves_the_others_untouched() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = workdir("egress-three");
    let room = devroom().await;
    // Room i has i + 1 participants, so each file shows which room it recorded.
    let rooms = ["room-a", "room-b", "room-c"];
    let pubs: Vec<_> = rooms.iter().enumerate().map(|(i, r)| participants(&room, r, i + 1)).collect();
    let serve = Serve::start(&dir, &format!("ws_url: {}\n", room.url()));
    let url = serve.url.clone();
    tokio::time::sleep(Duration::from_secs(2)).await;
    // (Grid needs 560 px of width for 2x2.)
    let (w, h) = (640, 360);
    let args = |room: &str, file: &str| {
        json!({
            "roomName": room,
            "file": { "filepath": file },
            "advanced": { "width": w, "height": h, "framerate": 15, "videoBitrate": 500 },
        })
    };
    // The third job of the second round writes where a directory already is: it fails.
    std::fs::create_dir_all(serve.out.join("round2/room-c.mp4")).unwrap();
    for round in ["round1", "round2"] {
        let mut ids = Vec::new();
        for r in rooms {
            let info =
                call(Sdk::Node, &url, SECRET, "startRoomComposite", args(r, &format!("{round}/{{room_name}}.mp4")))
                    .await
                    .unwrap();
            ids.push(info["egressId"].as_str().unwrap().to_string());
        }
        let failing = round == "round2";
        for (i, id) in ids.iter().enumerate() {
            if !(failing && i == 2) {
                wait_for(Sdk::Node, &url, id, "active", |i| status(i) == "EGRESS_ACTIVE").await;
            }
        }
        tokio::time::sleep(Duration::from_secs(8)).await;
        let mut ended = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            if failing && i == 2 {
                let f = wait_for(Sdk::Node, &url, id, "ended", |i| status(i) != "EGRESS_STARTING").await;
                assert_eq!(status(&f), "EGRESS_FAILED", "{f}");
                assert!(f["error"].as_str().unwrap().contains("room-c.mp4"), "the reason names the file: {f}");
                continue;
            }
            call(Sdk::Node, &url, SECRET, "stopEgress", json!({ "egressId": id })).await.unwrap();
            ended.push((i, wait_for(Sdk::Node, &url, id, "complete", |i| status(i) != "EGRESS_ENDING").await));
        }
        for (i, info) in ended {
            assert_eq!(status(&info), "EGRESS_COMPLETE", "{round}: {info}");
            assert_eq!(info["roomName"], rooms[i]);
            let (path, secs) = check_file(&info, &serve.out, w, h);
            assert!(secs > 7.0, "{round} {}: {secs} s", rooms[i]);
            // The room's participants, each in its own cell, in most frames.
            let n = i + 1;
            let video = frames(&path, w, h);
            let good = (1..10)
                .map(|k| &video[video.len() * k / 10])
                .filter(|f| {
                    let mut seen: Vec<usize> = cells(f, n, w, h).into_iter().flatten().collect();
                    seen.sort_unstable();
                    let ok = seen == (0..n).collect::<Vec<_>>();
                    if !ok {
                        eprintln!("{round} {}: cells {:?}", rooms[i], cells(f, n, w, h));
                    }
                    ok
                })
                .count();
            // (A participant flashing white at its sync mark reads as nobody for a frame.)
            assert!(good >= 7, "{round} {}: {good} of 9 frames show its {n} participants", rooms[i]);
            assert!(rms(&audio_mono(&path, 16_000)) > 0.02, "{round} {}: audio", rooms[i]);
        }
    }
    let metrics = reqwest::get(format!("{url}/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("tessera_egress_jobs{status=\"EGRESS_COMPLETE\"} 5"), "{metrics}");
    assert!(metrics.contains("tessera_egress_jobs{status=\"EGRESS_FAILED\"} 1"), "{metrics}");
    for p in pubs {
        p.abort();
    }
}

both!(session_limits_empty_rooms_and_closing_rooms_end_jobs_like_livekit);
async fn session_limits_empty_rooms_and_closing_rooms_end_jobs_like_livekit(kind: Kind) {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = workdir("egress-endings");
    let room = server(kind, &dir).await;
    let long = participants(&room, "limited", 1);
    let serve =
        Serve::start(&dir, &format!("ws_url: {}\nsession_limits:\n  file_output_max_duration: 6s\n", room.url()));
    // This room's only participant leaves after 3 s (counted once the service is up, however
    // long it took to start); the room closes 2 s later.
    let short = participants_for(&room, "closing", 1, Duration::from_secs(3));
    let url = serve.url.clone();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let start = |room: &'static str| {
        let url = url.clone();
        async move {
            let args = start_args(room, &format!("{room}.mp4"), "grid");
            let info = call(Sdk::Node, &url, SECRET, "startRoomComposite", args).await.unwrap();
            info["egressId"].as_str().unwrap().to_string()
        }
    };
    let (limited, closing, empty) = (start("limited").await, start("closing").await, start("nobody").await);
    // Nobody is in this room: stopped before any media, it is ABORTED and leaves no file.
    tokio::time::sleep(Duration::from_secs(1)).await;
    // livekit-server closes a room nobody joined after its empty timeout (2 s here), the
    // recorder in it or not, so there the job may have ended by itself before the stop.
    if let Err(e) = call(Sdk::Node, &url, SECRET, "stopEgress", json!({ "egressId": empty })).await {
        assert!(kind == Kind::LiveKit && e["code"] == "failed_precondition", "{e}");
    }
    let aborted = wait_for(Sdk::Node, &url, &empty, "aborted", |i| status(i) != "EGRESS_ENDING").await;
    assert_eq!(status(&aborted), "EGRESS_ABORTED", "{aborted}");
    assert!(aborted["error"].as_str().unwrap().contains("never became recordable"), "{aborted}");
    assert!(!serve.out.join("nobody.mp4").exists());
    // The session limit ends the first by itself.
    let l = wait_for(Sdk::Node, &url, &limited, "limited", |i| {
        !["EGRESS_STARTING", "EGRESS_ACTIVE", "EGRESS_ENDING"].contains(&status(i))
    })
    .await;
    assert_eq!(status(&l), "EGRESS_LIMIT_REACHED", "{l}");
    assert!(l["error"].as_str().unwrap().contains("file_output_max_duration"), "{l}");
    let (_, secs) = check_file(&l, &serve.out, 640, 360);
    assert!((5.8..6.5).contains(&secs), "limited to 6 s: {secs}");
    // The room closing ends the second: COMPLETE with what was recorded.
    let c = wait_for(Sdk::Node, &url, &closing, "complete", |i| {
        !["EGRESS_STARTING", "EGRESS_ACTIVE", "EGRESS_ENDING"].contains(&status(i))
    })
    .await;
    assert_eq!(status(&c), "EGRESS_COMPLETE", "{c}");
    assert!(c["details"].as_str().unwrap().contains("ended the session"), "{c}");
    let (_, secs) = check_file(&c, &serve.out, 640, 360);
    assert!((1.0..6.0).contains(&secs), "recorded until the room closed: {secs}");
    long.abort();
    short.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_only_composites_write_ogg_and_mp3_with_every_participants_tone_and_no_video_work() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = workdir("egress-audio");
    let room = devroom().await;
    let pubs = participants(&room, "voices", 3);
    let serve = Serve::start(&dir, &format!("ws_url: {}\n", room.url()));
    let url = serve.url.clone();
    tokio::time::sleep(Duration::from_secs(1)).await;
    // OGG from the extension (Node); MP3 from the file type, its extension added (Python, protobuf).
    let ogg = call(
        Sdk::Node,
        &url,
        SECRET,
        "startRoomComposite",
        json!({ "roomName": "voices", "audioOnly": true, "file": { "filepath": "voices.ogg" } }),
    )
    .await
    .unwrap();
    let mp3 = call(
        Sdk::Python,
        &url,
        SECRET,
        "startRoomComposite",
        json!({ "roomName": "voices", "audioOnly": true, "file": { "filepath": "voices", "fileType": "MP3" } }),
    )
    .await
    .unwrap();
    let ids = [ogg["egressId"].as_str().unwrap().to_string(), mp3["egressId"].as_str().unwrap().to_string()];
    for id in &ids {
        wait_for(Sdk::Node, &url, id, "active", |i| status(i) == "EGRESS_ACTIVE").await;
    }
    // Everyone speaks in 3 s turns: 10 s hold each participant's turn.
    tokio::time::sleep(Duration::from_secs(10)).await;
    // No video work: no frames rendered or encoded, and the job's threads nearly idle.
    for id in &ids {
        assert_eq!(job_metric(&url, "job_frames_rendered", id).await, 0.0);
        let cpu = job_metric(&url, "job_cpu_seconds", id).await;
        // A video job of the same room uses over 5 (and a slow, shared host has been seen at 1.15).
        assert!(cpu < 2.0, "an audio-only job used {cpu} CPU-s in 10 s");
    }
    for id in &ids {
        call(Sdk::Node, &url, SECRET, "stopEgress", json!({ "egressId": id })).await.unwrap();
    }
    for (id, name, codec) in [(&ids[0], "voices.ogg", "opus"), (&ids[1], "voices.mp3", "mp3")] {
        let info = wait_for(Sdk::Node, &url, id, "complete", |i| status(i) != "EGRESS_ENDING").await;
        assert_eq!(status(&info), "EGRESS_COMPLETE", "{info}");
        let f = &info["fileResults"][0];
        assert_eq!(f["filename"], name, "{info}");
        let path = serve.out.join(name);
        let p = probe(&path);
        let streams = p["streams"].as_array().unwrap();
        assert_eq!(streams.len(), 1, "{p}");
        assert_eq!(
            (streams[0]["codec_type"].as_str(), streams[0]["codec_name"].as_str()),
            (Some("audio"), Some(codec))
        );
        let secs = common::f64_of(&p["format"]["duration"]);
        assert!(secs > 9.0, "{name}: {secs} s");
        let (ok, errors) = decode_errors(&path);
        assert!(ok && errors.is_empty(), "{name}: {errors}");
        // Each participant's tone is in the mix: the loudest 1 s window of each tone.
        let audio = audio_mono(&path, 16_000);
        let tone = |j: usize| {
            audio
                .chunks(16_000)
                .map(|w| amplitude(w, 16_000.0, tessera::preview::synthetic::tone_hz(j)))
                .fold(0.0f32, f32::max)
        };
        let all: Vec<f32> = (0..3).map(tone).collect();
        assert!(all.iter().all(|a| *a > 0.02), "{name}: each participant's tone at its loudest: {all:?}");
    }
    pubs.abort();
}

/// nginx with the RTMP module, recording every stream it gets to `dir/<key>.flv`.
struct Nginx(Child);

impl Nginx {
    fn start(dir: &Path, port: u16) -> Nginx {
        let rec = dir.join("nginx-rec");
        std::fs::create_dir_all(dir.join("nginx-logs")).unwrap();
        std::fs::create_dir_all(&rec).unwrap();
        let conf = dir.join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;\nuser root;\ndaemon off;\nmaster_process off;\n\
                 error_log {d}/nginx-logs/error.log;\npid {d}/nginx.pid;\nevents {{}}\n\
                 rtmp {{ server {{ listen 127.0.0.1:{port}; application live {{ live on; record all; record_path {r}; record_unique off; }} }} }}\n",
                d = dir.display(),
                r = rec.display()
            ),
        )
        .unwrap();
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf)
            .spawn()
            .expect("nginx runs (make test installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nginx did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Nginx(child)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Seconds of video in a file, from its decoded frames (a receiver killed mid-stream leaves
/// no duration in its header).
fn duration_of(path: &Path) -> f64 {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v",
            "-count_frames",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .unwrap();
    // (MPEG-TS lists the stream under its program too: take the first number.)
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split(|c: char| !c.is_ascii_digit()).find_map(|t| t.parse::<f64>().ok()).unwrap_or(0.0) / 15.0
}

/// Mean absolute difference of two RGB frames.
fn frame_diff(a: &[u8], b: &[u8]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (*x as i32 - *y as i32).unsigned_abs() as f64).sum::<f64>() / a.len() as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_egress_streams_to_rtmp_and_srt_beside_its_file_and_update_stream_changes_the_urls() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = workdir("egress-streams");
    let room = devroom().await;
    let pubs = participants(&room, "live", 2);
    let (nginx_port, victim_port, srt_port) = (free_port(), free_port(), free_port());
    let _nginx = Nginx::start(&dir, nginx_port);
    // A second RTMP receiver, to be killed: FFmpeg listening once.
    let mut victim = Command::new("ffmpeg")
        .args(["-v", "error", "-listen", "1", "-i", &format!("rtmp://127.0.0.1:{victim_port}/live/victimkey9")])
        .args(["-c", "copy", "-y"])
        .arg(dir.join("victim.flv"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut srt = Command::new("ffmpeg")
        .args(["-v", "error", "-i", &format!("srt://127.0.0.1:{srt_port}?mode=listener"), "-c", "copy", "-y"])
        .arg(dir.join("srt.ts"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let serve = Serve::start(&dir, &format!("ws_url: {}\n", room.url()));
    let url = serve.url.clone();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let nginx = |key: &str| format!("rtmp://127.0.0.1:{nginx_port}/live/{key}");
    let victim_url = format!("rtmp://127.0.0.1:{victim_port}/live/victimkey9");
    let args = json!({
        "roomName": "live",
        "outputs": {
            "file": { "filepath": "live.mp4" },
            "stream": { "urls": [nginx("alphakey01"), victim_url, format!("srt://127.0.0.1:{srt_port}")] },
            "segments": { "filenamePrefix": "hls/live", "playlistName": "live.m3u8", "livePlaylistName": "live-live", "segmentDuration": 2 },
            "images": { "captureInterval": 2, "width": 320, "height": 180, "filenamePrefix": "img/snap" },
        },
        "advanced": { "width": 640, "height": 360, "framerate": 15, "videoBitrate": 1200 },
    });
    let info = call(Sdk::Node, &url, SECRET, "startRoomComposite", args).await.unwrap();
    let id = info["egressId"].as_str().unwrap().to_string();
    let active = wait_for(Sdk::Node, &url, &id, "active", |i| status(i) == "EGRESS_ACTIVE").await;
    let t0 = Instant::now();
    assert!(!active.to_string().contains("alphakey01"), "a stream key in EgressInfo: {active}");

    // 4 s in: a third RTMP URL added, the first removed.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let upd = json!({ "egressId": id, "add": [nginx("gammakey03")], "remove": [nginx("alphakey01")] });
    let updated = call(Sdk::Node, &url, SECRET, "updateStream", upd).await.unwrap();
    let changed_at = t0.elapsed().as_secs_f64();
    assert_eq!(updated["streamResults"].as_array().unwrap().len(), 4, "{updated}");
    let bad = call(
        Sdk::Python,
        &url,
        SECRET,
        "updateStream",
        json!({ "egressId": id, "remove": ["rtmp://127.0.0.1/live/nothere"] }),
    )
    .await;
    assert_eq!(bad.unwrap_err()["code"], "invalid_argument");
    // 8 s in: the FFmpeg receiver dies.
    tokio::time::sleep(Duration::from_secs(4)).await;
    victim.kill().unwrap();
    let _ = victim.wait();
    let killed_at = t0.elapsed().as_secs_f64();
    let live_then = std::fs::read_to_string(serve.out.join("hls/live-live.m3u8")).unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mid = call(Sdk::Node, &url, SECRET, "listEgress", json!({ "egressId": id })).await.unwrap();
    let victim_info = mid[0]["streamResults"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["url"].as_str().unwrap().contains(&victim_port.to_string()))
        .unwrap()
        .clone();
    assert!(
        victim_info["retries"].as_u64().unwrap_or(0) >= 1 && !victim_info["error"].as_str().unwrap_or("").is_empty(),
        "{victim_info}"
    );
    call(Sdk::Node, &url, SECRET, "stopEgress", json!({ "egressId": id })).await.unwrap();
    let done = wait_for(Sdk::Node, &url, &id, "complete", |i| status(i) != "EGRESS_ENDING").await;
    let total = t0.elapsed().as_secs_f64();
    assert_eq!(status(&done), "EGRESS_COMPLETE", "{done}");
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while srt.try_wait().unwrap().is_none() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let _ = srt.kill();

    // Reported: each URL once, keys redacted, the killed one FAILED with its error, the others FINISHED.
    let results = done["streamResults"].as_array().unwrap();
    let by = |needle: &str| {
        results
            .iter()
            .find(|s| s["url"].as_str().unwrap().contains(needle))
            .unwrap_or_else(|| panic!("{needle}: {done}"))
    };
    // Keys keep LiveKit's three characters at each end.
    assert_eq!(by("/live/{alp...y01}")["status"], "FINISHED", "{done}");
    assert_eq!(by("/live/{gam...y03}")["status"], "FINISHED", "{done}");
    assert_eq!(by("srt://")["status"], "FINISHED", "{done}");
    assert_eq!(by(&victim_port.to_string())["status"], "FAILED", "{done}");
    let text = done.to_string() + &log(&dir);
    for key in ["alphakey01", "gammakey03", "victimkey9"] {
        assert!(!text.contains(key), "stream key {key} in the results or the log");
    }

    // What each receiver got: the file and SRT all along, alpha until its removal, gamma from its
    // addition, the victim until it died; each decodes from its first frame.
    let (file, _) = check_file(&done, &serve.out, 640, 360);
    let rec = dir.join("nginx-rec");
    for (path, from, to) in [
        (file.clone(), 0.0, total),
        (dir.join("srt.ts"), 0.0, total),
        (rec.join("alphakey01.flv"), 0.0, changed_at),
        (rec.join("gammakey03.flv"), changed_at, total),
        (dir.join("victim.flv"), 0.0, killed_at),
    ] {
        let d = duration_of(&path);
        if path.ends_with("victim.flv") {
            // Killed with SIGKILL, FFmpeg loses what it had not written yet.
            assert!(d > 2.0 && d < to + 1.0, "{path:?}: {d:.2} s before it was killed at {to:.2} s");
        } else {
            assert!((d - (to - from)).abs() < 2.0, "{path:?}: {d:.2} s, expected about {:.2}", to - from);
        }
        let p = probe(&path);
        assert_eq!(stream(&p, "video")["codec_name"], "h264", "{path:?}");
        assert_eq!(stream(&p, "audio")["codec_name"], "aac", "{path:?}");
        if !path.ends_with("victim.flv") {
            let (ok, errors) = decode_errors(&path);
            assert!(ok && errors.is_empty(), "{path:?}: {errors}");
        }
    }
    check_hls(&done, &serve.out, &file, &live_then);
    check_images(&done, &serve.out, &file);
    // The manifest beside the outputs lists the file, the playlist's segments and the images.
    let manifest_path =
        PathBuf::from(done["manifestLocation"].as_str().unwrap_or_else(|| panic!("no manifest: {done}")));
    assert_eq!(manifest_path, serve.out.join(format!("{id}.json")));
    let m: Value = serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    assert_eq!(m["files"][0]["filename"], "live.mp4", "{m}");
    let count = |v: &Value| v.as_str().unwrap().parse::<usize>().unwrap();
    assert_eq!(
        m["playlists"][0]["segments"].as_array().unwrap().len(),
        count(&done["segmentResults"][0]["segmentCount"])
    );
    // LiveKit's schema: one list of images, each with its file name and time.
    assert_eq!(m["images"].as_array().unwrap().len(), count(&done["imageResults"][0]["imageCount"]));
    assert!(m["images"][0]["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')), "{m}");

    // Same content: the SRT stream and the file show the same frames (one encode, written twice;
    // both begin with the first encoded frame).
    let (a, b) = (frames(&file, 640, 360), frames(&dir.join("srt.ts"), 640, 360));
    for k in [15, 45, 90, 150] {
        let d = frame_diff(&a[k], &b[k]);
        assert!(d < 3.0, "file and SRT differ at frame {k}: {d}");
    }
    pubs.abort();
}

/// `(media sequence, segment names, EXTINF durations, program-date-times in ms, ended)` of a playlist.
fn parse_playlist(text: &str) -> (u64, Vec<String>, Vec<f64>, Vec<i64>, bool) {
    let mut seq = 0;
    let (mut names, mut durs, mut pdts) = (Vec::new(), Vec::new(), Vec::new());
    for l in text.lines() {
        if let Some(v) = l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            seq = v.parse().unwrap();
        } else if let Some(v) = l.strip_prefix("#EXTINF:") {
            durs.push(v.trim_end_matches(',').parse().unwrap());
        } else if let Some(v) = l.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            pdts.push(chrono::DateTime::parse_from_rfc3339(v).unwrap().timestamp_millis());
        } else if !l.starts_with('#') && !l.is_empty() {
            names.push(l.to_string());
        }
    }
    (seq, names, durs, pdts, text.contains("#EXT-X-ENDLIST"))
}

/// HLS as the issue asks: 2 s segments within a frame, each on a keyframe, the playlist playing
/// the whole recording, program-date-time in step with media time, the live playlist sliding.
fn check_hls(done: &Value, out: &Path, file: &Path, live_then: &str) {
    let g = &done["segmentResults"][0];
    assert_eq!(g["playlistName"], "hls/live.m3u8", "{done}");
    assert_eq!(g["livePlaylistName"], "hls/live-live.m3u8", "{done}");
    let playlist = out.join("hls/live.m3u8");
    let text = std::fs::read_to_string(&playlist).unwrap();
    assert!(text.starts_with("#EXTM3U\n#EXT-X-VERSION:4\n#EXT-X-PLAYLIST-TYPE:EVENT\n"), "{text}");
    let (seq, names, durs, pdts, ended) = parse_playlist(&text);
    assert!(ended && seq == 0 && names.len() >= 6, "{text}");
    assert_eq!(g["segmentCount"].as_str().unwrap().parse::<usize>().unwrap(), names.len());
    let size: u64 = names.iter().map(|n| std::fs::metadata(out.join("hls").join(n)).unwrap().len()).sum();
    assert_eq!(g["size"].as_str().unwrap().parse::<u64>().unwrap(), size);
    for (k, d) in durs.iter().enumerate().take(durs.len() - 1) {
        assert!((d - 2.0).abs() <= 1.0 / 15.0 + 1e-6, "segment {k}: {d} s\n{text}");
    }
    let mut media_ms = 0.0;
    for (k, pdt) in pdts.iter().enumerate() {
        assert!(
            ((pdt - pdts[0]) as f64 - media_ms).abs() <= 1.0,
            "segment {k}: program-date-time drifted from media time"
        );
        media_ms += durs[k] * 1000.0;
    }
    for n in &names {
        let out = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-select_streams",
                "v",
                "-read_intervals",
                "%+#1",
                "-show_entries",
                "frame=key_frame",
                "-of",
                "csv=p=0",
            ])
            .arg(out.join("hls").join(n))
            .output()
            .unwrap();
        let first = String::from_utf8_lossy(&out.stdout).trim().trim_end_matches(',').to_string();
        assert_eq!(first, "1", "{n} does not start with a keyframe");
    }
    let (ok, errors) = decode_errors(&playlist);
    assert!(ok && errors.is_empty(), "{errors}");
    let whole = common::f64_of(&probe(&playlist)["format"]["duration"]);
    let file_secs = common::f64_of(&probe(file)["format"]["duration"]);
    assert!((whole - file_secs).abs() < 0.5, "the playlist plays {whole} s, the file has {file_secs} s");
    // The live playlist slid: later segments, at most 5, and it ends too.
    let (seq_then, names_then, _, _, ended_then) = parse_playlist(live_then);
    let (seq_now, names_now, _, _, ended_now) =
        parse_playlist(&std::fs::read_to_string(out.join("hls/live-live.m3u8")).unwrap());
    assert!(!ended_then && ended_now, "ENDLIST only at the end");
    assert!(names_then.len() <= 5 && names_now.len() == 5, "{names_then:?} {names_now:?}");
    assert!(seq_now > seq_then && seq_now as usize == names.len() - 5, "sequence {seq_then} then {seq_now}");
    assert_eq!(names_now, names[names.len() - 5..].to_vec());
}

/// A JPEG every 2 s of media time at 320x180, each decoding, named by index.
fn check_images(done: &Value, out: &Path, file: &Path) {
    let i = &done["imageResults"][0];
    assert_eq!(i["filenamePrefix"], "img/snap", "{done}");
    let count: usize = i["imageCount"].as_str().unwrap().parse().unwrap();
    let secs = common::f64_of(&probe(file)["format"]["duration"]);
    let expected = (secs / 2.0).ceil() as usize;
    assert!(count.abs_diff(expected) <= 1, "{count} images in {secs} s at one per 2 s");
    for k in 0..count {
        let path = out.join(format!("img/snap_{k:05}.jpeg"));
        let p = probe(&path);
        let v = stream(&p, "video");
        assert_eq!(
            (v["codec_name"].as_str(), v["width"].as_u64(), v["height"].as_u64()),
            (Some("mjpeg"), Some(320), Some(180)),
            "{path:?}"
        );
        let (ok, errors) = decode_errors(&path);
        assert!(ok && errors.is_empty(), "{path:?}: {errors}");
    }
    assert!(!out.join(format!("img/snap_{count:05}.jpeg")).exists());
    // The pictures are the composite's: both participants. (One image in a few may catch a participant's
    // 100 ms white flash, so all but one must show both.)
    let both = (2..count)
        .filter(|k| {
            let jpeg = frames(&out.join(format!("img/snap_{k:05}.jpeg")), 320, 180).remove(0);
            let seen: Vec<usize> = rects("grid", 2, 320, 180)
                .iter()
                .filter_map(|r| {
                    let c = centre(*r);
                    who(common::median_rgb(&jpeg, 320, c.x, c.y, c.w, c.h), 2)
                })
                .collect();
            seen.len() == 2
        })
        .count();
    assert!(count >= 4 && both + 3 >= count, "both participants in {both} of images 2 to {}", count - 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portrait_presets_record_portrait_sizes_with_a_portrait_layout() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = workdir("egress-portrait");
    let room = devroom().await;
    let pubs = participants(&room, "tall", 2);
    // A 1080p30 composite counts 1.1 cores: this test admits both on a 2-core machine.
    let serve = Serve::start(&dir, &format!("ws_url: {}\ncpu_cost:\n  cpus: 4\n", room.url()));
    let url = serve.url.clone();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut ids = Vec::new();
    for (preset, name) in [("PORTRAIT_H264_720P_30", "p720.mp4"), ("PORTRAIT_H264_1080P_30", "p1080.mp4")] {
        let args = json!({ "roomName": "tall", "preset": preset, "file": { "filepath": name } });
        let info = call(Sdk::Node, &url, SECRET, "startRoomComposite", args).await.unwrap();
        ids.push(info["egressId"].as_str().unwrap().to_string());
    }
    for id in &ids {
        wait_for(Sdk::Node, &url, id, "active", |i| status(i) == "EGRESS_ACTIVE").await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    for id in &ids {
        call(Sdk::Node, &url, SECRET, "stopEgress", json!({ "egressId": id })).await.unwrap();
    }
    for (id, (w, h)) in ids.iter().zip([(720, 1280), (1080, 1920)]) {
        let info = wait_for(Sdk::Node, &url, id, "complete", |i| status(i) != "EGRESS_ENDING").await;
        assert_eq!(status(&info), "EGRESS_COMPLETE", "{info}");
        let (path, _) = check_file(&info, &serve.out, w, h);
        // Two participants in a portrait frame: one above the other, each in its cell.
        let cells_at = rects("grid", 2, w, h);
        assert!(cells_at[0].y != cells_at[1].y && cells_at[0].x == cells_at[1].x, "{cells_at:?}");
        // (A participant flashing white at its sync mark reads as nobody: most moments, not all.)
        let moments: Vec<Vec<Option<usize>>> =
            [1.5, 2.5, 3.5, 4.5].iter().map(|t| cells(&common::frame_rgb(&path, *t, w, h), 2, w, h)).collect();
        let both = moments.iter().filter(|c| c.contains(&Some(0)) && c.contains(&Some(1))).count();
        assert!(both >= 3, "{w}x{h}: both participants in their cells: {moments:?}");
    }
    pubs.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_on_a_full_disk_fails_alone_while_the_segments_go_on() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = workdir("egress-full-disk");
    let room = devroom().await;
    let pubs = participants(&room, "full", 2);
    // The file's path leads to /dev/full through a link the operator allows: every write fails
    // with "No space left on device".
    let serve = Serve::start(&dir, &format!("ws_url: {}\nfollow_links_out_of_output_dir: true\n", room.url()));
    std::fs::create_dir_all(serve.out.join("disk")).unwrap();
    std::os::unix::fs::symlink("/dev/full", serve.out.join("disk/take.mp4")).unwrap();
    let args = json!({
        "roomName": "full",
        "outputs": {
            "file": { "filepath": "disk/take.mp4" },
            "segments": { "filenamePrefix": "hls/seg", "playlistName": "full.m3u8", "segmentDuration": 2 },
        },
        "advanced": { "width": 640, "height": 360, "framerate": 15, "videoBitrate": 1200 },
    });
    let info = call(Sdk::Node, &serve.url, SECRET, "startRoomComposite", args).await.unwrap();
    let id = info["egressId"].as_str().unwrap().to_string();
    wait_for(Sdk::Node, &serve.url, &id, "active", |i| status(i) == "EGRESS_ACTIVE").await;
    tokio::time::sleep(Duration::from_secs(7)).await;
    call(Sdk::Node, &serve.url, SECRET, "stopEgress", json!({ "egressId": id })).await.unwrap();
    let done = wait_for(Sdk::Node, &serve.url, &id, "ended", |i| {
        status(i) == "EGRESS_FAILED" || status(i) == "EGRESS_COMPLETE"
    })
    .await;
    assert_eq!(status(&done), "EGRESS_FAILED", "{done}");
    let error = done["error"].as_str().unwrap();
    assert!(error.contains("the file output failed") && error.contains("No space left"), "{error}");
    // The segments went on to the end and play.
    let g = &done["segmentResults"][0];
    let count: u64 = g["segmentCount"].as_str().unwrap().parse().unwrap();
    assert!(count >= 3, "{count} segments for 7 s");
    let playlist = serve.out.join("hls/full.m3u8");
    assert!(std::fs::read_to_string(&playlist).unwrap().contains("#EXT-X-ENDLIST"));
    let (ok, errors) = decode_errors(&playlist);
    assert!(ok && errors.is_empty(), "{errors}");
    pubs.abort();
}

/// A track's sid from ListParticipants: `identity`'s track from `source` (LiveKit's JSON name).
fn track_sid(participants: &[Value], identity: &str, source: &str) -> String {
    let p = participants.iter().find(|p| p["identity"] == identity).unwrap_or_else(|| panic!("no {identity}"));
    let t = p["tracks"].as_array().and_then(|ts| ts.iter().find(|t| t["source"] == source));
    t.and_then(|t| t["sid"].as_str()).unwrap_or_else(|| panic!("{identity} has no {source} track: {p}")).to_string()
}

/// Who each frame of a recording shows full frame (its middle's colour): participant index,
/// `Some(None)` for a flash, None for anything else.
fn shown(path: &Path) -> Vec<Option<Option<usize>>> {
    let (w, h) = (640, 360);
    frames(path, w, h)
        .iter()
        .map(|f| {
            let c = common::median_rgb(f, w, w / 4, h / 4, w / 2, h / 2);
            if c.iter().all(|&v| v > 245) { Some(None) } else { who(c, 4).map(Some) }
        })
        .collect()
}

/// The loudest 1 s window of participant `i`'s tone in 48 kHz mono.
fn tone_peak(audio: &[f32], i: usize) -> f32 {
    let hz = tessera::preview::synthetic::tone_hz(i);
    audio.chunks(48_000).map(|w| amplitude(w, 48_000.0, hz)).fold(0.0f32, f32::max)
}

both!(participant_and_track_composite_egress_record_their_subject_and_nobody_else);
async fn participant_and_track_composite_egress_record_their_subject_and_nobody_else(kind: Kind) {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = workdir(&format!("egress-subjects-{kind:?}"));
    let room = server(kind, &dir).await;
    // Four participants: 0 also shares a screen, 2 mutes its microphone every other 4 s.
    let pubs = publishers(&room, "subjects", 4, |o| {
        o.screen_share = true;
        o.mute_toggle = true;
    });
    // Participant 0 publishes three tracks.
    let people = room.wait_tracks(KEY, SECRET, "subjects", 9).await;
    let serve = Serve::start(&dir, &format!("ws_url: {}\n", room.url()));
    let url = serve.url.clone();
    let small = json!({ "width": 640, "height": 360, "framerate": 15, "videoBitrate": 1200 });
    let start = |method: &'static str, args: Value| {
        let url = url.clone();
        async move {
            let info = call(Sdk::Node, &url, SECRET, method, args).await.unwrap_or_else(|e| panic!("{method}: {e}"));
            assert_eq!(info["sourceType"], "EGRESS_SOURCE_TYPE_SDK", "{info}");
            info["egressId"].as_str().unwrap().to_string()
        }
    };
    let camera_1 = track_sid(&people, "synthetic-1", "CAMERA");
    let mic_3 = track_sid(&people, "synthetic-3", "MICROPHONE");
    // Neither comes: after LiveKit's 30 s wait, FAILED with LiveKit's words. They join first, so
    // that their joining is not inside the recordings checked below.
    let nobody = start(
        "startParticipant",
        json!({ "roomName": "subjects", "identity": "nobody", "file": { "filepath": "nobody.mp4" }, "advanced": small }),
    )
    .await;
    let unknown = start(
        "startTrackComposite",
        json!({ "roomName": "subjects", "videoTrackId": "TR_unknown", "file": { "filepath": "unknown.mp4" }, "advanced": small }),
    )
    .await;
    let carol = start(
        "startParticipant",
        json!({ "roomName": "subjects", "identity": "synthetic-2", "file": { "filepath": "{publisher_identity}.mp4" }, "advanced": small }),
    )
    .await;
    let share = start(
        "startParticipant",
        json!({ "roomName": "subjects", "identity": "synthetic-0", "screenShare": true, "file": { "filepath": "share.mp4" }, "advanced": small }),
    )
    .await;
    let tracks = start(
        "startTrackComposite",
        json!({ "roomName": "subjects", "videoTrackId": camera_1, "audioTrackId": mic_3, "file": { "filepath": "tracks.mp4" }, "advanced": small }),
    )
    .await;
    for id in [&carol, &share, &tracks] {
        wait_for(Sdk::Node, &url, id, "active", |i| status(i) == "EGRESS_ACTIVE").await;
    }
    tokio::time::sleep(Duration::from_secs(16)).await;
    let mut done = Vec::new();
    for id in [&carol, &share, &tracks] {
        call(Sdk::Node, &url, SECRET, "stopEgress", json!({ "egressId": id })).await.unwrap();
    }
    for id in [&carol, &share, &tracks] {
        let info = wait_for(Sdk::Node, &url, id, "complete", |i| status(i) == "EGRESS_COMPLETE").await;
        done.push(check_file(&info, &serve.out, 640, 360).0);
    }
    assert!(done[0].ends_with("synthetic-2.mp4"), "{done:?}");

    // Carol (2) alone, full frame; her tone and her beeps only, and the beeps that fall in her
    // muted seconds missing (her camera flashes at every mark).
    // Nobody else's colour ever; a stretch of no picture (a stalled video's placeholder) no longer
    // than one keyframe interval of the publishers (2 s): on livekit-server one of these three
    // recordings at times loses its video for that long (see `STALL`).
    let seen = shown(&done[0]);
    let carol_frames = seen.iter().filter(|s| **s == Some(Some(2))).count();
    assert!(carol_frames * 10 >= seen.len() * 8, "Carol in {carol_frames} of {} frames", seen.len());
    assert!(seen.iter().all(|s| matches!(s, Some(Some(2)) | Some(None) | None)), "someone else shows: {seen:?}");
    assert!(seen.iter().filter(|s| s.is_none()).count() <= STALL, "no picture too long: {seen:?}");
    let flashes = seen.windows(2).filter(|w| w[1] == Some(None) && w[0] != Some(None)).count();
    let audio = audio_mono(&done[0], 48_000);
    let others: Vec<f32> = [0, 1, 3].iter().map(|&i| tone_peak(&audio, i)).collect();
    assert!(others.iter().all(|a| *a < 0.01), "others' tones in Carol's recording: {others:?}");
    let heard = common::beeps(&audio).len();
    assert!(flashes >= 3 && heard >= 1 && heard < flashes, "{heard} beeps heard, {flashes} flashes seen");

    // Participant 0's screen share (light grey), whole.
    let seen = frames(&done[1], 640, 360);
    let is_grey = |f: &Vec<u8>| common::median_rgb(f, 640, 160, 90, 320, 180).iter().all(|v| (215..=248).contains(v));
    let grey = seen.iter().filter(|f| is_grey(f)).count();
    let other: Vec<usize> = (0..seen.len()).filter(|i| !is_grey(&seen[*i])).collect();
    assert!(other.len() <= STALL, "the share in {grey} of {} frames; not in {other:?}", seen.len());

    // Participant 1's camera with participant 3's microphone.
    let seen = shown(&done[2]);
    assert!(seen.iter().all(|s| matches!(s, Some(Some(1)) | Some(None) | None)), "the track composite shows: {seen:?}");
    assert!(seen.iter().filter(|s| s.is_none()).count() <= STALL, "the track composite shows: {seen:?}");
    let audio = audio_mono(&done[2], 48_000);
    let tones: Vec<f32> = (0..4).map(|i| tone_peak(&audio, i)).collect();
    assert!(tones[3] > 0.02 && [0, 1, 2].iter().all(|&i| tones[i] < 0.01), "tones: {tones:?}");

    for (id, why) in [(&nobody, "participant nobody not found"), (&unknown, "track TR_unknown not found")] {
        let deadline = Instant::now() + Duration::from_secs(40);
        let info = loop {
            let list = call(Sdk::Node, &url, SECRET, "listEgress", json!({ "egressId": id })).await.unwrap();
            let info = list[0].clone();
            if status(&info) == "EGRESS_FAILED" || Instant::now() > deadline {
                break info;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        assert_eq!(status(&info), "EGRESS_FAILED", "{info}");
        assert_eq!(info["error"], why, "{info}");
        assert_eq!(info["errorCode"], 404, "{info}");
    }
    assert!(!serve.out.join("nobody.mp4").exists() && !serve.out.join("unknown.mp4").exists());
    pubs.abort();
}

/// Frames (at 15 fps) a subject's video may be missing from a recording: one keyframe interval of
/// the synthetic publishers and a little. On livekit-server, with three egresses and four publishers
/// on two cores, one recording at times loses its video for about that long (a keyframe waited for);
/// not yet explained (docs/reliability.md).
const STALL: usize = 40;

/// A recording's two channels, 48 kHz.
fn stereo(path: &Path) -> (Vec<f32>, Vec<f32>) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-vn", "-f", "f32le", "-ac", "2", "-ar", "48000", "-"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let samples: Vec<f32> = out.stdout.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    (samples.iter().step_by(2).copied().collect(), samples.iter().skip(1).step_by(2).copied().collect())
}

both!(dual_channel_mixing_and_a_media_source_s_routes_put_each_voice_in_its_channel);
async fn dual_channel_mixing_and_a_media_source_s_routes_put_each_voice_in_its_channel(kind: Kind) {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = workdir(&format!("egress-dual-{kind:?}"));
    let room = server(kind, &dir).await;
    // Three participants speaking in turns; participant 0 is an agent.
    let pubs = publishers(&room, "dual", 3, |o| o.agent = Some(0));
    let people = room.wait_tracks(KEY, SECRET, "dual", 6).await;
    let agent = people.iter().find(|p| p["identity"] == "synthetic-0").unwrap();
    assert_eq!(agent["kind"], "AGENT", "{agent}");
    let serve = Serve::start(&dir, &format!("ws_url: {}\n", room.url()));
    let url = serve.url.clone();
    let mut ids = Vec::new();
    for args in [
        json!({ "roomName": "dual", "audioOnly": true, "audioMixing": "DUAL_CHANNEL_AGENT", "file": { "filepath": "agent.ogg" } }),
        json!({ "roomName": "dual", "audioMixing": "DUAL_CHANNEL_ALTERNATE", "file": { "filepath": "alternate.mp4" },
                "advanced": { "width": 640, "height": 360, "framerate": 15, "videoBitrate": 800 } }),
    ] {
        let info = call(Sdk::Node, &url, SECRET, "startRoomComposite", args).await.unwrap();
        ids.push(info["egressId"].as_str().unwrap().to_string());
    }
    // A v2 media source: participant 1's camera; the agent's voice left, participant 2's right,
    // participant 1's own microphone not routed (so not recorded).
    let request = json!({ "request": {
        "roomName": "dual",
        "media": {
            "participantVideo": { "identity": "synthetic-1" },
            "audio": { "routes": [
                { "participantKind": "AGENT", "channel": "AUDIO_CHANNEL_LEFT" },
                { "participantIdentity": "synthetic-2", "channel": "AUDIO_CHANNEL_RIGHT" },
            ] },
        },
        "advanced": { "width": 640, "height": 360, "framerate": 15, "videoBitrate": 800 },
        "outputs": [{ "file": { "filepath": "media.mp4" } }],
    } });
    let info = call(Sdk::Node, &url, SECRET, "startEgress", request).await.unwrap();
    assert_eq!(info["sourceType"], "EGRESS_SOURCE_TYPE_SDK", "{info}");
    ids.push(info["egressId"].as_str().unwrap().to_string());
    for id in &ids {
        wait_for(Sdk::Node, &url, id, "active", |i| status(i) == "EGRESS_ACTIVE").await;
    }
    // Each participant speaks 3 s in every 9 s.
    tokio::time::sleep(Duration::from_secs(12)).await;
    for id in &ids {
        call(Sdk::Node, &url, SECRET, "stopEgress", json!({ "egressId": id })).await.unwrap();
    }
    let mut sides = Vec::new();
    for (id, name) in [(&ids[0], "agent.ogg"), (&ids[1], "alternate.mp4")] {
        let info = wait_for(Sdk::Node, &url, id, "complete", |i| status(i) == "EGRESS_COMPLETE").await;
        assert!(info["roomComposite"]["audioMixing"].is_string(), "the request echoed: {info}");
        let (left, right) = stereo(&serve.out.join(name));
        // Each tone at its loudest in each channel: one channel has it, the other nearly nothing.
        let side: Vec<char> = (0..3)
            .map(|i| {
                let (l, r) = (tone_peak(&left, i), tone_peak(&right, i));
                assert!(l.max(r) > 0.02 && l.min(r) < l.max(r) / 10.0, "{name}: tone {i} left {l}, right {r}");
                if l > r { 'L' } else { 'R' }
            })
            .collect();
        sides.push(side);
    }
    assert_eq!(sides[0], ['L', 'R', 'R'], "the agent left, the others right");
    assert!(sides[1].contains(&'L') && sides[1].contains(&'R'), "tracks alternate: {:?}", sides[1]);
    let info = wait_for(Sdk::Node, &url, &ids[2], "complete", |i| status(i) == "EGRESS_COMPLETE").await;
    let (path, _) = check_file(&info, &serve.out, 640, 360);
    let seen = shown(&path);
    assert!(seen.iter().all(|s| matches!(s, Some(Some(1)) | Some(None))), "the media source shows: {seen:?}");
    let (left, right) = stereo(&path);
    let peaks: Vec<(f32, f32)> = (0..3).map(|i| (tone_peak(&left, i), tone_peak(&right, i))).collect();
    let (agent, one, two) = (peaks[0], peaks[1], peaks[2]);
    assert!(agent.0 > 0.02 && agent.1 < agent.0 / 10.0, "the agent left: {peaks:?}");
    assert!(two.1 > 0.02 && two.0 < two.1 / 10.0, "participant 2 right: {peaks:?}");
    assert!(one.0.max(one.1) < 0.005, "participant 1's microphone is not routed: {peaks:?}");
    pubs.abort();
}

/// What a websocket receiver got: the request's Content-Type, the binary bytes, the texts.
#[derive(Default, Debug)]
struct WsReceived {
    content_type: String,
    pcm: Vec<u8>,
    texts: Vec<String>,
    closed: bool,
}

/// A websocket server on loopback for one connection, keeping what it is sent.
async fn websocket_receiver() -> (String, std::sync::Arc<std::sync::Mutex<WsReceived>>) {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::{Message, handshake::server};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/audio", listener.local_addr().unwrap());
    let got = std::sync::Arc::new(std::sync::Mutex::new(WsReceived::default()));
    let g = got.clone();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let header = g.clone();
        // tungstenite's callback type, whose error is a whole response.
        #[allow(clippy::result_large_err)]
        let keep = move |req: &server::Request, resp: server::Response| {
            let ct = req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
            header.lock().unwrap().content_type = ct.to_string();
            Ok(resp)
        };
        let mut ws = tokio_tungstenite::accept_hdr_async(stream, keep).await.unwrap();
        while let Some(Ok(m)) = ws.next().await {
            match m {
                Message::Binary(b) => g.lock().unwrap().pcm.extend_from_slice(&b),
                Message::Text(t) => g.lock().unwrap().texts.push(t.to_string()),
                Message::Close(_) => break,
                _ => {}
            }
        }
        g.lock().unwrap().closed = true;
    });
    (url, got)
}

/// The digests of the packets a file holds, in order (H.264 from MP4's length-prefixed units).
fn written_digests(path: &Path, h264: bool) -> Vec<u64> {
    use tessera::devroom::synthetic::{avcc_digest, payload_digest};
    ffmpeg_next::init().unwrap();
    let mut input = ffmpeg_next::format::input(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    input
        .packets()
        .filter_map(|(_, p)| p.data().map(|d| if h264 { avcc_digest(d) } else { payload_digest(false, d) }))
        .collect()
}

/// The written frames are the sent ones, byte for byte, none missing or added, in order: a
/// run of what the publisher sent (identical packets, silence, may repeat in it).
fn assert_written_as_sent(written: &[u64], log: &tessera::devroom::synthetic::PayloadLog, sid: &str, what: &str) {
    let sent: Vec<u64> = log.lock().unwrap().iter().filter(|(t, _)| t == sid).map(|(_, d)| *d).collect();
    assert!(!written.is_empty(), "{what}: nothing written");
    let found = (0..sent.len()).any(|s| sent.get(s..s + written.len()) == Some(written));
    // Where the longest match breaks, to tell a lost frame from a changed one.
    let (at, agreed) = (0..sent.len())
        .map(|s| (s, written.iter().zip(&sent[s..]).take_while(|(w, x)| w == x).count()))
        .max_by_key(|(_, n)| *n)
        .unwrap_or((0, 0));
    let next_sent_at = written.get(agreed).and_then(|w| sent[at..].iter().position(|x| x == w));
    assert!(
        found,
        "{what}: the {} written frames are not a run of the {} sent: {agreed} agree from sent frame {at}, \
         the next written one is sent frame {next_sent_at:?} after that",
        written.len(),
        sent.len()
    );
}

both!(track_egress_writes_each_track_as_it_was_sent_and_streams_pcm_to_a_websocket);
async fn track_egress_writes_each_track_as_it_was_sent_and_streams_pcm_to_a_websocket(kind: Kind) {
    use tessera::devroom::synthetic::PayloadLog;
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = workdir(&format!("egress-track-{kind:?}"));
    let room = server(kind, &dir).await;
    // A VP8 room of two and an H.264 room of one (participant 2), every sent frame logged.
    let log = PayloadLog::default();
    let (l1, l2) = (log.clone(), log.clone());
    let vp8 = publishers(&room, "tracks", 2, move |o| o.payload_log = Some(l1));
    let h264 = publishers(&room, "tracks-h264", 1, move |o| {
        o.first = 2;
        o.codec = tessera::encode::VideoCodec::H264;
        o.payload_log = Some(l2);
    });
    let people = room.wait_tracks(KEY, SECRET, "tracks", 4).await;
    let people_h264 = room.wait_tracks(KEY, SECRET, "tracks-h264", 2).await;
    let cam0 = track_sid(&people, "synthetic-0", "CAMERA");
    let mic0 = track_sid(&people, "synthetic-0", "MICROPHONE");
    let mic1 = track_sid(&people, "synthetic-1", "MICROPHONE");
    let cam2 = track_sid(&people_h264, "synthetic-2", "CAMERA");
    let (ws_url, ws) = websocket_receiver().await;
    let serve = Serve::start(&dir, &format!("ws_url: {}\n", room.url()));
    let url = serve.url.clone();
    let start = |args: Value| {
        let url = url.clone();
        async move {
            let info = call(Sdk::Node, &url, SECRET, "startTrack", args).await.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(info["sourceType"], "EGRESS_SOURCE_TYPE_SDK", "{info}");
            info["egressId"].as_str().unwrap().to_string()
        }
    };
    let ids = [
        start(json!({ "roomName": "tracks", "trackId": cam0, "filepath": "{publisher_identity}-{track_source}-{track_id}" }))
            .await,
        start(json!({ "roomName": "tracks", "trackId": mic0, "filepath": "tracks/{track_type}-{publisher_identity}" })).await,
        start(json!({ "roomName": "tracks-h264", "trackId": cam2, "filepath": "h264" })).await,
        start(json!({ "roomName": "tracks", "trackId": mic1, "websocketUrl": ws_url })).await,
    ];
    // Refused once the room is seen: a track that never comes (after LiveKit's 30 s), and a
    // video track for a websocket.
    let unknown = start(json!({ "roomName": "tracks", "trackId": "TR_unknown", "filepath": "unknown" })).await;
    let (video_ws_url, _video_ws) = websocket_receiver().await;
    let video_ws = start(json!({ "roomName": "tracks", "trackId": cam0, "websocketUrl": video_ws_url })).await;
    for id in &ids {
        wait_for(Sdk::Node, &url, id, "active", |i| status(i) == "EGRESS_ACTIVE").await;
    }
    tokio::time::sleep(Duration::from_secs(8)).await;
    for id in &ids {
        call(Sdk::Node, &url, SECRET, "stopEgress", json!({ "egressId": id })).await.unwrap();
    }
    let mut infos = Vec::new();
    for id in &ids {
        infos.push(wait_for(Sdk::Node, &url, id, "complete", |i| status(i) == "EGRESS_COMPLETE").await);
    }
    h264.abort();

    // Each file: named as asked with the codec's extension, its codec as sent, every packet the
    // publisher's own, playable to its end, as long as reported.
    let expect = [
        (format!("synthetic-0-camera-{cam0}.webm"), "vp8", &cam0, false),
        ("tracks/audio-synthetic-0.ogg".to_string(), "opus", &mic0, false),
        ("h264.mp4".to_string(), "h264", &cam2, true),
    ];
    for (info, (name, codec, sid, is_h264)) in infos.iter().zip(&expect) {
        let f = &info["fileResults"][0];
        assert_eq!(f["filename"].as_str(), Some(name.as_str()), "{info}");
        let path = PathBuf::from(f["location"].as_str().unwrap());
        assert_eq!(path, serve.out.join(name), "{info}");
        let p = probe(&path);
        let streams = p["streams"].as_array().unwrap();
        assert_eq!(streams.len(), 1, "{name}: {p}");
        assert_eq!(streams[0]["codec_name"], *codec, "{name}: {p}");
        let (ok, errors) = decode_errors(&path);
        assert!(ok && errors.is_empty(), "{name}: {errors}");
        let duration = common::f64_of(&p["format"]["duration"]);
        let reported = f["duration"].as_str().unwrap().parse::<f64>().unwrap() / 1e9;
        assert!(
            duration > 6.0 && (duration - reported).abs() < 0.5,
            "{name}: file {duration} s, reported {reported} s"
        );
        assert_written_as_sent(&written_digests(&path, *is_h264), &log, sid, name);
    }

    // The websocket: LiveKit's content type, PCM (s16le, 48 kHz stereo) carrying participant 1's tone only.
    {
        let got = ws.lock().unwrap();
        assert_eq!(got.content_type, "audio/x-raw");
        assert!(got.closed, "the websocket was not closed at the end");
        let mono: Vec<f32> =
            got.pcm.chunks_exact(4).map(|b| i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0).collect();
        assert!(mono.len() > 6 * 48_000, "{} samples of PCM", mono.len());
        let (own, other) = (tone_peak(&mono, 1), tone_peak(&mono, 0));
        assert!(own > 0.05 && other < 0.01, "tones in the websocket's PCM: own {own}, participant 0's {other}");
        assert!(infos[3]["fileResults"].as_array().is_none_or(|f| f.is_empty()), "{}", infos[3]);
    }

    let failed = |info: &Value| status(info) == "EGRESS_FAILED";
    let info = wait_for(Sdk::Node, &url, &video_ws, "failed", failed).await;
    assert_eq!(info["errorCode"], 400, "{info}");
    assert!(info["error"].as_str().unwrap().contains("websocket output takes audio tracks only"), "{info}");
    let deadline = Instant::now() + Duration::from_secs(40);
    let info = loop {
        let list = call(Sdk::Node, &url, SECRET, "listEgress", json!({ "egressId": unknown })).await.unwrap();
        if failed(&list[0]) || Instant::now() > deadline {
            break list[0].clone();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(
        (info["error"].as_str(), &info["errorCode"]),
        (Some("track TR_unknown not found"), &json!(404)),
        "{info}"
    );
    assert!(
        std::fs::read_dir(&serve.out)
            .unwrap()
            .flatten()
            .all(|e| !e.file_name().to_string_lossy().starts_with("unknown"))
    );
    // (The room stays open until here: an empty room would close and end that egress early.)
    vp8.abort();
}

/// A browser (livekit-client in Chromium) publishing H.264 through livekit-server: its camera
/// written as sent into an MP4 that plays to its end with the page's picture. (devroom does
/// not honour a browser's codec preference: the same page publishes VP8 there.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_s_h264_camera_is_written_as_sent_into_mp4() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = workdir("egress-track-browser");
    let room = server(Kind::LiveKit, &dir).await;
    let token = common::browser::join_token(KEY, SECRET, "web", "browser");
    let query = [("seconds", "60"), ("size", "640x360"), ("fps", "15"), ("codec", "h264")];
    let mut browser = common::browser::BrowserPublisher::start(&room.url(), &token, &query).await;
    browser.wait_for("PUBLISHED", Duration::from_secs(40)).await;
    let people = room.wait_tracks(KEY, SECRET, "web", 2).await;
    let camera = track_sid(&people, "browser", "CAMERA");
    let serve = Serve::start(&dir, &format!("ws_url: {}\n", room.url()));
    let url = serve.url.clone();
    let args = json!({ "roomName": "web", "trackId": camera, "filepath": "{publisher_identity}-{track_type}" });
    let info = call(Sdk::Node, &url, SECRET, "startTrack", args).await.unwrap();
    let id = info["egressId"].as_str().unwrap().to_string();
    wait_for(Sdk::Node, &url, &id, "active", |i| status(i) == "EGRESS_ACTIVE").await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    call(Sdk::Node, &url, SECRET, "stopEgress", json!({ "egressId": id })).await.unwrap();
    let info = wait_for(Sdk::Node, &url, &id, "complete", |i| status(i) == "EGRESS_COMPLETE").await;
    browser.stop().await;
    let f = &info["fileResults"][0];
    assert_eq!(f["filename"], "browser-video.mp4", "{info}");
    let path = PathBuf::from(f["location"].as_str().unwrap());
    let p = probe(&path);
    let v = stream(&p, "video");
    assert_eq!(v["codec_name"], "h264", "{p}");
    let (ok, errors) = decode_errors(&path);
    assert!(ok && errors.is_empty(), "{errors}");
    let duration = common::f64_of(&p["format"]["duration"]);
    let reported = f["duration"].as_str().unwrap().parse::<f64>().unwrap() / 1e9;
    assert!(duration > 4.0 && (duration - reported).abs() < 0.5, "file {duration} s, reported {reported} s");
    // The page's blue, whatever layer the server forwarded.
    let (w, h) = (v["width"].as_u64().unwrap() as u32, v["height"].as_u64().unwrap() as u32);
    let seen = frames(&path, w, h);
    let blue = seen.iter().filter(|f| {
        let c = common::median_rgb(f, w, 0, h / 2, w / 4, h / 4);
        c[0] < 60 && (100..=160).contains(&c[1]) && c[2] > 200
    });
    assert!(blue.count() * 10 >= seen.len() * 9, "the page's picture in too few of {} frames", seen.len());
}

/// A participant egress follows its participant through a republish: a browser's camera is
/// unpublished and published again as a new track (livekit-server; devroom does not take a
/// browser's track back), and the recording goes on, showing the camera before and after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn participant_egress_follows_its_participant_through_a_republish() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = workdir("egress-republish");
    let room = server(Kind::LiveKit, &dir).await;
    let token = common::browser::join_token(KEY, SECRET, "re", "browser");
    let query = [("seconds", "60"), ("size", "640x360"), ("fps", "15"), ("republish", "6")];
    let mut browser = common::browser::BrowserPublisher::start(&room.url(), &token, &query).await;
    browser.wait_for("PUBLISHED", Duration::from_secs(40)).await;
    let first = track_sid(&room.wait_tracks(KEY, SECRET, "re", 2).await, "browser", "CAMERA");
    let serve = Serve::start(&dir, &format!("ws_url: {}\n", room.url()));
    let url = serve.url.clone();
    let small = json!({ "width": 640, "height": 360, "framerate": 15, "videoBitrate": 1200 });
    let args = json!({ "roomName": "re", "identity": "browser", "file": { "filepath": "re.mp4" }, "advanced": small });
    let id = call(Sdk::Node, &url, SECRET, "startParticipant", args).await.unwrap()["egressId"]
        .as_str()
        .unwrap()
        .to_string();
    wait_for(Sdk::Node, &url, &id, "active", |i| status(i) == "EGRESS_ACTIVE").await;
    let started = Instant::now();
    browser.wait_for("REPUBLISHED", Duration::from_secs(30)).await;
    let republished_at = started.elapsed().as_secs_f64();
    let people = room.wait_tracks(KEY, SECRET, "re", 2).await;
    let second = track_sid(&people, "browser", "CAMERA");
    assert_ne!(first, second, "the camera came back as the same track");
    tokio::time::sleep(Duration::from_secs(5)).await;
    wait_for(Sdk::Node, &url, &id, "still active", |i| status(i) == "EGRESS_ACTIVE").await;
    call(Sdk::Node, &url, SECRET, "stopEgress", json!({ "egressId": id })).await.unwrap();
    let info = wait_for(Sdk::Node, &url, &id, "complete", |i| status(i) == "EGRESS_COMPLETE").await;
    browser.stop().await;
    let (path, duration) = check_file(&info, &serve.out, 640, 360);
    assert!(duration > republished_at + 3.0, "{duration} s recorded, republished at {republished_at:.1} s");
    // The page's blue before the camera went away and again at the end.
    let seen = frames(&path, 640, 360);
    let blue = |f: &Vec<u8>| {
        let c = common::median_rgb(f, 640, 0, 180, 160, 90);
        c[0] < 60 && (100..=160).contains(&c[1]) && c[2] > 200
    };
    let fps = 15.0;
    let before = &seen[..((republished_at - 2.0) * fps) as usize];
    let after = &seen[seen.len() - (2.0 * fps) as usize..];
    assert!(before.iter().filter(|f| blue(f)).count() * 10 >= before.len() * 8, "the camera before the republish");
    assert!(after.iter().all(blue), "the republished camera at the end");
}

/// A request sent by hand over TCP, its body trickled a byte at a time `every`; the answer's status.
async fn trickled(url: &str, token: &str, body: &[u8], every: Duration) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /twirp/livekit.Egress/ListEgress HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    for b in body {
        if s.write_all(&[*b]).await.is_err() {
            break;
        }
        let mut buf = [0u8; 1024];
        if let Ok(Ok(n)) = tokio::time::timeout(every, s.read(&mut buf)).await {
            answer.extend_from_slice(&buf[..n]);
            break;
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("no answer: {text}"))
}

/// Hostile calls (tokens, bodies, paths, URLs) each get a clear 4xx while a recording runs, and
/// the recording is untouched by them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_api_calls_get_a_clear_4xx_and_a_running_recording_is_untouched() {
    use base64::Engine;
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = workdir("egress-hostile");
    let room = server(Kind::Devroom, &dir).await;
    let pubs = publishers(&room, "calm", 2, |_| {});
    room.wait_publishing(KEY, SECRET, "calm", 2).await;
    let serve = Serve::start(&dir, &format!("ws_url: {}\n", room.url()));
    let url = serve.url.clone();
    let info =
        call(Sdk::Node, &url, SECRET, "startRoomComposite", start_args("calm", "calm.mp4", "grid")).await.unwrap();
    let calm = info["egressId"].as_str().unwrap().to_string();
    wait_for(Sdk::Node, &url, &calm, "active", |i| status(i) == "EGRESS_ACTIVE").await;

    let good = record_token(SECRET, recorder_grant(), Duration::from_secs(600));
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let signed = |claims: Value| {
        use jsonwebtoken::{EncodingKey, Header, encode};
        encode(&Header::default(), &claims, &EncodingKey::from_secret(SECRET.as_bytes())).unwrap()
    };
    let now = tessera::time::unix_ns() / 1_000_000_000;
    let grant = json!({ "roomRecord": true });
    let not_yet = signed(json!({ "iss": KEY, "sub": "c", "nbf": now + 3600, "exp": now + 7200, "video": grant }));
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({ "alg": "none", "typ": "JWT" })),
        b64(&json!({ "iss": KEY, "sub": "c", "exp": now + 600, "video": grant }))
    );
    let wrong_key = signed(json!({ "iss": "APInobody", "sub": "c", "exp": now + 600, "video": grant }));
    let huge =
        signed(json!({ "iss": KEY, "sub": "c", "exp": now + 600, "video": grant, "metadata": "x".repeat(64 << 10) }));
    let json_ct = "application/json";
    let list = b"{}".to_vec();
    let start = "StartRoomCompositeEgress";
    let rc = |file: &str| json!({ "roomName": "calm", "file": { "filepath": file } }).to_string().into_bytes();
    let with = |extra: Value| {
        let mut v = json!({ "roomName": "calm", "file": { "filepath": "x.mp4" } });
        v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        v.to_string().into_bytes()
    };
    // A link inside the output directory that leads out of it.
    let elsewhere = dir.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, serve.out.join("escape")).unwrap();
    let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes();
    let mut bad_utf8 = br#"{"roomName":"calm","file":{"filepath":"x"#.to_vec();
    bad_utf8.extend([0xff, 0xfe]);
    bad_utf8.extend(br#".mp4"}}"#);
    // (what, method, token, body, status, words in the message)
    type Case<'a> = (&'a str, &'a str, &'a str, Vec<u8>, u16, &'a str);
    let cases: Vec<Case> = vec![
        ("a token not valid yet", "ListEgress", &not_yet, list.clone(), 401, "not valid yet"),
        ("alg none", "ListEgress", &alg_none, list.clone(), 401, "token"),
        ("a key we do not have", "ListEgress", &wrong_key, list.clone(), 401, "unknown API key"),
        ("huge claims", "ListEgress", &huge, list.clone(), 401, "larger than"),
        ("a 100 MB body", start, &good, vec![b' '; 100 << 20], 400, "larger than"),
        ("JSON nested 100000 deep", start, &good, nested, 400, "JSON"),
        ("invalid UTF-8", start, &good, bad_utf8, 400, "JSON"),
        ("a path with ..", start, &good, rc("../x.mp4"), 400, "filepath"),
        ("an absolute path elsewhere", start, &good, rc("/etc/x.mp4"), 400, "filepath"),
        ("a path out through a link", start, &good, rc("escape/x.mp4"), 400, "symbolic link"),
        ("a NUL in the path", start, &good, rc("a\u{0}b.mp4"), 400, "NUL"),
        ("a 300-byte name", start, &good, rc(&format!("{}.mp4", "n".repeat(300))), 400, "too long"),
        (
            "a template from a file",
            start,
            &good,
            with(json!({ "customBaseUrl": "file:///etc/passwd" })),
            400,
            "custom_base_url",
        ),
        (
            "a template from instance metadata",
            start,
            &good,
            with(json!({ "customBaseUrl": "http://169.254.169.254/latest/meta-data/" })),
            400,
            "metadata",
        ),
        (
            "a webhook to instance metadata",
            start,
            &good,
            with(json!({ "webhooks": [{ "url": "http://metadata.google.internal/computeMetadata/v1/" }] })),
            400,
            "metadata",
        ),
        (
            "a web page of another scheme",
            "StartWebEgress",
            &good,
            json!({ "url": "gopher://127.0.0.1/x", "file": { "filepath": "w.mp4" } }).to_string().into_bytes(),
            400,
            "url",
        ),
    ];
    for (what, method, token, body, want, words) in cases {
        let (st, ct, body) = raw(&url, method, Some(token), json_ct, body).await;
        let v: Value =
            serde_json::from_slice(&body).unwrap_or_else(|_| panic!("{what}: {st} {}", String::from_utf8_lossy(&body)));
        assert_eq!((st, ct.as_str()), (want, "application/json"), "{what}: {v}");
        assert!(v["msg"].as_str().unwrap_or_default().contains(words), "{what}: {v}");
    }
    assert!(std::fs::read_dir(&elsewhere).unwrap().next().is_none(), "something was written through the link");
    // A body trickled a byte a second is cut off after 10 s.
    let t0 = Instant::now();
    let st = trickled(&url, &good, &[b' '; 30], Duration::from_secs(1)).await;
    assert_eq!(st, 408, "a trickled body");
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());

    // Through it all the recording went on, and ends with its whole file.
    let info = wait_for(Sdk::Node, &url, &calm, "still active", |i| status(i) == "EGRESS_ACTIVE").await;
    assert_eq!(info["error"], Value::Null, "{info}");
    call(Sdk::Node, &url, SECRET, "stopEgress", json!({ "egressId": calm })).await.unwrap();
    let info = wait_for(Sdk::Node, &url, &calm, "complete", |i| status(i) == "EGRESS_COMPLETE").await;
    let (_, duration) = check_file(&info, &serve.out, 640, 360);
    assert!(duration > 10.0, "{duration} s recorded");
    pubs.abort();
}
