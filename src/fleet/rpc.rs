//! psrpc's call patterns on the bus: a server that bids for requests, waits for the grant
//! and answers (StartEgress with an affinity; the queue methods, StopEgress and UpdateStream,
//! after taking the queue lock) or answers at once (multi methods, ListActiveEgress), and a client that sends a request, grants the first bid and
//! waits for the answer (IOInfo). Hand-written because psrpc has no implementation outside
//! Go; the wire format is in `wire`.

use super::bus::{Bus, Subscription};
use super::wire::{self, ClaimRequest, ClaimResponse, Envelope, Request, Response};
use crate::sync::lock;
use crate::time::unix_ns;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// A psrpc error: its code (psrpc's names: `unavailable`, `already_exists`, ...) and message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code}: {message}")]
pub(crate) struct RpcError {
    pub code: &'static str,
    pub message: String,
}

impl RpcError {
    pub(crate) fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

/// One RPC method a node serves.
#[async_trait::async_trait]
pub(crate) trait Method: Send + Sync + 'static {
    /// The bid for a request: `Ok(None)` makes none; an error is answered at once (a
    /// request that does not decode).
    fn affinity(&self, raw: &[u8]) -> Result<Option<f32>, RpcError>;
    /// Runs a granted request; the answer is the RPC's response message.
    async fn handle(&self, raw: Vec<u8>) -> Result<Vec<u8>, RpcError>;
}

/// A registered method: its requests and grants are unsubscribed when this is dropped.
pub(crate) struct Served {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

type Waiting = Arc<Mutex<HashMap<String, oneshot::Sender<String>>>>;

/// How a method's servers take a request, as psrpc registers it.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Pattern {
    /// Every server bids its affinity; the client grants one (StartEgress).
    Bid,
    /// psrpc's queue methods: every server gets the request and the queue lock picks the
    /// one that bids (StopEgress, UpdateStream).
    Queue,
    /// Every server answers at once, without a bid; the client collects the answers
    /// (ListActiveEgress).
    Multi,
}

/// Serves `service.method` on `topic` as server `server_id`.
pub(crate) async fn serve(
    bus: Arc<Bus>,
    server_id: String,
    (service, method, topic): (&'static str, &'static str, &str),
    pattern: Pattern,
    handler: Arc<dyn Method>,
) -> Served {
    let mut requests = bus.subscribe(&wire::request_channel(service, method, topic)).await;
    let grants = bus.subscribe(&wire::grant_channel(service, method, topic)).await;
    let waiting = Waiting::default();
    let grant_task = tokio::spawn(route_grants(grants, waiting.clone()));
    let request_task = tokio::spawn(async move {
        while let Some(payload) = requests.rx.recv().await {
            let Some(Envelope::Request(req)) = Envelope::decode(&payload) else { continue };
            let call = Call { bus: bus.clone(), server_id: server_id.clone(), service, waiting: waiting.clone() };
            let handler = handler.clone();
            tokio::spawn(async move { call.run(req, &payload, pattern, handler).await });
        }
    });
    Served { tasks: vec![grant_task, request_task] }
}

async fn route_grants(mut grants: Subscription, waiting: Waiting) {
    while let Some(payload) = grants.rx.recv().await {
        if let Some(Envelope::Grant(g)) = Envelope::decode(&payload)
            && let Some(tx) = lock(&waiting).remove(&g.request_id)
        {
            let _ = tx.send(g.server_id);
        }
    }
}

struct Call {
    bus: Arc<Bus>,
    server_id: String,
    service: &'static str,
    waiting: Waiting,
}

impl Call {
    async fn run(self, req: Request, payload: &[u8], pattern: Pattern, handler: Arc<dyn Method>) {
        if unix_ns() >= req.expiry {
            return;
        }
        if pattern == Pattern::Multi {
            let result = handler.handle(req.raw_request.clone()).await;
            return self.answer(&req, result).await;
        }
        if pattern == Pattern::Queue && !self.bus.take(payload).await.unwrap_or(false) {
            return;
        }
        let affinity = match handler.affinity(&req.raw_request) {
            Ok(Some(a)) => a,
            Ok(None) => return,
            Err(e) => return self.answer(&req, Err(e)).await,
        };
        // Wait for the grant from before the bid goes out, so it cannot be missed.
        let (tx, granted) = oneshot::channel();
        lock(&self.waiting).insert(req.request_id.clone(), tx);
        let bid = Envelope::Claim(ClaimRequest {
            request_id: req.request_id.clone(),
            server_id: self.server_id.clone(),
            affinity,
        });
        let claim_channel = wire::claim_channel(self.service, &req.client_id);
        if let Err(e) = self.bus.publish(&claim_channel, bid.encode()).await {
            tracing::warn!(error = %e, "psrpc: cannot bid");
            lock(&self.waiting).remove(&req.request_id);
            return;
        }
        let left = Duration::from_nanos((req.expiry - unix_ns()).max(0) as u64);
        let winner = tokio::time::timeout(left, granted).await;
        lock(&self.waiting).remove(&req.request_id);
        match winner {
            Ok(Ok(id)) if id == self.server_id => {}
            _ => return,
        }
        let result = handler.handle(req.raw_request.clone()).await;
        self.answer(&req, result).await;
    }

    async fn answer(&self, req: &Request, result: Result<Vec<u8>, RpcError>) {
        let mut res = Response {
            request_id: req.request_id.clone(),
            server_id: self.server_id.clone(),
            sent_at: unix_ns(),
            ..Default::default()
        };
        match result {
            Ok(raw) => res.raw_response = raw,
            Err(e) => (res.code, res.error) = (e.code.to_string(), e.message),
        }
        let channel = wire::response_channel(self.service, &req.client_id);
        if let Err(e) = self.bus.publish(&channel, Envelope::Response(res).encode()).await {
            tracing::warn!(error = %e, "psrpc: cannot answer");
        }
    }
}

/// A psrpc client of one service (IOInfo): requests out, the first bid granted, answers in.
pub(crate) struct Client {
    bus: Arc<Bus>,
    service: &'static str,
    id: String,
    pending: Arc<Mutex<HashMap<String, Pending>>>,
    _tasks: Served,
}

struct Pending {
    method: &'static str,
    granted: bool,
    answer: Option<oneshot::Sender<Response>>,
}

impl Client {
    pub(crate) async fn new(bus: Arc<Bus>, service: &'static str) -> Client {
        let id = wire::new_id("CLI_");
        let pending: Arc<Mutex<HashMap<String, Pending>>> = Arc::default();
        let mut claims = bus.subscribe(&wire::claim_channel(service, &id)).await;
        let mut answers = bus.subscribe(&wire::response_channel(service, &id)).await;
        let (p, b) = (pending.clone(), bus.clone());
        let claim_task = tokio::spawn(async move {
            while let Some(payload) = claims.rx.recv().await {
                let Some(Envelope::Claim(c)) = Envelope::decode(&payload) else { continue };
                // Queue methods grant the first bid (psrpc's AcceptFirstAvailable).
                let method = match lock(&p).get_mut(&c.request_id) {
                    Some(w) if !w.granted => {
                        w.granted = true;
                        w.method
                    }
                    _ => continue,
                };
                let grant = Envelope::Grant(ClaimResponse { request_id: c.request_id, server_id: c.server_id });
                if let Err(e) = b.publish(&wire::grant_channel(service, method, ""), grant.encode()).await {
                    tracing::debug!(error = %e, "psrpc: cannot grant");
                }
            }
        });
        let p = pending.clone();
        let answer_task = tokio::spawn(async move {
            while let Some(payload) = answers.rx.recv().await {
                let Some(Envelope::Response(r)) = Envelope::decode(&payload) else { continue };
                if let Some(tx) = lock(&p).get_mut(&r.request_id).and_then(|w| w.answer.take()) {
                    let _ = tx.send(r);
                }
            }
        });
        Client { bus, service, id, pending, _tasks: Served { tasks: vec![claim_task, answer_task] } }
    }

    /// One attempt: the answer's bytes, or why there is none (`deadline_exceeded` when no
    /// server answered within `timeout`).
    pub(crate) async fn call(
        &self,
        method: &'static str,
        raw: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, RpcError> {
        let request_id = wire::new_id("REQ_");
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(request_id.clone(), Pending { method, granted: false, answer: Some(tx) });
        let now = unix_ns();
        let req = Envelope::Request(Request {
            request_id: request_id.clone(),
            client_id: self.id.clone(),
            sent_at: now,
            expiry: now + timeout.as_nanos() as i64,
            raw_request: raw,
            ..Default::default()
        });
        let sent = self.bus.publish(&wire::request_channel(self.service, method, ""), req.encode()).await;
        let result = match sent {
            Err(e) => Err(RpcError::new("unavailable", e.to_string())),
            Ok(()) => match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(r)) if r.error.is_empty() => Ok(r.raw_response),
                Ok(Ok(r)) => Err(RpcError { code: known_code(&r.code), message: r.error }),
                _ => Err(RpcError::new("deadline_exceeded", format!("no answer from {} in {timeout:?}", self.service))),
            },
        };
        lock(&self.pending).remove(&request_id);
        result
    }
}

/// psrpc's code names, as `&'static str` (unknown ones read as `unknown`).
fn known_code(code: &str) -> &'static str {
    const CODES: [&str; 22] = [
        "canceled",
        "malformed_request",
        "malformed_result",
        "deadline_exceeded",
        "unavailable",
        "unknown",
        "invalid_argument",
        "not_found",
        "not_acceptable",
        "already_exists",
        "permission_denied",
        "resource_exhausted",
        "failed_precondition",
        "aborted",
        "out_of_range",
        "unimplemented",
        "internal",
        "data_loss",
        "unauthenticated",
        "unprocessable_entity",
        "upstream_server_error",
        "upstream_client_error",
    ];
    CODES.iter().find(|c| **c == code).copied().unwrap_or("unknown")
}
