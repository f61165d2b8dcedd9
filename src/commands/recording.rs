//! Recording a room to a file with its summary printed after, for `record` and `demo`.

use anyhow::{Context, Result};
use std::time::Instant;
use tessera::recorder::track::TrackJob;
use tessera::recorder::{RecordError, RecordJob, RecordSummary};
use tessera::recording::StopHandle;
use tessera::usage::{cpu_seconds, peak_rss_mib};

/// Records until the job ends or a signal stops it, then prints the summary with the CPU it took.
pub async fn record_and_report(job: RecordJob, layout: &str) -> Result<()> {
    report(layout, |stop| tessera::recorder::record(job, stop)).await
}

/// The same for one track written as it was sent.
pub async fn record_track_and_report(job: TrackJob) -> Result<()> {
    report("none (one track as sent)", |stop| tessera::recorder::track::record(job, stop)).await
}

async fn report<F, Fut>(layout: &str, run: F) -> Result<()>
where
    F: FnOnce(StopHandle) -> Fut,
    Fut: std::future::Future<Output = Result<RecordSummary, RecordError>>,
{
    let stop = StopHandle::default();
    stop_on_signals(stop.clone());
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    let s = run(stop).await.context("recording")?;
    print_record_summary(&s, layout, cpu_seconds() - cpu0, t0.elapsed().as_secs_f64());
    Ok(())
}

/// SIGINT and SIGTERM end the recording cleanly (the file is finalised).
fn stop_on_signals(stop: StopHandle) {
    tokio::spawn(async move {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!("cannot watch SIGTERM: {e}");
                let _ = tokio::signal::ctrl_c().await;
                stop.stop();
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("stopping: finalising the recording");
        stop.stop();
    });
}

fn print_record_summary(s: &RecordSummary, layout: &str, cpu: f64, wall: f64) {
    println!("wrote {}", s.file.path.display());
    println!(
        "  duration: {:.2} s  layout: {layout}  renderer: {}  frames: {}  size: {} KiB",
        s.duration_s,
        s.renderer,
        s.file.video_frames,
        s.file.bytes / 1024
    );
    println!(
        "  participants seen: {}",
        if s.participants.is_empty() { "none".into() } else { s.participants.join(", ") }
    );
    if let Some(f) = s.first_frame_after {
        println!("  first frame {:.0} ms after joining", f.as_secs_f64() * 1000.0);
    }
    let mut lat = s.file.latencies_us.clone();
    lat.sort_unstable();
    if !lat.is_empty() {
        let p = |q: usize| lat[(lat.len() * q / 100).min(lat.len() - 1)] as f64 / 1000.0;
        println!("  latency, frame arrival to encoded packet: p50 {:.1} ms, p95 {:.1} ms", p(50), p(95));
    }
    for t in &s.tracks {
        println!(
            "  {} {} ({}): {} frames decoded, {} packets, {} lost, {} gaps filled, {} keyframe requests, {} sender reports",
            t.participant_identity,
            t.mime,
            t.track_sid,
            t.decoded,
            t.jitter.packets,
            t.jitter.lost,
            t.jitter.gaps_filled,
            t.keyframe_requests,
            t.sender_reports
        );
        if !t.sizes.is_empty() {
            let sizes: Vec<String> = t.sizes.iter().map(|(w, h)| format!("{w}x{h}")).collect();
            println!("    decoded at {}", sizes.join(", then "));
        }
    }
    println!(
        "  CPU: {cpu:.2} s in {wall:.2} s ({:.3} CPU-s per recorded second), peak memory {:.0} MiB, late ticks {}",
        cpu / s.duration_s.max(1e-9),
        peak_rss_mib(),
        s.late_ticks
    );
    if s.signal_resumed > 0 {
        println!("  signal connection lost and resumed {} time(s)", s.signal_resumed);
    }
    println!("  ended: {}", s.ended_by);
}
