//! `tessera bench-render` (hidden, used by bench/): render-and-readback alone.

use super::logging;
use anyhow::Result;
use std::time::Instant;
use tessera::cli::BenchArgs;
use tessera::layout::{LayoutSet, compose};
use tessera::preview::synthetic::{RoomOptions, SyntheticRoom};
use tessera::render::{self, Backend};
use tessera::usage::{cpu_seconds, peak_rss_mib};

/// Pre-made moving inputs, the layout composed per frame, CPU time measured around
/// the render loop only.
pub fn run(a: BenchArgs) -> Result<()> {
    logging::init(logging::DEFAULT, false);
    let set = LayoutSet::builtin()?;
    let layout = set.resolve(&a.layout)?;
    let backend = a.renderer.parse::<Backend>().map_err(anyhow::Error::msg)?;
    let mut renderer = render::create(backend, a.width, a.height)?;
    let mut room = SyntheticRoom::new(RoomOptions {
        participants: a.inputs,
        input_width: 640,
        input_height: 360,
        ..Default::default()
    })?;
    // 30 distinct moments, cycled, so generating inputs is not measured.
    let moments: Vec<Vec<tessera::frame::VideoFrame>> = (0..30)
        .map(|k| {
            room.update(k * 133_333);
            room.frames().into_iter().cloned().collect()
        })
        .collect();
    let sources = room.tile_sources();
    // Warm-up: caches, pipelines, first readback.
    for m in moments.iter().take(5) {
        let refs: Vec<_> = m.iter().collect();
        renderer.render(&compose(&layout, &sources, a.width, a.height), &refs, 0)?;
    }
    renderer.flush()?;
    let mut times = Vec::with_capacity(a.frames as usize);
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    for k in 0..a.frames as usize {
        let refs: Vec<_> = moments[k % moments.len()].iter().collect();
        let t = Instant::now();
        let scene = compose(&layout, &sources, a.width, a.height);
        renderer.render(&scene, &refs, k as i64 * 33_333)?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    renderer.flush()?;
    let cpu = cpu_seconds() - cpu0;
    let wall = t0.elapsed().as_secs_f64();
    times.sort_by(f64::total_cmp);
    let mean = times.iter().sum::<f64>() / times.len().max(1) as f64;
    let p95 = times[(times.len() * 95 / 100).min(times.len() - 1)];
    let cpu_ms = cpu * 1000.0 / a.frames as f64;
    println!(
        "render_readback renderer={:?} size={}x{} inputs={} frames={} cpu_ms_per_frame={cpu_ms:.3} wall_ms_mean={mean:.3} wall_ms_p95={p95:.3} cpu_s_per_output_s_at_30fps={:.4} wall_s={wall:.2} peak_rss_mib={:.0}",
        renderer.describe(),
        a.width,
        a.height,
        a.inputs,
        a.frames,
        cpu_ms * 30.0 / 1000.0,
        peak_rss_mib()
    );
    Ok(())
}
