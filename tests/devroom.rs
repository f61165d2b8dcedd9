//! devroom against real clients: LiveKit's Python SDK publishing and subscribing
//! (installed by scripts/test-peers.sh), raw WebSocket and HTTP clients for bad
//! input, and a join/leave loop that must leave nothing behind.

mod common;

use common::python;

use futures_util::{SinkExt, StreamExt};
use livekit_api::access_token::{AccessToken, VideoGrants};
use livekit_protocol as proto;
use prost::Message as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tessera::devroom::{DevRoom, DevRoomConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

const KEY: &str = "devkey";
const SECRET: &str = "devroom-test-secret-devroom-test-secret";

async fn start() -> DevRoom {
    DevRoom::start(DevRoomConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        api_key: KEY.into(),
        api_secret: SECRET.into(),
        empty_timeout: Duration::from_secs(1),
        impair: Default::default(),
    })
    .await
    .unwrap()
}

fn token(identity: &str, room: &str, secret: &str, ttl: Duration) -> String {
    AccessToken::with_api_key(KEY, secret)
        .with_identity(identity)
        .with_ttl(ttl)
        .with_grants(VideoGrants { room_join: true, room: room.into(), ..Default::default() })
        .to_jwt()
        .unwrap()
}

/// GET on devroom; returns (status, body).
async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: devroom\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.unwrap();
    let status = buf.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = buf.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

/// Waits until the server holds no room and no participant.
async fn drained(room: &DevRoom) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if room.registry.room_count() == 0 && room.registry.participant_count() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{} rooms and {} participants left behind", room.registry.room_count(), room.registry.participant_count());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_checked_with_reasons() {
    let room = start().await;
    let ok = token("a", "r", SECRET, Duration::from_secs(60));
    assert_eq!(get(room.addr, &format!("/rtc/validate?access_token={ok}")).await, (200, "success".into()));

    let wrong = token("a", "r", "another-secret-another-secret-another", Duration::from_secs(60));
    let (code, body) = get(room.addr, &format!("/rtc/validate?access_token={wrong}")).await;
    assert_eq!(code, 401);
    assert!(body.contains("not signed with the secret of API key \"devkey\""), "{body}");

    // Expired two minutes ago: beyond the 60 s leeway.
    let expired = {
        use jsonwebtoken::{EncodingKey, Header, encode};
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as usize;
        let c = livekit_api::access_token::Claims {
            exp: now - 120,
            iss: KEY.into(),
            sub: "a".into(),
            video: VideoGrants { room_join: true, room: "r".into(), ..Default::default() },
            ..Default::default()
        };
        encode(&Header::default(), &c, &EncodingKey::from_secret(SECRET.as_bytes())).unwrap()
    };
    let (code, body) = get(room.addr, &format!("/rtc/validate?access_token={expired}")).await;
    assert_eq!((code, body.as_str()), (401, "the access token has expired"));

    let no_join = AccessToken::with_api_key(KEY, SECRET)
        .with_identity("a")
        .with_grants(VideoGrants { room_list: true, ..Default::default() })
        .to_jwt()
        .unwrap();
    let (code, body) = get(room.addr, &format!("/rtc/validate?access_token={no_join}")).await;
    assert_eq!((code, body.as_str()), (401, "the access token does not grant roomJoin"));

    let (code, body) = get(room.addr, "/rtc/validate").await;
    assert_eq!(code, 401);
    assert!(body.contains("no access token"), "{body}");

    // A refused WebSocket upgrade says why too, and nothing joins.
    let err = tokio_tungstenite::connect_async(format!("{}/rtc?access_token={wrong}", room.url())).await.unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    // The single-connection path is answered 404 so LiveKit's SDKs fall back to /rtc.
    assert_eq!(get(room.addr, &format!("/rtc/v1/validate?access_token={ok}")).await.0, 404);
    assert_eq!(room.registry.participant_count(), 0);
}

async fn join_ws(
    room: &DevRoom,
    identity: &str,
    room_name: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let t = token(identity, room_name, SECRET, Duration::from_secs(60));
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("{}/rtc?access_token={t}&protocol=17", room.url())).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap().unwrap().unwrap();
    let resp = proto::SignalResponse::decode(first.into_data().as_ref()).unwrap();
    let Some(proto::signal_response::Message::Join(j)) = resp.message else { panic!("first message is not a join") };
    assert!(j.ping_interval > 0 && j.ping_timeout > 0, "the Rust SDK needs both");
    assert!(!j.server_info.unwrap().version.is_empty(), "the JS SDK needs a server version");
    assert!(j.participant.unwrap().sid.starts_with("PA_") && j.room.unwrap().sid.starts_with("RM_"));
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_message_closes_only_its_connection() {
    let room = start().await;
    let mut good = join_ws(&room, "good", "r").await;
    let mut bad = join_ws(&room, "bad", "r").await;
    bad.send(Message::Binary(vec![0xff, 0xff, 0xff, 0xff].into())).await.unwrap();
    // The bad connection ends...
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match bad.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the malformed connection was not closed");
    // ...the good one still answers pings.
    let ping = proto::SignalRequest { message: Some(proto::signal_request::Message::Ping(42)) };
    good.send(Message::Binary(ping.encode_to_vec().into())).await.unwrap();
    let pong = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let m = good.next().await.unwrap().unwrap();
            if let Ok(r) = proto::SignalResponse::decode(m.into_data().as_ref())
                && let Some(proto::signal_response::Message::Pong(v)) = r.message
            {
                return v;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(pong, 42);
    assert_eq!(room.registry.participant_count(), 1);
    good.close(None).await.unwrap();
    drained(&room).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_participants_joining_and_leaving_leave_nothing_behind() {
    let room = start().await;
    for i in 0..50 {
        let mut ws = join_ws(&room, &format!("p{i}"), &format!("room-{}", i % 5)).await;
        if i % 2 == 0 {
            let leave = proto::SignalRequest {
                message: Some(proto::signal_request::Message::Leave(proto::LeaveRequest::default())),
            };
            ws.send(Message::Binary(leave.encode_to_vec().into())).await.unwrap();
        }
        ws.close(None).await.unwrap();
    }
    drained(&room).await;
    // And it still serves.
    let mut ws = join_ws(&room, "after", "r").await;
    ws.close(None).await.unwrap();
    drained(&room).await;
}

fn peer(script: &str, url: &str, room: &str, args: &[&str]) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(python());
    c.arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers").join(script))
        .args(["--url", url, "--key", KEY, "--secret", SECRET, "--room", room])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    c
}

/// The JSON summary a subscriber peer prints last, after checking it succeeded.
/// The SDK's native library has been seen to abort (SIGABRT) while leaving, after the summary was out; the
/// summary's content is what the tests check, so such an abort is reported but not a failure.
fn summary(out: &std::process::Output) -> serde_json::Value {
    use std::os::unix::process::ExitStatusExt;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let parsed = serde_json::from_str::<serde_json::Value>(stdout.lines().last().unwrap_or(""));
    let stderr = String::from_utf8_lossy(&out.stderr);
    match (out.status.success(), out.status.signal(), parsed) {
        (true, _, Ok(v)) => v,
        (false, Some(libc::SIGABRT), Ok(v)) => {
            eprintln!("subscriber aborted after its summary: {stderr}");
            v
        }
        (_, _, r) => panic!("subscriber failed ({}): {stderr}\nstdout: {stdout} ({r:?})", out.status),
    }
}

/// One Python client publishes (VP8 simulcast by default, or H.264), a hidden one subscribes.
async fn python_interop(codec: &str) {
    let room = start().await;
    let url = room.url();
    let publisher = peer("lk_publish.py", &url, "interop", &["--seconds", "14", "--codec", codec]).spawn().unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let out = peer("lk_subscribe.py", &url, "interop", &["--seconds", "7", "--hidden", "--identity", "recorder"])
        .output()
        .await
        .unwrap();
    let summary = summary(&out);
    assert_eq!(summary["participants"], serde_json::json!(["pub"]));
    let video = &summary["tracks"]["pub/2"];
    assert!(video["frames"].as_u64().unwrap_or(0) >= 10, "video frames: {summary}");
    assert_eq!(video["sizes"], serde_json::json!([[640, 360]]), "{summary}");
    // The publisher's colour (200, 40, 40) survived encode, forwarding and decode.
    let px: Vec<i64> = video["pixel"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    for (got, want) in px.iter().zip([200, 40, 40]) {
        assert!((got - want).abs() <= 16, "pixel {px:?}");
    }
    let audio = &summary["tracks"]["pub/1"];
    // A 440 Hz tone at amplitude 8000 has an RMS of about 5700.
    assert!(audio["rms"].as_f64().unwrap_or(0.0) > 2000.0, "audio: {summary}");
    let out = publisher.wait_with_output().await.unwrap();
    assert!(out.status.success(), "publisher failed: {}", String::from_utf8_lossy(&out.stderr));
    drained(&room).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_publishes_with_simulcast_and_a_hidden_python_subscriber_receives() {
    python_interop("vp8").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_asking_for_low_quality_is_switched_to_the_low_layer_and_keeps_decoding() {
    let room = start().await;
    let url = room.url();
    let publisher = peer("lk_publish.py", &url, "layers", &["--seconds", "30"]).spawn().unwrap();
    // The publisher opens its top layer once its bandwidth estimate allows (seconds on a loaded
    // machine): the subscriber comes once devroom receives it.
    let has_h = || {
        room.registry
            .room("layers")
            .is_some_and(|r| r.media.published_layers().iter().any(|(_, rids)| rids.iter().any(|r| r == "h")))
    };
    let waited = Instant::now();
    while !has_h() && waited.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(has_h(), "the publisher never sent its h layer");
    // The subscriber watches at full quality, then asks for LOW after 3 s.
    let subscriber =
        peer("lk_subscribe.py", &url, "layers", &["--seconds", "10", "--hidden", "--quality", "low"]).spawn().unwrap();
    // While it runs: the top layer (h for a 640x360 source), later q.
    let mut seen = Vec::new();
    for _ in 0..18 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Some(r) = room.registry.room("layers") {
            for (_, _, rid) in r.media.forwarded_layers().into_iter().filter(|(_, _, rid)| !rid.is_empty()) {
                if seen.last() != Some(&rid) {
                    seen.push(rid);
                }
            }
        }
    }
    let out = subscriber.wait_with_output().await.unwrap();
    let s = summary(&out);
    // The top layer was forwarded before the request (it may follow a brief start on q
    // while the publisher's layers open), and q is forwarded at the end.
    assert!(seen.iter().any(|r| r == "h"), "layers forwarded: {seen:?}");
    assert_eq!(seen.last().map(String::as_str), Some("q"), "layers forwarded: {seen:?}");
    // Frames kept decoding after the switch (requested at about 3 s of a 10 s window).
    let v = &s["tracks"]["pub/2"];
    assert!(v["last_at"].as_f64().unwrap_or(0.0) >= 8.0, "{s}");
    let _ = publisher.wait_with_output().await;
    drained(&room).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_publishes_h264_and_a_hidden_python_subscriber_receives() {
    python_interop("h264").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_subscriber_receives_synthetic_participants_their_mutes_and_leaves() {
    use tessera::devroom::synthetic::{SyntheticOptions, run};
    use tessera::preview::synthetic::color;
    let room = start().await;
    let synthetic = tokio::spawn(run(SyntheticOptions {
        url: room.url(),
        api_key: KEY.into(),
        api_secret: SECRET.into(),
        room: "synthetic".into(),
        count: 3,
        leaver: true,
        mute_toggle: true,
        duration: Some(Duration::from_secs(17)),
        ..Default::default()
    }));
    let out =
        peer("lk_subscribe.py", &room.url(), "synthetic", &["--seconds", "14", "--hidden"]).output().await.unwrap();
    let s = summary(&out);
    assert_eq!(s["participants"], serde_json::json!(["synthetic-0", "synthetic-1", "synthetic-2"]), "{s}");
    assert_eq!(s["left"], serde_json::json!(["synthetic-1"]), "{s}");
    assert_eq!(s["muted"], serde_json::json!(["synthetic-2/1"]), "{s}");
    assert_eq!(s["unmuted"], serde_json::json!(["synthetic-2/1"]), "{s}");
    // Speaking turns of 3 s each, seen through SpeakersChanged (from the audio-level extension).
    let speakers = s["speakers"].as_array().map(|a| a.len()).unwrap_or(0);
    assert!(speakers >= 2, "active speakers seen: {s}");
    for i in 0..3 {
        let v = &s["tracks"][format!("synthetic-{i}/2")];
        assert_eq!(v["sizes"], serde_json::json!([[640, 360]]), "participant {i}: {s}");
        assert!(v["frames"].as_u64().unwrap_or(0) >= 20, "participant {i}: {s}");
        let want = color(i);
        let got: Vec<i64> = v["pixel"].as_array().unwrap().iter().map(|c| c.as_i64().unwrap()).collect();
        for (g, w) in got.iter().zip([want.r, want.g, want.b]) {
            assert!((g - w as i64).abs() <= 24, "participant {i}: colour {got:?}, expected {want}");
        }
        let a = &s["tracks"][format!("synthetic-{i}/1")];
        assert!(a["rms"].as_f64().unwrap_or(0.0) > 300.0, "participant {i} is silent: {s}");
    }
    synthetic.await.unwrap().unwrap();
    drained(&room).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn livekit_client_in_chromium_publishes_for_30_s_and_a_python_subscriber_receives() {
    let room = start().await;
    let t = token("browser", "web", SECRET, Duration::from_secs(600));
    let mut browser = common::browser::BrowserPublisher::start(&room.url(), &t, &[("seconds", "30")]).await;
    browser.wait_for("PUBLISHED", Duration::from_secs(30)).await;
    let out = peer("lk_subscribe.py", &room.url(), "web", &["--seconds", "28", "--hidden"]).output().await.unwrap();
    let s = summary(&out);
    // The page reports its state at 30 s.
    browser.wait_for("STATE", Duration::from_secs(15)).await;
    let console = browser.stop().await;
    assert!(console.contains(&"PUBLISHED".to_string()), "the page did not publish: {console:?}");
    assert!(console.contains(&"STATE connected".to_string()), "the page was not connected after 30 s: {console:?}");
    assert!(!console.iter().any(|l| l.starts_with("ERROR") || l.starts_with("DISCONNECTED")), "{console:?}");
    assert_eq!(s["participants"], serde_json::json!(["browser"]), "{s}");
    let v = &s["tracks"]["browser/2"];
    assert_eq!(v["sizes"], serde_json::json!([[640, 360]]), "{s}");
    assert!(v["frames"].as_u64().unwrap_or(0) >= 100, "{s}");
    // Frames kept coming to the end of the subscriber's 28 s.
    assert!(v["last_at"].as_f64().unwrap_or(0.0) >= 25.0, "{s}");
    let px: Vec<i64> = v["pixel"].as_array().unwrap().iter().map(|c| c.as_i64().unwrap()).collect();
    for (g, w) in px.iter().zip([0, 128, 255]) {
        assert!((g - w).abs() <= 24, "canvas colour {px:?}");
    }
    assert!(s["tracks"]["browser/1"]["rms"].as_f64().unwrap_or(0.0) > 1000.0, "the WebAudio tone: {s}");
    drained(&room).await;
}

/// POST a Twirp JSON call to devroom; returns (status, body).
async fn twirp(addr: std::net::SocketAddr, method: &str, token: &str, body: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "POST /twirp/livekit.RoomService/{method} HTTP/1.1\r\nHost: devroom\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.unwrap();
    let status = buf.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, buf.split("\r\n\r\n").nth(1).unwrap_or("").to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_can_be_closed_and_everyone_is_told() {
    let room = start().await;
    let mut a = join_ws(&room, "a", "closing").await;
    let mut b = join_ws(&room, "b", "closing").await;
    let admin = |create: bool| {
        AccessToken::with_api_key(KEY, SECRET)
            .with_grants(VideoGrants { room_create: create, room_list: true, ..Default::default() })
            .to_jwt()
            .unwrap()
    };
    let (code, body) = twirp(room.addr, "DeleteRoom", &admin(false), r#"{"room":"closing"}"#).await;
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("permission_denied"), "{body}");
    let (code, body) = twirp(room.addr, "DeleteRoom", &admin(true), r#"{"room":"nowhere"}"#).await;
    assert_eq!(code, 404, "{body}");
    let (code, body) = twirp(room.addr, "DeleteRoom", &admin(true), r#"{"room":"closing"}"#).await;
    assert_eq!(code, 200, "{body}");
    for ws in [&mut a, &mut b] {
        let reason = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(Ok(m)) = ws.next().await {
                if let Ok(r) = proto::SignalResponse::decode(m.into_data().as_ref())
                    && let Some(proto::signal_response::Message::Leave(l)) = r.message
                {
                    return Some(l.reason());
                }
            }
            None
        })
        .await
        .unwrap();
        assert_eq!(reason, Some(proto::DisconnectReason::RoomDeleted));
    }
    drained(&room).await;
}

/// The next ParticipantUpdate about `identity` that carries `metadata` (within 5 s).
async fn metadata_update(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    identity: &str,
) -> Option<String> {
    tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(m)) = ws.next().await {
            if let Ok(r) = proto::SignalResponse::decode(m.into_data().as_ref())
                && let Some(proto::signal_response::Message::Update(u)) = r.message
                && let Some(p) = u.participants.iter().find(|p| p.identity == identity && !p.metadata.is_empty())
            {
                return Some(p.metadata.clone());
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_participant_sets_metadata_everyone_hears_and_list_participants_shows_it() {
    let room = start().await;
    let mut rec = join_ws(&room, "recorder", "meta").await;
    let mut other = join_ws(&room, "other", "meta").await;
    let admin = |room_name: &str| {
        AccessToken::with_api_key(KEY, SECRET)
            .with_grants(VideoGrants { room_admin: true, room: room_name.into(), ..Default::default() })
            .to_jwt()
            .unwrap()
    };
    let body = r#"{"room":"meta","identity":"recorder","metadata":"{\"layout\":\"speaker\"}"}"#;
    let (code, reply) = twirp(room.addr, "UpdateParticipant", &admin("elsewhere"), body).await;
    assert_eq!(code, 403, "{reply}");
    assert!(reply.contains("roomAdmin"), "{reply}");
    let (code, reply) =
        twirp(room.addr, "UpdateParticipant", &admin("meta"), r#"{"room":"meta","identity":"nobody"}"#).await;
    assert_eq!(code, 404, "{reply}");
    assert!(reply.contains("nobody"), "{reply}");
    let (code, reply) = twirp(room.addr, "UpdateParticipant", &admin("meta"), "{not json").await;
    assert_eq!(code, 400, "{reply}");
    let (code, reply) = twirp(room.addr, "UpdateParticipant", &admin("meta"), body).await;
    assert_eq!(code, 200, "{reply}");
    let info: serde_json::Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(info["metadata"], r#"{"layout":"speaker"}"#, "{reply}");
    // The participant itself hears it (a template learns its layout so), and so does the room.
    assert_eq!(metadata_update(&mut rec, "recorder").await.as_deref(), Some(r#"{"layout":"speaker"}"#));
    assert_eq!(metadata_update(&mut other, "recorder").await.as_deref(), Some(r#"{"layout":"speaker"}"#));
    // ListParticipants lists both, the recorder with its new metadata; another room's grant is refused.
    let (code, reply) = twirp(room.addr, "ListParticipants", &admin("meta"), r#"{"room":"meta"}"#).await;
    assert_eq!(code, 200, "{reply}");
    let list: serde_json::Value = serde_json::from_str(&reply).unwrap();
    let mut who: Vec<&str> =
        list["participants"].as_array().unwrap().iter().filter_map(|p| p["identity"].as_str()).collect();
    who.sort_unstable();
    assert_eq!(who, ["other", "recorder"], "{reply}");
    assert!(reply.contains("speaker"), "{reply}");
    let (code, _) = twirp(room.addr, "ListParticipants", &admin("elsewhere"), r#"{"room":"meta"}"#).await;
    assert_eq!(code, 403);
    rec.close(None).await.unwrap();
    other.close(None).await.unwrap();
    drained(&room).await;
}
