//! A client of LiveKit's signal protocol (v0, two peer connections): joins any
//! LiveKit-protocol server (devroom here, LiveKit in production), publishes
//! tracks (synthetic participants) and receives them (the recorder), reporting
//! the room's roster, speakers and tracks as [`RoomEvent`]s.

mod link;
mod subscriber;

use crate::peer::candidates::{self, RemoteCandidates};
use crate::peer::{Network, Pc, Quiet, gathered};
use crate::sync::lock;
use bytes::Bytes;
use livekit_protocol as proto;
use proto::signal_request::Message as Req;
use proto::signal_response::Message as Resp;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RtpCodecKind};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::peer_connection::RTCSessionDescription;

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("cannot connect to {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: Box<tokio_tungstenite::tungstenite::Error>,
    },
    #[error("the server refused the connection: {0}")]
    Refused(String),
    #[error("the server closed the connection")]
    Closed,
    #[error("no {0} from the server in time")]
    Timeout(&'static str),
    #[error("WebRTC: {0}")]
    Rtc(#[from] webrtc::error::Error),
    /// The negotiated session lacks what we need (a sender, a codec).
    #[error("WebRTC negotiation: {0}")]
    Negotiation(String),
    #[error("WebRTC: {0}")]
    Peer(#[from] crate::peer::PeerError),
}

/// A track to publish.
#[derive(Debug, Clone)]
pub(crate) struct TrackSpec {
    pub name: String,
    pub kind: RtpCodecKind,
    pub source: proto::TrackSource,
    pub width: u32,
    pub height: u32,
    pub codec: RTCRtpCodec,
}

impl TrackSpec {
    fn video(name: &str, source: proto::TrackSource, width: u32, height: u32, codec: RTCRtpCodec) -> Self {
        Self { name: name.into(), kind: RtpCodecKind::Video, source, width, height, codec }
    }

    pub(crate) fn vp8(name: &str, source: proto::TrackSource, width: u32, height: u32) -> Self {
        let codec = RTCRtpCodec { mime_type: "video/VP8".into(), clock_rate: 90_000, ..Default::default() };
        Self::video(name, source, width, height, codec)
    }

    /// Constrained baseline H.264, packetisation mode 1, as browsers send it.
    pub(crate) fn h264(name: &str, source: proto::TrackSource, width: u32, height: u32) -> Self {
        let codec = RTCRtpCodec {
            mime_type: "video/H264".into(),
            clock_rate: 90_000,
            sdp_fmtp_line: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f".into(),
            ..Default::default()
        };
        Self::video(name, source, width, height, codec)
    }

    pub(crate) fn opus(name: &str) -> Self {
        Self {
            name: name.into(),
            kind: RtpCodecKind::Audio,
            source: proto::TrackSource::Microphone,
            width: 0,
            height: 0,
            codec: RTCRtpCodec {
                mime_type: "audio/opus".into(),
                clock_rate: 48_000,
                channels: 2,
                sdp_fmtp_line: "minptime=10;useinbandfec=1".into(),
                ..Default::default()
            },
        }
    }
}

/// A published track: write encoded frames to it.
pub(crate) struct LocalTrack {
    pub sid: String,
    track: Arc<TrackLocalStaticSample>,
    ssrc: u32,
    pt: u8,
    /// Set when a receiver asked for a keyframe (PLI/FIR) since the last look.
    keyframe_wanted: Arc<std::sync::atomic::AtomicBool>,
}

impl LocalTrack {
    /// Whether a keyframe was asked for since the last call (the encoder should make one).
    pub(crate) fn keyframe_requested(&self) -> bool {
        self.keyframe_wanted.swap(false, std::sync::atomic::Ordering::Relaxed)
    }

    /// Sends one encoded frame (a VP8 frame, an Opus packet) lasting `duration`.
    pub(crate) async fn write(&self, data: Bytes, duration: Duration) -> Result<(), ClientError> {
        self.write_with(data, duration, &[]).await
    }

    /// Sends an Opus packet with its loudness in -dBov (0 loudest, 127 silent) in the
    /// audio-level header extension, which servers use to tell who is speaking.
    pub(crate) async fn write_audio(&self, data: Bytes, duration: Duration, dbov: u8) -> Result<(), ClientError> {
        use rtc::rtp::extension::{HeaderExtension, audio_level_extension::AudioLevelExtension};
        let level = HeaderExtension::AudioLevel(AudioLevelExtension { level: dbov.min(127), voice: dbov < 127 });
        self.write_with(data, duration, &[level]).await
    }

    async fn write_with(
        &self,
        data: Bytes,
        duration: Duration,
        extensions: &[rtc::rtp::extension::HeaderExtension],
    ) -> Result<(), ClientError> {
        let sample = rtc::media::Sample {
            data,
            timestamp: Instant::now(),
            duration,
            packet_timestamp: 0,
            prev_dropped_packets: 0,
            prev_padding_packets: 0,
        };
        self.track.write_sample(self.ssrc, self.pt, &sample, extensions).await.map_err(ClientError::Rtc)
    }
}

/// What the room tells a subscribing client, in the order it happened.
pub(crate) enum RoomEvent {
    /// Participants as the server last described them (the join response's, then updates; a
    /// participant whose state is `Disconnected` has left).
    Participants(Vec<proto::ParticipantInfo>),
    /// Speakers whose level changed (`active == false`: stopped speaking).
    Speakers(Vec<proto::SpeakerInfo>),
    /// A track's media started arriving on the subscriber connection.
    Track(RemoteTrack),
    /// The signal connection broke and was resumed (media went on meanwhile).
    Resumed,
    /// The server ended our session, or the connection broke for good.
    Left(String),
}

/// A received track: its media is read with `track.poll()`.
pub(crate) struct RemoteTrack {
    pub participant_sid: String,
    pub track_sid: String,
    pub track: Arc<dyn webrtc::media_stream::track_remote::TrackRemote>,
}

/// How to join.
#[derive(Default)]
pub(crate) struct ConnectOptions {
    /// Ask the server to subscribe us to every track (a recorder); publishers leave it off.
    pub auto_subscribe: bool,
    /// Where room events go; None for a client that only publishes.
    pub events: Option<mpsc::UnboundedSender<RoomEvent>>,
    /// Addresses to bind; None: loopback for a server on loopback, else every
    /// interface with ICE-TCP. The server's ICE servers are added either way.
    pub network: Option<Network>,
}

/// The policy for a server at `url` when none is given.
fn network_for(url: &str) -> Network {
    let host = url::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_owned)).unwrap_or_default();
    let local = host == "localhost"
        || host.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if local { Network::loopback() } else { Network::any_interface() }
}

/// A trickled candidate as the server sends it (JSON of RTCIceCandidateInit).
fn candidate(t: &proto::TrickleRequest) -> Option<webrtc::peer_connection::RTCIceCandidateInit> {
    serde_json::from_str(&t.candidate_init)
        .map_err(|_| tracing::debug!("unreadable candidate: {}", t.candidate_init))
        .ok()
}

#[derive(Default)]
struct Pending {
    published: HashMap<String, oneshot::Sender<proto::TrackInfo>>,
    answers: HashMap<u32, oneshot::Sender<proto::SessionDescription>>,
}

/// A joined participant.
pub(crate) struct RoomClient {
    pub join: proto::JoinResponse,
    out: mpsc::UnboundedSender<proto::SignalRequest>,
    pending: Arc<Mutex<Pending>>,
    publisher: tokio::sync::Mutex<Option<Pc>>,
    /// The server's candidates for our publisher connection (they can come before its answer).
    publisher_ice: Arc<Mutex<RemoteCandidates>>,
    network: Network,
    next_offer: Mutex<u32>,
    subscriber: mpsc::UnboundedSender<subscriber::Signal>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// A reply the reader task routes to us, within LiveKit's 10 s client timeout.
async fn reply<T>(rx: oneshot::Receiver<T>, what: &'static str) -> Result<T, ClientError> {
    tokio::time::timeout(Duration::from_secs(10), rx)
        .await
        .map_err(|_| ClientError::Timeout(what))?
        .map_err(|_| ClientError::Closed)
}

impl RoomClient {
    /// Joins the room `token` grants on the server at `url` (ws:// or wss://) to publish.
    pub(crate) async fn connect(url: &str, token: &str) -> Result<Self, ClientError> {
        Self::connect_with(url, token, ConnectOptions::default()).await
    }

    /// Joins with options: a recorder subscribes and listens to events.
    pub(crate) async fn connect_with(url: &str, token: &str, options: ConnectOptions) -> Result<Self, ClientError> {
        let query = format!(
            "protocol=17&sdk=tessera&version={}&auto_subscribe={}",
            env!("CARGO_PKG_VERSION"),
            options.auto_subscribe as u8
        );
        let mut ws = link::open(url, token, &query).await?;
        let join = match link::first_response(&mut ws).await? {
            Resp::Join(join) => join,
            Resp::Leave(l) => {
                return Err(ClientError::Refused(format!("the server asked us to leave ({:?})", l.reason())));
            }
            _ => return Err(ClientError::Refused("the server resumed a session we did not ask for".into())),
        };
        let (out, out_rx) = mpsc::unbounded_channel::<proto::SignalRequest>();
        let pending = Arc::new(Mutex::new(Pending::default()));
        let p = pending.clone();
        let events = options.events;
        let network = options.network.unwrap_or_else(|| network_for(url)).with_ice_servers(&join.ice_servers);
        let publisher_ice = Arc::new(Mutex::new(RemoteCandidates::default()));
        let ice = publisher_ice.clone();
        let emit = {
            let events = events.clone();
            move |e: RoomEvent| {
                if let Some(tx) = &events {
                    let _ = tx.send(e);
                }
            }
        };
        emit(RoomEvent::Participants(join.other_participants.clone()));
        // Server offers for the subscriber connection are answered in order by one task.
        let (sub_tx, sub_task) = subscriber::spawn(out.clone(), events.clone(), network.clone());
        let sub_close = sub_tx.clone();
        let route_emit = emit.clone();
        let route = move |m: Resp| -> Option<String> {
            match m {
                Resp::Offer(o) => {
                    let _ = sub_tx.send(subscriber::Signal::Offer(o));
                }
                Resp::Trickle(t) if t.target == proto::SignalTarget::Subscriber as i32 => {
                    let _ = sub_tx.send(subscriber::Signal::Trickle(t));
                }
                // LiveKit's server trickles its candidates for our publisher connection
                // (devroom puts them in its answer).
                Resp::Trickle(t) => {
                    if let Some((pc, c)) = candidate(&t).and_then(|c| lock(&ice).route(c)) {
                        tokio::spawn(async move { candidates::add(&pc, [c]).await });
                    }
                }
                Resp::Update(u) => route_emit(RoomEvent::Participants(u.participants)),
                Resp::SpeakersChanged(s) => route_emit(RoomEvent::Speakers(s.speakers)),
                Resp::TrackPublished(r) => {
                    if let (Some(tx), Some(t)) = (lock(&p).published.remove(&r.cid), r.track) {
                        let _ = tx.send(t);
                    }
                }
                Resp::Answer(a) => {
                    if let Some(tx) = lock(&p).answers.remove(&a.id) {
                        let _ = tx.send(a);
                    }
                }
                Resp::Leave(l) => {
                    tracing::info!("the server asked us to leave: {:?}", l.reason());
                    return Some(format!("the server ended the session ({:?})", l.reason()));
                }
                _ => {}
            }
            None
        };
        let sid = join.participant.as_ref().map(|p| p.sid.clone()).unwrap_or_default();
        let link = link::Link { url: url.to_string(), token: token.to_string(), query, sid };
        let signal = tokio::spawn(link::run(ws, link, out_rx, route, emit));
        let ping_out = out.clone();
        let every = Duration::from_secs(join.ping_interval.max(1) as u64);
        let pinger = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let now = crate::time::unix_ms();
                if ping_out
                    .send(proto::SignalRequest { message: Some(Req::PingReq(proto::Ping { timestamp: now, rtt: 0 })) })
                    .is_err()
                {
                    break;
                }
            }
        });
        Ok(Self {
            join,
            out,
            pending,
            publisher: tokio::sync::Mutex::new(None),
            publisher_ice,
            network,
            next_offer: Mutex::new(0),
            subscriber: sub_close,
            tasks: vec![signal, pinger, sub_task],
        })
    }

    pub(crate) fn participant_sid(&self) -> String {
        self.join.participant.as_ref().map(|p| p.sid.clone()).unwrap_or_default()
    }

    fn send(&self, m: Req) -> Result<(), ClientError> {
        self.out.send(proto::SignalRequest { message: Some(m) }).map_err(|_| ClientError::Closed)
    }

    /// Publishes tracks in one negotiation (so nothing already flowing is renegotiated).
    pub(crate) async fn publish(&self, specs: Vec<TrackSpec>) -> Result<Vec<LocalTrack>, ClientError> {
        let mut infos = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            let cid = format!("TC_{}_{i}_{}", self.participant_sid(), rand::random::<u32>());
            let (tx, rx) = oneshot::channel();
            lock(&self.pending).published.insert(cid.clone(), tx);
            let video = spec.kind == RtpCodecKind::Video;
            self.send(Req::AddTrack(proto::AddTrackRequest {
                cid: cid.clone(),
                name: spec.name.clone(),
                r#type: if video { proto::TrackType::Video } else { proto::TrackType::Audio } as i32,
                source: spec.source as i32,
                width: spec.width,
                height: spec.height,
                layers: if video {
                    vec![proto::VideoLayer {
                        quality: proto::VideoQuality::High as i32,
                        width: spec.width,
                        height: spec.height,
                        ..Default::default()
                    }]
                } else {
                    vec![]
                },
                ..Default::default()
            }))?;
            let info = reply(rx, "TrackPublished").await?;
            infos.push((cid, info));
        }
        let pc = crate::peer::get_or_create(&self.publisher, || Arc::new(Quiet), &self.network)
            .await
            .map_err(ClientError::Peer)?;
        let rtc = ClientError::Rtc;
        let mut made = Vec::new();
        for (spec, (cid, info)) in specs.iter().zip(infos) {
            let ssrc: u32 = rand::random();
            let track = Arc::new(
                TrackLocalStaticSample::new(
                    Instant::now(),
                    crate::peer::one_encoding_track(
                        self.participant_sid(),
                        cid.clone(),
                        spec.name.clone(),
                        spec.kind,
                        ssrc,
                        spec.codec.clone(),
                    ),
                )
                .map_err(rtc)?,
            );
            let transceiver = pc
                .add_transceiver_from_track(
                    track.clone() as Arc<dyn TrackLocal>,
                    Some(RTCRtpTransceiverInit {
                        direction: RTCRtpTransceiverDirection::Sendonly,
                        ..Default::default()
                    }),
                )
                .await
                .map_err(rtc)?;
            made.push((info.sid, spec.kind, track, ssrc, transceiver, spec.codec.clone()));
        }
        // Offer, and wait for the answer with our id.
        let id = {
            let mut n = lock(&self.next_offer);
            *n += 1;
            *n
        };
        let offer = pc.create_offer(None).await.map_err(rtc)?;
        pc.set_local_description(offer).await.map_err(rtc)?;
        let local = gathered(&pc).await?;
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).answers.insert(id, tx);
        self.send(Req::Offer(proto::SessionDescription {
            r#type: "offer".into(),
            sdp: local.sdp,
            id,
            ..Default::default()
        }))?;
        let answer = reply(rx, "answer").await?;
        pc.set_remote_description(RTCSessionDescription::answer(answer.sdp).map_err(rtc)?).await.map_err(rtc)?;
        let early = lock(&self.publisher_ice).ready(&pc);
        candidates::add(&pc, early).await;
        let mut tracks = Vec::new();
        for (sid, _kind, track, ssrc, transceiver, codec) in made {
            let sender =
                transceiver.sender().await.map_err(rtc)?.ok_or_else(|| ClientError::Negotiation("no sender".into()))?;
            let params = sender.get_parameters().await.map_err(rtc)?;
            let pt = crate::peer::payload_type_for(&params.rtp_parameters.codecs, &codec)
                .ok_or_else(|| ClientError::Negotiation(format!("{} was not negotiated", codec.mime_type)))?;
            let keyframe_wanted = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let (flag, local) = (keyframe_wanted.clone(), track.clone());
            tokio::spawn(async move {
                use webrtc::media_stream::track_local::TrackLocalEvent;
                while let Some(TrackLocalEvent::OnRtcpPacket(packets)) = local.poll().await {
                    if packets.iter().any(|p| crate::peer::is_keyframe_request(p.as_ref())) {
                        flag.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
            tracks.push(LocalTrack { sid, track, ssrc, pt, keyframe_wanted });
        }
        Ok(tracks)
    }

    /// Asks for a video track at the size it is shown (the server picks the simulcast layer).
    pub(crate) fn track_settings(&self, track_sid: &str, width: u32, height: u32) -> Result<(), ClientError> {
        self.send(Req::TrackSetting(proto::UpdateTrackSettings {
            track_sids: vec![track_sid.into()],
            width,
            height,
            ..Default::default()
        }))
    }

    /// Subscribes to a track, or unsubscribes (a recorder drops the tracks it does not record).
    pub(crate) fn subscribe(&self, track_sid: &str, subscribe: bool) -> Result<(), ClientError> {
        self.send(Req::Subscription(proto::UpdateSubscription {
            track_sids: vec![track_sid.into()],
            subscribe,
            ..Default::default()
        }))
    }

    pub(crate) fn mute(&self, track_sid: &str, muted: bool) -> Result<(), ClientError> {
        self.send(Req::Mute(proto::MuteTrackRequest { sid: track_sid.into(), muted }))
    }

    /// Leaves the room and closes the connections.
    pub(crate) async fn leave(mut self) {
        let _ = self.send(Req::Leave(proto::LeaveRequest {
            reason: proto::DisconnectReason::ClientInitiated as i32,
            action: proto::leave_request::Action::Disconnect as i32,
            ..Default::default()
        }));
        if let Some(pc) = self.publisher.lock().await.take() {
            let _ = pc.close().await;
        }
        let _ = self.subscriber.send(subscriber::Signal::Close);
        // Give the writer a moment to send the leave, and the subscriber task to close.
        tokio::time::sleep(Duration::from_millis(100)).await;
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

impl Drop for RoomClient {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
