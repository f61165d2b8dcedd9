//! The other side's ICE candidates for one connection. A trickled candidate can overtake
//! the description it belongs to (the server's candidates before its answer, a client's
//! before its offer), and adding it then fails; so candidates are kept until the
//! connection has its remote description, then added in order.

use super::Pc;
use webrtc::peer_connection::RTCIceCandidateInit;

#[derive(Default)]
pub(crate) struct RemoteCandidates {
    /// The connection, once its remote description is set.
    ready: Option<Pc>,
    early: Vec<RTCIceCandidateInit>,
}

impl RemoteCandidates {
    /// Where `c` goes now: to the connection (returned, for the caller to add), or kept.
    pub(crate) fn route(&mut self, c: RTCIceCandidateInit) -> Option<(Pc, RTCIceCandidateInit)> {
        match &self.ready {
            Some(pc) => Some((pc.clone(), c)),
            None => {
                self.early.push(c);
                None
            }
        }
    }

    /// `pc` has its remote description: later candidates go straight to it, and the ones
    /// kept so far are returned, for the caller to add.
    pub(crate) fn ready(&mut self, pc: &Pc) -> Vec<RTCIceCandidateInit> {
        self.ready = Some(pc.clone());
        std::mem::take(&mut self.early)
    }
}

/// Adds candidates to `pc`; one that is refused is logged and skipped (the others may do).
pub async fn add(pc: &Pc, candidates: impl IntoIterator<Item = RTCIceCandidateInit>) {
    for c in candidates {
        if let Err(e) = pc.add_ice_candidate(c).await {
            tracing::debug!("remote candidate refused: {e}");
        }
    }
}
