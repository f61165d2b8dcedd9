//! `tessera preview`: a layout with synthetic participants to a PNG or an MP4 clip.

use super::{encoding, layout_set, logging};
use anyhow::{Context, Result, bail};
use std::time::Instant;
use tessera::cli::PreviewArgs;
use tessera::preview::synthetic::RoomOptions;
use tessera::preview::{self, PreviewJob};
use tessera::render::Backend;
use tessera::usage::{cpu_seconds, peak_rss_mib};

pub fn run(a: PreviewArgs) -> Result<()> {
    logging::init(logging::DEFAULT, false);
    let set = layout_set::load(a.layouts_dir.as_deref())?;
    let layout = set.resolve(&a.layout)?;
    let encoding = encoding::options(&a.size)?;
    let n = a.participants;
    let room = RoomOptions {
        participants: n,
        first: 0,
        color: Default::default(),
        screen_share: a.screen_share,
        speaking: indices(&a.speaking, n, "speaking")?,
        muted: indices(&a.muted, n, "muted")?,
        camera_off: indices(&a.camera_off, n, "camera-off")?,
        input_width: 640,
        input_height: 360,
    };
    let job = PreviewJob {
        layout,
        room,
        encoding,
        duration: a.duration,
        backend: a.renderer.parse::<Backend>().map_err(anyhow::Error::msg)?,
        realtime: a.realtime,
        raw_video_out: a.raw_video_out.clone(),
    };
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    let result = preview::run(&job, &a.output).with_context(|| format!("preview to {}", a.output.display()))?;
    let (cpu, wall) = (cpu_seconds() - cpu0, t0.elapsed().as_secs_f64());
    println!("wrote {}", a.output.display());
    println!(
        "  layout: {}  participants: {n}  size: {}x{}  renderer: {}",
        a.layout, job.encoding.width, job.encoding.height, result.renderer
    );
    if let Some(s) = &result.summary {
        let secs = s.video_frames as f64 / job.encoding.framerate as f64;
        println!("  duration: {secs:.2} s  frames: {}  size: {} KiB", s.video_frames, s.bytes / 1024);
        println!(
            "  CPU: {cpu:.2} s for {secs:.2} s recorded ({:.3} CPU-s per second), wall {wall:.2} s, peak memory {:.0} MiB",
            cpu / secs.max(1e-9),
            peak_rss_mib()
        );
    }
    Ok(())
}

/// 1-based participant numbers from the command line to 0-based indices.
fn indices(v: &[usize], n: usize, flag: &str) -> Result<Vec<usize>> {
    v.iter()
        .map(|&i| if i >= 1 && i <= n { Ok(i - 1) } else { bail!("--{flag} {i}: participants are numbered 1 to {n}") })
        .collect()
}
