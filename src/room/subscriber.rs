//! The subscriber connection: the server offers it, we answer (with the offer's
//! id), and every track that starts arriving on it is reported as a [`RoomEvent`].
//! One task handles offers and candidates in arrival order, because a second
//! offer must never be applied while the first is still being answered.

use super::{RemoteTrack, RoomEvent};
use crate::peer::candidates::{self, RemoteCandidates};
use crate::peer::{Pc, PeerError, gathered, rtc};
use livekit_protocol as proto;
use proto::signal_request::Message as Req;
use std::sync::Arc;
use tokio::sync::mpsc;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{PeerConnectionEventHandler, RTCSessionDescription};

pub(super) enum Signal {
    Offer(proto::SessionDescription),
    Trickle(proto::TrickleRequest),
    Close,
}

struct Handler {
    events: Option<mpsc::UnboundedSender<RoomEvent>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        // LiveKit names streams "<participant sid>|<track sid>" and tracks by their sid.
        let stream = track.stream_id().await;
        let track_sid = track.track_id().await;
        let participant_sid = stream.split('|').next().unwrap_or_default().to_string();
        tracing::debug!(participant = %participant_sid, track = %track_sid, "track arriving");
        if let Some(tx) = &self.events {
            let _ = tx.send(RoomEvent::Track(RemoteTrack { participant_sid, track_sid, track }));
        }
    }
}

pub(super) fn spawn(
    out: mpsc::UnboundedSender<proto::SignalRequest>,
    events: Option<mpsc::UnboundedSender<RoomEvent>>,
    network: crate::peer::Network,
) -> (mpsc::UnboundedSender<Signal>, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let slot = tokio::sync::Mutex::new(None::<Pc>);
        let mut remote = RemoteCandidates::default();
        while let Some(signal) = rx.recv().await {
            match signal {
                Signal::Offer(offer) => {
                    let events = events.clone();
                    let pc =
                        match crate::peer::get_or_create(&slot, move || Arc::new(Handler { events }), &network).await {
                            Ok(pc) => pc,
                            Err(e) => {
                                tracing::error!("cannot create the subscriber connection: {e}");
                                continue;
                            }
                        };
                    match answer(&pc, offer, &mut remote).await {
                        Ok(a) => {
                            let _ = out.send(proto::SignalRequest { message: Some(Req::Answer(a)) });
                        }
                        Err(e) => tracing::warn!("cannot answer the subscriber offer: {e}"),
                    }
                }
                Signal::Trickle(t) => {
                    if let Some((pc, c)) = super::candidate(&t).and_then(|c| remote.route(c)) {
                        candidates::add(&pc, [c]).await;
                    }
                }
                Signal::Close => break,
            }
        }
        if let Some(pc) = slot.lock().await.take() {
            let _ = pc.close().await;
        }
    });
    (tx, task)
}

async fn answer(
    pc: &Pc,
    offer: proto::SessionDescription,
    remote: &mut RemoteCandidates,
) -> Result<proto::SessionDescription, PeerError> {
    let desc = RTCSessionDescription::offer(offer.sdp).map_err(rtc("reading the offer"))?;
    pc.set_remote_description(desc).await.map_err(rtc("setting the offer"))?;
    candidates::add(pc, remote.ready(pc)).await;
    let answer = pc.create_answer(None).await.map_err(rtc("creating the answer"))?;
    pc.set_local_description(answer).await.map_err(rtc("setting the answer"))?;
    let local = gathered(pc).await?;
    Ok(proto::SessionDescription { r#type: "answer".into(), sdp: local.sdp, id: offer.id, ..Default::default() })
}
