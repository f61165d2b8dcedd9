//! Uploads end to end: `tessera serve` records devroom rooms to S3 (moto's server), Azure
//! Blob (Azurite) and Google Cloud Storage (gcp-storage-emulator), each started here on
//! loopback; the buckets are read back with each provider's own client
//! (tests/peers/storage.py) and every object is decoded.

mod common;

use common::clouds::*;
use common::service::*;
use common::{probe, stream, workdir};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn record_for(url: &str, args: Value, run: Duration) -> Value {
    let info = call(Sdk::Node, url, SECRET, "startRoomComposite", args).await.unwrap_or_else(|e| panic!("{e}"));
    let id = info["egressId"].as_str().unwrap().to_string();
    wait_for(Sdk::Node, url, &id, "active", |i| status(i) == "EGRESS_ACTIVE").await;
    tokio::time::sleep(run).await;
    call(Sdk::Node, url, SECRET, "stopEgress", json!({ "egressId": id })).await.unwrap();
    wait_for(Sdk::Node, url, &id, "ended", |i| {
        !matches!(status(i), "EGRESS_STARTING" | "EGRESS_ACTIVE" | "EGRESS_ENDING")
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_cloud_takes_a_recording_configured_in_the_service_and_in_the_request() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = workdir("storage-clouds");
    let clouds = Clouds::start(&dir);
    let room = devroom().await;
    let pubs = participants(&room, "cloud", 2);
    for provider in ["s3", "azure", "gcs"] {
        let ep = endpoint(provider, &clouds);
        create(provider, ep, "from-config");
        create(provider, ep, "from-request");
        let serve = Serve::start(
            &dir.join(provider),
            &format!(
                "ws_url: {}\nstorage:\n  prefix: tessera\n{}",
                room.url(),
                storage_yaml(provider, &clouds, "from-config")
            ),
        );
        let (kind, own) = storage_json(provider, &clouds, "from-request");
        let configured = json!({ "roomName": "cloud", "file": { "filepath": format!("rec/{provider}-config.mp4") }, "advanced": small() });
        let requested = json!({ "roomName": "cloud", "file": { "filepath": format!("rec/{provider}-request.mp4"), kind: own }, "advanced": small() });
        let (a, b) = tokio::join!(
            record_for(&serve.url, configured, Duration::from_secs(4)),
            record_for(&serve.url, requested, Duration::from_secs(4))
        );
        for (info, name, key) in [
            (a, "from-config", format!("tessera/rec/{provider}-config.mp4")),
            (b, "from-request", format!("tessera/rec/{provider}-request.mp4")),
        ] {
            assert_eq!(status(&info), "EGRESS_COMPLETE", "{provider} {name}: {info}\n{}", log(&dir.join(provider)));
            let f = &info["fileResults"][0];
            let location = f["location"].as_str().unwrap();
            // Where the object is, as LiveKit words it: the endpoint (path style), the bucket, the key.
            let expected = match provider {
                "s3" => format!("{}/{name}/{key}", clouds.s3),
                "azure" => format!("{}/{name}/{key}", clouds.azure),
                _ => format!("{}/{name}/{key}", clouds.gcs),
            };
            assert_eq!(location, expected, "{provider}: {info}");
            let local = dir.join("tmp").join(format!("{provider}-{name}.mp4"));
            std::fs::create_dir_all(local.parent().unwrap()).unwrap();
            let ct =
                get(provider, ep, name, &key, &local).unwrap_or_else(|| panic!("{key} is not in {provider} {name}"));
            assert_eq!(ct, "video/mp4", "{provider} content type");
            check_mp4(&local, secs(&f["duration"]));
            assert_eq!(f["size"].as_str().unwrap().parse::<u64>().unwrap(), std::fs::metadata(&local).unwrap().len());
            // Uploaded and confirmed: the local copy is gone.
            let kept = serve.out.join(format!("rec/{}", key.rsplit('/').next().unwrap()));
            assert!(!kept.exists(), "{kept:?} was kept after its upload");
            let manifest = info["manifestLocation"].as_str().unwrap();
            assert!(manifest.starts_with(&expected[..expected.len() - key.len()]), "manifest at {manifest}");
        }
    }
    pubs.abort();
}

/// A TCP relay to `target` that can be switched off (listener closed, connections cut) and on
/// again at the same port: storage that goes away and comes back.
struct Relay {
    port: u16,
    up: Arc<AtomicBool>,
}

impl Relay {
    async fn start(target: String) -> Relay {
        let port = free_port();
        let up = Arc::new(AtomicBool::new(true));
        let flag = up.clone();
        tokio::spawn(async move {
            loop {
                while !flag.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                let Ok(listener) = tokio::net::TcpListener::bind(("127.0.0.1", port)).await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let mut conns = Vec::new();
                while flag.load(Ordering::SeqCst) {
                    if let Ok(Ok((mut inbound, _))) =
                        tokio::time::timeout(Duration::from_millis(50), listener.accept()).await
                    {
                        let t = target.clone();
                        conns.push(tokio::spawn(async move {
                            if let Ok(mut out) = tokio::net::TcpStream::connect(t).await {
                                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                            }
                        }));
                    }
                }
                for c in conns {
                    c.abort();
                }
            }
        });
        wait_port(port, "the relay");
        Relay { port, up }
    }

    fn set(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hls_segments_images_and_the_manifest_reach_s3_as_they_are_made() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = workdir("storage-hls");
    let clouds = Clouds::start(&dir);
    create("s3", &clouds.s3, "hls");
    let room = devroom().await;
    let pubs = participants(&room, "live", 2);
    let serve =
        Serve::start(&dir, &format!("ws_url: {}\nstorage:\n{}", room.url(), storage_yaml("s3", &clouds, "hls")));
    let args = json!({
        "roomName": "live",
        "outputs": {
            "segments": { "filenamePrefix": "show/seg", "playlistName": "show.m3u8", "livePlaylistName": "live.m3u8", "segmentDuration": 2 },
            "images": { "filenamePrefix": "thumbs/img", "captureInterval": 2, "width": 320, "height": 180 },
        },
        "advanced": small(),
    });
    let info = call(Sdk::Node, &serve.url, SECRET, "startRoomComposite", args).await.unwrap();
    let id = info["egressId"].as_str().unwrap().to_string();
    wait_for(Sdk::Node, &serve.url, &id, "active", |i| status(i) == "EGRESS_ACTIVE").await;
    let versions =
        follow_playlist(&clouds, "hls", "show/show.m3u8", &dir, Instant::now() + Duration::from_secs(10)).await;
    assert!(versions >= 3, "the uploaded playlist grew {versions} times in 10 s");
    let uploaded = job_metric(&serve.url, "job_bytes_uploaded", &id).await;
    assert!(uploaded > 50_000.0, "{uploaded} bytes uploaded while segments went up");
    call(Sdk::Node, &serve.url, SECRET, "stopEgress", json!({ "egressId": id })).await.unwrap();
    let done = wait_for(Sdk::Node, &serve.url, &id, "complete", |i| status(i) == "EGRESS_COMPLETE").await;
    let g = &done["segmentResults"][0];
    assert_eq!(g["playlistLocation"].as_str().unwrap(), format!("{}/hls/show/show.m3u8", clouds.s3), "{done}");
    assert_eq!(g["livePlaylistLocation"].as_str().unwrap(), format!("{}/hls/show/live.m3u8", clouds.s3));
    check_uploaded_hls(&clouds, "hls", "show/show.m3u8", &dir, secs(&g["duration"]));
    // Every image the manifest lists, and the manifest itself, are in the bucket.
    let objects = list("s3", &clouds.s3, "hls");
    let manifest_key = format!("show/{id}.json");
    assert_eq!(done["manifestLocation"].as_str().unwrap(), format!("{}/hls/{manifest_key}", clouds.s3));
    let m = dir.join("manifest.json");
    assert_eq!(get("s3", &clouds.s3, "hls", &manifest_key, &m).as_deref(), Some("application/json"));
    let manifest: Value = serde_json::from_slice(&std::fs::read(&m).unwrap()).unwrap();
    let images = manifest["images"].as_array().unwrap();
    assert!(images.len() >= 5, "{manifest}");
    for im in images {
        let key = im["filename"].as_str().unwrap().to_string();
        assert!(key.starts_with("thumbs/img_"), "{key}");
        let local = dir.join(key.replace('/', "_"));
        assert_eq!(get("s3", &clouds.s3, "hls", &key, &local).as_deref(), Some("image/jpeg"), "{key}: {objects:?}");
        let p = probe(&local);
        assert_eq!(
            (stream(&p, "video")["width"].as_u64(), stream(&p, "video")["height"].as_u64()),
            (Some(320), Some(180))
        );
    }
    assert_eq!(done["imageResults"][0]["imageCount"].as_str().unwrap().parse::<usize>().unwrap(), images.len());
    // Local copies went once uploaded.
    let left: Vec<_> = walk(&serve.out);
    assert!(left.is_empty(), "local files kept after upload: {left:?}");
    pubs.abort();
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_gone_for_30_s_mid_recording_loses_nothing_and_the_recording_never_pauses() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = workdir("storage-outage");
    let clouds = Clouds::start(&dir);
    create("s3", &clouds.s3, "hls");
    let relay = Relay::start(clouds.s3.trim_start_matches("http://").to_string()).await;
    let via = format!("http://127.0.0.1:{}", relay.port);
    let room = devroom().await;
    let pubs = participants(&room, "outage", 2);
    let serve = Serve::start(
        &dir,
        &format!(
            "ws_url: {}\nstorage:\n  s3:\n    access_key: test\n    secret: test\n    endpoint: {via}\n    bucket: hls\n    force_path_style: true\n",
            room.url()
        ),
    );
    let args = json!({
        "roomName": "outage",
        "segments": { "filenamePrefix": "out/seg", "playlistName": "out.m3u8", "segmentDuration": 2 },
        "advanced": small(),
    });
    let info = call(Sdk::Node, &serve.url, SECRET, "startRoomComposite", args).await.unwrap();
    let id = info["egressId"].as_str().unwrap().to_string();
    wait_for(Sdk::Node, &serve.url, &id, "active", |i| status(i) == "EGRESS_ACTIVE").await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    relay.set(false);
    let before = list("s3", &clouds.s3, "hls").len();
    tokio::time::sleep(Duration::from_secs(15)).await;
    // Meanwhile the recording goes on: segments keep closing, and the egress says uploads are failing.
    let mid = wait_for(Sdk::Node, &serve.url, &id, "reporting", |_| true).await;
    assert_eq!(status(&mid), "EGRESS_ACTIVE");
    assert!(mid["details"].as_str().unwrap_or("").contains("failing"), "{mid}");
    let closed_mid = mid["segmentResults"][0]["segmentCount"].as_str().unwrap_or("0").parse::<u64>().unwrap();
    assert!(closed_mid >= 8, "segments kept closing during the outage: {closed_mid}");
    assert_eq!(list("s3", &clouds.s3, "hls").len(), before, "nothing reached the bucket while it was away");
    tokio::time::sleep(Duration::from_secs(15)).await;
    relay.set(true);
    tokio::time::sleep(Duration::from_secs(8)).await;
    call(Sdk::Node, &serve.url, SECRET, "stopEgress", json!({ "egressId": id })).await.unwrap();
    let done = wait_for(Sdk::Node, &serve.url, &id, "complete", |i| status(i) == "EGRESS_COMPLETE").await;
    let g = &done["segmentResults"][0];
    let count = g["segmentCount"].as_str().unwrap().parse::<usize>().unwrap();
    assert!(count >= 20, "{count} segments for about 43 s");
    check_uploaded_hls(&clouds, "hls", "out/out.m3u8", &dir, secs(&g["duration"]));
    let uploaded = list("s3", &clouds.s3, "hls").keys().filter(|k| k.ends_with(".ts")).count();
    assert_eq!(uploaded, count, "every segment is in the bucket");
    assert!(walk(&serve.out).is_empty(), "all uploaded, nothing left on disk");
    pubs.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_primary_down_everything_lands_in_the_backup_and_egress_info_says_so() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = workdir("storage-backup");
    let clouds = Clouds::start(&dir);
    create("azure", &clouds.azure, "backup");
    let room = devroom().await;
    let pubs = participants(&room, "backup", 2);
    let dead = free_port();
    let serve = Serve::start(
        &dir,
        &format!(
            "ws_url: {}\nstorage:\n  s3:\n    access_key: a\n    secret: b\n    endpoint: http://127.0.0.1:{dead}\n    bucket: gone\n    force_path_style: true\nbackup:\n{}",
            room.url(),
            storage_yaml("azure", &clouds, "backup")
        ),
    );
    let args = json!({
        "roomName": "backup",
        "outputs": {
            "file": { "filepath": "b/take.mp4" },
            "segments": { "filenamePrefix": "b/seg", "playlistName": "b.m3u8", "segmentDuration": 2 },
            "images": { "filenamePrefix": "b/img", "captureInterval": 2 },
        },
        "advanced": small(),
    });
    let done = record_for(&serve.url, args, Duration::from_secs(6)).await;
    assert_eq!(status(&done), "EGRESS_COMPLETE", "{done}\n{}", log(&dir));
    assert_eq!(done["backupStorageUsed"], true, "{done}");
    let f = &done["fileResults"][0];
    assert_eq!(f["location"].as_str().unwrap(), format!("{}/backup/b/take.mp4", clouds.azure));
    let objects = list("azure", &clouds.azure, "backup");
    let local = dir.join("take.mp4");
    get("azure", &clouds.azure, "backup", "b/take.mp4", &local).expect("the file is in the backup");
    check_mp4(&local, secs(&f["duration"]));
    let segments = objects.keys().filter(|k| k.ends_with(".ts")).count();
    let images = objects.keys().filter(|k| k.ends_with(".jpeg")).count();
    assert_eq!(segments as u64, done["segmentResults"][0]["segmentCount"].as_str().unwrap().parse::<u64>().unwrap());
    assert_eq!(images as u64, done["imageResults"][0]["imageCount"].as_str().unwrap().parse::<u64>().unwrap());
    assert!(
        objects.contains_key("b/b.m3u8")
            && objects.contains_key(&format!("b/{}.json", done["egressId"].as_str().unwrap())),
        "{objects:?}"
    );
    pubs.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_fail_naming_the_storage_without_the_secret_and_keep_the_file() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = workdir("storage-credentials");
    let clouds = Clouds::start(&dir);
    create("azure", &clouds.azure, "locked");
    let room = devroom().await;
    let pubs = participants(&room, "creds", 1);
    let wrong = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleQ==";
    let serve = Serve::start(
        &dir,
        &format!(
            "ws_url: {}\nstorage:\n  azure:\n    account_name: devstoreaccount1\n    account_key: {wrong}\n    container_name: locked\n    endpoint: {}\n",
            room.url(),
            clouds.azure
        ),
    );
    let done = record_for(
        &serve.url,
        json!({ "roomName": "creds", "file": { "filepath": "kept/take.mp4" }, "advanced": small() }),
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(status(&done), "EGRESS_FAILED", "{done}");
    let error = done["error"].as_str().unwrap();
    assert!(error.contains("Azure container \"locked\"") && error.contains("403"), "{error}");
    assert!(!done.to_string().contains(wrong) && !log(&dir).contains(wrong), "the key shows: {done}");
    let kept = serve.out.join("kept/take.mp4");
    assert!(error.contains(&kept.display().to_string()), "{error}");
    check_mp4(&kept, secs(&done["fileResults"][0]["duration"]));
    assert!(list("azure", &clouds.azure, "locked").is_empty());
    // A request whose storage is incomplete is refused, naming the field.
    let e = call(
        Sdk::Node,
        &serve.url,
        SECRET,
        "startRoomComposite",
        json!({ "roomName": "creds", "file": { "filepath": "x.mp4", "s3": { "region": "x" } } }),
    )
    .await
    .unwrap_err();
    assert_eq!(e["code"], "invalid_argument", "{e}");
    assert!(e["message"].as_str().unwrap().contains("s3.bucket"), "{e}");
    pubs.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_without_keys_or_region_takes_the_aws_default_chain_and_the_buckets_region() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = workdir("storage-default-chain");
    let clouds = Clouds::start(&dir);
    bucket("s3", &clouds.s3, &["create", "far", "eu-west-3"]).unwrap();
    let room = devroom().await;
    let pubs = participants(&room, "chain", 2);
    // The keys come from the environment, as on a machine with an instance role or a profile.
    let serve = Serve::start_with_env(
        &dir,
        &format!("ws_url: {}\n", room.url()),
        &[
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test-secret"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ],
    );
    let args = json!({ "roomName": "chain", "file": { "filepath": "chain.mp4",
        "s3": { "endpoint": clouds.s3, "bucket": "far", "forcePathStyle": true } }, "advanced": small() });
    let info = record_for(&serve.url, args, Duration::from_secs(3)).await;
    assert_eq!(status(&info), "EGRESS_COMPLETE", "{info}\n{}", log(&dir));
    let local = dir.join("chain.mp4");
    get("s3", &clouds.s3, "far", "chain.mp4", &local).expect("the file is in the bucket");
    check_mp4(&local, secs(&info["fileResults"][0]["duration"]));
    // The bucket said where it lives, and the client went there.
    assert!(log(&dir).contains("region=eu-west-3"), "{}", log(&dir));
    pubs.abort();
}
