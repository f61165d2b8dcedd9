//! LiveKit's websocket output for a track egress: the track's audio as raw PCM (s16le,
//! 48 kHz, two channels interleaved) in binary messages, and `{"muted":true|false}` text
//! messages when the track is muted or unmuted. The connection announces
//! `Content-Type: audio/x-raw`, as LiveKit's does.

use futures_util::SinkExt;
use thiserror::Error;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest, http::HeaderValue};

#[derive(Debug, Error)]
pub enum WebsocketError {
    /// The URL is shown redacted: a token in it is a secret.
    #[error("websocket {url}: {cause}")]
    Connect { url: String, cause: tokio_tungstenite::tungstenite::Error },
    #[error("websocket {url}: sending: {cause}")]
    Send { url: String, cause: tokio_tungstenite::tungstenite::Error },
}

enum Outgoing {
    Pcm(Vec<u8>),
    Muted(bool),
}

/// A feed of PCM for the websocket, usable from any thread.
#[derive(Clone)]
pub struct PcmFeed(mpsc::UnboundedSender<Outgoing>);

impl PcmFeed {
    /// Interleaved stereo f32 samples at 48 kHz, sent as s16le.
    pub fn send(&self, samples: &[f32]) {
        let mut pcm = Vec::with_capacity(samples.len() * 2);
        for s in samples {
            pcm.extend(((s.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes());
        }
        let _ = self.0.send(Outgoing::Pcm(pcm));
    }
}

pub struct WebsocketSink {
    tx: mpsc::UnboundedSender<Outgoing>,
    task: tokio::task::JoinHandle<Result<u64, WebsocketError>>,
}

impl WebsocketSink {
    /// Connects (a refused or unreachable URL fails here, before anything is recorded).
    pub async fn connect(url: &str) -> Result<Self, WebsocketError> {
        let shown = crate::secrets::redact(url);
        let err = |cause| WebsocketError::Connect { url: shown.clone(), cause };
        let mut request = url.into_client_request().map_err(err)?;
        request.headers_mut().insert("Content-Type", HeaderValue::from_static("audio/x-raw"));
        let (mut ws, _) = tokio_tungstenite::connect_async(request).await.map_err(err)?;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let send_err = |cause| WebsocketError::Send { url: shown.clone(), cause };
            let mut bytes = 0u64;
            // Pings keep idle proxies from closing the connection while the track is muted.
            let mut ping = tokio::time::interval(std::time::Duration::from_secs(10));
            loop {
                let message = tokio::select! {
                    m = rx.recv() => match m {
                        Some(Outgoing::Pcm(pcm)) => {
                            bytes += pcm.len() as u64;
                            Message::Binary(pcm.into())
                        }
                        Some(Outgoing::Muted(m)) => Message::Text(format!("{{\"muted\":{m}}}").into()),
                        None => break,
                    },
                    _ = ping.tick() => Message::Ping(Vec::new().into()),
                };
                ws.send(message).await.map_err(send_err)?;
            }
            let _ = ws.close(None).await;
            Ok(bytes)
        });
        Ok(Self { tx, task })
    }

    pub fn feed(&self) -> PcmFeed {
        PcmFeed(self.tx.clone())
    }

    pub fn muted(&self, muted: bool) {
        let _ = self.tx.send(Outgoing::Muted(muted));
    }

    /// Sends what is queued, closes, and returns the PCM bytes sent (once every feed is dropped).
    pub async fn close(self) -> Result<u64, WebsocketError> {
        drop(self.tx);
        self.task.await.unwrap_or(Ok(0))
    }
}
