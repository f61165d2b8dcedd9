//! Webhooks for standalone use: egress_started, egress_updated and egress_ended
//! POSTed as LiveKit's server posts them: a WebhookEvent in protobuf JSON,
//! `Content-Type: application/webhook+json`, and an `Authorization` header holding
//! a JWT signed with the API secret whose `sha256` claim is the standard base64 of
//! the body's SHA-256. Each URL has its own queue, so events arrive in order and a
//! slow receiver holds up only itself; failures are retried with backoff.

use base64::Engine;
use livekit_api::access_token::AccessToken;
use livekit_protocol as proto;
use sha2::{Digest, Sha256};
use std::time::Duration;
use tokio::sync::mpsc;

/// Attempts per event and URL; the waits between them double from 500 ms (about 15 s in all).
const ATTEMPTS: u32 = 5;

/// The names LiveKit gives its webhook events; a filter may name only these.
const EVENTS: [&str; 12] = [
    "room_started",
    "room_finished",
    "participant_joined",
    "participant_left",
    "participant_connection_aborted",
    "track_published",
    "track_unpublished",
    "egress_started",
    "egress_updated",
    "egress_ended",
    "ingress_started",
    "ingress_ended",
];

/// A webhook filter naming something that is no webhook event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{list}: {name:?} is not a webhook event; egress sends egress_started, egress_updated and egress_ended")]
pub struct FilterError {
    /// `include_events` or `exclude_events`.
    pub list: &'static str,
    pub name: String,
}

/// The request parser reports a bad filter as a field's reason (`RequestError::Invalid`,
/// whose `why` is text), taking it through `Into<String>`.
impl From<FilterError> for String {
    fn from(e: FilterError) -> String {
        e.to_string()
    }
}

/// Why one POST of an event failed (it is retried; the last failure is logged).
#[derive(Debug, thiserror::Error)]
enum DeliveryError {
    #[error("signing the webhook token: {0}")]
    Token(#[source] livekit_api::access_token::AccessTokenError),
    /// Holds the error without its URL: the URL is logged next to it, once.
    #[error(transparent)]
    Send(reqwest::Error),
    #[error("HTTP {0}")]
    Status(reqwest::StatusCode),
}

/// LiveKit's `FilterParams`: with `include_events`, only those are sent (they win over
/// `exclude_events`); else everything but `exclude_events`; with neither, everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    include: Vec<String>,
    exclude: Vec<String>,
}

impl EventFilter {
    /// Refuses names that are no webhook event (a typo would silently filter everything out).
    pub fn new(include: &[String], exclude: &[String]) -> Result<Self, FilterError> {
        for (events, list) in [(include, "include_events"), (exclude, "exclude_events")] {
            if let Some(bad) = events.iter().find(|e| !EVENTS.contains(&e.as_str())) {
                return Err(FilterError { list, name: bad.clone() });
            }
        }
        Ok(Self { include: include.to_vec(), exclude: exclude.to_vec() })
    }

    pub fn allows(&self, event: &str) -> bool {
        if !self.include.is_empty() {
            return self.include.iter().any(|e| e == event);
        }
        !self.exclude.iter().any(|e| e == event)
    }
}

#[derive(Clone)]
pub struct Notifier {
    queues: Vec<(mpsc::UnboundedSender<proto::WebhookEvent>, EventFilter)>,
    /// Every change's EgressInfo, whatever the event (fleet mode reports them to livekit-server).
    reporters: Vec<mpsc::UnboundedSender<proto::EgressInfo>>,
}

impl Notifier {
    /// Starts one delivery task per URL (on the current tokio runtime).
    pub fn start(urls: &[String], api_key: &str, api_secret: &str) -> Self {
        let all: Vec<_> = urls.iter().map(|u| (u.clone(), EventFilter::default())).collect();
        Self::start_filtered(&all, api_key, api_secret)
    }

    /// As `start`, each URL with its own event filter.
    pub(crate) fn start_filtered(hooks: &[(String, EventFilter)], api_key: &str, api_secret: &str) -> Self {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap_or_default();
        let queues = hooks
            .iter()
            .map(|(url, filter)| {
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(deliver(client.clone(), url.clone(), api_key.to_string(), api_secret.to_string(), rx));
                (tx, filter.clone())
            })
            .collect();
        Self { queues, reporters: Vec::new() }
    }

    /// Also hands every change's EgressInfo (redacted) to `tx`.
    pub(crate) fn with_reporter(mut self, tx: mpsc::UnboundedSender<proto::EgressInfo>) -> Self {
        self.reporters.push(tx);
        self
    }

    /// These URLs and `other`'s (a request's own webhooks next to the service's).
    pub fn with(mut self, other: Notifier) -> Self {
        self.queues.extend(other.queues);
        self.reporters.extend(other.reporters);
        self
    }

    /// Queues `event` ("egress_started", "egress_updated", "egress_ended") about `info`, its
    /// request redacted (it always is already; this is the last door out).
    pub fn send(&self, event: &str, info: &proto::EgressInfo) {
        for r in &self.reporters {
            let _ = r.send(super::redact::info(info.clone()));
        }
        if self.queues.is_empty() {
            return;
        }
        let ev = proto::WebhookEvent {
            event: event.into(),
            egress_info: Some(super::redact::info(info.clone())),
            id: format!("EV_{}", super::random_id(12)),
            created_at: crate::time::unix_ns() / 1_000_000_000,
            ..Default::default()
        };
        for (q, filter) in &self.queues {
            if filter.allows(event) {
                let _ = q.send(ev.clone());
            }
        }
    }
}

async fn deliver(
    client: reqwest::Client,
    url: String,
    key: String,
    secret: String,
    mut rx: mpsc::UnboundedReceiver<proto::WebhookEvent>,
) {
    while let Some(ev) = rx.recv().await {
        let body = match serde_json::to_vec(&ev) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode a webhook event");
                continue;
            }
        };
        let mut backoff = crate::time::Backoff::new(Duration::from_millis(500), Duration::from_secs(8));
        for attempt in 1..=ATTEMPTS {
            match post(&client, &url, &key, &secret, &body).await {
                Ok(()) => break,
                Err(e) if attempt == ATTEMPTS => {
                    tracing::warn!(url = %url, event = %ev.event, error = %e, "webhook not delivered; giving up");
                }
                Err(e) => {
                    tracing::debug!(url = %url, attempt, error = %e, "webhook failed; retrying");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    }
}

async fn post(client: &reqwest::Client, url: &str, key: &str, secret: &str, body: &[u8]) -> Result<(), DeliveryError> {
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body));
    let token = AccessToken::with_api_key(key, secret)
        .with_ttl(Duration::from_secs(300))
        .with_sha256(&hash)
        .to_jwt()
        .map_err(DeliveryError::Token)?;
    let resp = client
        .post(url)
        .header("Content-Type", "application/webhook+json")
        .header("Authorization", token)
        .body(body.to_vec())
        .send()
        .await
        .map_err(|e| DeliveryError::Send(e.without_url()))?;
    if resp.status().is_success() { Ok(()) } else { Err(DeliveryError::Status(resp.status())) }
}

#[cfg(test)]
mod tests {
    use super::EventFilter;

    #[test]
    fn filters_as_livekit_does() {
        let s = |v: &[&str]| v.iter().map(|e| e.to_string()).collect::<Vec<_>>();
        let all = EventFilter::default();
        assert!(all.allows("egress_updated"));
        let only_end = EventFilter::new(&s(&["egress_ended"]), &s(&["egress_ended"])).unwrap();
        assert!(only_end.allows("egress_ended") && !only_end.allows("egress_started"));
        let no_updates = EventFilter::new(&[], &s(&["egress_updated"])).unwrap();
        assert!(no_updates.allows("egress_started") && !no_updates.allows("egress_updated"));
        let bad = EventFilter::new(&s(&["egress_ende"]), &[]).unwrap_err();
        assert_eq!(bad, super::FilterError { list: "include_events", name: "egress_ende".into() });
        assert!(bad.to_string().contains("\"egress_ende\""), "{bad}");
    }
}
