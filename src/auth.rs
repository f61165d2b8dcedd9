//! Access tokens, checked as LiveKit's server checks them: HS256, the issuer
//! names the API key whose secret signs it, `exp` required, 60 s of leeway, and a
//! join grant for a named room. Errors say which of these failed (the token
//! crate's own error reads "failed to encode jwt" for all of them).

use livekit_api::access_token::{AccessTokenError, Claims, TokenVerifier};
use std::collections::HashMap;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("no access token: send it as `Authorization: Bearer <token>` or the `access_token` query parameter")]
    Missing,
    #[error("the access token is not a JWT")]
    Malformed,
    #[error("unknown API key {0:?}")]
    UnknownKey(String),
    #[error("invalid token signature: it was not signed with the secret of API key {0:?}")]
    BadSignature(String),
    #[error("the access token has expired")]
    Expired,
    #[error("the access token is not valid yet (nbf)")]
    NotYetValid,
    #[error("the access token has no expiry (exp is required)")]
    NoExpiry,
    #[error("the access token is invalid: {0}")]
    Invalid(String),
    #[error("the access token does not grant roomJoin")]
    NoJoinGrant,
    #[error("the access token names no room")]
    NoRoom,
    #[error("the access token has no identity (sub)")]
    NoIdentity,
}

/// What a verified join token allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub identity: String,
    pub name: String,
    pub room: String,
    pub can_publish: bool,
    pub can_subscribe: bool,
    pub can_publish_data: bool,
    pub hidden: bool,
    pub recorder: bool,
    /// An agent (the token's `kind: "agent"`, or the older video grant `agent`).
    pub agent: bool,
    pub metadata: String,
}

/// API keys and their secrets.
#[derive(Debug, Clone, Default)]
pub struct Keys(HashMap<String, String>);

impl Keys {
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        Self(pairs.into_iter().collect())
    }

    /// Verifies a token's signature and claims, whatever its grants.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        let unverified = Claims::from_unverified(token).map_err(|_| AuthError::Malformed)?;
        let key = unverified.iss;
        let secret = self.0.get(&key).ok_or_else(|| AuthError::UnknownKey(key.clone()))?;
        TokenVerifier::with_api_key(&key, secret).verify(token).map_err(|e| match e {
            AccessTokenError::Encoding(e) => {
                use jsonwebtoken::errors::ErrorKind;
                match e.kind() {
                    ErrorKind::InvalidSignature => AuthError::BadSignature(key.clone()),
                    ErrorKind::ExpiredSignature => AuthError::Expired,
                    ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                    ErrorKind::MissingRequiredClaim(c) if c == "exp" => AuthError::NoExpiry,
                    _ => AuthError::Invalid(e.to_string()),
                }
            }
            other => AuthError::Invalid(other.to_string()),
        })
    }

    /// Verifies a token for joining a room.
    pub fn verify_join(&self, token: &str) -> Result<Grant, AuthError> {
        let c = self.verify(token)?;
        if !c.video.room_join {
            return Err(AuthError::NoJoinGrant);
        }
        if c.video.room.is_empty() {
            return Err(AuthError::NoRoom);
        }
        if c.sub.is_empty() {
            return Err(AuthError::NoIdentity);
        }
        Ok(Grant {
            identity: c.sub.clone(),
            name: if c.name.is_empty() { c.sub } else { c.name },
            room: c.video.room,
            // Absent means allowed, as in LiveKit.
            can_publish: c.video.can_publish.unwrap_or(true),
            can_subscribe: c.video.can_subscribe.unwrap_or(true),
            can_publish_data: c.video.can_publish_data.unwrap_or(true),
            hidden: c.video.hidden,
            recorder: c.video.recorder,
            agent: c.kind == "agent" || c.video.agent,
            metadata: c.metadata,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use livekit_api::access_token::{AccessToken, VideoGrants};
    use std::time::Duration;

    fn keys() -> Keys {
        Keys::new([("devkey".to_string(), "devsecret-devsecret-devsecret-00".to_string())])
    }

    fn token(secret: &str, ttl: Duration, grants: VideoGrants) -> String {
        AccessToken::with_api_key("devkey", secret)
            .with_identity("alice")
            .with_ttl(ttl)
            .with_grants(grants)
            .to_jwt()
            .unwrap()
    }

    fn join(room: &str) -> VideoGrants {
        VideoGrants { room_join: true, room: room.into(), ..Default::default() }
    }

    #[test]
    fn good_tokens_give_their_grants() {
        let g = keys()
            .verify_join(&token("devsecret-devsecret-devsecret-00", Duration::from_secs(60), join("r1")))
            .unwrap();
        assert_eq!((g.identity.as_str(), g.room.as_str(), g.can_publish, g.can_subscribe), ("alice", "r1", true, true));
    }

    #[test]
    fn bad_tokens_say_why() {
        let k = keys();
        let e =
            k.verify_join(&token("wrong-secret-wrong-secret-000000", Duration::from_secs(60), join("r"))).unwrap_err();
        assert_eq!(e, AuthError::BadSignature("devkey".into()));
        assert!(e.to_string().contains("not signed with the secret"));
        // Claims the token crate would refuse to mint, signed directly. (Minting a
        // token first installs the HMAC provider jsonwebtoken 10 needs.)
        let _ = token("devsecret-devsecret-devsecret-00", Duration::from_secs(60), join("r"));
        let raw = |exp_offset: i64, room: &str| {
            use jsonwebtoken::{EncodingKey, Header, encode};
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
            let c = Claims {
                exp: (now + exp_offset) as usize,
                iss: "devkey".into(),
                sub: "alice".into(),
                video: join(room),
                ..Default::default()
            };
            encode(&Header::default(), &c, &EncodingKey::from_secret(b"devsecret-devsecret-devsecret-00")).unwrap()
        };
        // Expired beyond the 60 s leeway, and within it.
        assert_eq!(k.verify_join(&raw(-120, "r")).unwrap_err(), AuthError::Expired);
        assert!(k.verify_join(&raw(-30, "r")).is_ok());
        assert_eq!(k.verify_join(&raw(60, "")).unwrap_err(), AuthError::NoRoom);
        let e = k
            .verify_join(&token("devsecret-devsecret-devsecret-00", Duration::from_secs(60), VideoGrants::default()))
            .unwrap_err();
        assert_eq!(e, AuthError::NoJoinGrant);
        assert_eq!(k.verify_join("not.a.jwt").unwrap_err(), AuthError::Malformed);
        assert_eq!(k.verify_join("").unwrap_err(), AuthError::Missing);
        let other =
            AccessToken::with_api_key("otherkey", "x").with_identity("a").with_grants(join("r")).to_jwt().unwrap();
        assert_eq!(k.verify_join(&other).unwrap_err(), AuthError::UnknownKey("otherkey".into()));
    }
}
