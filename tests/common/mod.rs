//! Helpers shared by the integration tests: decoding outputs with the real FFmpeg.
#![allow(dead_code)]

pub mod browser;
pub mod clouds;
pub mod grid;
pub mod livekit;
pub mod netns;
pub mod rooms;
pub mod service;
pub mod template;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Python interpreter of scripts/test-peers.sh's venv (LiveKit's Python SDK, the test peers).
pub fn python() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/peers-venv/bin/python");
    assert!(p.exists(), "run scripts/test-peers.sh (make test does) to install LiveKit's Python SDK");
    p
}

/// A fresh directory under target/ for one test's files.
pub fn workdir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// ffprobe's JSON for streams and format.
pub fn probe(path: &Path) -> serde_json::Value {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-print_format", "json", "-show_streams", "-show_format"])
        .arg(path)
        .output()
        .expect("ffprobe runs (make test installs ffmpeg)");
    assert!(out.status.success(), "ffprobe failed on {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

pub fn stream<'a>(probe: &'a serde_json::Value, kind: &str) -> &'a serde_json::Value {
    probe["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["codec_type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} stream"))
}

pub fn f64_of(v: &serde_json::Value) -> f64 {
    v.as_str().and_then(|s| s.parse().ok()).or_else(|| v.as_f64()).unwrap_or(f64::NAN)
}

/// The frame shown at `t` seconds, as packed RGB.
pub fn frame_rgb(path: &Path, t: f64, w: u32, h: u32) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-ss", &format!("{t:.3}"), "-i"])
        .arg(path)
        .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout.len(), (w * h * 3) as usize, "decoded frame size");
    out.stdout
}

/// The audio as mono f32 at `rate`.
pub fn audio_mono(path: &Path, rate: u32) -> Vec<f32> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-vn", "-ac", "1", "-ar", &rate.to_string(), "-f", "f32le", "-"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out.stdout.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

/// Decodes every frame; returns ffmpeg's error output (empty when the file is clean).
pub fn decode_errors(path: &Path) -> (bool, String) {
    let out = Command::new("ffmpeg").args(["-v", "error", "-i"]).arg(path).args(["-f", "null", "-"]).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Median colour of an RGB image's rectangle.
pub fn median_rgb(rgb: &[u8], w: u32, x: u32, y: u32, rw: u32, rh: u32) -> [u8; 3] {
    let mut ch: [Vec<u8>; 3] = Default::default();
    for yy in y..y + rh {
        for xx in x..x + rw {
            let i = ((yy * w + xx) * 3) as usize;
            for k in 0..3 {
                ch[k].push(rgb[i + k]);
            }
        }
    }
    ch.map(|mut v| {
        v.sort_unstable();
        v[v.len() / 2]
    })
}

/// Runs the tessera binary; returns (exit code, stdout, stderr).
pub fn tessera(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tessera")).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every frame of a recording as packed RGB.
pub fn frames(path: &Path, w: u32, h: u32) -> Vec<Vec<u8>> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out.stdout.chunks_exact((w * h * 3) as usize).map(|c| c.to_vec()).collect()
}

pub fn dist(a: [u8; 3], b: [u8; 3]) -> i32 {
    (0..3).map(|k| (a[k] as i32 - b[k] as i32).abs()).sum()
}

/// Which of the first `n` synthetic participants has this colour.
pub fn who(c: [u8; 3], n: usize) -> Option<usize> {
    (0..n)
        .map(|i| {
            let p = tessera::preview::synthetic::color(i);
            (dist(c, [p.r, p.g, p.b]), i)
        })
        .min()
        .filter(|(d, _)| *d < 70)
        .map(|(_, i)| i)
}

/// Amplitude of `freq` in `x` (Hann-windowed Goertzel).
pub fn amplitude(x: &[f32], rate: f32, freq: f32) -> f32 {
    let n = x.len();
    let k = 2.0 * (std::f32::consts::TAU * freq / rate).cos();
    let (mut s1, mut s2, mut wsum) = (0.0f32, 0.0f32, 0.0f32);
    for (i, &v) in x.iter().enumerate() {
        let w = 0.5 - 0.5 * (std::f32::consts::TAU * i as f32 / n as f32).cos();
        wsum += w;
        let s0 = v * w + k * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - k * s1 * s2;
    2.0 * power.max(0.0).sqrt() / wsum.max(1e-9)
}

/// Beep onsets (seconds) in 48 kHz mono: where the 1 kHz amplitude rises through
/// half the beep's after at least 50 ms without one.
pub fn beeps(audio: &[f32]) -> Vec<f64> {
    let (win, hop) = (480, 48);
    let mut out = Vec::new();
    let mut quiet_since = 0usize;
    let mut i = 0;
    while i + win <= audio.len() {
        let a = amplitude(&audio[i..i + win], 48_000.0, 1000.0);
        let t = (i + win / 2) as f64 / 48_000.0;
        if a < 0.05 {
            if quiet_since == 0 {
                quiet_since = i.max(1);
            }
        // 50 ms of quiet before: two participants' marks can be as little as 70 ms apart
        // (a late joiner's marks run on its own clock).
        } else if a > 0.15 && quiet_since > 0 && i - quiet_since >= 2_400 {
            out.push(t);
            quiet_since = 0;
        } else if a > 0.15 {
            quiet_since = 0;
        }
        i += hop;
    }
    out
}
