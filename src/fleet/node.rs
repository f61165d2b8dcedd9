//! The egress node: bids for livekit-server's StartEgress requests with what it has free,
//! runs the ones it wins on the manager, serves StopEgress and UpdateStream on each job's
//! topic while the job lives, and reports every job's state (IOInfo). Draining stops the
//! bidding at once; running jobs go on.

use super::bus::{Bus, BusError};
use super::report;
use super::rpc::{self, Client, Method, Pattern, RpcError, Served};
use super::wire::{self, StartEgressRequest};
use crate::config::RedisConfig;
use crate::egress::{Dispatch, EgressError, Manager, request::RequestError};
use crate::sync::lock;
use livekit_protocol as proto;
use prost::Message;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

const INTERNAL: &str = "EgressInternal";
const HANDLER: &str = "EgressHandler";

pub struct Node {
    manager: Arc<Manager>,
    bus: Arc<Bus>,
    server_id: String,
    cluster_id: String,
    io: Arc<Client>,
    bidding: Mutex<Option<Served>>,
    listing: Mutex<Option<Served>>,
    reports: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Node {
    /// Connects to `redis` and starts bidding on `cluster_id`'s topic.
    pub async fn join(manager: Arc<Manager>, redis: &RedisConfig, cluster_id: &str) -> Result<Arc<Node>, BusError> {
        let bus = Bus::connect(&redis.url(), &redis.address).await?;
        let io = Arc::new(Client::new(bus.clone(), "IOInfo").await);
        let node = Arc::new(Node {
            manager,
            bus,
            server_id: wire::new_id("SRV_"),
            cluster_id: cluster_id.to_string(),
            io,
            bidding: Mutex::new(None),
            listing: Mutex::new(None),
            reports: Mutex::default(),
        });
        // Health and metrics say whether Redis is reachable.
        let (mut up, manager) = (node.bus.watch_up(), node.manager.clone());
        tokio::spawn(async move {
            loop {
                let state = if *up.borrow_and_update() { 1 } else { 2 };
                manager.counters.fleet_redis.store(state, Ordering::Relaxed);
                if up.changed().await.is_err() {
                    break;
                }
            }
        });
        let start = Arc::new(StartEgress(Arc::downgrade(&node)));
        let served = node.serve((INTERNAL, "StartEgress", &node.cluster_id), Pattern::Bid, start).await;
        *lock(&node.bidding) = Some(served);
        // On no cluster's topic, as LiveKit's egress registers it; draining does not stop it.
        let list = Arc::new(ListActiveEgress(node.manager.clone()));
        let listing = node.serve((INTERNAL, "ListActiveEgress", ""), Pattern::Multi, list).await;
        *lock(&node.listing) = Some(listing);
        tracing::info!(server_id = %node.server_id, redis = %redis.address, cluster_id = %node.cluster_id, "joined the egress fleet");
        Ok(node)
    }

    /// Serves `service.method` on `topic` as this node.
    async fn serve(
        &self,
        name: (&'static str, &'static str, &str),
        pattern: Pattern,
        handler: Arc<dyn Method>,
    ) -> Served {
        rpc::serve(self.bus.clone(), self.server_id.clone(), name, pattern, handler).await
    }

    /// Stops bidding (SIGTERM): livekit-server sends new jobs to the other nodes.
    pub fn stop_bidding(&self) {
        if lock(&self.bidding).take().is_some() {
            tracing::info!("fleet: no more bids");
        }
    }

    /// Waits (up to `limit`) until every job's final state has reached the server.
    pub async fn reported(&self, limit: Duration) {
        let tasks: Vec<_> = std::mem::take(&mut *lock(&self.reports));
        let all = futures_util::future::join_all(tasks);
        if tokio::time::timeout(limit, all).await.is_err() {
            tracing::warn!("fleet: some final states did not reach the server in time");
        }
    }

    /// The bid: none when draining, away from Redis, or without the cores; otherwise the
    /// share of the budget left once the job runs, so that livekit-server (which takes the
    /// highest bid within 500 ms) spreads jobs over the nodes with the most room. Always
    /// under 1: a bid of 1 would win before other nodes are heard.
    fn affinity(&self, request: &proto::egress_info::Request) -> Option<f32> {
        if self.manager.draining() || !self.bus.is_up() {
            return None;
        }
        let Ok(cost) = self.manager.quote(request) else {
            // An invalid request: bid low so that one node answers it with the reason.
            return Some(0.01);
        };
        let free = self.manager.free();
        if cost > free + 1e-9 {
            return None;
        }
        let budget = self.manager.budget().max(1e-9);
        Some((((free - cost) / budget) as f32).clamp(0.05, 0.95))
    }

    async fn start(self: Arc<Self>, req: StartEgressRequest) -> Result<proto::EgressInfo, RpcError> {
        let Some(request) = req.request else {
            return Err(RpcError::new("invalid_argument", "the request names no egress"));
        };
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let dispatch = Dispatch { egress_id: req.egress_id.clone(), room_id: req.room_id.clone(), reporter: tx };
        let info = self.manager.start_dispatched(dispatch, request.into_info_request()).map_err(to_rpc)?;
        self.manager.counters.fleet_wins.fetch_add(1, Ordering::Relaxed);
        let report = tokio::spawn(report::run(self.io.clone(), info.egress_id.clone(), rx));
        {
            let mut reports = lock(&self.reports);
            // Only the reports still under way are kept (a long-lived node starts many jobs).
            reports.retain(|r| !r.is_finished());
            reports.push(report);
        }
        // StopEgress and UpdateStream come on the egress id's topic while the job lives.
        let id = info.egress_id.clone();
        let manager = self.manager.clone();
        let stop: Arc<dyn Method> =
            Arc::new(JobCall::<proto::StopEgressRequest> { manager: manager.clone(), call: |m, r| m.stop(&r) });
        let update: Arc<dyn Method> =
            Arc::new(JobCall::<proto::UpdateStreamRequest> { manager: manager.clone(), call: Manager::update_stream });
        let stop = self.serve((HANDLER, "StopEgress", &id), Pattern::Queue, stop);
        let update = self.serve((HANDLER, "UpdateStream", &id), Pattern::Queue, update);
        let registered = (stop.await, update.await);
        tokio::spawn(async move {
            if let Some(job) = manager.all_jobs().into_iter().find(|j| j.id == id) {
                job.ended().await;
            }
            drop(registered);
        });
        tracing::info!(egress_id = %info.egress_id, room = %info.room_name, "fleet: job won and started");
        Ok(info)
    }
}

/// `EgressInternal.StartEgress`.
struct StartEgress(Weak<Node>);

#[async_trait::async_trait]
impl Method for StartEgress {
    fn affinity(&self, raw: &[u8]) -> Result<Option<f32>, RpcError> {
        let req = StartEgressRequest::decode(raw).map_err(malformed)?;
        let Some(node) = self.0.upgrade() else { return Ok(None) };
        let bid = req.request.clone().and_then(|r| node.affinity(&r.into_info_request()));
        let c = &node.manager.counters;
        let counter = if bid.is_some() { &c.fleet_bids } else { &c.fleet_declined };
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(bid)
    }

    async fn handle(&self, raw: Vec<u8>) -> Result<Vec<u8>, RpcError> {
        let req = StartEgressRequest::decode(raw.as_slice()).map_err(malformed)?;
        let node = self.0.upgrade().ok_or_else(|| RpcError::new("unavailable", "the node is shutting down"))?;
        node.start(req).await.map(|i| i.encode_to_vec())
    }
}

/// `EgressInternal.ListActiveEgress`: the ids of the jobs this node is running.
struct ListActiveEgress(Arc<Manager>);

#[async_trait::async_trait]
impl Method for ListActiveEgress {
    fn affinity(&self, _raw: &[u8]) -> Result<Option<f32>, RpcError> {
        Ok(Some(1.0))
    }

    async fn handle(&self, raw: Vec<u8>) -> Result<Vec<u8>, RpcError> {
        wire::ListActiveEgressRequest::decode(raw.as_slice()).map_err(malformed)?;
        let egress_ids = self.0.active_ids();
        Ok(wire::ListActiveEgressResponse { egress_ids }.encode_to_vec())
    }
}

/// `EgressHandler.StopEgress` or `.UpdateStream` for one job: the request decoded and
/// handed to the manager, as the Egress API hands it.
struct JobCall<R> {
    manager: Arc<Manager>,
    call: fn(&Manager, R) -> Result<proto::EgressInfo, EgressError>,
}

#[async_trait::async_trait]
impl<R: Message + Default + Send + 'static> Method for JobCall<R> {
    fn affinity(&self, _raw: &[u8]) -> Result<Option<f32>, RpcError> {
        Ok(Some(1.0))
    }

    async fn handle(&self, raw: Vec<u8>) -> Result<Vec<u8>, RpcError> {
        let req = R::decode(raw.as_slice()).map_err(malformed)?;
        (self.call)(&self.manager, req).map(|i| i.encode_to_vec()).map_err(to_rpc)
    }
}

fn malformed(e: prost::DecodeError) -> RpcError {
    RpcError::new("malformed_request", e.to_string())
}

/// psrpc's codes for the manager's refusals: a full or draining node says `unavailable`, so
/// that livekit-server tries again (elsewhere).
fn to_rpc(e: EgressError) -> RpcError {
    let code = match &e {
        EgressError::Request(RequestError::Invalid { .. }) => "invalid_argument",
        EgressError::Request(RequestError::Unimplemented(_)) => "unimplemented",
        EgressError::NotFound(_) => "not_found",
        EgressError::NotActive { .. } => "failed_precondition",
        EgressError::Exhausted { .. } | EgressError::Draining => "unavailable",
        EgressError::AlreadyExists(_) => "already_exists",
        EgressError::Internal(_) => "internal",
    };
    RpcError::new(code, e.to_string())
}
