//! What the outside sees of, and does to, a running recording: its layout can be
//! switched (UpdateLayout), its progress read (metrics, EgressInfo), its start awaited,
//! and it can be stopped.

use crate::layout::Layout;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The layout a recording draws, switchable while it runs; the compositor reads it
/// at every tick.
#[derive(Clone)]
pub struct LiveLayout(Arc<Mutex<Arc<Layout>>>);

impl LiveLayout {
    pub fn new(layout: Layout) -> Self {
        Self(Arc::new(Mutex::new(Arc::new(layout))))
    }

    pub fn set(&self, layout: Layout) {
        *crate::sync::lock(&self.0) = Arc::new(layout);
    }

    pub fn get(&self) -> Arc<Layout> {
        crate::sync::lock(&self.0).clone()
    }
}

/// Counters a running recording keeps up to date.
#[derive(Default)]
pub struct LiveStats {
    /// Composite frames handed to the encoder.
    pub frames: AtomicU64,
    /// Ticks that produced no frame (a tile's first frame not decoded yet).
    pub skipped: AtomicU64,
    /// Ticks rendered more than a frame late.
    pub late_ticks: AtomicU64,
    /// When the output started (Unix ns), 0 before.
    started_at_ns: AtomicI64,
    started: tokio::sync::Notify,
    /// Processes the job started (a browser job's Chromium, Xvfb, PulseAudio), whose CPU
    /// and memory are the job's too.
    children: Mutex<Vec<u32>>,
}

impl LiveStats {
    pub(crate) fn mark_started(&self) {
        self.started_at_ns.store(crate::time::unix_ns(), Ordering::SeqCst);
        self.started.notify_waiters();
    }

    pub(crate) fn set_children(&self, pids: Vec<u32>) {
        *crate::sync::lock(&self.children) = pids;
    }

    pub(crate) fn children(&self) -> Vec<u32> {
        crate::sync::lock(&self.children).clone()
    }

    pub(crate) fn started_at_ns(&self) -> Option<i64> {
        Some(self.started_at_ns.load(Ordering::SeqCst)).filter(|t| *t != 0)
    }

    /// Returns once the output has started.
    pub(crate) async fn wait_started(&self) {
        loop {
            let notified = self.started.notified();
            if self.started_at_ns().is_some() {
                return;
            }
            notified.await;
        }
    }
}

/// Stops a running recording (SIGINT, an API call).
#[derive(Clone, Default)]
pub struct StopHandle(Arc<(AtomicBool, tokio::sync::Notify)>);

impl StopHandle {
    pub fn stop(&self) {
        self.0.0.store(true, Ordering::SeqCst);
        self.0.1.notify_waiters();
    }

    pub fn stopped(&self) -> bool {
        self.0.0.load(Ordering::SeqCst)
    }

    pub async fn wait(&self) {
        loop {
            let notified = self.0.1.notified();
            if self.stopped() {
                return;
            }
            notified.await;
        }
    }
}
