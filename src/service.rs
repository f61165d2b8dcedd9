//! `tessera serve`: the Egress API, health and metrics on one listener (and on
//! LiveKit's `health_port` / `prometheus_port` when set), the job manager behind
//! them, and a graceful shutdown: the first SIGTERM (or SIGINT) stops taking jobs
//! and lets the running ones finish (for `drain_timeout`, then stops them, each
//! file finalised); a second one stops every job at once.

use crate::api::{self, ApiState};
use crate::auth::Keys;
use crate::config::{Loaded, Source};
use crate::egress::Manager;
use crate::layout::LayoutSet;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};

/// After the second signal, how long jobs get to finalise their files.
const HARD_STOP_GRACE: Duration = Duration::from_secs(3);

pub async fn serve(loaded: Loaded, layouts: LayoutSet) -> anyhow::Result<()> {
    let Loaded { config, unknown_keys, source } = loaded;
    match &source {
        Source::File(p) => tracing::info!(file = %p.display(), "configuration loaded"),
        Source::Env(v) => tracing::info!(variable = v, "configuration loaded"),
        Source::Defaults => tracing::info!("no configuration given; using defaults"),
    }
    for k in &unknown_keys {
        match crate::config::why_unused(k) {
            Some(why) => tracing::warn!(key = %k, why, "a LiveKit egress key with no effect in Tessera"),
            None => tracing::warn!(key = %k, "unknown configuration key ignored"),
        }
    }
    if !config.cluster_id.is_empty() && config.redis.is_none() {
        // Same words as the other keys with no effect, so log pipelines match one message.
        let why = "it picks the fleet's StartEgress topic, and without redis this node is in no fleet";
        tracing::warn!(key = "cluster_id", why, "a LiveKit egress key with no effect in Tessera");
    }
    for k in config.legacy_keys() {
        tracing::warn!(
            key = k,
            "an old LiveKit egress key: read as storage: (or backup: for backup_storage); LiveKit 1.9 and later ignore it"
        );
    }
    let keys = Keys::new([(config.api_key.clone(), config.api_secret.clone())]);
    let (listen, health_port, prometheus_port, drain_timeout) =
        (config.listen.clone(), config.health_port, config.prometheus_port, config.drain_timeout);
    let manager = Manager::new(config, layouts)?;
    // With `redis`, a node of the LiveKit deployment's egress fleet too.
    let fleet = match &manager.config().redis {
        Some(redis) => Some(crate::fleet::Node::join(manager.clone(), redis, &manager.config().cluster_id).await?),
        None => None,
    };
    let app = api::router(ApiState { manager: manager.clone(), keys })
        .merge(status_routes(manager.clone()))
        .route("/", get(|| async { "Tessera egress service: POST /twirp/livekit.Egress/<Method>\n" }));
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    let addr = listener.local_addr()?;
    let (stop_http, _) = tokio::sync::watch::channel(false);
    let mut servers = vec![spawn_server(listener, app, stop_http.subscribe())];
    for (port, path) in [(health_port, "/"), (prometheus_port, "/metrics")] {
        if port != 0 {
            let l = tokio::net::TcpListener::bind(("0.0.0.0", port)).await?;
            let router = if path == "/" {
                Router::new().route("/", get(health)).with_state(manager.clone())
            } else {
                Router::new().route("/metrics", get(metrics)).with_state(manager.clone())
            };
            servers.push(spawn_server(l, router, stop_http.subscribe()));
        }
    }
    tracing::info!(%addr, output_dir = %manager.output_dir().display(), budget_cores = manager.budget(), "serving the Egress API");
    // Tests and scripts read the address from here (the port may have been chosen by the system).
    println!("tessera serve: listening on {addr}");

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let next_signal = async |term: &mut tokio::signal::unix::Signal, int: &mut tokio::signal::unix::Signal| {
        tokio::select! { _ = term.recv() => "SIGTERM", _ = int.recv() => "SIGINT" }
    };
    let first = next_signal(&mut term, &mut int).await;
    manager.drain();
    if let Some(f) = &fleet {
        f.stop_bidding();
    }
    tracing::info!(signal = first, "draining: no new jobs; running jobs finish");
    let finish = async {
        if let Some(t) = drain_timeout.filter(|t| !t.is_zero())
            && tokio::time::timeout(t, manager.all_ended()).await.is_err()
        {
            tracing::info!("drain timeout: stopping the running jobs");
        }
        manager.stop_all();
        manager.all_ended().await;
    };
    tokio::select! {
        _ = finish => {}
        s = next_signal(&mut term, &mut int) => {
            tracing::warn!(signal = s, "second signal: stopping every job now");
            manager.stop_all();
            let _ = tokio::time::timeout(HARD_STOP_GRACE, manager.all_ended()).await;
        }
    }
    if let Some(f) = &fleet {
        f.reported(Duration::from_secs(10)).await;
    }
    let _ = stop_http.send(true);
    for s in servers {
        let _ = tokio::time::timeout(Duration::from_secs(2), s).await;
    }
    tracing::info!("stopped");
    Ok(())
}

fn spawn_server(
    listener: tokio::net::TcpListener,
    app: Router,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
            tracing::error!(error = %e, "HTTP server failed");
        }
    })
}

fn status_routes(m: Arc<Manager>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/healthz", get(|| async { "OK\n" }))
        .route("/metrics", get(metrics))
        .with_state(m)
}

/// 200 when the service would take a room composite now, 503 (with the reason) when
/// it is full or shutting down; `/healthz` answers liveness alone.
async fn health(State(m): State<Arc<Manager>>) -> impl IntoResponse {
    let mut body = serde_json::json!({
        "accepting": m.can_accept(),
        "draining": m.draining(),
        "budget_cores": m.budget(),
        "committed_cores": m.committed(),
    });
    // Fleet mode: whether Redis, and so livekit-server's jobs, can reach this node.
    match m.counters.fleet_redis.load(std::sync::atomic::Ordering::Relaxed) {
        0 => {}
        s => body["redis_reachable"] = serde_json::json!(s == 1),
    }
    let status = if m.can_accept() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, [("content-type", "application/json")], body.to_string())
}

async fn metrics(State(m): State<Arc<Manager>>) -> impl IntoResponse {
    ([("content-type", "text/plain; version=0.0.4")], crate::metrics::render(&m))
}
