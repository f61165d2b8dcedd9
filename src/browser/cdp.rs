//! The Chrome DevTools Protocol over one WebSocket: commands answered by id, events
//! delivered in order on a channel.
//!
//! Written here rather than with a CDP crate: the job needs six methods (navigate,
//! enable two domains, evaluate, device metrics) and two events; the crates that wrap
//! the whole protocol (chromiumoxide) generate hundreds of thousands of lines and would
//! add minutes to every build for that. JSON over the WebSocket client we already have.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, thiserror::Error)]
pub(crate) enum CdpError {
    /// The page's WebSocket could not be opened.
    #[error("DevTools connection to {url}: {cause}")]
    Connect {
        url: String,
        // Boxed: tungstenite's error is large, and every command returns this type.
        #[source]
        cause: Box<tokio_tungstenite::tungstenite::Error>,
    },
    /// The connection was gone before the command could be sent (the writer task ended
    /// with it; the unsent message is all the channel's error would add).
    #[error("DevTools connection: closed before {method} was sent")]
    Closed { method: String },
    /// The connection ended while the command waited for its answer.
    #[error("DevTools connection: closed before answering {method}")]
    NoAnswer {
        method: String,
        #[source]
        cause: oneshot::error::RecvError,
    },
    /// Chromium answered the command with an error.
    #[error("DevTools {method}: {cause}")]
    Command {
        method: String,
        #[source]
        cause: ProtocolError,
    },
}

/// The `error` object of a DevTools answer.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct ProtocolError {
    /// JSON-RPC's error code, when Chromium gave one.
    pub code: Option<i64>,
    pub message: String,
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, ProtocolError>>>>>;

/// A connection to one page target.
pub(crate) struct Cdp {
    out: mpsc::UnboundedSender<Message>,
    pending: Pending,
    next: AtomicU64,
}

/// An event: its method and params.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub method: String,
    pub params: Value,
}

impl Cdp {
    /// Connects to `ws_url` (a page's webSocketDebuggerUrl); events arrive on the receiver.
    pub(crate) async fn connect(ws_url: &str) -> Result<(Self, mpsc::UnboundedReceiver<Event>), CdpError> {
        let (ws, _) = tokio_tungstenite::connect_async(ws_url)
            .await
            .map_err(|e| CdpError::Connect { url: ws_url.into(), cause: Box::new(e) })?;
        let (mut sink, mut stream) = ws.split();
        let (out, mut out_rx) = mpsc::unbounded_channel::<Message>();
        let (events_tx, events) = mpsc::unbounded_channel();
        let pending: Pending = Arc::default();
        tokio::spawn(async move {
            while let Some(m) = out_rx.recv().await {
                if sink.send(m).await.is_err() {
                    break;
                }
            }
        });
        let p = pending.clone();
        tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                let Message::Text(text) = msg else { continue };
                let Ok(v) = serde_json::from_str::<Value>(&text) else { continue };
                if let Some(id) = v.get("id").and_then(Value::as_u64) {
                    let reply = match v.get("error") {
                        Some(e) => Err(ProtocolError {
                            code: e.get("code").and_then(Value::as_i64),
                            message: e.get("message").and_then(Value::as_str).unwrap_or("error").to_string(),
                        }),
                        None => Ok(v.get("result").cloned().unwrap_or(Value::Null)),
                    };
                    if let Some(tx) = crate::sync::lock(&p).remove(&id) {
                        let _ = tx.send(reply);
                    }
                } else if let Some(method) = v.get("method").and_then(Value::as_str) {
                    let params = v.get("params").cloned().unwrap_or(Value::Null);
                    let _ = events_tx.send(Event { method: method.to_string(), params });
                }
            }
            // The connection is gone: every waiting command fails.
            crate::sync::lock(&p).clear();
        });
        Ok((Self { out, pending, next: AtomicU64::new(1) }, events))
    }

    /// Sends a command and waits for its result.
    pub(crate) async fn call(&self, method: &str, params: Value) -> Result<Value, CdpError> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        crate::sync::lock(&self.pending).insert(id, tx);
        let msg = json!({ "id": id, "method": method, "params": params }).to_string();
        self.out.send(Message::Text(msg.into())).map_err(|_| CdpError::Closed { method: method.into() })?;
        match rx.await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(cause)) => Err(CdpError::Command { method: method.into(), cause }),
            Err(cause) => Err(CdpError::NoAnswer { method: method.into(), cause }),
        }
    }

    /// Evaluates a JavaScript expression; its value (by value).
    pub(crate) async fn eval(&self, expression: &str) -> Result<Value, CdpError> {
        let r = self.call("Runtime.evaluate", json!({ "expression": expression, "returnByValue": true })).await?;
        Ok(r.pointer("/result/value").cloned().unwrap_or(Value::Null))
    }
}
