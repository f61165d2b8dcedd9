//! The Redis side of psrpc: PUBLISH (and the `SET NX` lock of queue methods) on one
//! reconnecting connection, and one pub/sub connection whose channels are added and removed
//! as servers register and jobs end. After a lost connection the subscriber reconnects with
//! backoff and subscribes every channel again; `is_up` says whether it is connected now.

use crate::sync::lock;
use base64::Engine;
use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use sha2::Digest;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("redis at {address}: {source}")]
    Connect {
        address: String,
        #[source]
        source: redis::RedisError,
    },
    #[error("redis: {0}")]
    Command(#[from] redis::RedisError),
}

type Routes = Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Vec<u8>>>>>;

enum Cmd {
    Subscribe(String, oneshot::Sender<()>),
    Unsubscribe(String),
}

pub(crate) struct Bus {
    conn: ConnectionManager,
    routes: Routes,
    cmds: mpsc::UnboundedSender<Cmd>,
    up: watch::Receiver<bool>,
}

/// Messages of one channel; unsubscribed when dropped.
pub(crate) struct Subscription {
    pub rx: mpsc::UnboundedReceiver<Vec<u8>>,
    channel: String,
    routes: Routes,
    cmds: mpsc::UnboundedSender<Cmd>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        lock(&self.routes).remove(&self.channel);
        let _ = self.cmds.send(Cmd::Unsubscribe(std::mem::take(&mut self.channel)));
    }
}

impl Bus {
    /// Connects both connections (the first attempt must succeed: a wrong address is a
    /// configuration error, said at start).
    pub(crate) async fn connect(url: &str, address: &str) -> Result<Arc<Bus>, BusError> {
        let client =
            redis::Client::open(url).map_err(|source| BusError::Connect { address: address.into(), source })?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(3)))
            .set_number_of_retries(2);
        let conn = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(|source| BusError::Connect { address: address.into(), source })?;
        let first =
            client.get_async_pubsub().await.map_err(|source| BusError::Connect { address: address.into(), source })?;
        let routes = Routes::default();
        let (cmds, cmd_rx) = mpsc::unbounded_channel();
        let (up_tx, up) = watch::channel(true);
        tokio::spawn(subscriber(client, first, routes.clone(), cmd_rx, up_tx));
        Ok(Arc::new(Bus { conn, routes, cmds, up }))
    }

    /// Subscribes `channel`; returns once Redis has confirmed it (or, while Redis is away,
    /// at once: the channel is subscribed with the others on reconnecting).
    pub(crate) async fn subscribe(&self, channel: &str) -> Subscription {
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.routes).insert(channel.to_string(), tx);
        let (ack, acked) = oneshot::channel();
        if self.is_up() && self.cmds.send(Cmd::Subscribe(channel.to_string(), ack)).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(3), acked).await;
        }
        Subscription { rx, channel: channel.to_string(), routes: self.routes.clone(), cmds: self.cmds.clone() }
    }

    pub(crate) async fn publish(&self, channel: &str, payload: Vec<u8>) -> Result<(), BusError> {
        let mut conn = self.conn.clone();
        redis::cmd("PUBLISH").arg(channel).arg(payload).query_async::<i64>(&mut conn).await?;
        Ok(())
    }

    /// psrpc's queue lock: of every server that got `payload`, the one whose
    /// `SET base64(sha256(payload)) n EX 5 NX` succeeds handles it.
    pub(crate) async fn take(&self, payload: &[u8]) -> Result<bool, BusError> {
        let key = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(payload));
        let mut conn = self.conn.clone();
        let n: u32 = rand::random();
        let set: Option<String> =
            redis::cmd("SET").arg(key).arg(n).arg("EX").arg(5).arg("NX").query_async(&mut conn).await?;
        Ok(set.is_some())
    }

    /// Follows whether the pub/sub connection is up.
    pub(crate) fn watch_up(&self) -> watch::Receiver<bool> {
        self.up.clone()
    }

    /// Whether the pub/sub connection is up.
    pub(crate) fn is_up(&self) -> bool {
        *self.up.borrow()
    }
}

async fn subscriber(
    client: redis::Client,
    first: redis::aio::PubSub,
    routes: Routes,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
    up: watch::Sender<bool>,
) {
    let mut pubsub = Some(first);
    let mut backoff = crate::time::Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    loop {
        let ps = match pubsub.take() {
            Some(ps) => ps,
            None => {
                tokio::time::sleep(backoff.next_delay()).await;
                match client.get_async_pubsub().await {
                    Ok(ps) => ps,
                    Err(e) => {
                        tracing::debug!(error = %e, "redis: still away");
                        continue;
                    }
                }
            }
        };
        let (mut sink, mut stream) = ps.split();
        let channels: Vec<String> = lock(&routes).keys().cloned().collect();
        if !channels.is_empty() && sink.subscribe(&channels).await.is_err() {
            continue;
        }
        if !*up.borrow() {
            tracing::info!(channels = channels.len(), "redis: connected again; subscriptions restored");
        }
        let _ = up.send(true);
        backoff = crate::time::Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        loop {
            tokio::select! {
                cmd = cmds.recv() => match cmd {
                    None => return,
                    Some(Cmd::Subscribe(ch, ack)) => {
                        let ok = sink.subscribe(&ch).await.is_ok();
                        let _ = ack.send(());
                        if !ok {
                            break;
                        }
                    }
                    Some(Cmd::Unsubscribe(ch)) => {
                        if !ch.is_empty() && sink.unsubscribe(&ch).await.is_err() {
                            break;
                        }
                    }
                },
                msg = stream.next() => match msg {
                    Some(m) => {
                        let tx = lock(&routes).get(m.get_channel_name()).cloned();
                        if let Some(tx) = tx {
                            let _ = tx.send(m.get_payload_bytes().to_vec());
                        }
                    }
                    None => break,
                },
            }
        }
        let _ = up.send(false);
        tracing::warn!("redis: the pub/sub connection was lost; reconnecting");
    }
}
