//! LiveKit's Egress API over Twirp (`POST /twirp/livekit.Egress/<Method>`), so
//! `EgressClient` from LiveKit's server SDKs works unchanged. Every call needs a
//! token carrying the `roomRecord` grant, as LiveKit's server asks.

pub(crate) mod twirp;

use crate::auth::Keys;
use crate::egress::request::RequestError;
use crate::egress::{EgressError, Manager};
use axum::Router;
use axum::body::Bytes;
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
}

async fn call(State(s): State<ApiState>, Path(method): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
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
