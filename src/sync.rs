//! Shared state between a job's threads and tasks. A leaf: anything may use it.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, taking the state over if a thread panicked while holding it. Every lock in
/// Tessera guards plain state (counters, lists, an EgressInfo) that stays usable after a
/// panic, and a panic in one job must not take down the service's other jobs.
pub(crate) fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
