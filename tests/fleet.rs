//! Fleet mode against the real thing: livekit-server v1.13.5 with Redis hands egress jobs to
//! `tessera serve` (the real binary, `redis:` in its config) over psrpc. Every call goes to
//! livekit-server's own Egress API through LiveKit's Node SDK, as a user's would; Tessera's
//! Twirp endpoint is not used. Recordings are decoded with FFmpeg.

mod common;

use common::livekit::{LiveKit, Options, Redis};
use common::rooms::Server;
use common::service::*;
use common::{probe, stream, workdir};
use serde_json::{Value, json};
use std::time::Duration;

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Redis, a livekit-server dispatching egress through it, and its Twirp URL.
fn deployment(dir: &std::path::Path) -> (Redis, Server, String) {
    let redis = Redis::start(dir);
    let mut o = Options::new(KEY, SECRET);
    o.redis = Some(redis.addr.clone());
    // Rooms stay while the test drives them.
    o.empty_timeout = 30;
    let lk = Server::Real(LiveKit::start(dir, &o));
    let http = lk.url().replacen("ws://", "http://", 1);
    (redis, lk, http)
}

/// A Tessera node of that deployment.
fn node(dir: &std::path::Path, lk: &Server, redis: &Redis, extra: &str) -> Serve {
    Serve::start(dir, &format!("ws_url: {}\nredis:\n  address: {}\n{extra}", lk.url(), redis.addr))
}

async fn wait_in_room(server: &Server, room: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while server.participant_count(KEY, SECRET, room).await.unwrap_or(0) < 1 {
        assert!(std::time::Instant::now() < deadline, "nobody joined {room}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn livekit_server_dispatches_a_room_composite_that_lists_active_and_stops_complete() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = workdir("fleet-basic");
    let (redis, lk, http) = deployment(&dir);
    let tessera = node(&dir.join("node"), &lk, &redis, "");
    let pubs = participants_for(&lk, "fleet", 2, Duration::from_secs(60));
    wait_in_room(&lk, "fleet").await;

    let args = json!({
        "roomName": "fleet",
        "layout": "speaker",
        "file": { "filepath": "fleet.mp4" },
        "advanced": { "width": 640, "height": 360, "framerate": 15, "videoBitrate": 1200 },
    });
    let info = call(Sdk::Node, &http, SECRET, "startRoomComposite", args).await.expect("livekit-server dispatched it");
    let id = info["egressId"].as_str().unwrap().to_string();
    assert!(id.starts_with("EG_"), "{info}");
    assert_eq!(info["roomName"], "fleet", "{info}");
    // livekit-server's ListEgress reads what the node reported (IOInfo).
    let active = wait_for(Sdk::Node, &http, &id, "active", |i| status(i) == "EGRESS_ACTIVE").await;
    assert_eq!(active["roomName"], "fleet", "{active}");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let stopping = call(Sdk::Node, &http, SECRET, "stopEgress", json!({ "egressId": id })).await.expect("stopped");
    assert!(["EGRESS_ENDING", "EGRESS_COMPLETE"].contains(&status(&stopping)), "{stopping}");
    let done = wait_for(Sdk::Node, &http, &id, "complete", |i| status(i) == "EGRESS_COMPLETE").await;
    let file: &Value = &done["fileResults"][0];
    assert_eq!(file["filename"].as_str(), Some("fleet.mp4"), "{done}");
    let duration: f64 = file["duration"].as_str().and_then(|d| d.parse().ok()).unwrap_or(0.0) / 1e9;
    assert!(duration > 3.0, "{done}");
    let p = probe(&tessera.out.join("fleet.mp4"));
    let v = stream(&p, "video");
    assert_eq!((v["width"].as_u64(), v["height"].as_u64()), (Some(640), Some(360)), "{p}");
    assert!(p["format"]["duration"].as_str().and_then(|d| d.parse::<f64>().ok()).unwrap_or(0.0) > 3.0, "{p}");
    pubs.abort();
}
