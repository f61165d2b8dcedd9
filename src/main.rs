use anyhow::{Context, Result, bail};
use clap::Parser;
use std::time::{Duration, Instant};
use tessera::cli::{
    BenchArgs, Cli, Command, DemoArgs, DevroomArgs, LayoutsArgs, OutputSize, PreviewArgs, RecordArgs, ServeArgs,
};
use tessera::config::{EncodingOptions, Preset};
use tessera::layout::{LayoutSet, compose};
use tessera::preview::synthetic::{RoomOptions, SyntheticRoom};
use tessera::preview::{self, PreviewJob};
use tessera::render::{self, Backend};
use tessera::usage::{cpu_seconds, peak_rss_mib};

fn main() {
    let cli = Cli::parse();
    // The demo prints its own summary; its room's comings and goings would drown it.
    let mut default_log =
        if matches!(cli.command, Command::Demo(_)) { "warn" } else { "warn,tessera=info" }.to_string();
    // serve reads its log level and format from its configuration, so that is loaded first.
    let mut json = false;
    let serve_config = match &cli.command {
        Command::Serve(a) => match load_service_config(a) {
            Ok(c) => {
                default_log = format!("warn,tessera={}", c.config.log_level());
                json = c.config.logging.json;
                Some(c)
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                std::process::exit(2);
            }
        },
        _ => None,
    };
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("TESSERA_LOG").unwrap_or_else(|_| default_log.as_str().into());
    // Colour only on a terminal: a log file or a pipeline gets plain text (or JSON lines).
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    if json {
        fmt.json().flatten_event(true).init()
    } else {
        fmt.init()
    }
    let result = match cli.command {
        Command::Preview(a) => preview_cmd(*a),
        Command::Layouts(a) => layouts_cmd(a),
        Command::Devroom(a) => devroom_cmd(a),
        Command::Record(a) => record_cmd(*a),
        Command::Demo(a) => demo_cmd(a),
        Command::Serve(_) => serve_cmd(serve_config),
        Command::BenchRender(a) => bench_render(a),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(2);
    }
}

fn load_service_config(a: &ServeArgs) -> Result<tessera::config::service::Loaded> {
    let path = a.config.clone().or_else(|| std::env::var_os("EGRESS_CONFIG_FILE").map(Into::into));
    Ok(tessera::config::service::ServiceConfig::load(path.as_deref())?)
}

fn serve_cmd(loaded: Option<tessera::config::service::Loaded>) -> Result<()> {
    let loaded = loaded.context("no configuration")?;
    let layouts = layout_set(loaded.config.layouts_dir.as_deref())?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(tessera::service::serve(loaded, layouts))
}

fn layout_set(dir: Option<&std::path::Path>) -> Result<LayoutSet> {
    Ok(match dir {
        Some(d) => LayoutSet::load_dir(d)?,
        None => LayoutSet::builtin()?,
    })
}

fn encoding(size: &OutputSize) -> Result<EncodingOptions> {
    let mut opts = match &size.preset {
        Some(p) => p.parse::<Preset>()?.options(),
        None => EncodingOptions::default(),
    };
    if let (Some(w), Some(h)) = (size.width, size.height) {
        opts.width = w;
        opts.height = h;
    }
    if let Some(fps) = size.fps {
        opts.framerate = fps;
    }
    if let Some(v) = size.video_bitrate {
        opts.video_bitrate_kbps = v;
    }
    if let Some(v) = size.key_frame_interval {
        opts.key_frame_interval = v;
    }
    if let Some(v) = &size.h264_profile {
        opts.profile = v.parse()?;
    }
    if let Some(v) = size.audio_bitrate {
        opts.audio_bitrate_kbps = v;
    }
    if let Some(v) = size.audio_frequency {
        opts.audio_frequency = v;
    }
    opts.validate()?;
    Ok(opts)
}

/// 1-based participant numbers from the command line to 0-based indices.
fn indices(v: &[usize], n: usize, flag: &str) -> Result<Vec<usize>> {
    v.iter()
        .map(|&i| if i >= 1 && i <= n { Ok(i - 1) } else { bail!("--{flag} {i}: participants are numbered 1 to {n}") })
        .collect()
}

fn preview_cmd(a: PreviewArgs) -> Result<()> {
    let set = layout_set(a.layouts_dir.as_deref())?;
    let layout = set.resolve(&a.layout)?;
    let encoding = encoding(&a.size)?;
    if !(0.1..=86_400.0).contains(&a.duration) {
        bail!("--duration {} is out of range: 0.1 to 86400 seconds", a.duration);
    }
    let n = a.participants;
    if n > 100 {
        bail!("--participants {n} is out of range: at most 100");
    }
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
        duration: Duration::from_secs_f64(a.duration),
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

fn devroom_cmd(a: DevroomArgs) -> Result<()> {
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    if !(0.0..=100.0).contains(&a.loss_percent) {
        bail!("--loss-percent {} is out of range: 0 to 100", a.loss_percent);
    }
    rt.block_on(async {
        let codec = match a.codec.to_ascii_lowercase().as_str() {
            "vp8" => tessera::encode::VideoCodec::Vp8,
            "h264" => tessera::encode::VideoCodec::H264,
            other => bail!("--codec {other}: use vp8 or h264"),
        };
        let synthetic = |url: String| {
            (a.synthetic > 0).then(|| {
                let o = tessera::devroom::synthetic::SyntheticOptions {
                    url,
                    api_key: a.api_key.clone(),
                    api_secret: a.api_secret.clone(),
                    room: a.room.clone(),
                    count: a.synthetic,
                    screen_share: a.screen_share,
                    late_joiner: a.late_joiner,
                    leaver: a.leaver,
                    mute_toggle: a.mute_toggle,
                    wall_clock_marks: a.wall_clock_marks,
                    fps: 15,
                    codec,
                    duration: None,
                    ..Default::default()
                };
                println!("{} synthetic participants in room {:?}", a.synthetic, a.room);
                tokio::spawn(tessera::devroom::synthetic::run(o))
            })
        };
        if let Some(url) = &a.publish_to {
            let Some(publishers) = synthetic(url.clone()) else { bail!("--publish-to needs --synthetic N") };
            tokio::select! {
                r = publishers => r.context("the publishers stopped")??,
                _ = tokio::signal::ctrl_c() => {}
            }
            return Ok(());
        }
        let room = tessera::devroom::DevRoom::start(tessera::devroom::DevRoomConfig {
            bind: a.bind,
            api_key: a.api_key.clone(),
            api_secret: a.api_secret.clone(),
            empty_timeout: Duration::from_secs(a.empty_timeout),
            impair: tessera::devroom::impair::Impairment {
                loss: a.loss_percent / 100.0,
                jitter: Duration::from_millis(a.jitter_ms),
            },
        })
        .await
        .with_context(|| format!("binding {}", a.bind))?;
        println!("devroom: {}", room.url());
        let synthetic = synthetic(room.url());
        tokio::select! {
            _ = room.wait() => {}
            _ = tokio::signal::ctrl_c() => {}
            Some(Ok(Err(e))) = async { match synthetic { Some(t) => Some(t.await), None => None } } => {
                return Err(e.into());
            }
        }
        Ok(())
    })
}

fn record_cmd(a: RecordArgs) -> Result<()> {
    let set = layout_set(a.layouts_dir.as_deref())?;
    let layout = set.resolve(&a.layout)?;
    let encoding = encoding(&a.size)?;
    let token = match (&a.token, &a.room) {
        (Some(t), _) => t.clone(),
        (None, Some(room)) => {
            tessera::recorder::token::mint(&a.api_key, &a.api_secret, room, &tessera::egress::new_egress_id())?
        }
        (None, None) => bail!("--room is needed to mint a token (or give --token)"),
    };
    let mut job = tessera::recorder::RecordJob::new(&a.url, &token, layout, encoding, &a.output);
    job.audio_only = a.audio_only;
    job.backend = a.renderer.parse::<Backend>().map_err(anyhow::Error::msg)?;
    job.video_delay = Duration::from_millis(a.delay_ms);
    if let Some(d) = a.duration {
        if !(0.1..=86_400.0 * 7.0).contains(&d) {
            bail!("--duration {d} is out of range: 0.1 s to 7 days");
        }
        job.duration = Some(Duration::from_secs_f64(d));
    }
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async move { record_and_report(job, &a.layout).await })
}

/// Records until the job ends or a signal stops it, then prints the summary with the CPU it took.
async fn record_and_report(job: tessera::recorder::RecordJob, layout: &str) -> Result<()> {
    let stop = tessera::recorder::StopHandle::default();
    stop_on_signals(stop.clone());
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    let s = tessera::recorder::record(job, stop).await.context("recording")?;
    print_record_summary(&s, layout, cpu_seconds() - cpu0, t0.elapsed().as_secs_f64());
    Ok(())
}

/// SIGINT and SIGTERM end the recording cleanly (the file is finalised).
fn stop_on_signals(stop: tessera::recorder::StopHandle) {
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

fn print_record_summary(s: &tessera::recorder::RecordSummary, layout: &str, cpu: f64, wall: f64) {
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

/// devroom, synthetic participants (one shares its screen, one joins late, one
/// leaves, one toggles its microphone, all in speaking turns) and a recorder, in
/// one process.
fn demo_cmd(a: DemoArgs) -> Result<()> {
    let set = LayoutSet::builtin()?;
    let layout = set.resolve(&a.layout)?;
    if let Some(dir) = a.output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async move {
        let (key, secret) = ("devkey", "secret");
        let room = tessera::devroom::DevRoom::start(tessera::devroom::DevRoomConfig {
            bind: "127.0.0.1:0".parse()?,
            api_key: key.into(),
            api_secret: secret.into(),
            empty_timeout: Duration::from_secs(5),
            impair: Default::default(),
        })
        .await?;
        let synthetic = tessera::devroom::synthetic::SyntheticOptions {
            url: room.url(),
            api_key: key.into(),
            api_secret: secret.into(),
            room: "demo".into(),
            count: 4,
            screen_share: true,
            late_joiner: true,
            leaver: true,
            mute_toggle: true,
            duration: Some(Duration::from_secs_f64(a.duration + 8.0)),
            ..Default::default()
        };
        println!("devroom at {} with 4 synthetic participants in room \"demo\"", room.url());
        let participants = tokio::spawn(tessera::devroom::synthetic::run(synthetic));
        let token = tessera::recorder::token::mint(key, secret, "demo", &tessera::egress::new_egress_id())?;
        let mut job =
            tessera::recorder::RecordJob::new(&room.url(), &token, layout, EncodingOptions::default(), &a.output);
        job.duration = Some(Duration::from_secs_f64(a.duration));
        record_and_report(job, &a.layout).await?;
        println!("  (CPU includes devroom and the synthetic participants' encoders, all in this process)");
        participants.abort();
        Ok(())
    })
}

fn layouts_cmd(a: LayoutsArgs) -> Result<()> {
    let set = layout_set(a.layouts_dir.as_deref())?;
    for n in set.names() {
        println!("{n}");
    }
    Ok(())
}

/// Render-and-readback alone: pre-made moving inputs, the layout composed per
/// frame, CPU time measured around the render loop only.
fn bench_render(a: BenchArgs) -> Result<()> {
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
