//! The signal WebSocket. One task owns it: it sends what the client queues,
//! hands what the server sends to a router, and when the connection breaks
//! without a leave it reconnects with `reconnect=1&sid=<our sid>`, which makes
//! the server resume the same session (peer connections and media untouched).

use super::{ClientError, RoomEvent};
use futures_util::{SinkExt, StreamExt};
use livekit_protocol as proto;
use prost::Message as _;
use proto::signal_request::Message as Req;
use proto::signal_response::Message as Resp;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::{self, Message, client::IntoClientRequest};

pub(super) type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How long a broken connection is retried before the session is given up.
const RESUME_FOR: Duration = Duration::from_secs(12);

/// Where and how to (re)connect.
pub(super) struct Link {
    pub url: String,
    pub token: String,
    /// The query of the first join (`protocol=...&auto_subscribe=...`).
    pub query: String,
    pub sid: String,
}

/// Opens `/rtc?<query>` with the token as a bearer header.
pub(super) async fn open(url: &str, token: &str, query: &str) -> Result<Ws, ClientError> {
    let full = format!("{}/rtc?{query}", url.trim_end_matches('/'));
    let connect_err = |e: tungstenite::Error| ClientError::Connect { url: url.to_string(), source: Box::new(e) };
    let mut request = full.as_str().into_client_request().map_err(connect_err)?;
    let bearer =
        format!("Bearer {token}").parse().map_err(|_| ClientError::Refused("token is not a valid header".into()))?;
    request.headers_mut().insert("Authorization", bearer);
    let (ws, _) = tokio_tungstenite::connect_async(request).await.map_err(|e| match e {
        tungstenite::Error::Http(r) => {
            let body = r.body().as_ref().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
            ClientError::Refused(format!("HTTP {}: {body}", r.status()))
        }
        other => connect_err(other),
    })?;
    Ok(ws)
}

/// The server's first answer on a new connection: a JoinResponse or a ReconnectResponse.
pub(super) async fn first_response(ws: &mut Ws) -> Result<Resp, ClientError> {
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(m) = ws.next().await {
            let Ok(Message::Binary(b)) = m else { continue };
            // A Leave here is the server's answer too: it will not take us (back).
            if let Ok(proto::SignalResponse {
                message: Some(r @ (Resp::Join(_) | Resp::Reconnect(_) | Resp::Leave(_))),
            }) = proto::SignalResponse::decode(b.as_ref())
            {
                return Some(r);
            }
        }
        None
    })
    .await
    .map_err(|_| ClientError::Timeout("join response"))?
    .ok_or(ClientError::Closed)
}

/// How a resume ended.
enum Resume {
    Resumed(Box<Ws>),
    /// The server answered but will not resume the session (it forgot us, or the room was closed).
    Refused(String),
    /// No answer in `RESUME_FOR`.
    GaveUp,
}

/// Tries to resume the session until `RESUME_FOR` has passed.
async fn resume(link: &Link) -> Resume {
    let started = Instant::now();
    let mut backoff = crate::time::Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
    while started.elapsed() < RESUME_FOR {
        tokio::time::sleep(backoff.next_delay()).await;
        let query = format!("{}&reconnect=1&sid={}", link.query, link.sid);
        let Ok(mut ws) = open(&link.url, &link.token, &query).await else { continue };
        match first_response(&mut ws).await {
            Ok(Resp::Reconnect(_)) => return Resume::Resumed(Box::new(ws)),
            // livekit-server answers a resume of a participant it no longer has with a Leave
            // (STATE_MISMATCH): retrying cannot help.
            Ok(Resp::Leave(l)) => return Resume::Refused(format!("{:?}", l.reason())),
            // The server started a new session: ours (and its peer connections) is gone.
            Ok(_) => {
                let leave = proto::SignalRequest { message: Some(Req::Leave(proto::LeaveRequest::default())) };
                let _ = ws.send(Message::Binary(leave.encode_to_vec().into())).await;
                let _ = ws.close(None).await;
                return Resume::Refused("a new session instead of ours".into());
            }
            Err(_) => continue,
        }
    }
    Resume::GaveUp
}

/// Runs the connection until we leave, the server ends the session, or it cannot be resumed.
/// `route` handles each server message and returns why to stop, if it should.
pub(super) async fn run(
    ws: Ws,
    link: Link,
    mut out_rx: mpsc::UnboundedReceiver<proto::SignalRequest>,
    mut route: impl FnMut(Resp) -> Option<String>,
    emit: impl Fn(RoomEvent),
) {
    let (mut sink, mut stream) = ws.split();
    let why = loop {
        let broken = tokio::select! {
            req = out_rx.recv() => match req {
                None => break "the client closed".to_string(),
                Some(req) => {
                    let leaving = matches!(req.message, Some(Req::Leave(_)));
                    let sent = sink.send(Message::Binary(req.encode_to_vec().into())).await.is_ok();
                    if leaving {
                        let _ = sink.close().await;
                        break "we left".to_string();
                    }
                    !sent
                }
            },
            msg = stream.next() => match msg {
                Some(Ok(Message::Binary(b))) => {
                    if let Ok(proto::SignalResponse { message: Some(m) }) = proto::SignalResponse::decode(b.as_ref())
                        && let Some(why) = route(m)
                    {
                        break why;
                    }
                    false
                }
                Some(Ok(_)) => false,
                // Closed or failed without the server saying goodbye: the network, not the session.
                _ => true,
            },
        };
        if broken {
            tracing::warn!("signal connection lost: resuming");
            match resume(&link).await {
                Resume::Resumed(ws) => {
                    (sink, stream) = (*ws).split();
                    tracing::info!("signal connection resumed");
                    emit(RoomEvent::Resumed);
                }
                Resume::Refused(why) => {
                    break format!("the signal connection broke and the server ended the session ({why})");
                }
                Resume::GaveUp => break "the signal connection broke and could not be resumed".to_string(),
            }
        }
    };
    emit(RoomEvent::Left(why));
}
