//! MP4 output, checked by decoding it with the real FFmpeg: codec, profile, size,
//! frame rate, duration, audio; each participant's colour inside its tile; each
//! participant's tone by FFT; and a file that survives the process being killed.

mod common;

use common::*;
use rustfft::{FftPlanner, num_complex::Complex};
use std::time::{Duration, Instant};
use tessera::encode::Preset;
use tessera::layout::{LayoutSet, compose};
use tessera::preview::synthetic::{self, RoomOptions, SyntheticRoom};
use tessera::preview::{PreviewJob, run};
use tessera::render::Backend;

fn job(layout: &str, room: RoomOptions, preset: Preset, secs: f64) -> PreviewJob {
    PreviewJob {
        layout: LayoutSet::builtin().unwrap().resolve(layout).unwrap(),
        room,
        encoding: preset.options(),
        duration: Duration::from_secs_f64(secs),
        backend: Backend::Cpu,
        realtime: false,
        raw_video_out: None,
    }
}

fn room(n: usize) -> RoomOptions {
    RoomOptions { participants: n, input_width: 640, input_height: 360, ..Default::default() }
}

#[test]
fn grid_clip_decodes_with_the_right_stream_properties_and_content() {
    let dir = workdir("mp4-grid");
    let path = dir.join("grid.mp4");
    let job = job("grid", room(4), Preset::H264_720P_30, 3.0);
    let result = run(&job, &path).unwrap();
    assert_eq!(result.frames, 90);

    let p = probe(&path);
    let v = stream(&p, "video");
    assert_eq!(v["codec_name"], "h264");
    assert_eq!(v["profile"], "Main");
    assert_eq!((v["width"].as_u64(), v["height"].as_u64()), (Some(1280), Some(720)));
    assert_eq!(v["r_frame_rate"], "30/1");
    assert_eq!(v["pix_fmt"], "yuv420p");
    let frame = 1.0 / 30.0;
    let vdur = f64_of(&v["duration"]);
    assert!((vdur - 3.0).abs() <= frame, "video duration {vdur}");
    let a = stream(&p, "audio");
    assert_eq!(a["codec_name"], "aac");
    assert_eq!(a["sample_rate"], "44100");
    assert_eq!(a["channels"].as_u64(), Some(2));
    let adur = f64_of(&a["duration"]);
    assert!((adur - 3.0).abs() <= frame, "audio duration {adur}");
    let fdur = f64_of(&p["format"]["duration"]);
    assert!((fdur - 3.0).abs() <= frame, "file duration {fdur}");
    assert!(
        f64_of(&v["start_time"]).abs() < 1e-3 && f64_of(&a["start_time"]).abs() < 1e-3,
        "streams start together at 0"
    );
    let (ok, errors) = decode_errors(&path);
    assert!(ok && errors.is_empty(), "decoding reported: {errors}");

    // Every participant's colour fills the middle of its tile (the median ignores
    // the moving bar and the name).
    let mut synth = SyntheticRoom::new(room(4)).unwrap();
    synth.update(0);
    let scene = compose(&job.layout, &synth.tile_sources(), 1280, 720);
    for t in [0.5, 1.5, 2.5] {
        let rgb = frame_rgb(&path, t, 1280, 720);
        for tile in &scene.tiles {
            let (id, _) = tile.video.unwrap();
            let r = tile.rect.inset(24);
            let got = median_rgb(&rgb, 1280, r.x, r.y, r.w, r.h);
            let want = synthetic::color(id);
            for (g, w) in got.iter().zip([want.r, want.g, want.b]) {
                assert!(g.abs_diff(w) <= 12, "t={t}: tile of participant {id} at {r:?} is {got:?}, expected {want}");
            }
        }
        // And the gaps between tiles are the black page.
        let gap = median_rgb(&rgb, 1280, 636, 100, 4, 200);
        assert!(gap.iter().all(|&c| c < 24), "gap at t={t} is {gap:?}");
    }

    // Each participant's tone stands out of the mix.
    let audio = audio_mono(&path, 44100);
    let window = &audio[44100..2 * 44100];
    let mut buf: Vec<Complex<f32>> = window.iter().map(|&s| Complex { re: s, im: 0.0 }).collect();
    FftPlanner::new().plan_fft_forward(buf.len()).process(&mut buf);
    let mag: Vec<f32> = buf[..buf.len() / 2].iter().map(|c| c.norm()).collect();
    let mut sorted = mag.clone();
    sorted.sort_by(f32::total_cmp);
    let floor = sorted[sorted.len() / 2].max(1e-6);
    for i in 0..4 {
        let bin = synthetic::tone_hz(i).round() as usize; // 1 Hz bins over one second
        let peak = mag[bin - 2..=bin + 2].iter().copied().fold(0.0, f32::max);
        assert!(
            peak > 100.0 * floor,
            "tone of participant {i} at {} Hz: {peak} vs floor {floor}",
            synthetic::tone_hz(i)
        );
    }
    // And nothing else is loud: the strongest bin is one of the tones.
    let loudest = mag.iter().enumerate().skip(20).max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
    assert!(
        (0..4).any(|i| loudest.abs_diff(synthetic::tone_hz(i) as usize) <= 2),
        "loudest bin {loudest} Hz is no tone"
    );
}

#[test]
fn presets_set_size_and_frame_rate() {
    let dir = workdir("mp4-presets");
    for (preset, w, h, fps) in
        [(Preset::PORTRAIT_H264_720P_30, 720, 1280, "30/1"), (Preset::H264_720P_60, 1280, 720, "60/1")]
    {
        let path = dir.join(format!("{preset}.mp4"));
        run(&job("speaker", room(3), preset, 1.0), &path).unwrap();
        let p = probe(&path);
        let v = stream(&p, "video");
        assert_eq!((v["width"].as_u64(), v["height"].as_u64()), (Some(w), Some(h)), "{preset}");
        assert_eq!(v["r_frame_rate"], fps, "{preset}");
        let expect_bps = preset.options().video_bitrate_kbps as f64 * 1000.0;
        assert!(f64_of(&v["bit_rate"]) < expect_bps * 1.5, "{preset}: bitrate {} over {expect_bps}", v["bit_rate"]);
    }
}

#[test]
fn advanced_options_reach_the_file() {
    let dir = workdir("mp4-advanced");
    let path = dir.join("advanced.mp4");
    let (code, _, err) = tessera(&[
        "preview",
        "--width",
        "640",
        "--height",
        "480",
        "--fps",
        "25",
        "--video-bitrate",
        "800",
        "--key-frame-interval",
        "1",
        "--h264-profile",
        "high",
        "--audio-frequency",
        "48000",
        "--audio-bitrate",
        "96",
        "--duration",
        "3",
        "--renderer",
        "cpu",
        "-o",
        path.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let p = probe(&path);
    let v = stream(&p, "video");
    assert_eq!(v["profile"], "High");
    assert_eq!((v["width"].as_u64(), v["height"].as_u64()), (Some(640), Some(480)));
    assert_eq!(v["r_frame_rate"], "25/1");
    assert_eq!(stream(&p, "audio")["sample_rate"], "48000");
    // A keyframe every second: at 0, 1 and 2 s.
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v", "-show_entries", "packet=pts_time,flags", "-of", "csv=p=0"])
        .arg(&path)
        .output()
        .unwrap();
    let keys: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains('K'))
        .filter_map(|l| l.split(',').next()?.parse().ok())
        .collect();
    assert_eq!(keys.len(), 3, "keyframes at {keys:?}");
    for (k, t) in keys.iter().enumerate() {
        assert!((t - k as f64).abs() < 0.05, "keyframes at {keys:?}");
    }
}

#[test]
fn killed_mid_recording_the_file_still_plays() {
    let dir = workdir("mp4-kill");
    let path = dir.join("killed.mp4");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["preview", "--participants", "4", "--duration", "60", "--realtime", "--renderer", "cpu", "-o"])
        .arg(&path)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Let it record a few seconds, then kill it without warning.
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) < 600_000 {
        std::thread::sleep(Duration::from_millis(100));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();

    let p = probe(&path);
    let v = stream(&p, "video");
    assert_eq!(v["codec_name"], "h264");
    stream(&p, "audio");
    let (ok, errors) = decode_errors(&path);
    assert!(ok && errors.is_empty(), "the killed file does not decode cleanly: {errors}");
    // It holds seconds of video, not just a header.
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(&path)
        .output()
        .unwrap();
    let frames: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0);
    assert!(frames >= 60, "only {frames} frames survived");
}
