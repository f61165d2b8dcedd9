//! LiveKit's Egress API over Twirp (`POST /twirp/livekit.Egress/<Method>`), so
//! `EgressClient` from LiveKit's server SDKs works unchanged. Every call needs a
//! token carrying the `roomRecord` grant, as LiveKit's server asks.

pub(crate) mod twirp;

use crate::auth::Keys;
use crate::egress::request::RequestError;
use crate::egress::{EgressError, Manager};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use livekit_protocol as proto;
use std::sync::Arc;
use twirp::{Code, Encoding, TwirpError};

#[derive(Clone)]
pub(crate) struct ApiState {
    pub manager: Arc<Manager>,
    pub keys: Keys,
}

pub(crate) fn router(state: ApiState) -> Router {
    Router::new()
        .route(
            "/twirp/livekit.Egress/{method}",
            axum::routing::post(call)
                .fallback(|| async { TwirpError::new(Code::BadRoute, "Twirp calls must use POST").into_response() }),
        )
        .with_state(state)
        // The body is read (and limited) by the handler itself.
        .layer(axum::extract::DefaultBodyLimit::disable())
}

/// The largest body a call may have: the biggest real request (every output, storage
/// credentials, webhooks) is a few KiB.
const BODY_LIMIT: usize = 1 << 20;
/// The largest access token looked at.
const TOKEN_LIMIT: usize = 16 << 10;
/// How long a body may take to arrive, so a client trickling one cannot hold a connection.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The whole body within the limits, or the Twirp error that says which one it broke. A body
/// over the limit is read to its end (and dropped) within the same time, so that the client,
/// still sending, gets the answer rather than a broken pipe.
async fn read_body(body: Body) -> Result<Bytes, TwirpError> {
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    let mut kept = Vec::new();
    let mut total = 0usize;
    let read = tokio::time::timeout(BODY_TIMEOUT, async {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|_| ())?;
            total += chunk.len();
            if total <= BODY_LIMIT {
                kept.extend_from_slice(&chunk);
            }
        }
        Ok::<(), ()>(())
    })
    .await;
    match read {
        Ok(Ok(())) if total <= BODY_LIMIT => Ok(Bytes::from(kept)),
        Ok(Ok(())) => Err(TwirpError::new(
            Code::Malformed,
            format!("the body is larger than {} KiB ({total} bytes)", BODY_LIMIT / 1024),
        )),
        Ok(Err(())) => Err(TwirpError::new(Code::Malformed, "the body broke off")),
        Err(_) if total > BODY_LIMIT => {
            Err(TwirpError::new(Code::Malformed, format!("the body is larger than {} KiB", BODY_LIMIT / 1024)))
        }
        Err(_) => Err(TwirpError::new(
            Code::DeadlineExceeded,
            format!("the body did not arrive within {} s", BODY_TIMEOUT.as_secs()),
        )),
    }
}

async fn call(State(s): State<ApiState>, Path(method): Path<String>, headers: HeaderMap, body: Body) -> Response {
    let body = match read_body(body).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    match handle(&s, &method, &headers, &body).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(method, code = e.code.name(), msg = %e.msg, "egress API call refused");
            e.into_response()
        }
    }
}

async fn handle(s: &ApiState, method: &str, headers: &HeaderMap, body: &[u8]) -> Result<Response, TwirpError> {
    let enc = Encoding::from_headers(headers)?;
    authorize(&s.keys, headers)?;
    let m = &s.manager;
    let info = match method {
        "StartRoomCompositeEgress" => m.start_room_composite(enc.decode(body)?).await,
        "StartEgress" => m.start_egress(enc.decode(body)?).await,
        "UpdateLayout" => m.update_layout(enc.decode(body)?).await,
        "UpdateStream" => m.update_stream(enc.decode(body)?),
        "StopEgress" => m.stop(&enc.decode::<proto::StopEgressRequest>(body)?),
        "ListEgress" => {
            return m.list(&enc.decode::<proto::ListEgressRequest>(body)?).map(|l| enc.encode(&l)).map_err(to_twirp);
        }
        "StartWebEgress" => m.start_web(enc.decode(body)?).await,
        "StartParticipantEgress" => m.start_participant(enc.decode(body)?).await,
        "StartTrackCompositeEgress" => m.start_track_composite(enc.decode(body)?).await,
        "StartTrackEgress" => m.start_track(enc.decode(body)?).await,
        other => {
            return Err(TwirpError::new(Code::BadRoute, format!("no method {other:?} in service livekit.Egress")));
        }
    };
    info.map(|i| enc.encode(&i)).map_err(to_twirp)
}

/// A bearer token signed by a known key whose video grant has `roomRecord`.
fn authorize(keys: &Keys, headers: &HeaderMap) -> Result<(), TwirpError> {
    let value = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    let token = value.strip_prefix("Bearer ").unwrap_or(value).trim();
    // A real token is well under 2 KiB; a huge one is not parsed at all.
    if token.len() > TOKEN_LIMIT {
        return Err(TwirpError::new(
            Code::Unauthenticated,
            format!("the access token is larger than {} KiB", TOKEN_LIMIT / 1024),
        ));
    }
    let claims = keys.verify(token).map_err(|e| TwirpError::new(Code::Unauthenticated, e.to_string()))?;
    if !claims.video.room_record {
        return Err(TwirpError::new(Code::PermissionDenied, "the access token does not grant roomRecord"));
    }
    Ok(())
}

fn to_twirp(e: EgressError) -> TwirpError {
    let code = match &e {
        EgressError::Request(RequestError::Invalid { .. }) => Code::InvalidArgument,
        EgressError::Request(RequestError::Unimplemented(_)) => Code::Unimplemented,
        EgressError::NotFound(_) => Code::NotFound,
        EgressError::NotActive { .. } => Code::FailedPrecondition,
        EgressError::Exhausted { .. } => Code::ResourceExhausted,
        EgressError::Draining => Code::Unavailable,
        EgressError::AlreadyExists(_) => Code::FailedPrecondition,
        EgressError::Internal(_) => Code::Internal,
    };
    TwirpError::new(code, e.to_string())
}
