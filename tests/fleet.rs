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

/// An FFmpeg RTMP receiver (listening once) writing what it gets to `out`.
fn rtmp_receiver(port: u16, key: &str, out: &std::path::Path) -> std::process::Child {
    std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-listen", "1", "-i", &format!("rtmp://127.0.0.1:{port}/live/{key}")])
        .args(["-c", "copy", "-y"])
        .arg(out)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_livekit_server_the_layout_and_streams_change_and_its_webhooks_arrive_in_order() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = workdir("fleet-update");
    let mut hooks = Hooks::start(0).await;
    let redis = Redis::start(&dir);
    let mut o = Options::new(KEY, SECRET);
    (o.redis, o.webhook, o.empty_timeout) = (Some(redis.addr.clone()), Some(hooks.url("/lk")), 30);
    let lk = Server::Real(LiveKit::start(&dir, &o));
    let http = lk.url().replacen("ws://", "http://", 1);
    let tessera = node(&dir.join("node"), &lk, &redis, "");
    let pubs = participants_for(&lk, "switch", 2, Duration::from_secs(60));
    wait_in_room(&lk, "switch").await;
    let (a_port, b_port) = (free_port(), free_port());
    let (a_out, b_out) = (dir.join("a.flv"), dir.join("b.flv"));
    let (mut a, mut b) = (rtmp_receiver(a_port, "alphakey01", &a_out), rtmp_receiver(b_port, "betakey02", &b_out));
    let a_url = format!("rtmp://127.0.0.1:{a_port}/live/alphakey01");
    let b_url = format!("rtmp://127.0.0.1:{b_port}/live/betakey02");

    let args = json!({
        "roomName": "switch",
        "layout": "grid",
        "outputs": { "file": { "filepath": "switch.mp4" }, "stream": { "urls": [a_url] } },
        "advanced": { "width": 640, "height": 360, "framerate": 15, "videoBitrate": 1200 },
    });
    let info = call(Sdk::Node, &http, SECRET, "startRoomComposite", args).await.expect("dispatched");
    let id = info["egressId"].as_str().unwrap().to_string();
    assert!(!info.to_string().contains("alphakey01"), "a stream key in EgressInfo: {info}");
    let active = wait_for(Sdk::Node, &http, &id, "active", |i| status(i) == "EGRESS_ACTIVE").await;
    let started: i64 = active["fileResults"][0]["startedAt"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0);
    tokio::time::sleep(Duration::from_secs(4)).await;

    // UpdateLayout reaches the node as its own participant's metadata.
    call(Sdk::Node, &http, SECRET, "updateLayout", json!({ "egressId": id, "layout": "single-speaker" }))
        .await
        .expect("livekit-server takes UpdateLayout");
    let switched_at = tessera::time::unix_ns();
    // UpdateStream reaches the node on the egress id's topic.
    let upd = json!({ "egressId": id, "add": [b_url], "remove": [a_url] });
    let updated = call(Sdk::Node, &http, SECRET, "updateStream", upd).await.expect("livekit-server takes UpdateStream");
    assert_eq!(updated["streamResults"].as_array().map(|s| s.len()), Some(2), "{updated}");
    assert!(!updated.to_string().contains("betakey02"), "{updated}");
    tokio::time::sleep(Duration::from_secs(5)).await;
    call(Sdk::Node, &http, SECRET, "stopEgress", json!({ "egressId": id })).await.expect("stopped");
    let done = wait_for(Sdk::Node, &http, &id, "complete", |i| status(i) == "EGRESS_COMPLETE").await;
    pubs.abort();

    // The file: both side by side before the switch, one full frame after it.
    let (w, h) = (640, 360);
    let path = tessera.out.join("switch.mp4");
    let video = common::frames(&path, w, h);
    let switch_s = (switched_at - started) as f64 / 1e9;
    let secs = video.len() as f64 / 15.0;
    let stretch = |from: f64, to: f64| -> Vec<Vec<Option<usize>>> {
        let (x, y) = ((from * 15.0) as usize, ((to * 15.0) as usize).min(video.len()));
        video[x.min(y)..y].iter().map(|f| common::grid::cells(f, 2, w, h)).collect()
    };
    let share = |v: &[Vec<Option<usize>>], f: &dyn Fn(&Vec<Option<usize>>) -> bool| {
        v.iter().filter(|c| f(c)).count() as f64 / v.len().max(1) as f64
    };
    let before = stretch(0.5, switch_s - 0.5);
    let both = |c: &Vec<Option<usize>>| c.contains(&Some(0)) && c.contains(&Some(1));
    assert!(before.len() > 20 && share(&before, &both) >= 0.8, "grid before {switch_s:.1} s: {before:?}");
    // The metadata takes a round trip through the server: allow a second.
    let after = stretch(switch_s + 1.0, secs - 0.5);
    let full = |c: &Vec<Option<usize>>| c[0].is_some() && c[0] == c[1];
    assert!(after.len() > 30 && share(&after, &full) >= 0.8, "single-speaker after {switch_s:.1} s: {after:?}");

    // The streams: A got the start, B the rest.
    let results = done["streamResults"].as_array().unwrap();
    assert_eq!(results.len(), 2, "{done}");
    for rx in [&mut a, &mut b] {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while rx.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = rx.kill();
    }
    for out in [&a_out, &b_out] {
        let p = probe(out);
        let d = p["format"]["duration"].as_str().and_then(|d| d.parse::<f64>().ok()).unwrap_or(0.0);
        assert!(d > 2.0, "{}: {p}", out.display());
    }

    // livekit-server's own webhooks, verified by LiveKit's SDK: started first, ended last,
    // the status never going back.
    hooks
        .until(Duration::from_secs(20), |e| {
            e.iter().any(|e| e["egressId"] == id.as_str() && e["event"] == "egress_ended")
        })
        .await;
    let mine = hooks.of(&id);
    assert_eq!(mine.first().map(|e| e.0.as_str()), Some("egress_started"), "{mine:?}");
    assert_eq!(mine.last().cloned(), Some(("egress_ended".into(), "EGRESS_COMPLETE".into())), "{mine:?}");
    assert!(mine.contains(&("egress_updated".into(), "EGRESS_ACTIVE".into())), "{mine:?}");
    let rank = |s: &str| {
        ["EGRESS_STARTING", "", "EGRESS_ACTIVE", "EGRESS_ENDING", "EGRESS_COMPLETE"].iter().position(|x| *x == s)
    };
    let ranks: Vec<_> = mine.iter().map(|e| rank(&e.1).unwrap_or(0).max(1)).collect();
    assert!(ranks.windows(2).all(|w| w[0] <= w[1]), "{mine:?}");
}
