//! Fleet mode against the real thing: livekit-server v1.13.5 with Redis hands egress jobs to
//! `tessera serve` (the real binary, `redis:` in its config) over psrpc. Every call goes to
//! livekit-server's own Egress API through LiveKit's Node SDK, as a user's would; Tessera's
//! Twirp endpoint is not used. Recordings are decoded with FFmpeg.

mod common;

use common::clouds::*;
use common::livekit::{LiveKit, Options, Redis};
use common::rooms::Server;
use common::service::*;
use common::{probe, stream, workdir};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Redis, a livekit-server dispatching egress through it, and its Twirp URL.
fn deployment(dir: &std::path::Path) -> (Redis, Server, String) {
    deployment_with_webhook(dir, None)
}

/// As `deployment`, livekit-server posting its webhooks to `webhook`.
fn deployment_with_webhook(dir: &std::path::Path, webhook: Option<String>) -> (Redis, Server, String) {
    let redis = Redis::start(dir);
    let mut o = Options::new(KEY, SECRET);
    o.redis = Some(redis.addr.clone());
    o.webhook = webhook;
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
    // LiveKit's own psrpc client asks the fleet which egresses run (livekit-server never does).
    assert_eq!(list_active(&redis), [vec![id.clone()]]);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let stopping = call(Sdk::Node, &http, SECRET, "stopEgress", json!({ "egressId": id })).await.expect("stopped");
    assert!(["EGRESS_ENDING", "EGRESS_COMPLETE"].contains(&status(&stopping)), "{stopping}");
    let done = wait_for(Sdk::Node, &http, &id, "complete", |i| status(i) == "EGRESS_COMPLETE").await;
    let file: &Value = &done["fileResults"][0];
    assert_eq!(file["filename"].as_str(), Some("fleet.mp4"), "{done}");
    let duration: f64 = file["duration"].as_str().and_then(|d| d.parse().ok()).unwrap_or(0.0) / 1e9;
    assert!(duration > 3.0, "{done}");
    assert_eq!(list_active(&redis), [Vec::<String>::new()], "the node answers, running nothing");
    let p = probe(&tessera.out.join("fleet.mp4"));
    let v = stream(&p, "video");
    assert_eq!((v["width"].as_u64(), v["height"].as_u64()), (Some(640), Some(360)), "{p}");
    assert!(p["format"]["duration"].as_str().and_then(|d| d.parse::<f64>().ok()).unwrap_or(0.0) > 3.0, "{p}");
    pubs.abort();
}

/// EgressInternal.ListActiveEgress through LiveKit's psrpc client (tests/peers/psrpc_peer):
/// each answering node's egress ids.
fn list_active(redis: &Redis) -> Vec<Vec<String>> {
    let peer = common::clouds::root().join("target/peers/psrpc-peer/psrpc-peer");
    let out = std::process::Command::new(&peer)
        .args([&redis.addr, "list-active", "2s"])
        .output()
        .unwrap_or_else(|e| panic!("{peer:?} (scripts/test-peers.sh builds it): {e}"));
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("psrpc-peer: {}", String::from_utf8_lossy(&out.stderr)));
    let answers = v["ok"].as_array().unwrap_or_else(|| panic!("psrpc-peer: {v}"));
    answers.iter().map(|a| serde_json::from_value(a["egressIds"].clone()).unwrap()).collect()
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
    let (redis, lk, http) = deployment_with_webhook(&dir, Some(hooks.url("/lk")));
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
    // The metadata takes a round trip through the server: a second is allowed for it.
    let sw = common::grid::grid_then_single(&video, 15.0, switch_s, 1.0, w, h);
    assert!(sw.before.len() > 20 && sw.both >= 0.8, "grid before {switch_s:.1} s: {:?}", sw.before);
    let after = &sw.after;
    assert!(after.len() > 30 && sw.full >= 0.8, "single-speaker after {switch_s:.1} s: {after:?}");

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

/// Which node runs each egress, from the nodes' logs.
fn runs(node_dir: &std::path::Path, id: &str) -> bool {
    log(node_dir).lines().any(|l| l.contains("job won and started") && l.contains(id))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_six_rooms_refuse_a_seventh_and_a_killed_node_leaves_playable_files() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = workdir("fleet-two");
    let (redis, lk, http) = deployment(&dir);
    // Each node has room for three small recordings (0.25 of its 0.75 cores each).
    let budget = "cpu_cost:\n  cpus: 1\n  max_cpu_utilization: 0.75\n  room_composite_cpu_cost: 1.0\n";
    let (a_dir, b_dir) = (dir.join("a"), dir.join("b"));
    let mut a = node(&a_dir, &lk, &redis, budget);
    let b = node(&b_dir, &lk, &redis, budget);
    let rooms: Vec<String> = (0..7).map(|i| format!("room{i}")).collect();
    let pubs: Vec<_> = rooms.iter().map(|r| participants_for(&lk, r, 1, Duration::from_secs(120))).collect();
    for r in &rooms {
        wait_in_room(&lk, r).await;
    }
    let start = |room: &str| {
        json!({
            "roomName": room,
            "file": { "filepath": format!("{room}.mp4") },
            "advanced": { "width": 320, "height": 180, "framerate": 10, "videoBitrate": 300 },
        })
    };
    let mut ids = Vec::new();
    for r in &rooms[..6] {
        let info = call(Sdk::Node, &http, SECRET, "startRoomComposite", start(r)).await.expect("one node takes it");
        ids.push(info["egressId"].as_str().unwrap().to_string());
    }
    for id in &ids {
        wait_for(Sdk::Node, &http, id, "active", |i| status(i) == "EGRESS_ACTIVE").await;
    }
    let on_a: Vec<&String> = ids.iter().filter(|id| runs(&a_dir, id)).collect();
    let on_b: Vec<&String> = ids.iter().filter(|id| runs(&b_dir, id)).collect();
    assert_eq!((on_a.len(), on_b.len()), (3, 3), "spread: {on_a:?} on A, {on_b:?} on B");

    // Both full: neither bids, and livekit-server answers as it does when no egress can take a job.
    let refused = call(Sdk::Node, &http, SECRET, "startRoomComposite", start(&rooms[6])).await.unwrap_err();
    assert_eq!(refused["code"], "unavailable", "{refused}");
    let metrics = reqwest::get(format!("{}/metrics", a.url)).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("tessera_fleet_declined_total"), "{metrics}");

    // A dies mid-recording: its files stay playable; B's recordings go on and complete.
    tokio::time::sleep(Duration::from_secs(3)).await;
    unsafe { libc::kill(a.pid(), libc::SIGKILL) };
    let _ = a.child.wait();
    let mut checked = 0;
    for r in &rooms[..6] {
        let path = a.out.join(format!("{r}.mp4"));
        if path.exists() {
            checked += 1;
            let (ok, errors) = common::decode_errors(&path);
            assert!(ok, "{}: {errors}", path.display());
            let p = probe(&path);
            assert!(p["format"]["duration"].as_str().and_then(|d| d.parse::<f64>().ok()).unwrap_or(0.0) > 2.0, "{p}");
        }
    }
    assert_eq!(checked, on_a.len(), "A's files");
    tokio::time::sleep(Duration::from_secs(2)).await;
    for id in &on_b {
        call(Sdk::Node, &http, SECRET, "stopEgress", json!({ "egressId": id })).await.expect("B's job stops");
        let done = wait_for(Sdk::Node, &http, id, "complete", |i| status(i) == "EGRESS_COMPLETE").await;
        let secs: f64 = done["fileResults"][0]["duration"].as_str().and_then(|d| d.parse().ok()).unwrap_or(0.0) / 1e9;
        assert!(secs > 5.0, "{done}");
    }
    drop(b);
    for p in pubs {
        p.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_mid_recording_loses_nothing_and_the_final_state_reaches_the_server() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = workdir("fleet-redis");
    let (redis, lk, http) = deployment(&dir);
    let port: u16 = redis.addr.rsplit(':').next().unwrap().parse().unwrap();
    let tessera = node(&dir.join("node"), &lk, &redis, "");
    let pubs = participants_for(&lk, "steady", 2, Duration::from_secs(90));
    wait_in_room(&lk, "steady").await;
    let args = json!({
        "roomName": "steady",
        "file": { "filepath": "steady.mp4" },
        "advanced": { "width": 640, "height": 360, "framerate": 15, "videoBitrate": 1200 },
    });
    let info = call(Sdk::Node, &http, SECRET, "startRoomComposite", args).await.expect("dispatched");
    let id = info["egressId"].as_str().unwrap().to_string();
    wait_for(Sdk::Node, &http, &id, "active", |i| status(i) == "EGRESS_ACTIVE").await;
    let t0 = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Redis goes away; the recording goes on, and is stopped (through the node's own
    // endpoint) while Redis is still away: ENDING and COMPLETE wait for it.
    drop(redis);
    tokio::time::sleep(Duration::from_secs(4)).await;
    call(Sdk::Node, &tessera.url, SECRET, "stopEgress", json!({ "egressId": id })).await.expect("stopped locally");
    let stopped_after = t0.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Redis comes back empty: the node reconnects and delivers the final state.
    let _redis = Redis::start_on(&dir, port);
    let health = |url: String| async move {
        let body = reqwest::get(format!("{url}/health")).await.unwrap().text().await.unwrap();
        serde_json::from_str::<Value>(&body).unwrap()["redis_reachable"].as_bool()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while health(tessera.url.clone()).await != Some(true) {
        assert!(std::time::Instant::now() < deadline, "the node never reconnected: {}", log(&dir.join("node")));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The restarted Redis knows nothing until the node's UpdateEgress lands there.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let done = loop {
        let list = call(Sdk::Node, &http, SECRET, "listEgress", json!({ "egressId": id })).await;
        if let Some(info) = list.as_ref().ok().and_then(|l| l.as_array()).and_then(|l| l.first())
            && status(info) == "EGRESS_COMPLETE"
        {
            break info.clone();
        }
        assert!(std::time::Instant::now() < deadline, "the final state never reached livekit-server: {list:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    pubs.abort();
    // One continuous recording across the outage.
    let p = probe(&tessera.out.join("steady.mp4"));
    let secs = p["format"]["duration"].as_str().and_then(|d| d.parse::<f64>().ok()).unwrap_or(0.0);
    assert!(secs > stopped_after - 1.0, "{secs} s recorded, stopped {stopped_after:.1} s after ACTIVE: {done}");
    let v = stream(&p, "video");
    let frames: f64 = v["nb_frames"].as_str().and_then(|n| n.parse().ok()).unwrap_or(0.0);
    assert!((frames / secs - 15.0).abs() < 0.5, "{frames} frames in {secs} s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_egress_records_a_room_created_with_an_egress() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = workdir("fleet-auto");
    let (redis, lk, http) = deployment(&dir);
    let tessera = node(&dir.join("node"), &lk, &redis, "");
    let create = json!({
        "name": "auto",
        "egress": { "room": {
            "layout": "grid",
            "fileOutputs": [{ "filepath": "auto/{room_name}.mp4" }],
            "advanced": { "width": 640, "height": 360, "framerate": 15, "videoBitrate": 1200 },
        } },
    });
    lk.create_room(KEY, SECRET, create).await.expect("CreateRoom with an egress");
    // livekit-server starts the room, and so its egress, at CreateRoom; the participants come after.
    let pubs = participants_for(&lk, "auto", 2, Duration::from_secs(60));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let id = loop {
        let list = call(Sdk::Node, &http, SECRET, "listEgress", json!({ "roomName": "auto" })).await.unwrap();
        if let Some(i) = list.as_array().and_then(|l| l.first())
            && status(i) == "EGRESS_ACTIVE"
        {
            break i["egressId"].as_str().unwrap().to_string();
        }
        assert!(std::time::Instant::now() < deadline, "the room's egress never became active: {list}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    tokio::time::sleep(Duration::from_secs(4)).await;
    call(Sdk::Node, &http, SECRET, "stopEgress", json!({ "egressId": id })).await.expect("stopped");
    let done = wait_for(Sdk::Node, &http, &id, "complete", |i| status(i) == "EGRESS_COMPLETE").await;
    pubs.abort();
    assert_eq!(done["fileResults"][0]["filename"], "auto/auto.mp4", "{done}");
    let p = probe(&tessera.out.join("auto/auto.mp4"));
    assert!(p["format"]["duration"].as_str().and_then(|d| d.parse::<f64>().ok()).unwrap_or(0.0) > 3.0, "{p}");
    stream(&p, "audio");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_bidding_at_once_and_the_running_job_still_completes() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = workdir("fleet-drain");
    let (redis, lk, http) = deployment(&dir);
    let mut tessera = node(&dir.join("node"), &lk, &redis, "drain_timeout: 60s\n");
    let pubs: Vec<_> = ["drain", "late"].iter().map(|r| participants_for(&lk, r, 1, Duration::from_secs(90))).collect();
    wait_in_room(&lk, "drain").await;
    wait_in_room(&lk, "late").await;
    let start = |room: &str| {
        json!({
            "roomName": room,
            "file": { "filepath": format!("{room}.mp4") },
            "advanced": { "width": 320, "height": 180, "framerate": 15, "videoBitrate": 300 },
        })
    };
    let info = call(Sdk::Node, &http, SECRET, "startRoomComposite", start("drain")).await.expect("dispatched");
    let id = info["egressId"].as_str().unwrap().to_string();
    wait_for(Sdk::Node, &http, &id, "active", |i| status(i) == "EGRESS_ACTIVE").await;
    unsafe { libc::kill(tessera.pid(), libc::SIGTERM) };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let health = reqwest::get(format!("{}/health", tessera.url)).await.unwrap().text().await.unwrap();
        if health.contains("\"draining\":true") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "SIGTERM did not start the drain: {health}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The only node no longer bids (it unsubscribed): the next job is livekit-server's `unavailable`.
    let (http2, late) = (http.clone(), start("late"));
    let refused = tokio::spawn(async move { call(Sdk::Node, &http2, SECRET, "startRoomComposite", late).await });
    // The running job goes on until it is stopped, through livekit-server, and completes.
    tokio::time::sleep(Duration::from_secs(2)).await;
    call(Sdk::Node, &http, SECRET, "stopEgress", json!({ "egressId": id })).await.expect("stopped");
    let done = wait_for(Sdk::Node, &http, &id, "complete", |i| status(i) == "EGRESS_COMPLETE").await;
    let secs: f64 = done["fileResults"][0]["duration"].as_str().and_then(|d| d.parse().ok()).unwrap_or(0.0) / 1e9;
    assert!(secs > 2.0, "{done}");
    // With its last job done and reported, the node exits by itself.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let code = loop {
        if let Some(s) = tessera.child.try_wait().unwrap() {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "the drained node did not exit");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(code.success(), "{code:?}: {}", log(&dir.join("node")));
    let refused = refused.await.unwrap().unwrap_err();
    assert_eq!(refused["code"], "unavailable", "{refused}");
    for p in pubs {
        p.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_livekit_server_update_layout_switches_a_custom_template() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = workdir("fleet-template");
    let site = common::template::pages().await;
    let (redis, lk, http) = deployment(&dir);
    let tessera = node(&dir.join("node"), &lk, &redis, "");
    let pubs = participants_for(&lk, "tpl", 2, Duration::from_secs(60));
    wait_in_room(&lk, "tpl").await;
    let args = json!({
        "roomName": "tpl",
        "layout": "grid",
        "customBaseUrl": format!("{site}/template/index.html"),
        "file": { "filepath": "tpl.mp4" },
        "advanced": { "width": 640, "height": 360, "framerate": 15, "videoBitrate": 1200 },
    });
    let info = call(Sdk::Node, &http, SECRET, "startRoomComposite", args).await.expect("dispatched");
    let id = info["egressId"].as_str().unwrap().to_string();
    wait_for(Sdk::Node, &http, &id, "active", |i| status(i) == "EGRESS_ACTIVE").await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    // livekit-server sets the page's participant (identity: the egress id) metadata; the page
    // switches its own layout.
    call(Sdk::Node, &http, SECRET, "updateLayout", json!({ "egressId": id, "layout": "single-speaker" }))
        .await
        .expect("livekit-server takes UpdateLayout");
    tokio::time::sleep(Duration::from_secs(5)).await;
    call(Sdk::Node, &http, SECRET, "stopEgress", json!({ "egressId": id })).await.expect("stopped");
    wait_for(Sdk::Node, &http, &id, "complete", |i| status(i) == "EGRESS_COMPLETE").await;
    pubs.abort();
    let path = tessera.out.join("tpl.mp4");
    let d = common::f64_of(&probe(&path)["format"]["duration"]);
    let at = |t: f64| common::grid::shares(&common::frame_rgb(&path, t, 640, 360), 2, 640, 360);
    // As tests/browser.rs reads a template: both side by side 2.6 to 3.8 s in (the switch comes
    // at least 4 s in), one full frame near the end; a single frame can be a white flash.
    let before: Vec<Vec<f64>> = [2.6, 3.0, 3.4, 3.8].iter().map(|t| at(*t)).collect();
    assert!(before.iter().filter(|b| b.iter().all(|s| *s > 0.2)).count() >= 2, "before UpdateLayout: {before:?}");
    let after: Vec<Vec<f64>> = [1.0, 1.4, 1.8].iter().map(|b| at(d - b)).collect();
    let full = after.iter().filter(|a| a.iter().any(|s| *s > 0.8) && a.contains(&0.0)).count();
    assert!(full >= 2, "after UpdateLayout: {after:?}");
}

/// The seed's S3Upload, its placeholders filled in for the local emulator.
fn seed_s3(c: &Clouds, bucket: &str) -> Value {
    json!({ "accessKey": "aws-access-key", "secret": "aws-access-secret", "region": "aws-region",
            "bucket": bucket, "endpoint": c.s3, "forcePathStyle": true })
}

/// An RTMPS receiver writing what it receives to `out`: socat ends TLS (a self-signed
/// certificate) in front of an FFmpeg RTMP listener, since FFmpeg cannot listen on rtmps.
fn rtmps_receiver(dir: &std::path::Path, port: u16, key: &str, out: &std::path::Path) -> RtmpsReceiver {
    let pem = dir.join("rtmps.pem");
    let made = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-keyout"])
        .arg(&pem)
        .arg("-out")
        .arg(dir.join("rtmps.crt"))
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl");
    assert!(made.success(), "openssl made no certificate");
    let mut both = std::fs::read(&pem).unwrap();
    both.extend(std::fs::read(dir.join("rtmps.crt")).unwrap());
    std::fs::write(&pem, both).unwrap();
    let plain = free_port();
    let ffmpeg = rtmp_receiver(plain, key, out);
    let tls = std::process::Command::new("socat")
        .arg(format!("OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,cert={},verify=0", pem.display()))
        .arg(format!("TCP:127.0.0.1:{plain}"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("socat (make test installs it)");
    // Not by connecting: socat serves one connection, which a probe would use up.
    let deadline = Instant::now() + Duration::from_secs(10);
    let listening = || {
        let out = std::process::Command::new("ss").args(["-Hltn", &format!("sport = :{port}")]).output().unwrap();
        !out.stdout.is_empty()
    };
    while !listening() {
        assert!(Instant::now() < deadline, "socat did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    RtmpsReceiver { ffmpeg, tls }
}

struct RtmpsReceiver {
    ffmpeg: std::process::Child,
    tls: std::process::Child,
}

impl RtmpsReceiver {
    /// Waits for the stream to end (FFmpeg finishes its file), then stops the TLS end.
    fn wait(&mut self) {
        let _ = self.ffmpeg.wait();
        let _ = self.tls.kill();
        let _ = self.tls.wait();
    }
}

/// Stops each egress through livekit-server and waits for its final EgressInfo.
async fn stop_all(http: &str, ids: &[String]) -> Vec<Value> {
    let mut done = Vec::new();
    for id in ids {
        call(Sdk::Node, http, SECRET, "stopEgress", json!({ "egressId": id })).await.expect("stopped");
    }
    for id in ids {
        let info = wait_for(Sdk::Node, http, id, "complete", |i| status(i) == "EGRESS_COMPLETE").await;
        done.push(info);
    }
    done
}

/// Every snippet of the seed document (the RoomComposite egress page), with its placeholders
/// filled in (host, bucket, stream URLs) and run as a user runs it: LiveKit's Node SDK calling
/// livekit-server, which hands each job to a Tessera node. Every output is fetched and decoded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_s_snippets_run_through_livekit_server_and_every_output_decodes() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = workdir("fleet-seed");
    let clouds = Clouds::start(&dir);
    for b in ["my-bucket", "hls-bucket", "images-bucket", "portrait-bucket", "config-bucket"] {
        create("s3", &clouds.s3, b);
    }
    let (redis, lk, http) = deployment(&dir);
    // S3 in the node's config: the snippet that leaves the output empty uploads there.
    let storage = format!("storage:\n{}", storage_yaml("s3", &clouds, "config-bucket"));
    let tessera = node(&dir.join("node"), &lk, &redis, &storage);
    let pubs = participants_for(&lk, "my-room", 2, Duration::from_secs(240));
    wait_in_room(&lk, "my-room").await;
    let start = |args: Value| {
        let http = http.clone();
        async move {
            let info = call(Sdk::Node, &http, SECRET, "startRoomComposite", args).await.expect("dispatched");
            let id = info["egressId"].as_str().unwrap().to_string();
            wait_for(Sdk::Node, &http, &id, "active", |i| status(i) == "EGRESS_ACTIVE").await;
            id
        }
    };
    let local = dir.join("fetched");
    std::fs::create_dir_all(&local).unwrap();
    let mut infos = Vec::new();

    // 1. Archival to S3, speaker layout; 2. two RTMP URLs (the second RTMPS), grid.
    let (a_port, b_port) = (free_port(), free_port());
    let (a_out, b_out) = (dir.join("youtube.flv"), dir.join("twitch.flv"));
    let mut a = rtmp_receiver(a_port, "yt-stream-key-1", &a_out);
    let mut b = rtmps_receiver(&dir, b_port, "twitch-key-2", &b_out);
    let mp4 = start(json!({ "roomName": "my-room", "layout": "speaker",
        "file": { "filepath": "livekit-demo/room-composite-test.mp4", "s3": seed_s3(&clouds, "my-bucket") } }))
    .await;
    let rtmp = start(json!({ "roomName": "my-room", "layout": "grid", "outputs": { "stream": { "protocol": "RTMP",
        "urls": [format!("rtmp://127.0.0.1:{a_port}/live/yt-stream-key-1"), format!("rtmps://127.0.0.1:{b_port}/live/twitch-key-2")] } } }))
    .await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let done = stop_all(&http, &[mp4, rtmp]).await;
    let _ = (a.wait(), b.wait());
    let f = &done[0]["fileResults"][0];
    assert_eq!(f["location"], format!("{}/my-bucket/livekit-demo/room-composite-test.mp4", clouds.s3), "{}", done[0]);
    let path = local.join("room-composite-test.mp4");
    get("s3", &clouds.s3, "my-bucket", "livekit-demo/room-composite-test.mp4", &path)
        .expect("the MP4 is in the bucket");
    check_mp4(&path, secs(&f["duration"]));
    let v = probe(&path);
    assert_eq!(
        (stream(&v, "video")["width"].as_u64(), stream(&v, "video")["height"].as_u64()),
        (Some(1280), Some(720))
    );
    let streams = done[1]["streamResults"].as_array().expect("stream results");
    assert_eq!(streams.len(), 2, "{}", done[1]);
    for out in [&a_out, &b_out] {
        let (ok, errors) = common::decode_errors(out);
        assert!(ok && errors.is_empty(), "{out:?}: {errors}");
        let d = common::f64_of(&probe(out)["format"]["duration"]);
        assert!(d > 5.0, "{out:?} holds {d} s");
    }
    infos.extend(done);

    // 3. HLS to S3, the playlist uploaded as it grows; 4. JPEG snapshots to S3.
    let hls = start(json!({ "roomName": "my-room", "outputs": { "segments": {
        "filenamePrefix": "livekit-demo/room-composite-test-", "playlistName": "room-composite-test.m3u8",
        "segmentDuration": 6, "protocol": "HLS_PROTOCOL", "s3": seed_s3(&clouds, "hls-bucket") } } }))
    .await;
    let images = start(json!({ "roomName": "my-room", "outputs": { "images": {
        "captureInterval": 10, "filenamePrefix": "livekit-demo/room-composite-test-", "width": 640, "height": 480,
        "s3": seed_s3(&clouds, "images-bucket") } } }))
    .await;
    let key = "livekit-demo/room-composite-test.m3u8";
    let versions = follow_playlist(&clouds, "hls-bucket", key, &dir, Instant::now() + Duration::from_secs(15)).await;
    assert!(versions >= 2, "the playlist was uploaded {versions} times while the recording ran");
    let done = stop_all(&http, &[hls, images]).await;
    let g = &done[0]["segmentResults"][0];
    assert_eq!(g["playlistLocation"], format!("{}/hls-bucket/{key}", clouds.s3), "{}", done[0]);
    check_uploaded_hls(&clouds, "hls-bucket", key, &dir, secs(&g["duration"]));
    let count = done[1]["imageResults"][0]["imageCount"].as_str().and_then(|c| c.parse::<usize>().ok()).unwrap_or(0);
    let jpegs: Vec<String> = list("s3", &clouds.s3, "images-bucket")
        .into_keys()
        .filter(|k| k.starts_with("livekit-demo/room-composite-test-") && k.ends_with(".jpeg"))
        .collect();
    assert!(count >= 2 && jpegs.len() == count, "{count} images reported, {jpegs:?} in the bucket: {}", done[1]);
    for k in &jpegs {
        let jpeg = local.join(k.rsplit('/').next().unwrap());
        assert_eq!(get("s3", &clouds.s3, "images-bucket", k, &jpeg).as_deref(), Some("image/jpeg"));
        let v = stream(&probe(&jpeg), "video").clone();
        assert_eq!((v["width"].as_u64(), v["height"].as_u64()), (Some(640), Some(480)), "{k}");
    }
    infos.extend(done);

    // 5. Portrait HLS (the snippet's preset, which the SDK takes as the request's encoding options);
    // 6. an audio-only composite; 7. output and file path left empty, S3 from the node's config.
    let portrait = start(json!({ "roomName": "my-room", "preset": "PORTRAIT_H264_720P_30", "outputs": { "segments": {
        "filenamePrefix": "livekit-demo/room-composite-test-", "playlistName": "room-composite-test.m3u8",
        "segmentDuration": 6, "protocol": "HLS_PROTOCOL", "s3": seed_s3(&clouds, "portrait-bucket") } } }))
    .await;
    let audio = start(json!({ "roomName": "my-room", "audioOnly": true,
        "file": { "filepath": "livekit-demo/room-composite-audio.ogg", "s3": seed_s3(&clouds, "my-bucket") } }))
    .await;
    let empty = start(json!({ "roomName": "my-room", "file": {} })).await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let done = stop_all(&http, &[portrait, audio, empty]).await;
    let pl = local.join("portrait.m3u8");
    get("s3", &clouds.s3, "portrait-bucket", key, &pl).expect("the portrait playlist");
    let first = playlist_segments(&std::fs::read_to_string(&pl).unwrap()).remove(0);
    let seg = local.join(&first);
    get("s3", &clouds.s3, "portrait-bucket", &format!("livekit-demo/{first}"), &seg).expect("its first segment");
    let v = stream(&probe(&seg), "video").clone();
    assert_eq!((v["width"].as_u64(), v["height"].as_u64()), (Some(720), Some(1280)), "{}", done[0]);
    let ogg = local.join("room-composite-audio.ogg");
    get("s3", &clouds.s3, "my-bucket", "livekit-demo/room-composite-audio.ogg", &ogg).expect("the audio file");
    let p = probe(&ogg);
    let kinds: Vec<&str> = p["streams"].as_array().unwrap().iter().filter_map(|s| s["codec_type"].as_str()).collect();
    assert_eq!(kinds, ["audio"], "{p}");
    let pcm = common::audio_mono(&ogg, 48000);
    let level = (pcm.iter().map(|x| x * x).sum::<f32>() / pcm.len().max(1) as f32).sqrt();
    assert!(level > 0.01, "the room's tones are in the audio-only file (RMS {level})");
    let f = &done[2]["fileResults"][0];
    let location = f["location"].as_str().unwrap_or_default();
    let generated =
        location.strip_prefix(&format!("{}/config-bucket/", clouds.s3)).unwrap_or_else(|| panic!("{}", done[2]));
    assert!(generated.starts_with("my-room-") && generated.ends_with(".mp4"), "{}", done[2]);
    let path = local.join("generated.mp4");
    get("s3", &clouds.s3, "config-bucket", generated, &path).expect("the generated file is in the config's bucket");
    check_mp4(&path, secs(&f["duration"]));
    infos.extend(done);

    // Through livekit-server's ListEgress, no stream key or storage secret.
    for info in &infos {
        let text = info.to_string();
        for secret in ["yt-stream-key-1", "twitch-key-2", "aws-access-secret", "test-secret-never-shown"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
    drop(tessera);
    pubs.abort();
}
