//! Media for devroom: each participant's publisher and subscriber peer
//! connections (webrtc crate), and forwarding of RTP from every publisher to
//! every subscriber. One simulcast layer is forwarded per subscriber, chosen by
//! UpdateTrackSettings; SSRC, sequence numbers and timestamps are rewritten so a
//! layer switch looks like one continuous stream, and switches wait for a keyframe.

use crate::peer::candidates::{self, RemoteCandidates};
use crate::peer::{Network, PeerError, rtc};
use crate::sync::lock;
use livekit_protocol as proto;
use proto::signal_response::Message as Out;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RtpCodecKind};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnectionEventHandler, RTCIceCandidateInit, RTCPeerConnectionState, RTCSessionDescription,
};

use crate::peer::{Pc, gathered};

/// Where signal messages for a participant go.
pub trait SignalSink: Send + Sync {
    fn send(&self, m: Out);
}

/// Rewrites a forwarded stream's header so layer switches are seamless.
#[derive(Default)]
struct Rewriter {
    src: Option<u32>,
    seq_off: u16,
    ts_off: u32,
    last_seq: u16,
    last_ts: u32,
    last_at: Option<Instant>,
}

impl Rewriter {
    fn apply(&mut self, p: &mut rtc::rtp::Packet, out_ssrc: u32, pt: u8, clock: u32) {
        if self.src != Some(p.header.ssrc) {
            // Continue after the last packet sent, with the time that passed since.
            let gap = self.last_at.map_or(0, |t| (t.elapsed().as_secs_f64() * clock as f64) as u32).max(1);
            self.seq_off = self.last_seq.wrapping_add(1).wrapping_sub(p.header.sequence_number);
            self.ts_off = self.last_ts.wrapping_add(gap).wrapping_sub(p.header.timestamp);
            self.src = Some(p.header.ssrc);
        }
        p.header.ssrc = out_ssrc;
        p.header.payload_type = pt;
        p.header.sequence_number = p.header.sequence_number.wrapping_add(self.seq_off);
        p.header.timestamp = p.header.timestamp.wrapping_add(self.ts_off);
        // The publisher's extension ids mean nothing on this connection.
        p.header.extensions.clear();
        p.header.extension = false;
        p.header.extensions_padding = 0;
        if (p.header.sequence_number.wrapping_sub(self.last_seq) as i16) > 0 || self.last_at.is_none() {
            self.last_seq = p.header.sequence_number;
            self.last_ts = p.header.timestamp;
            self.last_at = Some(Instant::now());
        }
    }
}

/// Whether an RTP payload starts a keyframe (VP8 or H.264).
pub(crate) fn is_keyframe(mime: &str, p: &[u8]) -> bool {
    let mime = mime.to_ascii_lowercase();
    if mime.ends_with("vp8") {
        // Payload descriptor: S=1 and PID=0, then the VP8 header's P bit is 0.
        if p.is_empty() || p[0] & 0x10 == 0 || p[0] & 0x07 != 0 {
            return false;
        }
        let mut i = 1;
        if p[0] & 0x80 != 0 {
            let x = p.get(1).copied().unwrap_or(0);
            i = 2;
            if x & 0x80 != 0 {
                i += if p.get(i).is_some_and(|b| b & 0x80 != 0) { 2 } else { 1 };
            }
            if x & 0x40 != 0 {
                i += 1;
            }
            if x & 0x30 != 0 {
                i += 1;
            }
        }
        p.get(i).is_some_and(|b| b & 0x01 == 0)
    } else if mime.ends_with("h264") {
        let nal = |b: u8| b & 0x1f;
        match p.first().map(|b| nal(*b)) {
            Some(5) | Some(7) => true,
            // STAP-A: any aggregated SPS or IDR.
            Some(24) => {
                let mut i = 1;
                while i + 2 < p.len() {
                    let len = u16::from_be_bytes([p[i], p[i + 1]]) as usize;
                    if matches!(p.get(i + 2).map(|b| nal(*b)), Some(5) | Some(7)) {
                        return true;
                    }
                    i += 2 + len;
                }
                false
            }
            // FU-A start of an IDR.
            Some(28) => p.get(1).is_some_and(|h| h & 0x80 != 0 && nal(*h) == 5),
            _ => false,
        }
    } else {
        true
    }
}

/// A layer quality: LOW (q), MEDIUM (h), HIGH (f); "" is the only layer of a non-simulcast track.
fn rid_rank(rid: &str) -> u8 {
    match rid {
        "q" => 0,
        "h" => 1,
        _ => 2,
    }
}

/// One subscriber's copy of a published track.
pub(crate) struct DownTrack {
    pub subscriber: String,
    /// The subscriber connection is up (SRTP keys exist): before that, packets are lost.
    connected: Arc<std::sync::atomic::AtomicBool>,
    local: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
    /// Negotiated payload type on the subscriber connection; 0 until the answer is in.
    pt: std::sync::atomic::AtomicU8,
    /// Wanted quality rank (0 low .. 2 high).
    want: std::sync::atomic::AtomicU8,
    state: Mutex<DownState>,
    sender: Mutex<Option<Arc<dyn webrtc::rtp_transceiver::RtpSender>>>,
}

#[derive(Default)]
struct DownState {
    /// SSRC of the layer being forwarded.
    current: Option<u32>,
    rewriter: Rewriter,
    last_pli: Option<Instant>,
}

/// A track someone publishes, with its layers and subscribers.
pub(crate) struct PublishedTrack {
    pub sid: String,
    pub publisher: String,
    pub kind: RtpCodecKind,
    pub codec: RTCRtpCodec,
    remote: Arc<dyn TrackRemote>,
    /// rid ("" without simulcast) -> SSRC
    layers: Mutex<HashMap<String, u32>>,
    down: Mutex<Vec<Arc<DownTrack>>>,
}

impl PublishedTrack {
    fn layer_for(&self, want: u8) -> Option<u32> {
        let layers = lock(&self.layers);
        // The best layer not above what is wanted, else the lowest there is.
        let mut v: Vec<(u8, u32)> = layers.iter().map(|(r, s)| (rid_rank(r), *s)).collect();
        v.sort();
        v.iter().rev().find(|(r, _)| *r <= want).or(v.first()).map(|(_, s)| *s)
    }

    /// This subscriber's copies of the track.
    fn copies_for(&self, subscriber: &str) -> Vec<Arc<DownTrack>> {
        lock(&self.down).iter().filter(|d| d.subscriber == subscriber).cloned().collect()
    }

    /// Asks the publisher for a keyframe on every layer (video only).
    async fn request_keyframes(&self) {
        if self.kind != RtpCodecKind::Video {
            return;
        }
        let ssrcs: Vec<u32> = lock(&self.layers).values().copied().collect();
        for ssrc in ssrcs {
            self.request_keyframe(ssrc).await;
        }
    }

    async fn request_keyframe(&self, ssrc: u32) {
        let _ =
            self.remote.write_rtcp(vec![Box::new(PictureLossIndication { sender_ssrc: 0, media_ssrc: ssrc })]).await;
    }

    async fn forward(&self, pkt: rtc::rtp::Packet) {
        let downs: Vec<Arc<DownTrack>> = lock(&self.down).clone();
        let clock = self.codec.clock_rate.max(1);
        let video = self.kind == RtpCodecKind::Video;
        // The layer for each wanted quality, worked out once per packet, not per subscriber.
        let targets = [0, 1, 2].map(|want| self.layer_for(want));
        for d in downs {
            let pt = d.pt.load(std::sync::atomic::Ordering::Relaxed);
            if pt == 0 || !d.connected.load(std::sync::atomic::Ordering::Relaxed) {
                continue;
            }
            let target = targets[d.want.load(std::sync::atomic::Ordering::Relaxed).min(2) as usize];
            let (send, pli) = {
                let mut st = lock(&d.state);
                let mut pli = None;
                if video && st.current != target && Some(pkt.header.ssrc) == target {
                    // Switch (or start) only on a keyframe of the target layer.
                    if is_keyframe(&self.codec.mime_type, &pkt.payload) {
                        tracing::debug!(track = %self.sid, subscriber = %d.subscriber, ssrc = pkt.header.ssrc, "forwarding from a keyframe");
                        st.current = target;
                    } else if st.last_pli.is_none_or(|t| t.elapsed() > Duration::from_millis(500)) {
                        st.last_pli = Some(Instant::now());
                        pli = target;
                    }
                } else if !video {
                    st.current = Some(pkt.header.ssrc);
                }
                if st.current == Some(pkt.header.ssrc) {
                    let mut p = pkt.clone();
                    st.rewriter.apply(&mut p, d.ssrc, pt, clock);
                    (Some(p), pli)
                } else {
                    (None, pli)
                }
            };
            if let Some(ssrc) = pli {
                self.request_keyframe(ssrc).await;
            }
            if let Some(p) = send
                && d.local.write_rtp(p).await.is_err()
            {
                tracing::debug!(track = %self.sid, subscriber = %d.subscriber, "forwarding failed");
            }
        }
    }
}

/// The media side of one room.
#[derive(Default)]
pub struct RoomMedia {
    tracks: Mutex<HashMap<String, Arc<PublishedTrack>>>,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    /// Loudest recent audio level per participant, from the audio-level extension.
    levels: Mutex<HashMap<String, (f32, Instant)>>,
    impair: crate::peer::impair::Impairment,
}

/// An amplitude above this (-40 dBov) counts as speaking.
const SPEAKING_LEVEL: f32 = 0.01;
/// How long a level counts after its last packet, and how often speakers are checked.
const LEVEL_HOLD: Duration = Duration::from_millis(500);
const SPEAKER_TICK: Duration = Duration::from_millis(250);

/// The media side of one participant.
pub struct Session {
    pub sid: String,
    can_subscribe: bool,
    room: Weak<RoomMedia>,
    signal: Arc<dyn SignalSink>,
    /// TR sid by the client's track id (AddTrackRequest.cid), from the signal side.
    pub cids: Mutex<HashMap<String, String>>,
    publisher: tokio::sync::Mutex<Option<Pc>>,
    subscriber: tokio::sync::Mutex<Option<Pc>>,
    nego: Mutex<Negotiation>,
    sub_connected: Arc<std::sync::atomic::AtomicBool>,
    /// The client's candidates for each connection (they can come before its description).
    publisher_candidates: Mutex<RemoteCandidates>,
    subscriber_candidates: Mutex<RemoteCandidates>,
}

#[derive(Default)]
struct Negotiation {
    next_id: u32,
    in_flight: bool,
    again: bool,
}

struct PubHandler {
    session: Weak<Session>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for PubHandler {
    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let session = self.session.clone();
        // Callbacks run on the connection's driver: the work goes to its own task.
        tokio::spawn(async move {
            if let Some(s) = session.upgrade() {
                s.run_published(track).await;
            }
        });
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        tracing::debug!("publisher connection {state}");
    }
}

struct SubHandler {
    session: Weak<Session>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for SubHandler {
    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        tracing::debug!("subscriber connection {state}");
        let Some(s) = self.session.upgrade() else { return };
        let up = state == RTCPeerConnectionState::Connected;
        s.sub_connected.store(up, std::sync::atomic::Ordering::Relaxed);
        if up {
            // Every copy starts over from a keyframe sent after the keys exist.
            tokio::spawn(async move { s.restart_downtracks().await });
        }
    }
}

impl RoomMedia {
    /// The room's media, with a task that sends SpeakersChanged while the room exists.
    pub fn new(impair: crate::peer::impair::Impairment) -> Arc<Self> {
        let media = Arc::new(Self { impair, ..Self::default() });
        let weak = Arc::downgrade(&media);
        tokio::spawn(async move {
            let mut active: Vec<String> = Vec::new();
            loop {
                tokio::time::sleep(SPEAKER_TICK).await;
                let Some(m) = weak.upgrade() else { break };
                active = m.announce_speakers(active);
            }
        });
        media
    }

    fn note_level(&self, participant: &str, level: f32) {
        let mut levels = lock(&self.levels);
        let e = levels.entry(participant.to_string()).or_insert((0.0, Instant::now()));
        // Hold the loudest level for a moment, as a level meter does.
        if level >= e.0 || e.1.elapsed() > LEVEL_HOLD {
            *e = (level, Instant::now());
        }
    }

    /// Sends SpeakersChanged when who is speaking changed; returns who is now.
    fn announce_speakers(&self, before: Vec<String>) -> Vec<String> {
        let mut now: Vec<(String, f32)> = lock(&self.levels)
            .iter()
            .filter(|(_, (l, t))| *l > SPEAKING_LEVEL && t.elapsed() <= LEVEL_HOLD)
            .map(|(p, (l, _))| (p.clone(), *l))
            .collect();
        now.sort_by(|a, b| b.1.total_cmp(&a.1));
        let ids: Vec<String> = now.iter().map(|(p, _)| p.clone()).collect();
        let mut sorted_ids = ids.clone();
        sorted_ids.sort();
        let mut sorted_before = before.clone();
        sorted_before.sort();
        if sorted_ids == sorted_before {
            return before;
        }
        let mut speakers: Vec<proto::SpeakerInfo> = now
            .iter()
            .map(|(sid, level)| proto::SpeakerInfo { sid: sid.clone(), level: *level, active: true })
            .collect();
        speakers.extend(before.iter().filter(|b| !ids.contains(b)).map(|sid| proto::SpeakerInfo {
            sid: sid.clone(),
            level: 0.0,
            active: false,
        }));
        let sessions: Vec<Arc<Session>> = lock(&self.sessions).values().cloned().collect();
        for s in sessions {
            s.signal.send(Out::SpeakersChanged(proto::SpeakersChanged { speakers: speakers.clone() }));
        }
        ids
    }

    pub fn session(self: &Arc<Self>, sid: &str, can_subscribe: bool, signal: Arc<dyn SignalSink>) -> Arc<Session> {
        let s = Arc::new(Session {
            sid: sid.to_string(),
            can_subscribe,
            room: Arc::downgrade(self),
            signal,
            cids: Mutex::new(HashMap::new()),
            publisher: tokio::sync::Mutex::new(None),
            subscriber: tokio::sync::Mutex::new(None),
            nego: Mutex::new(Negotiation::default()),
            sub_connected: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            publisher_candidates: Mutex::default(),
            subscriber_candidates: Mutex::default(),
        });
        lock(&self.sessions).insert(sid.to_string(), s.clone());
        s
    }

    /// The simulcast layers (rids, "" without simulcast) each published track has sent so far.
    pub fn published_layers(&self) -> Vec<(String, Vec<String>)> {
        lock(&self.tracks).values().map(|t| (t.sid.clone(), lock(&t.layers).keys().cloned().collect())).collect()
    }

    /// (track sid, subscriber sid, rid being forwarded) for every copy that is flowing.
    pub fn forwarded_layers(&self) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        for t in lock(&self.tracks).values() {
            let layers = lock(&t.layers).clone();
            for d in lock(&t.down).iter() {
                if let Some(ssrc) = lock(&d.state).current
                    && let Some((rid, _)) = layers.iter().find(|(_, s)| **s == ssrc)
                {
                    out.push((t.sid.clone(), d.subscriber.clone(), rid.clone()));
                }
            }
        }
        out
    }

    /// A participant left: its connections close, its tracks go, its copies of others' tracks go.
    pub async fn remove(&self, sid: &str) {
        let session = lock(&self.sessions).remove(sid);
        lock(&self.levels).remove(sid);
        let gone: Vec<Arc<PublishedTrack>> = {
            let mut tracks = lock(&self.tracks);
            let ids: Vec<String> = tracks.values().filter(|t| t.publisher == sid).map(|t| t.sid.clone()).collect();
            ids.iter().filter_map(|i| tracks.remove(i)).collect()
        };
        for t in lock(&self.tracks).values() {
            lock(&t.down).retain(|d| d.subscriber != sid);
        }
        // Subscribers drop the copies of what this participant published.
        let sessions: Vec<Arc<Session>> = lock(&self.sessions).values().cloned().collect();
        for t in &gone {
            let downs: Vec<Arc<DownTrack>> = lock(&t.down).drain(..).collect();
            for d in downs {
                if let Some(s) = sessions.iter().find(|s| s.sid == d.subscriber) {
                    s.unsubscribe(&d).await;
                }
            }
        }
        if let Some(s) = session {
            s.close().await;
        }
    }

    fn published(&self) -> Vec<Arc<PublishedTrack>> {
        lock(&self.tracks).values().cloned().collect()
    }
}

impl Session {
    fn room(&self) -> Option<Arc<RoomMedia>> {
        self.room.upgrade()
    }

    /// Loopback, with the room's impairment on what it sends to subscribers.
    fn network(&self) -> Network {
        Network { impair: self.room().map(|r| r.impair).unwrap_or_default(), ..Network::loopback() }
    }

    /// The client's offer for its publisher connection: answered with the same id.
    pub(crate) async fn on_offer(self: &Arc<Self>, offer: proto::SessionDescription) -> Result<(), PeerError> {
        let session = Arc::downgrade(self);
        let pc = crate::peer::get_or_create(&self.publisher, || Arc::new(PubHandler { session }), &Network::loopback())
            .await?;
        let desc = RTCSessionDescription::offer(offer.sdp).map_err(rtc("reading the offer"))?;
        pc.set_remote_description(desc).await.map_err(rtc("setting the offer"))?;
        let early = lock(&self.publisher_candidates).ready(&pc);
        candidates::add(&pc, early).await;
        let answer = pc.create_answer(None).await.map_err(rtc("creating the answer"))?;
        pc.set_local_description(answer).await.map_err(rtc("setting the answer"))?;
        let local = gathered(&pc).await?;
        // As livekit-server does: the answer without candidates, then each one trickled.
        let (sdp, candidates) = split_candidates(&local.sdp);
        self.signal.send(Out::Answer(proto::SessionDescription {
            r#type: "answer".into(),
            sdp,
            id: offer.id,
            ..Default::default()
        }));
        let last = candidates.len();
        for (i, c) in candidates.into_iter().enumerate() {
            let init = serde_json::json!({ "candidate": c, "sdpMid": "0", "sdpMLineIndex": 0 });
            self.signal.send(Out::Trickle(proto::TrickleRequest {
                candidate_init: init.to_string(),
                target: proto::SignalTarget::Publisher as i32,
                r#final: i + 1 == last,
            }));
        }
        Ok(())
    }

    /// The client's answer to our subscriber offer.
    pub(crate) async fn on_answer(self: &Arc<Self>, answer: proto::SessionDescription) -> Result<(), PeerError> {
        let pc = self.subscriber.lock().await.clone().ok_or(PeerError::NoOffer)?;
        let desc = RTCSessionDescription::answer(answer.sdp).map_err(rtc("reading the answer"))?;
        pc.set_remote_description(desc).await.map_err(rtc("setting the answer"))?;
        let early = lock(&self.subscriber_candidates).ready(&pc);
        candidates::add(&pc, early).await;
        // Payload types are known now.
        if let Some(room) = self.room() {
            for t in room.published() {
                for d in t.copies_for(&self.sid) {
                    let sender = lock(&d.sender).clone();
                    if let Some(sender) = sender
                        && let Ok(p) = sender.get_parameters().await
                        && let Some(pt) = crate::peer::payload_type_for(&p.rtp_parameters.codecs, &t.codec)
                    {
                        d.pt.store(pt, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                t.request_keyframes().await;
            }
        }
        let again = {
            let mut n = lock(&self.nego);
            n.in_flight = false;
            std::mem::take(&mut n.again)
        };
        if again {
            self.negotiate().await?;
        }
        Ok(())
    }

    pub(crate) async fn on_trickle(&self, t: proto::TrickleRequest) -> Result<(), PeerError> {
        let init: RTCIceCandidateInit = serde_json::from_str(&t.candidate_init).map_err(PeerError::Candidate)?;
        if init.candidate.is_empty() {
            return Ok(());
        }
        // The client trickles as it gathers, which can be before its description reaches us.
        let remote = if t.target == proto::SignalTarget::Subscriber as i32 {
            &self.subscriber_candidates
        } else {
            &self.publisher_candidates
        };
        let routed = lock(remote).route(init);
        if let Some((pc, c)) = routed {
            pc.add_ice_candidate(c).await.map_err(rtc("adding a candidate"))?;
        }
        Ok(())
    }

    /// Restarts every copy this participant receives from a fresh keyframe.
    async fn restart_downtracks(&self) {
        let Some(room) = self.room() else { return };
        for t in room.published() {
            for d in t.copies_for(&self.sid) {
                lock(&d.state).current = None;
            }
            t.request_keyframes().await;
        }
    }

    /// Subscribes to, or unsubscribes from, tracks (UpdateSubscription).
    pub(crate) async fn set_subscribed(
        self: &Arc<Self>,
        track_sids: &[String],
        subscribe: bool,
    ) -> Result<(), PeerError> {
        let Some(room) = self.room() else { return Ok(()) };
        for t in room.published().into_iter().filter(|t| track_sids.contains(&t.sid) && t.publisher != self.sid) {
            if subscribe {
                self.subscribe(&t).await?;
            } else {
                let mine: Vec<Arc<DownTrack>> = {
                    let mut down = lock(&t.down);
                    let (mine, rest): (Vec<_>, Vec<_>) = down.drain(..).partition(|d| d.subscriber == self.sid);
                    *down = rest;
                    mine
                };
                if !mine.is_empty() {
                    for d in &mine {
                        self.unsubscribe(d).await;
                    }
                    self.negotiate().await?;
                }
            }
        }
        Ok(())
    }

    /// Sets the wanted quality of tracks for this subscriber.
    pub(crate) fn set_quality(&self, track_sids: &[String], quality: proto::VideoQuality) {
        let rank = match quality {
            proto::VideoQuality::Low => 0,
            proto::VideoQuality::Medium => 1,
            _ => 2,
        };
        if let Some(room) = self.room() {
            for t in room.published().iter().filter(|t| track_sids.contains(&t.sid)) {
                for d in t.copies_for(&self.sid) {
                    d.want.store(rank, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
    }

    /// Reads a published track: learns its layers, then forwards every packet.
    async fn run_published(self: Arc<Self>, track: Arc<dyn TrackRemote>) {
        let cid = track.track_id().await;
        let Some(room) = self.room() else { return };
        let Some(tr_sid) = lock(&self.cids).get(&cid).cloned() else {
            tracing::warn!(participant = %self.sid, %cid, "media for a track that was never announced (AddTrack)");
            return;
        };
        let mut published: Option<Arc<PublishedTrack>> = None;
        // The publisher's id for the audio-level extension, from its offer.
        let level_id = match self.publisher.lock().await.clone() {
            Some(pc) => {
                pc.remote_description().await.and_then(|d| crate::peer::extmap_id(&d.sdp, crate::peer::AUDIO_LEVEL_URI))
            }
            None => None,
        };
        while let Some(ev) = track.poll().await {
            match ev {
                TrackRemoteEvent::OnOpen(init) => {
                    let rid = init.rid.clone().unwrap_or_default();
                    tracing::debug!(participant = %self.sid, track = %tr_sid, rid = %rid, ssrc = init.ssrc, "layer opened");
                    match &published {
                        Some(p) => {
                            lock(&p.layers).insert(rid, init.ssrc);
                        }
                        None => {
                            let codec = track.codec(init.ssrc).await.unwrap_or_default();
                            let p = Arc::new(PublishedTrack {
                                sid: tr_sid.clone(),
                                publisher: self.sid.clone(),
                                kind: track.kind().await,
                                codec,
                                remote: track.clone(),
                                layers: Mutex::new(HashMap::from([(rid, init.ssrc)])),
                                down: Mutex::new(Vec::new()),
                            });
                            lock(&room.tracks).insert(tr_sid.clone(), p.clone());
                            tracing::info!(participant = %self.sid, track = %tr_sid, codec = %p.codec.mime_type, fmtp = %p.codec.sdp_fmtp_line, "media arrived");
                            let subscribers: Vec<Arc<Session>> = lock(&room.sessions)
                                .values()
                                .filter(|s| s.sid != self.sid && s.can_subscribe)
                                .cloned()
                                .collect();
                            for s in subscribers {
                                if let Err(e) = s.subscribe(&p).await {
                                    tracing::warn!(subscriber = %s.sid, track = %tr_sid, "cannot subscribe: {e}");
                                }
                            }
                            published = Some(p);
                        }
                    }
                }
                TrackRemoteEvent::OnRtpPacket(pkt) => {
                    if let Some(p) = &published {
                        if p.kind == RtpCodecKind::Audio
                            && let Some(id) = level_id
                            && let Some(level) = pkt.header.get_extension(id).and_then(|b| crate::peer::audio_level(&b))
                        {
                            room.note_level(&self.sid, level);
                        }
                        p.forward(pkt).await;
                    }
                }
                _ => {}
            }
        }
    }

    /// Subscribes to everything already published (a late joiner).
    pub(crate) async fn subscribe_existing(self: &Arc<Self>) {
        let Some(room) = self.room() else { return };
        for t in room.published().into_iter().filter(|t| t.publisher != self.sid) {
            if let Err(e) = self.subscribe(&t).await {
                tracing::warn!(subscriber = %self.sid, track = %t.sid, "cannot subscribe: {e}");
            }
        }
    }

    /// Adds a copy of `t` to this participant's subscriber connection and offers it.
    async fn subscribe(self: &Arc<Self>, t: &Arc<PublishedTrack>) -> Result<(), PeerError> {
        if !self.can_subscribe || lock(&t.down).iter().any(|d| d.subscriber == self.sid) {
            return Ok(());
        }
        let session = Arc::downgrade(self);
        let pc =
            crate::peer::get_or_create(&self.subscriber, || Arc::new(SubHandler { session }), &self.network()).await?;
        let ssrc: u32 = rand::random();
        let local = Arc::new(TrackLocalStaticRTP::new(crate::peer::one_encoding_track(
            format!("{}|{}", t.publisher, t.sid),
            t.sid.clone(),
            t.sid.clone(),
            t.kind,
            ssrc,
            t.codec.clone(),
        )));
        let transceiver = pc
            .add_transceiver_from_track(
                local.clone() as Arc<dyn TrackLocal>,
                Some(RTCRtpTransceiverInit { direction: RTCRtpTransceiverDirection::Sendonly, ..Default::default() }),
            )
            .await
            .map_err(rtc("adding a track for a subscriber"))?;
        let sender = transceiver.sender().await.map_err(rtc("the transceiver's sender"))?;
        let d = Arc::new(DownTrack {
            subscriber: self.sid.clone(),
            local,
            ssrc,
            pt: std::sync::atomic::AtomicU8::new(0),
            want: std::sync::atomic::AtomicU8::new(2),
            connected: self.sub_connected.clone(),
            state: Mutex::new(DownState::default()),
            sender: Mutex::new(sender),
        });
        lock(&t.down).push(d.clone());
        // The subscriber's keyframe requests go to the publisher of the layer it receives.
        let (weak, local) = (Arc::downgrade(t), d.local.clone());
        tokio::spawn(async move {
            while let Some(webrtc::media_stream::track_local::TrackLocalEvent::OnRtcpPacket(packets)) =
                local.poll().await
            {
                let Some(t) = weak.upgrade() else { break };
                if !packets.iter().any(|p| crate::peer::is_keyframe_request(p.as_ref())) {
                    continue;
                }
                let ssrc = {
                    let mut st = lock(&d.state);
                    if st.last_pli.is_some_and(|at| at.elapsed() < Duration::from_millis(300)) {
                        None
                    } else {
                        st.last_pli = Some(Instant::now());
                        st.current
                    }
                };
                if let Some(ssrc) = ssrc {
                    t.request_keyframe(ssrc).await;
                }
            }
        });
        self.negotiate().await
    }

    async fn unsubscribe(&self, d: &DownTrack) {
        let sender = lock(&d.sender).take();
        let pc = self.subscriber.lock().await.clone();
        if let (Some(pc), Some(sender)) = (pc, sender) {
            let _ = pc.remove_track(&sender).await;
        }
    }

    /// Offers the subscriber connection, one negotiation at a time.
    async fn negotiate(self: &Arc<Self>) -> Result<(), PeerError> {
        let id = {
            let mut n = lock(&self.nego);
            if n.in_flight {
                n.again = true;
                return Ok(());
            }
            n.in_flight = true;
            n.next_id += 1;
            n.next_id
        };
        let Some(pc) = self.subscriber.lock().await.clone() else { return Ok(()) };
        let result = async {
            let offer = pc.create_offer(None).await.map_err(rtc("creating an offer"))?;
            pc.set_local_description(offer).await.map_err(rtc("setting the offer"))?;
            gathered(&pc).await
        }
        .await;
        match result {
            Ok(local) => {
                self.signal.send(Out::Offer(proto::SessionDescription {
                    r#type: "offer".into(),
                    sdp: local.sdp,
                    id,
                    ..Default::default()
                }));
                Ok(())
            }
            Err(e) => {
                lock(&self.nego).in_flight = false;
                Err(e)
            }
        }
    }

    async fn close(&self) {
        for pc in [self.publisher.lock().await.take(), self.subscriber.lock().await.take()].into_iter().flatten() {
            let _ = pc.close().await;
        }
    }
}

/// An SDP without its candidate lines, and the first media section's candidates
/// (`candidate:...`; every section shares them under BUNDLE).
fn split_candidates(sdp: &str) -> (String, Vec<String>) {
    let mut out = String::with_capacity(sdp.len());
    let mut candidates = Vec::new();
    let mut section = 0;
    for line in sdp.split_inclusive('\n') {
        let l = line.trim_end();
        if l.starts_with("m=") {
            section += 1;
        }
        if let Some(c) = l.strip_prefix("a=") {
            if c.starts_with("candidate:") {
                if section == 1 {
                    candidates.push(c.to_string());
                }
                continue;
            }
            if c == "end-of-candidates" {
                continue;
            }
        }
        out.push_str(line);
    }
    (out, candidates)
}
