//! The recorder's own token: what LiveKit's egress service mints for itself.

use livekit_api::access_token::{AccessToken, VideoGrants};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
#[error("cannot sign the recorder's token: {0}")]
pub struct TokenError(String);

/// A token for a hidden, subscribe-only recorder of `room` whose identity is the
/// egress id. Long-lived: a recording may last a day or more.
pub fn mint(api_key: &str, api_secret: &str, room: &str, egress_id: &str) -> Result<String, TokenError> {
    AccessToken::with_api_key(api_key, api_secret)
        .with_identity(egress_id)
        .with_name("Tessera recorder")
        .with_ttl(Duration::from_secs(7 * 24 * 3600))
        .with_grants(VideoGrants {
            room_join: true,
            room: room.into(),
            can_subscribe: Some(true),
            can_publish: Some(false),
            can_publish_data: Some(false),
            hidden: true,
            recorder: true,
            ..Default::default()
        })
        .to_jwt()
        .map_err(|e| TokenError(e.to_string()))
}
