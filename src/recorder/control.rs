//! What the outside sees of, and does to, a running recording: its layout can be
//! switched (UpdateLayout), its progress read (metrics, EgressInfo), its start awaited.

use crate::layout::Layout;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// The layout a recording draws, switchable while it runs; the compositor reads it
/// at every tick.
#[derive(Clone)]
pub struct LiveLayout(Arc<Mutex<Arc<Layout>>>);

impl LiveLayout {
    pub fn new(layout: Layout) -> Self {
        Self(Arc::new(Mutex::new(Arc::new(layout))))
    }

    pub fn set(&self, layout: Layout) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(layout);
    }

    pub fn get(&self) -> Arc<Layout> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
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
    pub fn mark_started(&self) {
        self.started_at_ns.store(unix_ns(), Ordering::SeqCst);
        self.started.notify_waiters();
    }

    pub fn set_children(&self, pids: Vec<u32>) {
        *self.children.lock().unwrap_or_else(|e| e.into_inner()) = pids;
    }

    pub fn children(&self) -> Vec<u32> {
        self.children.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn started_at_ns(&self) -> Option<i64> {
        Some(self.started_at_ns.load(Ordering::SeqCst)).filter(|t| *t != 0)
    }

    /// Returns once the output has started.
    pub async fn wait_started(&self) {
        loop {
            let notified = self.started.notified();
            if self.started_at_ns().is_some() {
                return;
            }
            notified.await;
        }
    }
}

pub fn unix_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}
