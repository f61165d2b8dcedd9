//! Bad input gets a clear error naming what is wrong: layout files, layout
//! names, output sizes, presets.

mod common;

use common::{tessera, workdir};
use std::path::Path;

fn copy_layouts(to: &Path) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("layouts");
    std::fs::create_dir_all(to.join("themes")).unwrap();
    for f in ["grid.toml", "speaker.toml", "single-speaker.toml", "themes/default.toml", "themes/light.toml"] {
        std::fs::copy(from.join(f), to.join(f)).unwrap();
    }
}

/// Runs `tessera layouts --layouts-dir` on a copy of the layouts with `file`
/// changed by `edit`, and returns the error.
fn broken(name: &str, file: &str, edit: impl Fn(String) -> String) -> String {
    let dir = workdir(name);
    copy_layouts(&dir);
    let path = dir.join(file);
    std::fs::write(&path, edit(std::fs::read_to_string(&path).unwrap())).unwrap();
    let (code, _, err) = tessera(&["layouts", "--layouts-dir", dir.to_str().unwrap()]);
    assert_eq!(code, 2, "a broken layout must be refused: {err}");
    err
}

#[test]
fn good_layouts_list() {
    let dir = workdir("layouts-good");
    copy_layouts(&dir);
    let (code, out, err) = tessera(&["layouts", "--layouts-dir", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    for n in ["grid", "grid-light", "speaker", "speaker-light", "single-speaker", "single-speaker-light"] {
        assert!(out.lines().any(|l| l == n), "{n} missing from {out}");
    }
}

#[test]
fn bad_layout_files_are_named_with_the_problem() {
    let e = broken("layouts-syntax", "grid.toml", |s| s.replace("gap = 8", "gap = = 8"));
    assert!(e.contains("layout file grid.toml") && e.contains("line"), "{e}");

    let e = broken("layouts-unknown-key", "speaker.toml", |s| s + "\ncolour = \"red\"\n");
    assert!(e.contains("speaker.toml") && e.contains("unknown field `colour`"), "{e}");

    let e = broken("layouts-bad-value", "grid.toml", |s| s.replace("radius = 8", "radius = -3"));
    assert!(e.contains("grid.toml") && e.contains("`radius` must be between 0 and 512"), "{e}");

    let e = broken("layouts-bad-colour", "themes/light.toml", |s| s.replace("\"#ffffff\"", "\"white\""));
    assert!(e.contains("themes/light.toml") && e.contains("must start with '#'"), "{e}");

    let e = broken("layouts-bad-kind", "single-speaker.toml", |s| s.replace("kind = \"single\"", "kind = \"mosaic\""));
    assert!(e.contains("single-speaker.toml") && e.contains("unknown variant `mosaic`"), "{e}");

    let e =
        broken("layouts-grid-order", "grid.toml", |s| s.replacen("columns = 1\nrows = 1", "columns = 9\nrows = 9", 1));
    assert!(e.contains("`grid` entries must be ordered"), "{e}");

    let e = broken("layouts-share", "grid.toml", |s| {
        s.replace("screen_share_layout = \"speaker\"", "screen_share_layout = \"stage\"")
    });
    assert!(e.contains("`screen_share_layout` names \"stage\""), "{e}");
}

#[test]
fn unknown_layout_names_list_the_known_ones() {
    let out = workdir("errors-layout").join("x.png");
    let (code, _, err) = tessera(&["preview", "--layout", "mosaic", "-o", out.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown layout \"mosaic\"") && err.contains("speaker-light"), "{err}");
    let (code, _, err) = tessera(&["preview", "--layout", "grid-neon", "-o", out.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown layout \"grid-neon\""), "{err}");
}

#[test]
fn impossible_sizes_are_refused() {
    let out = workdir("errors-size").join("x.png");
    let o = out.to_str().unwrap();
    for (w, h, word) in [
        ("1281", "720", "must be even"),
        ("8", "720", "at least 16"),
        ("5000", "720", "at most 4096"),
        ("1280", "15", "at least 16"),
    ] {
        let (code, _, err) = tessera(&["preview", "--width", w, "--height", h, "-o", o]);
        assert_eq!(code, 2, "{w}x{h}");
        assert!(err.contains(&format!("output size {w}x{h} is impossible")) && err.contains(word), "{w}x{h}: {err}");
    }
    let (code, _, err) = tessera(&["preview", "--preset", "H264_4K_30", "-o", o]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown preset \"H264_4K_30\"") && err.contains("PORTRAIT_H264_1080P_60"), "{err}");
    let (code, _, err) = tessera(&["preview", "--participants", "3", "--speaking", "4", "-o", o]);
    assert_eq!(code, 2);
    assert!(err.contains("--speaking 4: participants are numbered 1 to 3"), "{err}");
    let (code, _, err) = tessera(&["preview", "-o", "out.gif"]);
    assert_eq!(code, 2);
    assert!(err.contains("must end in .png or .mp4"), "{err}");
}

#[test]
fn preview_png_is_a_real_image_of_the_requested_size() {
    let out = workdir("preview-png").join("p.png");
    let (code, stdout, err) = tessera(&[
        "preview",
        "--preset",
        "PORTRAIT_H264_720P_30",
        "--participants",
        "6",
        "--renderer",
        "cpu",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("wrote"), "{stdout}");
    let (w, h, rgb) = tessera::output::png::read_rgb(&out).unwrap();
    assert_eq!((w, h), (720, 1280));
    assert!(
        rgb.chunks(3).filter(|p| p.iter().any(|&c| c > 100)).count() > (w * h / 2) as usize,
        "mostly coloured tiles"
    );
}

/// A healthy run is quiet: `tessera demo` (devroom, four synthetic participants, a recording)
/// prints no warning or error of anyone's, its own included, at the default level.
#[test]
fn a_healthy_demo_prints_no_warnings() {
    let dir = workdir("quiet-demo");
    let out = dir.join("demo.mp4");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["demo", "--duration", "6", "-o", out.to_str().unwrap()])
        .env_remove("TESSERA_LOG")
        .output()
        .unwrap();
    let (stdout, err) = (String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    assert!(run.status.success(), "{err}");
    assert!(stdout.contains("wrote"), "{stdout}");
    let noisy: Vec<&str> = err.lines().filter(|l| l.contains(" WARN ") || l.contains(" ERROR ")).collect();
    assert!(noisy.is_empty(), "{} warnings on a clean run, e.g. {:?}", noisy.len(), &noisy[..noisy.len().min(5)]);
}
