//! devroom: a small room server speaking LiveKit's client protocol, for the demo
//! and the tests. One process, no TURN, not a production SFU: point Tessera at a
//! LiveKit server for real rooms.

pub mod media;
pub mod room;
pub mod signal;
pub mod synthetic;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub struct DevRoomConfig {
    pub bind: SocketAddr,
    pub api_key: String,
    pub api_secret: String,
    /// An empty room closes after this long.
    pub empty_timeout: Duration,
    /// Loss and jitter on the media sent to subscribers (none by default).
    pub impair: crate::peer::impair::Impairment,
}

/// A running devroom: its address and its rooms.
pub struct DevRoom {
    pub addr: SocketAddr,
    pub registry: Arc<room::Registry>,
    task: tokio::task::JoinHandle<()>,
}

impl DevRoom {
    /// Binds and serves in the background (on the current tokio runtime).
    pub async fn start(cfg: DevRoomConfig) -> std::io::Result<Self> {
        let registry = room::Registry::new(cfg.empty_timeout, cfg.impair);
        let server = Arc::new(signal::Server {
            registry: registry.clone(),
            keys: crate::auth::Keys::new([(cfg.api_key.clone(), cfg.api_secret.clone())]),
        });
        let listener = tokio::net::TcpListener::bind(cfg.bind).await?;
        let addr = listener.local_addr()?;
        let app = signal::router(server);
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!("devroom stopped: {e}");
            }
        });
        tracing::info!(%addr, "devroom listening: ws://{addr}");
        Ok(Self { addr, registry, task })
    }

    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Serves until the process ends.
    pub async fn wait(mut self) {
        let task = std::mem::replace(&mut self.task, tokio::spawn(async {}));
        let _ = task.await;
    }
}

impl Drop for DevRoom {
    fn drop(&mut self) {
        self.task.abort();
    }
}
