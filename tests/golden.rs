//! Golden images: every layout and theme, 1 to 30 participants, screen share,
//! speaking, muted, camera off and portrait, rendered by both backends and
//! compared with `fixtures/golden/*.png`.
//!
//! The images are made by the CPU backend (deterministic). Regenerate them with
//! `TESSERA_UPDATE_GOLDEN=1 cargo test --release --test golden` and look at them
//! before committing. A failure writes `<case>-actual.png`, `-expected.png` and
//! `-diff.png` under `target/tmp/golden-failures/`.

mod common;

use std::path::{Path, PathBuf};
use tessera::layout::{LayoutSet, compose};
use tessera::output::png::{frame_to_rgb, read_rgb, write_rgb};
use tessera::preview::synthetic::{RoomOptions, SyntheticRoom};
use tessera::render::{self, Backend};

struct Case {
    name: String,
    layout: &'static str,
    room: RoomOptions,
    width: u32,
    height: u32,
}

fn room(n: usize) -> RoomOptions {
    RoomOptions { participants: n, input_width: 640, input_height: 360, ..Default::default() }
}

fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    for layout in ["grid", "speaker", "single-speaker", "grid-light", "speaker-light", "single-speaker-light"] {
        for n in [1, 2, 4, 9, 16, 30] {
            v.push(Case { name: format!("{layout}-{n}"), layout, room: room(n), width: 1280, height: 720 });
        }
    }
    let c = |name: &str, layout, room, width, height| Case { name: name.into(), layout, room, width, height };
    v.push(c("grid-screen-share", "grid", RoomOptions { screen_share: true, ..room(4) }, 1280, 720));
    v.push(c(
        "single-speaker-screen-share",
        "single-speaker",
        RoomOptions { screen_share: true, ..room(3) },
        1280,
        720,
    ));
    v.push(c("grid-speaking", "grid", RoomOptions { speaking: vec![2], ..room(4) }, 1280, 720));
    v.push(c("speaker-speaking", "speaker", RoomOptions { speaking: vec![3], ..room(4) }, 1280, 720));
    v.push(c("grid-muted", "grid", RoomOptions { muted: vec![1, 2], ..room(4) }, 1280, 720));
    v.push(c("grid-camera-off", "placeholder", RoomOptions { camera_off: vec![0, 3], ..room(4) }, 1280, 720));
    v.push(c("portrait-grid-4", "grid", room(4), 720, 1280));
    v.push(c("portrait-grid-9", "grid", room(9), 720, 1280));
    v.push(c("portrait-grid-30", "grid", room(30), 1080, 1920));
    v.push(c("portrait-speaker-5", "speaker", RoomOptions { speaking: vec![1], ..room(5) }, 720, 1280));
    v.push(c("portrait-speaker-share", "speaker-light", RoomOptions { screen_share: true, ..room(4) }, 720, 1280));
    v.push(c("grid-1080p-9", "grid", room(9), 1920, 1080));
    v
}

/// The built-in layouts plus a grid that draws placeholders for cameras that are off.
fn layouts() -> LayoutSet {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("layouts");
    let mut files: Vec<(String, String)> = Vec::new();
    for name in ["grid.toml", "speaker.toml", "single-speaker.toml", "themes/default.toml", "themes/light.toml"] {
        files.push((name.into(), std::fs::read_to_string(root.join(name)).unwrap()));
    }
    let grid = &files[0].1;
    files.push(("placeholder.toml".into(), grid.replace("camera_off = \"hide\"", "camera_off = \"placeholder\"")));
    LayoutSet::from_files(files).unwrap()
}

/// Tolerances. CPU: the reference backend, allowed only rounding noise (FFmpeg
/// builds may round swscale differently). GPU: a bilinear texture sample is not
/// swscale's filter and chroma is averaged after blending, so edges of
/// downscaled tiles differ; bounded by Mesa 25.0.7 lavapipe on this machine.
struct Tolerance {
    /// Mean absolute difference over all channels, 0..255.
    mean: f64,
    /// Share of pixels whose largest channel difference exceeds `big`.
    share: f64,
    big: u8,
}

const CPU_TOLERANCE: Tolerance = Tolerance { mean: 0.5, share: 0.001, big: 24 };
const GPU_TOLERANCE: Tolerance = Tolerance { mean: 2.0, share: 0.01, big: 48 };

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/golden")
}

fn failures_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("golden-failures")
}

/// Compares; on failure writes actual, expected and a difference image.
fn compare(case: &str, backend: &str, w: u32, h: u32, actual: &[u8], tol: &Tolerance) -> Result<(), String> {
    let path = golden_dir().join(format!("{case}.png"));
    let (ew, eh, expected) =
        read_rgb(&path).map_err(|e| format!("{case}: no golden image ({e}); run with TESSERA_UPDATE_GOLDEN=1"))?;
    let mut msg = None;
    if (ew, eh) != (w, h) {
        msg = Some(format!("{case} [{backend}]: size {w}x{h}, golden {ew}x{eh}"));
    }
    let mut diff = vec![0u8; actual.len()];
    if msg.is_none() {
        let (mut sum, mut big) = (0u64, 0u64);
        for (i, (a, e)) in actual.chunks(3).zip(expected.chunks(3)).enumerate() {
            let d: Vec<u8> = a.iter().zip(e).map(|(x, y)| x.abs_diff(*y)).collect();
            sum += d.iter().map(|&x| x as u64).sum::<u64>();
            let m = *d.iter().max().unwrap();
            if m > tol.big {
                big += 1;
            }
            // Difference image: magnified, red where over the threshold.
            let v = m.saturating_mul(4);
            diff[i * 3..i * 3 + 3].copy_from_slice(&if m > tol.big { [255, 0, 0] } else { [v, v, v] });
        }
        let mean = sum as f64 / actual.len() as f64;
        let share = big as f64 / (w * h) as f64;
        if mean > tol.mean || share > tol.share {
            msg = Some(format!(
                "{case} [{backend}]: mean difference {mean:.3} (allowed {}), {:.3}% of pixels off by more than {} (allowed {:.3}%)",
                tol.mean,
                share * 100.0,
                tol.big,
                tol.share * 100.0
            ));
        }
    }
    match msg {
        None => Ok(()),
        Some(m) => {
            let dir = failures_dir();
            let _ = write_rgb(&dir.join(format!("{case}-{backend}-actual.png")), w, h, actual);
            let _ = std::fs::copy(&path, dir.join(format!("{case}-expected.png")));
            if diff.iter().any(|&d| d > 0) {
                let _ = write_rgb(&dir.join(format!("{case}-{backend}-diff.png")), w, h, &diff);
            }
            Err(format!("{m}; see {}", dir.display()))
        }
    }
}

fn render_case(case: &Case, set: &LayoutSet, backend: Backend) -> Vec<u8> {
    let layout = set.resolve(case.layout).unwrap();
    let mut room = SyntheticRoom::new(case.room.clone()).unwrap();
    room.update(1_000_000);
    let scene = compose(&layout, &room.tile_sources(), case.width, case.height);
    let mut r = render::create(backend, case.width, case.height).unwrap();
    let frame = render::render_once(r.as_mut(), &scene, &room.frames()).unwrap();
    frame_to_rgb(&frame)
}

fn run(backend: Backend, name: &str, tol: &Tolerance) {
    let set = layouts();
    let update = std::env::var("TESSERA_UPDATE_GOLDEN").is_ok_and(|v| v == "1");
    let mut failures = Vec::new();
    for case in cases() {
        let rgb = render_case(&case, &set, backend);
        if update && backend == Backend::Cpu {
            write_rgb(&golden_dir().join(format!("{}.png", case.name)), case.width, case.height, &rgb).unwrap();
            continue;
        }
        if let Err(e) = compare(&case.name, name, case.width, case.height, &rgb, tol) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{} golden image(s) differ:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn cpu_backend_matches_golden_images() {
    run(Backend::Cpu, "cpu", &CPU_TOLERANCE);
}

/// The wgpu backend on whatever adapter this machine has (lavapipe on CI: `make
/// test` installs it). Set TESSERA_GPU_TESTS=skip only where no Vulkan or GL
/// driver can exist.
#[test]
fn gpu_backend_matches_golden_images() {
    if std::env::var("TESSERA_GPU_TESTS").is_ok_and(|v| v == "skip") {
        eprintln!("TESSERA_GPU_TESTS=skip: not testing the wgpu backend");
        return;
    }
    if std::env::var("TESSERA_UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        return;
    }
    // The child run of the test below names the driver it must be on.
    if let Ok(want) = std::env::var("TESSERA_EXPECT_DRIVER") {
        let ctx = tessera::render::gpu::context::shared().unwrap();
        assert!(ctx.driver.contains(&want), "running on {:?}, expected {want}", ctx.driver);
    }
    run(Backend::Gpu, "gpu", &GPU_TOLERANCE);
}

/// The same images and tolerance on Mesa 22.3.6's lavapipe, which
/// `scripts/setup.sh` unpacks beside the system's Mesa 25. A Vulkan driver is
/// chosen once per process, so this runs the test above in a child process with
/// `VK_DRIVER_FILES` pointing at it.
#[test]
fn gpu_backend_matches_golden_images_on_lavapipe_22() {
    if std::env::var("TESSERA_GPU_TESTS").is_ok_and(|v| v == "skip") || std::env::var("VK_DRIVER_FILES").is_ok() {
        return;
    }
    let cache = std::env::var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache"));
    let icd = cache.join("tessera/lavapipe-22.3.6/lvp_icd.json");
    if !icd.exists() {
        eprintln!("no Mesa 22.3.6 lavapipe at {} (setup unpacks it where the system has Mesa 25)", icd.display());
        return;
    }
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "gpu_backend_matches_golden_images", "--nocapture"])
        .env("VK_DRIVER_FILES", &icd)
        .env("TESSERA_GPU_BACKEND", "vulkan")
        .env("TESSERA_EXPECT_DRIVER", "Mesa 22.3.6")
        .status()
        .unwrap();
    assert!(status.success(), "the golden images differ on Mesa 22.3.6's lavapipe (output above)");
}

#[test]
fn every_case_has_a_golden_image_and_no_orphans() {
    let names: std::collections::BTreeSet<String> = cases().into_iter().map(|c| format!("{}.png", c.name)).collect();
    let on_disk: std::collections::BTreeSet<String> = std::fs::read_dir(golden_dir())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.ends_with(".png"))
        .collect();
    if std::env::var("TESSERA_UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        return;
    }
    assert_eq!(names, on_disk, "fixtures/golden must hold exactly the cases' images");
}
