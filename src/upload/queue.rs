//! A job's uploader: files are handed over as they are finished (a segment as it closes,
//! then its playlist; an image as it is written; the recording and the manifest at the
//! end) and uploaded in that order by one task, so a playlist never names a segment that
//! is not in the bucket yet. A failed upload is retried with backoff (1 s doubling to
//! 10 s) for as long as the job runs, so the recording never waits on storage; with a
//! backup storage configured, the first upload the primary fails (after its SDK's own
//! retries) switches this output to the backup for good, as LiveKit does. A local copy
//! is removed only once its upload is confirmed; whatever could not be uploaded when the
//! job's time to finish runs out stays on disk and is reported.

use super::{ObjectStore, StorageSpec, UploadError, content_type, key};
use crate::sync::lock;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(10);

/// One configured storage, opened when first used.
struct Target {
    spec: StorageSpec,
    store: tokio::sync::OnceCell<Result<Arc<dyn ObjectStore>, UploadError>>,
}

impl Target {
    fn new(spec: StorageSpec) -> Self {
        Self { spec, store: tokio::sync::OnceCell::new() }
    }

    async fn put(&self, rel: &str, local: &Path) -> Result<String, UploadError> {
        let store = self.store.get_or_init(|| super::open(&self.spec)).await.clone()?;
        store.put(&key(&self.spec.prefix, rel), local, content_type(local)).await
    }

    fn describe(&self) -> String {
        self.spec.provider.describe()
    }
}

enum Msg {
    Put { local: PathBuf, delete_after: bool, generation: u64 },
    Close(oneshot::Sender<()>),
}

#[derive(Default)]
struct State {
    /// Latest uploaded location of each local file.
    locations: HashMap<PathBuf, String>,
    /// The newest generation queued per file (a playlist queued again makes older copies moot).
    generations: HashMap<PathBuf, u64>,
    next_generation: u64,
    /// Files given up on: path and why (the files stay on disk).
    failed: Vec<(PathBuf, String)>,
    primary_failed: bool,
    backup_used: bool,
    uploaded: u64,
    uploaded_bytes: u64,
    queued: u64,
    /// After this, failing uploads are no longer retried (set when the job finishes).
    deadline: Option<Instant>,
    last_error: Option<String>,
}

/// Hands files to the upload task; cheap to clone, callable from any thread.
#[derive(Clone)]
pub struct Uploader {
    tx: mpsc::UnboundedSender<Msg>,
    state: Arc<Mutex<State>>,
    output_dir: PathBuf,
    primary: String,
}

/// What an output's uploads came to.
#[derive(Debug, Clone, Default)]
pub(crate) struct UploadReport {
    pub failed: Vec<(PathBuf, String)>,
    pub backup_used: bool,
}

impl Uploader {
    /// Starts the upload task (on the current tokio runtime). Keys are the files' paths
    /// relative to `output_dir`, under each storage's prefix.
    pub fn start(primary: StorageSpec, backup: Option<StorageSpec>, output_dir: &Path, egress_id: &str) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let state = Arc::new(Mutex::new(State::default()));
        let primary_name = primary.provider.describe();
        let worker = Worker {
            primary: Target::new(primary),
            backup: backup.map(Target::new),
            state: state.clone(),
            output_dir: output_dir.to_path_buf(),
            egress_id: egress_id.to_string(),
        };
        tokio::spawn(worker.run(rx));
        Self { tx, state, output_dir: output_dir.to_path_buf(), primary: primary_name }
    }

    /// Queues `local` for upload; with `delete_after`, the local copy goes once it is up.
    /// A file queued again (a playlist) is uploaded once, in its newest state.
    pub(crate) fn put(&self, local: &Path, delete_after: bool) {
        let generation = {
            let mut s = lock(&self.state);
            s.next_generation += 1;
            s.queued += 1;
            let g = s.next_generation;
            s.generations.insert(local.to_path_buf(), g);
            g
        };
        let _ = self.tx.send(Msg::Put { local: local.to_path_buf(), delete_after, generation });
    }

    /// Where `local` was uploaded to (its latest upload), if it was.
    pub(crate) fn location_of(&self, local: &Path) -> Option<String> {
        lock(&self.state).locations.get(local).cloned()
    }

    pub(crate) fn backup_used(&self) -> bool {
        lock(&self.state).backup_used
    }

    /// Bytes uploaded so far (a playlist uploaded again counts again).
    pub(crate) fn uploaded_bytes(&self) -> u64 {
        lock(&self.state).uploaded_bytes
    }

    /// The storage this output uploads to (for logs and errors; no credentials).
    pub fn describe(&self) -> &str {
        &self.primary
    }

    /// The last upload error seen, if uploads are failing now.
    pub(crate) fn last_error(&self) -> Option<String> {
        lock(&self.state).last_error.clone()
    }

    pub fn output_dir(&self) -> &Path {
        &self.output_dir
    }

    /// Waits for everything queued so far; failing uploads are retried until `grace` has
    /// passed, then given up (their files stay on disk).
    pub(crate) async fn finish(&self, grace: Duration) -> UploadReport {
        lock(&self.state).deadline = Some(Instant::now() + grace);
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Close(tx)).is_ok() {
            let _ = rx.await;
        }
        let s = lock(&self.state);
        UploadReport { failed: s.failed.clone(), backup_used: s.backup_used }
    }
}

struct Worker {
    primary: Target,
    backup: Option<Target>,
    state: Arc<Mutex<State>>,
    output_dir: PathBuf,
    egress_id: String,
}

impl Worker {
    async fn run(self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        while let Some(msg) = rx.recv().await {
            match msg {
                Msg::Put { local, delete_after, generation } => {
                    // A copy queued again since (a playlist) goes up in its newest state only.
                    let newest = lock(&self.state).generations.get(&local).copied() == Some(generation);
                    if newest {
                        self.upload(&local, delete_after).await;
                    }
                }
                Msg::Close(done) => {
                    let _ = done.send(());
                }
            }
        }
    }

    fn deadline_passed(&self) -> bool {
        lock(&self.state).deadline.is_some_and(|d| Instant::now() >= d)
    }

    async fn upload(&self, local: &Path, delete_after: bool) {
        let rel = local.strip_prefix(&self.output_dir).unwrap_or(local).to_string_lossy().into_owned();
        let mut backoff = crate::time::Backoff::new(FIRST_RETRY, MAX_RETRY);
        loop {
            let use_backup = lock(&self.state).primary_failed;
            let target = match (&self.backup, use_backup) {
                (Some(b), true) => b,
                _ => &self.primary,
            };
            // Taken before the upload: a local copy may be removed right after it.
            let size = std::fs::metadata(local).map(|m| m.len()).unwrap_or(0);
            match target.put(&rel, local).await {
                Ok(location) => {
                    let mut s = lock(&self.state);
                    s.uploaded += 1;
                    s.uploaded_bytes += size;
                    s.last_error = None;
                    if use_backup {
                        s.backup_used = true;
                    }
                    s.locations.insert(local.to_path_buf(), location.clone());
                    drop(s);
                    tracing::debug!(egress_id = %self.egress_id, file = %rel, %location, "uploaded");
                    if delete_after && let Err(e) = std::fs::remove_file(local) {
                        tracing::warn!(egress_id = %self.egress_id, file = %local.display(), error = %e, "uploaded, but the local copy could not be removed");
                    }
                    return;
                }
                Err(e) => {
                    tracing::warn!(egress_id = %self.egress_id, file = %rel, error = %e, "upload failed");
                    lock(&self.state).last_error = Some(e.to_string());
                    if !use_backup && let Some(b) = &self.backup {
                        tracing::warn!(egress_id = %self.egress_id, backup = %b.describe(), "the primary storage failed: this output goes to the backup storage from now on");
                        lock(&self.state).primary_failed = true;
                        continue;
                    }
                    if !e.retry || self.deadline_passed() {
                        tracing::error!(egress_id = %self.egress_id, file = %local.display(), error = %e, "upload given up: the file stays on disk");
                        lock(&self.state).failed.push((local.to_path_buf(), e.to_string()));
                        return;
                    }
                    let until_deadline =
                        lock(&self.state).deadline.map(|d| d.saturating_duration_since(Instant::now()));
                    let wait = backoff.next_delay();
                    tokio::time::sleep(until_deadline.map_or(wait, |d| d.min(wait))).await;
                }
            }
        }
    }
}
