//! The Chromium path: a custom template (`custom_base_url`) or any web page (web
//! egress) recorded by opening it in Debian's Chromium on a virtual display of its
//! own, playing into an audio server of its own, and capturing both into the same
//! encode pipeline and outputs as the native path.
//!
//! Per job, on a thread of its own (the parent-death signal of every child process
//! follows it): Xvfb, PulseAudio, Chromium, a DevTools connection. The page is
//! navigated (3 tries of 30 s); an HTTP error is a page load error, an element of class
//! `error` a template error; capture starts when the page logs `START_RECORDING` (or
//! at once for a web page that does not await it) and ends on `END_RECORDING`, on stop
//! or when the duration ends. Everything the job started is stopped when it ends.

pub(crate) mod capture;
pub(crate) mod cdp;
pub(crate) mod chrome;
pub(crate) mod display;
pub(crate) mod process;
pub(crate) mod pulse;

use crate::pipeline::{EncodePipeline, PipelineError};
use crate::recorder::RecordSummary;
use crate::recording::{EndReason, RecordingSpec, RunContext, StopHandle};
use cdp::{Cdp, Event};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedReceiver;

/// Chromium lays a window out at least this wide.
const MIN_WIDTH: u32 = 500;
const NAVIGATION_TRIES: usize = 3;
const NAVIGATION_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub(crate) enum BrowserError {
    /// Xvfb, PulseAudio or Chromium could not be started or died.
    #[error("{0}")]
    Setup(String),
    /// Starting or preparing one of them failed at the OS level (a directory, a process, a thread).
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The page could not be loaded (a network error, or an HTTP status of 400 or more).
    #[error("page load error: {0}")]
    PageLoad(String),
    /// The page shows an element of class `error`.
    #[error("template error: {0}")]
    Template(String),
    /// The egress was stopped (or the page ended) before the page sent START_RECORDING.
    #[error("Start signal not received")]
    NoStartSignal,
    #[error("the page did not send START_RECORDING within {0:?}")]
    StartTimeout(Duration),
    #[error("capture failed: {0}")]
    Capture(#[source] capture::CaptureError),
    /// The DevTools connection to Chromium failed or a command was refused (a setup failure).
    #[error(transparent)]
    DevTools(#[from] cdp::CdpError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

/// A page to record.
#[derive(Clone)]
pub struct BrowserJob {
    /// The URL to open, complete (a template's with layout, url and token appended).
    pub url: String,
    /// Capture starts on the page's START_RECORDING (else once it has loaded).
    pub await_start_signal: bool,
    /// Give up when START_RECORDING has not come after this long (None: wait, as LiveKit does).
    pub start_signal_timeout: Option<Duration>,
    pub spec: RecordingSpec,
    pub run: RunContext,
    /// Chromium's web security off (LiveKit's `insecure`).
    pub insecure: bool,
    /// The job's scratch directory (profile, audio server); removed at the end.
    pub work_dir: PathBuf,
}

/// Records the page until END_RECORDING, `stop` or the duration; every process the job
/// started is gone when this returns.
pub(crate) async fn record(job: BrowserJob, stop: StopHandle) -> Result<RecordSummary, BrowserError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let name = job.run.thread_name.clone();
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            let dir = job.work_dir.clone();
            let r = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt.block_on(run(job, stop)),
                Err(e) => Err(BrowserError::Io { what: "a runtime for the browser job".into(), source: e }),
            };
            let _ = std::fs::remove_dir_all(dir);
            let _ = tx.send(r);
        })
        .map_err(|e| BrowserError::Io { what: "cannot start the browser job's thread".into(), source: e })?;
    rx.await.unwrap_or_else(|_| Err(BrowserError::Setup("the browser job's thread died".into())))
}

/// What a page tells its recorder on the console (LiveKit's template contract).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PageSignal {
    StartRecording,
    EndRecording,
}

/// The page's START_RECORDING / END_RECORDING, if `e` is one logged after `since_ms`.
fn signal(e: &Event, since_ms: f64) -> Option<PageSignal> {
    if e.method != "Runtime.consoleAPICalled" {
        return None;
    }
    // A console message from before this navigation (Runtime.enable replays them) is stale.
    if e.params["timestamp"].as_f64().is_some_and(|t| t + 1.0 < since_ms) {
        return None;
    }
    e.params["args"].as_array()?.iter().find_map(|a| match a["value"].as_str() {
        Some("START_RECORDING") => Some(PageSignal::StartRecording),
        Some("END_RECORDING") => Some(PageSignal::EndRecording),
        _ => None,
    })
}

/// The text of the page's first element of class `error`, if it has one.
async fn template_error(cdp: &Cdp) -> Option<String> {
    let v = cdp
        .eval("(() => { const e = document.querySelector('.error'); return e ? ((e.innerText || e.textContent || '').trim() || 'error') : '' })()")
        .await
        .ok()?;
    v.as_str().filter(|s| !s.is_empty()).map(String::from)
}

/// Loads the page (3 tries of 30 s); returns the wall time (ms) navigation began and
/// whether START_RECORDING / END_RECORDING was already logged.
async fn navigate(
    cdp: &Cdp,
    events: &mut UnboundedReceiver<Event>,
    url: &str,
) -> Result<(f64, bool, bool), BrowserError> {
    let mut last = String::new();
    for attempt in 1..=NAVIGATION_TRIES {
        let since = crate::time::unix_ns() as f64 / 1e6;
        let r = cdp.call("Page.navigate", json!({ "url": url })).await?;
        if let Some(err) = r["errorText"].as_str().filter(|t| !t.is_empty()) {
            // A refused or reset connection may be a server still starting: try again.
            last = err.to_string();
            if err.contains("ERR_CONNECTION") && attempt < NAVIGATION_TRIES {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            return Err(BrowserError::PageLoad(last));
        }
        let loader = r["loaderId"].as_str().unwrap_or_default().to_string();
        let (mut started, mut ended, mut status) = (false, false, None::<(u64, String)>);
        let deadline = tokio::time::Instant::now() + NAVIGATION_TIMEOUT;
        let loaded = loop {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Err(_) => break false,
                Ok(None) => return Err(BrowserError::Setup("Chromium closed the DevTools connection".into())),
                Ok(Some(e)) => {
                    match signal(&e, since) {
                        Some(PageSignal::StartRecording) => started = true,
                        Some(PageSignal::EndRecording) => ended = true,
                        None => {}
                    }
                    if e.method == "Network.responseReceived"
                        && e.params["type"] == "Document"
                        && e.params["loaderId"].as_str() == Some(loader.as_str())
                    {
                        let resp = &e.params["response"];
                        status = Some((
                            resp["status"].as_u64().unwrap_or(0),
                            resp["statusText"].as_str().unwrap_or("").into(),
                        ));
                    }
                    if e.method == "Page.loadEventFired" {
                        break true;
                    }
                }
            }
        };
        if let Some((code, text)) = &status
            && *code >= 400
        {
            return Err(BrowserError::PageLoad(format!("{code} {text}").trim().to_string()));
        }
        if loaded {
            return Ok((since, started, ended));
        }
        last = format!("the page did not load within {}s", NAVIGATION_TIMEOUT.as_secs());
        tracing::warn!(attempt, "{last}; trying again");
    }
    Err(BrowserError::PageLoad(last))
}

async fn run(job: BrowserJob, stop: StopHandle) -> Result<RecordSummary, BrowserError> {
    let begun = Instant::now();
    std::fs::create_dir_all(&job.work_dir)
        .map_err(|e| BrowserError::Io { what: job.work_dir.display().to_string(), source: e })?;
    let enc = job.spec.encoding.clone();
    let media = job.spec.media;
    let (w, h) = (enc.width, enc.height);
    // One pixel more than the window each way: a window that fills the screen exactly is
    // laid out a pixel smaller (livekit/livekit#3878).
    let display = display::Display::start(w.max(MIN_WIDTH) + 1, h + 1)?;
    let audio = if !media.audio() { None } else { Some(pulse::Pulse::start(&job.work_dir)?) };
    let env = audio.as_ref().map(|a| a.client_env(&job.work_dir)).unwrap_or_default();
    let mut chrome = chrome::Chrome::start(&display.name, w, h, &job.work_dir, &env, job.insecure)?;
    let children = [Some(display.pid()), audio.as_ref().map(|a| a.pid()), Some(chrome.process.pid())];
    job.run.stats.set_children(children.into_iter().flatten().collect());
    let ws = chrome.page_ws().await?;
    let (cdp, mut events) = Cdp::connect(&ws).await?;
    for domain in ["Page.enable", "Runtime.enable", "Network.enable"] {
        cdp.call(domain, Value::Null).await?;
    }
    if w < MIN_WIDTH {
        // Narrower than Chromium's smallest window: the page is laid out at the asked width anyway.
        cdp.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": w, "height": h, "deviceScaleFactor": 1, "mobile": false }),
        )
        .await?;
    }
    let (since, mut started, mut ended) = navigate(&cdp, &mut events, &job.url).await?;
    if let Some(text) = template_error(&cdp).await {
        return Err(BrowserError::Template(text));
    }
    let mut recheck = tokio::time::interval(Duration::from_millis(250));
    if job.await_start_signal {
        let deadline = job.start_signal_timeout.map(|t| tokio::time::Instant::now() + t);
        while !started {
            if ended {
                return Err(BrowserError::NoStartSignal);
            }
            tokio::select! {
                _ = stop.wait() => return Err(BrowserError::NoStartSignal),
                e = events.recv() => match e {
                    Some(e) => match signal(&e, since) {
                        Some(PageSignal::StartRecording) => started = true,
                        Some(PageSignal::EndRecording) => ended = true,
                        None => {}
                    },
                    None => return Err(BrowserError::Setup("Chromium closed the DevTools connection".into())),
                },
                _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => {
                    return Err(BrowserError::StartTimeout(job.start_signal_timeout.unwrap_or_default()));
                }
                _ = recheck.tick() => {
                    // A template may fail after it loaded (a refused token, a lost connection).
                    if let Some(text) = template_error(&cdp).await {
                        return Err(BrowserError::Template(text));
                    }
                    if !chrome.process.alive() {
                        return Err(BrowserError::Setup("Chromium exited before the page started recording".into()));
                    }
                }
            }
        }
    }
    tracing::info!(after_ms = begun.elapsed().as_millis() as u64, "the page started recording");
    let pipeline = Arc::new(EncodePipeline::start_live(&job.spec, &job.run.thread_name)?);
    let t0_us = crate::time::unix_us();
    let cap = capture::Capture::start(
        capture::CaptureConfig {
            display: display.name.clone(),
            width: w,
            height: h,
            fps: enc.framerate.max(1),
            pulse_server: audio.as_ref().map(|a| a.server.clone()),
            video: media.video(),
            t0_us,
            thread_name: job.run.thread_name.clone(),
        },
        pipeline.clone(),
        job.run.stats.clone(),
    )
    .map_err(BrowserError::Capture)?;
    let first_frame_after = begun.elapsed();
    let duration_end = job.spec.limit.map(|d| tokio::time::Instant::now() + d);
    let mut failure = None;
    let ended_by = loop {
        if ended {
            break EndReason::SourceClosed("the page sent END_RECORDING".into());
        }
        tokio::select! {
            _ = stop.wait() => break EndReason::Stopped,
            e = events.recv() => match e {
                Some(e) => if signal(&e, since) == Some(PageSignal::EndRecording) { ended = true },
                None => {
                    failure = Some(BrowserError::Setup("Chromium closed the DevTools connection during the recording".into()));
                    break EndReason::SourceClosed("Chromium went away".into());
                }
            },
            _ = async { match duration_end { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => {
                break EndReason::DurationEnded;
            }
            _ = recheck.tick() => {
                if cap.failed() {
                    break EndReason::SourceClosed("capture stopped".into());
                }
                if !chrome.process.alive() {
                    failure = Some(BrowserError::Setup("Chromium exited during the recording".into()));
                    break EndReason::SourceClosed("Chromium exited".into());
                }
            }
        }
    };
    let last_video_us = cap.last_video_us.clone();
    let captured = cap.stop();
    let pipeline =
        Arc::try_unwrap(pipeline).map_err(|_| BrowserError::Setup("the encode pipeline is still shared".into()))?;
    let summary = pipeline.finish()?;
    drop(cdp);
    chrome.process.stop(Duration::from_secs(2));
    captured.map_err(BrowserError::Capture)?;
    if let Some(f) = failure {
        return Err(f);
    }
    let video_s =
        last_video_us.load(std::sync::atomic::Ordering::SeqCst) as f64 / 1e6 + 1.0 / enc.framerate.max(1) as f64;
    let audio_s = summary.audio_blocks as f64 * 0.01;
    let duration_s = if media.video() { video_s.max(0.0) } else { audio_s };
    Ok(RecordSummary {
        file: summary,
        room_name: String::new(),
        room_sid: String::new(),
        renderer: "chromium".into(),
        participants: Vec::new(),
        tracks: Vec::new(),
        duration_s,
        first_frame_after: Some(first_frame_after),
        late_ticks: 0,
        signal_resumed: 0,
        audio: Vec::new(),
        ended_by,
    })
}
