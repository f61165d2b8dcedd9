//! Prometheus metrics, gathered fresh at each scrape from the jobs themselves (no
//! second copy of the state to keep in step): jobs by status, CPU per job (the
//! job's named threads, FFmpeg's included), frames rendered, skipped and late,
//! encoder speed, bytes written, and the process's CPU and memory. Memory cannot
//! be told apart per job inside one process, so it is the process's.

use crate::egress::Manager;
use livekit_protocol as proto;
use prometheus::{Encoder, Gauge, GaugeVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};
use std::sync::atomic::Ordering;

pub(crate) fn render(m: &Manager) -> String {
    match gather(m) {
        Ok(text) => text,
        Err(e) => format!("# metrics unavailable: {e}\n"),
    }
}

fn gather(m: &Manager) -> Result<String, prometheus::Error> {
    let r = Registry::new_custom(Some("tessera".into()), None)?;
    let gauge = |name: &str, help: &str, v: f64| -> Result<(), prometheus::Error> {
        let g = Gauge::new(name, help)?;
        g.set(v);
        r.register(Box::new(g))
    };
    let jobs = m.all_jobs();
    let by_status = IntGaugeVec::new(Opts::new("egress_jobs", "Egress jobs known, by status"), &["status"])?;
    for s in [
        proto::EgressStatus::EgressStarting,
        proto::EgressStatus::EgressActive,
        proto::EgressStatus::EgressEnding,
        proto::EgressStatus::EgressComplete,
        proto::EgressStatus::EgressFailed,
        proto::EgressStatus::EgressAborted,
        proto::EgressStatus::EgressLimitReached,
    ] {
        let n = jobs.iter().filter(|j| j.status() == s).count();
        by_status.with_label_values(&[s.as_str_name()]).set(n as i64);
    }
    r.register(Box::new(by_status))?;
    let fleet = m.counters.fleet_redis.load(Ordering::Relaxed);
    if fleet != 0 {
        let c = &m.counters;
        for (name, help, v) in [
            ("fleet_bids_total", "StartEgress requests this node bid for", &c.fleet_bids),
            ("fleet_wins_total", "StartEgress requests this node won and started", &c.fleet_wins),
            (
                "fleet_declined_total",
                "StartEgress requests this node made no bid for (full, draining, Redis away)",
                &c.fleet_declined,
            ),
        ] {
            let g = IntGauge::new(name, help)?;
            g.set(v.load(Ordering::Relaxed) as i64);
            r.register(Box::new(g))?;
        }
        gauge(
            "fleet_redis_up",
            "Whether this node's Redis (fleet mode) is reachable",
            if fleet == 1 { 1.0 } else { 0.0 },
        )?;
    }
    let started = IntGauge::new("egress_started_total", "Egress jobs started since the service started")?;
    started.set(m.counters.started.load(Ordering::Relaxed) as i64);
    r.register(Box::new(started))?;
    let refused = IntGauge::new("egress_refused_total", "Egress requests refused for lack of CPU")?;
    refused.set(m.counters.refused.load(Ordering::Relaxed) as i64);
    r.register(Box::new(refused))?;
    gauge("cpu_budget_cores", "Cores admission may hand out", m.budget())?;
    gauge("cpu_committed_cores", "Cores held by running jobs (their admission cost)", m.committed())?;
    gauge("process_cpu_seconds", "CPU seconds this process has used", crate::usage::cpu_seconds())?;
    gauge("process_resident_memory_bytes", "Resident memory of the process", crate::usage::rss_bytes() as f64)?;
    gauge("accepting_jobs", "1 when the service would take a default room composite now", m.can_accept() as u8 as f64)?;

    let labels = &["egress_id"];
    let cpu = GaugeVec::new(
        Opts::new("job_cpu_seconds", "CPU seconds used by a running job's live threads and the processes it started"),
        labels,
    )?;
    let child_memory = IntGaugeVec::new(
        Opts::new(
            "job_child_resident_memory_bytes",
            "Resident memory of the processes a job started (Chromium, Xvfb, PulseAudio); 0 for a native job",
        ),
        labels,
    )?;
    let frames = IntGaugeVec::new(Opts::new("job_frames_rendered", "Composite frames encoded"), labels)?;
    let skipped = IntGaugeVec::new(Opts::new("job_frames_skipped", "Ticks without a frame to encode"), labels)?;
    let late = IntGaugeVec::new(Opts::new("job_frames_late", "Ticks rendered more than a frame late"), labels)?;
    let speed =
        GaugeVec::new(Opts::new("job_encoder_speed", "Frames encoded per frame of wall time (1 = real time)"), labels)?;
    let bytes = IntGaugeVec::new(Opts::new("job_bytes_written", "Bytes of the job's file so far"), labels)?;
    let uploaded = IntGaugeVec::new(Opts::new("job_bytes_uploaded", "Bytes uploaded to storage so far"), labels)?;
    let by_thread = crate::usage::cpu_seconds_by_thread_name();
    // Only browser jobs start processes; a scrape of native jobs reads no /proc tree.
    let processes =
        jobs.iter().any(|j| j.is_active() && !j.stats.children().is_empty()).then(crate::usage::ProcessTable::read);
    let now = crate::time::unix_ns();
    for j in jobs.iter().filter(|j| j.is_active()) {
        let l = [j.id.as_str()];
        let tree = processes.as_ref().map(|p| p.usage(&j.stats.children())).unwrap_or_default();
        let threads = by_thread.get(&j.thread_name).copied().unwrap_or(0.0);
        cpu.with_label_values(&l).set(threads + tree.cpu_seconds);
        child_memory.with_label_values(&l).set(tree.rss_bytes as i64);
        let n = j.stats.frames.load(Ordering::Relaxed);
        frames.with_label_values(&l).set(n as i64);
        skipped.with_label_values(&l).set(j.stats.skipped.load(Ordering::Relaxed) as i64);
        late.with_label_values(&l).set(j.stats.late_ticks.load(Ordering::Relaxed) as i64);
        if let Some(t0) = j.stats.started_at_ns() {
            let wall_frames = (now - t0) as f64 / 1e9 * j.fps as f64;
            speed.with_label_values(&l).set(if wall_frames > 0.0 { n as f64 / wall_frames } else { 0.0 });
        }
        let size = j.path.as_ref().and_then(|p| std::fs::metadata(p).ok()).map(|m| m.len()).unwrap_or(0);
        bytes.with_label_values(&l).set(size as i64);
        uploaded.with_label_values(&l).set(j.uploaded_bytes() as i64);
    }
    for c in [cpu, speed] {
        r.register(Box::new(c))?;
    }
    for c in [frames, skipped, late, bytes, uploaded, child_memory] {
        r.register(Box::new(c))?;
    }
    let mut out = Vec::new();
    TextEncoder::new().encode(&r.gather(), &mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}
