//! The RoomService calls the egress service makes: the room's sid at start (ListRooms), and
//! handing a custom template its new layout (UpdateParticipant). For the layout, LiveKit's
//! server sets the recorder participant's metadata to `{"layout": ...}` in UpdateLayout; the
//! template (LiveKit's egress SDK, or its own code) hears ParticipantMetadataChanged on its
//! local participant and switches.
//!
//! Written here on reqwest rather than with livekit-api's `services` feature, which would add
//! a second reqwest (0.13) and progenitor-client to the build for two JSON POSTs.

use livekit_api::access_token::{AccessToken, VideoGrants};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub(crate) enum RoomServiceError {
    #[error("cannot sign the RoomService token: {0}")]
    Token(String),
    #[error("RoomService at {url}: {why}")]
    Call { url: String, why: String },
    /// The server answered with a Twirp error.
    #[error("RoomService.{method} answered {code}: {msg}")]
    Refused { method: &'static str, code: String, msg: String },
}

/// The RoomService's base URL from the signalling URL LiveKit's config gives (`ws_url`).
fn http_base(ws_url: &str) -> String {
    let base = ws_url.trim_end_matches('/');
    if let Some(rest) = base.strip_prefix("ws://") {
        format!("http://{rest}")
    } else if let Some(rest) = base.strip_prefix("wss://") {
        format!("https://{rest}")
    } else {
        base.to_string()
    }
}

/// The sid of `room` (`RM_...`) as the server names it, or None when no such room is open.
/// LiveKit's server knows it when it hands out an egress; Tessera asks, so that `{room_id}`
/// can be expanded in every name and EgressInfo carries it from the start.
pub(crate) async fn room_sid(
    ws_url: &str,
    api_key: &str,
    api_secret: &str,
    room: &str,
) -> Result<Option<String>, RoomServiceError> {
    let grants = VideoGrants { room_list: true, ..Default::default() };
    let body = serde_json::json!({ "names": [room] }).to_string();
    let answer = call(ws_url, api_key, api_secret, "ListRooms", grants, body).await?;
    Ok(answer["rooms"]
        .as_array()
        .and_then(|rooms| rooms.iter().find(|r| r["name"] == room))
        .and_then(|r| r["sid"].as_str())
        .map(str::to_string))
}

/// One RoomService call in Twirp's JSON form: the answer, or the server's error.
async fn call(
    ws_url: &str,
    api_key: &str,
    api_secret: &str,
    method: &'static str,
    grants: VideoGrants,
    body: String,
) -> Result<serde_json::Value, RoomServiceError> {
    let token = AccessToken::with_api_key(api_key, api_secret)
        .with_ttl(Duration::from_secs(600))
        .with_grants(grants)
        .to_jwt()
        .map_err(|e| RoomServiceError::Token(e.to_string()))?;
    let url = format!("{}/twirp/livekit.RoomService/{method}", http_base(ws_url));
    let fail = |why: String| RoomServiceError::Call { url: url.clone(), why };
    let answer = reqwest::Client::new()
        .post(&url)
        .bearer_auth(token)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .timeout(Duration::from_secs(10))
        .body(body)
        .send()
        .await
        .map_err(|e| fail(e.to_string()))?;
    let status = answer.status();
    let text = answer.text().await.unwrap_or_default();
    if status.is_success() {
        return Ok(serde_json::from_str(&text).unwrap_or_default());
    }
    let err: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    Err(RoomServiceError::Refused {
        method,
        code: err["code"].as_str().map(str::to_string).unwrap_or_else(|| status.to_string()),
        msg: err["msg"].as_str().map(str::to_string).unwrap_or(text),
    })
}

/// Sets `identity`'s metadata in `room` to `{"layout": layout}`.
pub(crate) async fn set_template_layout(
    ws_url: &str,
    api_key: &str,
    api_secret: &str,
    room: &str,
    identity: &str,
    layout: &str,
) -> Result<(), RoomServiceError> {
    let grants = VideoGrants { room_admin: true, room: room.into(), ..Default::default() };
    // UpdateParticipantRequest in Twirp's JSON form.
    let body = serde_json::json!({
        "room": room,
        "identity": identity,
        "metadata": serde_json::json!({ "layout": layout }).to_string(),
    })
    .to_string();
    call(ws_url, api_key, api_secret, "UpdateParticipant", grants, body).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::http_base;

    #[test]
    fn the_room_service_lives_at_the_signalling_urls_host() {
        assert_eq!(http_base("ws://127.0.0.1:7880"), "http://127.0.0.1:7880");
        assert_eq!(http_base("wss://lk.example.com/"), "https://lk.example.com");
        assert_eq!(http_base("https://lk.example.com"), "https://lk.example.com");
    }
}
