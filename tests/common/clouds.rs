//! The storage emulators the upload tests run on loopback (moto's S3 server, Azurite,
//! gcp-storage-emulator), and reading their buckets back with each provider's own client
//! (tests/peers/storage.py).

use super::service::free_port;
use super::{decode_errors, probe, stream};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A server process, killed when dropped.
pub struct Proc(Child);

impl Proc {
    pub fn new(child: Child) -> Self {
        Self(child)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn wait_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start on port {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The three emulators, each on a free port.
pub struct Clouds {
    pub s3: String,
    pub azure: String,
    pub gcs: String,
    _procs: Vec<Proc>,
}

impl Clouds {
    pub fn start(dir: &Path) -> Clouds {
        let venv = root().join("target/storage-venv/bin");
        let (s3_port, az_port, gcs_port) = (free_port(), free_port(), free_port());
        let log = |n: &str| Stdio::from(std::fs::File::create(dir.join(n)).unwrap());
        let moto = Command::new(venv.join("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &s3_port.to_string()])
            .stdout(log("moto.log"))
            .stderr(log("moto.err"))
            .spawn()
            .expect("moto_server (make test installs it)");
        let azurite = Command::new(root().join("target/peers-node/node_modules/.bin/azurite-blob"))
            .args(["--blobHost", "127.0.0.1", "--blobPort", &az_port.to_string(), "--inMemoryPersistence"])
            .args(["--skipApiVersionCheck", "--loose", "--silent"])
            .stdout(log("azurite.log"))
            .stderr(log("azurite.err"))
            .spawn()
            .expect("azurite (make test installs it)");
        let gcs = Command::new(venv.join("gcp-storage-emulator"))
            .args(["start", "--host", "127.0.0.1", "--port", &gcs_port.to_string(), "--in-memory"])
            .stdout(log("gcs.log"))
            .stderr(log("gcs.err"))
            .spawn()
            .expect("gcp-storage-emulator (make test installs it)");
        let procs = vec![Proc(moto), Proc(azurite), Proc(gcs)];
        wait_port(s3_port, "moto");
        wait_port(az_port, "azurite");
        wait_port(gcs_port, "gcp-storage-emulator");
        Clouds {
            s3: format!("http://127.0.0.1:{s3_port}"),
            azure: format!("http://127.0.0.1:{az_port}/devstoreaccount1"),
            gcs: format!("http://127.0.0.1:{gcs_port}"),
            _procs: procs,
        }
    }
}

/// One call of tests/peers/storage.py: its stdout, or its exit code.
pub fn bucket(provider: &str, endpoint: &str, args: &[&str]) -> Result<String, i32> {
    let out = Command::new(root().join("target/storage-venv/bin/python"))
        .arg(root().join("tests/peers/storage.py"))
        .args([provider, endpoint])
        .args(args)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let code = out.status.code().unwrap_or(-1);
        if code != 4 {
            panic!("storage.py {provider} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Err(code)
    }
}

pub fn create(provider: &str, endpoint: &str, name: &str) {
    bucket(provider, endpoint, &["create", name]).unwrap();
}

pub fn list(provider: &str, endpoint: &str, name: &str) -> BTreeMap<String, u64> {
    serde_json::from_str(&bucket(provider, endpoint, &["list", name]).unwrap()).unwrap()
}

/// Downloads an object; its content type, or None if it is not there.
pub fn get(provider: &str, endpoint: &str, name: &str, key: &str, to: &Path) -> Option<String> {
    let out = bucket(provider, endpoint, &["get", name, key, to.to_str().unwrap()]).ok()?;
    let v: Value = serde_json::from_str(&out).unwrap();
    Some(v["content_type"].as_str().unwrap_or("").to_string())
}

/// The storage block for one provider (the service config's YAML, or a request's JSON).
pub fn storage_yaml(provider: &str, c: &Clouds, bucket: &str) -> String {
    match provider {
        "s3" => format!(
            "  s3:\n    access_key: test\n    secret: test-secret-never-shown\n    region: us-east-1\n    endpoint: {}\n    bucket: {bucket}\n    force_path_style: true\n",
            c.s3
        ),
        "azure" => format!(
            "  azure:\n    account_name: devstoreaccount1\n    account_key: {AZURITE_KEY}\n    container_name: {bucket}\n    endpoint: {}\n",
            c.azure
        ),
        _ => format!("  gcp:\n    bucket: {bucket}\n    endpoint: {}\n", c.gcs),
    }
}

pub fn storage_json(provider: &str, c: &Clouds, bucket: &str) -> (&'static str, Value) {
    match provider {
        "s3" => (
            "s3",
            json!({ "accessKey": "test", "secret": "test-secret", "region": "us-east-1", "endpoint": c.s3, "bucket": bucket, "forcePathStyle": true }),
        ),
        "azure" => {
            ("azure", json!({ "accountName": "devstoreaccount1", "accountKey": AZURITE_KEY, "containerName": bucket }))
        }
        _ => ("gcp", json!({ "bucket": bucket })),
    }
}

pub fn endpoint<'a>(provider: &str, c: &'a Clouds) -> &'a str {
    match provider {
        "s3" => &c.s3,
        "azure" => &c.azure,
        _ => &c.gcs,
    }
}

/// A small recording's encoding (640x360 at 15 fps).
pub fn small() -> Value {
    json!({ "width": 640, "height": 360, "framerate": 15, "videoBitrate": 1200 })
}

/// Checks a downloaded MP4: H.264 and AAC, as long as reported, decodes clean.
pub fn check_mp4(path: &Path, reported_s: f64) {
    let p = probe(path);
    assert_eq!(stream(&p, "video")["codec_name"], "h264");
    assert_eq!(stream(&p, "audio")["codec_name"], "aac");
    let d = super::f64_of(&p["format"]["duration"]);
    assert!((d - reported_s).abs() < 0.5, "{path:?}: {d} s, reported {reported_s} s");
    let (ok, errors) = decode_errors(path);
    assert!(ok && errors.is_empty(), "{path:?}: {errors}");
}

pub fn secs(v: &Value) -> f64 {
    v.as_str().and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0) / 1e9
}

pub fn playlist_segments(text: &str) -> Vec<String> {
    text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).map(String::from).collect()
}

/// Downloads a playlist and its segments and checks the whole plays: segments within a frame of
/// their duration, the sum close to `expect_s`, every one decoding.
pub fn check_uploaded_hls(c: &Clouds, bucket: &str, key: &str, dir: &Path, expect_s: f64) {
    let local = dir.join("hls");
    std::fs::create_dir_all(&local).unwrap();
    let pl = local.join("final.m3u8");
    assert_eq!(get("s3", &c.s3, bucket, key, &pl).as_deref(), Some("application/x-mpegurl"));
    let text = std::fs::read_to_string(&pl).unwrap();
    assert!(text.contains("#EXT-X-ENDLIST"), "{text}");
    let prefix = &key[..key.rfind('/').map(|i| i + 1).unwrap_or(0)];
    let segs = playlist_segments(&text);
    for s in &segs {
        let ct =
            get("s3", &c.s3, bucket, &format!("{prefix}{s}"), &local.join(s)).unwrap_or_else(|| panic!("{s} missing"));
        assert_eq!(ct, "video/mp2t");
    }
    let total: f64 = text
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .map(|v| v.trim_end_matches(',').parse::<f64>().unwrap())
        .sum();
    assert!((total - expect_s).abs() < 1.5, "segments hold {total} s, the recording {expect_s} s");
    let (ok, errors) = decode_errors(&pl);
    assert!(ok && errors.is_empty(), "the uploaded playlist plays: {errors}");
}

/// Follows the uploaded playlist while the egress runs: every version seen names only segments
/// already in the bucket. Returns how many distinct versions were seen.
pub async fn follow_playlist(c: &Clouds, bucket: &str, key: &str, dir: &Path, until: Instant) -> usize {
    let mut seen = Vec::new();
    let tmp = dir.join("live.m3u8");
    while Instant::now() < until {
        if get("s3", &c.s3, bucket, key, &tmp).is_some() {
            let text = std::fs::read_to_string(&tmp).unwrap();
            let objects = list("s3", &c.s3, bucket);
            let prefix = &key[..key.rfind('/').map(|i| i + 1).unwrap_or(0)];
            for s in playlist_segments(&text) {
                assert!(
                    objects.contains_key(&format!("{prefix}{s}")),
                    "the playlist names {s} before it is in the bucket"
                );
            }
            if seen.last() != Some(&text) {
                seen.push(text);
            }
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    seen.len()
}
