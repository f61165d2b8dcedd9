//! A job's state, reported to livekit-server: IOInfo.CreateEgress for the first EgressInfo,
//! then IOInfo.UpdateEgress with the latest at each change, each retried until the server
//! has it (across a Redis outage too). Changes that pile up while one is in flight are
//! coalesced to the latest, as LiveKit's own egress does; the final state is never dropped.

use super::rpc::Client;
use livekit_protocol as proto;
use prost::Message;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// One IOInfo attempt's wait.
const ATTEMPT: Duration = Duration::from_secs(5);

/// Reports one job's changes until its final state is delivered.
pub(super) async fn run(io: Arc<Client>, egress_id: String, mut rx: mpsc::UnboundedReceiver<proto::EgressInfo>) {
    // The first state goes out as CreateEgress: it carries the request and the room name
    // the server indexes the egress by.
    let Some(first) = rx.recv().await else { return };
    deliver(&io, "CreateEgress", &first).await;
    let mut last = first;
    while !is_final(&last) {
        let Some(mut info) = rx.recv().await else { break };
        while let Ok(newer) = rx.try_recv() {
            info = newer;
        }
        deliver(&io, "UpdateEgress", &info).await;
        last = info;
    }
    tracing::debug!(egress_id, status = ?last.status(), "state reported");
}

fn is_final(info: &proto::EgressInfo) -> bool {
    use proto::EgressStatus as S;
    matches!(info.status(), S::EgressComplete | S::EgressFailed | S::EgressAborted | S::EgressLimitReached)
}

async fn deliver(io: &Client, method: &'static str, info: &proto::EgressInfo) {
    let mut backoff = crate::time::Backoff::new(Duration::from_millis(250), Duration::from_secs(10));
    let raw = info.encode_to_vec();
    loop {
        match io.call(method, raw.clone(), ATTEMPT).await {
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(egress_id = %info.egress_id, method, error = %e, "IOInfo: not delivered yet; retrying");
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
}
