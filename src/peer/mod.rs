//! WebRTC peer connections as devroom and the room client build them: the
//! addresses and ICE servers a [`Network`] policy gives, VP8/H.264/Opus, the
//! header extensions simulcast needs, NACK and RTCP reports, and every candidate
//! gathered into the local description (`gathered`; devroom then trickles its
//! publisher answer's candidates, as livekit-server does).

pub mod candidates;
pub mod impair;

use rtc::interceptor::Registry;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use std::sync::Arc;
use std::time::Duration;
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCSessionDescription, SettingEngineBuilder,
};

pub(crate) type Pc = Arc<dyn PeerConnection>;

pub(crate) const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

/// The id an SDP gives a header extension (`a=extmap:<id> <uri>`), if it is there.
pub(crate) fn extmap_id(sdp: &str, uri: &str) -> Option<u8> {
    sdp.lines().filter_map(|l| l.trim().strip_prefix("a=extmap:")).find_map(|rest| {
        let mut parts = rest.split_whitespace();
        let id = parts.next()?.split('/').next()?.parse().ok()?;
        (parts.next()? == uri).then_some(id)
    })
}

/// The level in an audio-level extension (RFC 6464) as an amplitude 0..1.
pub(crate) fn audio_level(payload: &[u8]) -> Option<f32> {
    let dbov = (payload.first()? & 0x7f) as f32;
    Some(10f32.powf(-dbov / 20.0))
}

/// Where a peer connection may reach its peer: the sockets it binds, the ICE
/// servers it may use and what it does to the RTP it sends. An input of every
/// connection, so that devroom (loopback, its impairment) and a recorder on
/// another machine than its LiveKit server (every interface, the server's STUN
/// and TURN, ICE-TCP where UDP is blocked) are built by the same code.
#[derive(Debug, Clone)]
pub struct Network {
    /// UDP addresses to bind; a wildcard (`0.0.0.0:0`) means every interface
    /// but loopback, so loopback is named as well where a peer may be local.
    pub udp: Vec<String>,
    /// TCP addresses to bind (ICE-TCP candidates, active and passive); empty: UDP only.
    pub tcp: Vec<String>,
    /// STUN and TURN servers (the JoinResponse's, for a client of a LiveKit server).
    pub ice_servers: Vec<webrtc::peer_connection::RTCIceServer>,
    /// Degrades the RTP it sends (devroom's lossy-network mode; nobody else's).
    pub impair: impair::Impairment,
}

impl Network {
    /// Loopback UDP only: devroom and its test clients.
    pub fn loopback() -> Self {
        Self { udp: vec!["127.0.0.1:0".into()], tcp: vec![], ice_servers: vec![], impair: Default::default() }
    }

    /// A client of a LiveKit server anywhere: every interface and loopback over
    /// UDP, and TCP for servers whose UDP is blocked.
    pub(crate) fn any_interface() -> Self {
        Self {
            udp: vec!["0.0.0.0:0".into(), "127.0.0.1:0".into()],
            tcp: vec!["0.0.0.0:0".into(), "127.0.0.1:0".into()],
            ice_servers: vec![],
            impair: Default::default(),
        }
    }

    /// The ICE servers a JoinResponse lists (STUN, TURN over UDP, TCP and TLS).
    pub(crate) fn with_ice_servers(mut self, servers: &[livekit_protocol::IceServer]) -> Self {
        self.ice_servers = servers
            .iter()
            .map(|s| webrtc::peer_connection::RTCIceServer {
                urls: s.urls.clone(),
                username: s.username.clone(),
                credential: s.credential.clone(),
            })
            .collect();
        self
    }
}

/// A WebRTC step that failed, with what was being done.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("{what}: {source}")]
    Rtc {
        what: &'static str,
        #[source]
        source: webrtc::error::Error,
    },
    #[error("ICE gathering did not finish within 3 s")]
    Gathering,
    #[error("an answer came without an offer")]
    NoOffer,
    #[error("unreadable ICE candidate: {0}")]
    Candidate(#[source] serde_json::Error),
}

/// Names the step for an error from the `webrtc` crate.
pub fn rtc(what: &'static str) -> impl FnOnce(webrtc::error::Error) -> PeerError {
    move |source| PeerError::Rtc { what, source }
}

/// Builds a peer connection with VP8, H.264, Opus and the header extensions
/// simulcast needs (mid, rid), candidates embedded in the SDP, on `network`.
pub(crate) async fn new_pc(handler: Arc<dyn PeerConnectionEventHandler>, network: &Network) -> Result<Pc, PeerError> {
    let mut me = MediaEngine::default();
    me.register_default_codecs().map_err(rtc("registering codecs"))?;
    // The audio level of each packet: devroom's SpeakersChanged, the recorder's speaker detection.
    me.register_header_extension(
        rtc::rtp_transceiver::rtp_sender::RTCRtpHeaderExtensionCapability { uri: AUDIO_LEVEL_URI.into() },
        rtc::rtp_transceiver::rtp_sender::RtpCodecKind::Audio,
        None,
    )
    .map_err(rtc("registering the audio level extension"))?;
    let registry = register_default_interceptors(Registry::new(), &mut me)
        .map_err(rtc("registering interceptors"))?
        .with(rtc::interceptor::Slot::from(14_000), KeyframeRequests::default())
        // Wire-most, below the NACK responder's history, so what it drops can be resent.
        .with(rtc::interceptor::Slot::from(500), impair::ImpairedLink::new(network.impair));
    let se = SettingEngineBuilder::new().with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled).build();
    let config = RTCConfigurationBuilder::new().with_ice_servers(network.ice_servers.clone()).build();
    let pc = PeerConnectionBuilder::new()
        .with_configuration(config)
        .with_media_engine(me)
        .with_setting_engine(se)
        .with_interceptor_registry(registry)
        .with_handler(handler)
        .with_udp_addrs(network.udp.clone())
        .with_tcp_addrs(network.tcp.clone())
        .build()
        .await
        .map_err(rtc("creating a peer connection"))?;
    Ok(Arc::new(pc))
}

/// The local description once every candidate is in it (no trickle from us:
/// LiveKit's Rust SDK panics on some trickles, and loopback gathers at once).
pub(crate) async fn gathered(pc: &Pc) -> Result<RTCSessionDescription, PeerError> {
    for _ in 0..300 {
        if let Some(d) = pc.local_description().await
            && d.sdp.contains("a=end-of-candidates")
        {
            return Ok(d);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    pc.local_description().await.ok_or(PeerError::Gathering)
}

/// Hands the keyframe requests (PLI, FIR) a peer sends about our outgoing tracks
/// to the application (`TrackLocal::poll`), where an SFU passes them upstream, and
/// the sender reports about incoming ones (`TrackRemote::poll`), which a recorder
/// needs to put every track on one clock.
/// The default interceptors answer NACKs themselves and keep all other RTCP;
/// this is the hook the webrtc crate provides for the rest, with our policy.
#[derive(Default)]
pub(crate) struct KeyframeRequests {
    read: std::collections::VecDeque<rtc::interceptor::TaggedPacket>,
    write: std::collections::VecDeque<rtc::interceptor::TaggedPacket>,
}

/// Whether an RTCP packet asks for a keyframe.
pub(crate) fn is_keyframe_request(p: &dyn rtc::rtcp::Packet) -> bool {
    use rtc::rtcp::payload_feedbacks::{
        full_intra_request::FullIntraRequest, picture_loss_indication::PictureLossIndication,
    };
    p.as_any().is::<PictureLossIndication>() || p.as_any().is::<FullIntraRequest>()
}

use rtc::rtcp::sender_report::SenderReport;

impl rtc::sansio::Protocol<rtc::interceptor::TaggedPacket, rtc::interceptor::TaggedPacket, ()> for KeyframeRequests {
    type Rout = rtc::interceptor::TaggedPacket;
    type Wout = rtc::interceptor::TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = std::time::Instant;

    fn handle_read(&mut self, mut m: rtc::interceptor::TaggedPacket) -> Result<(), Self::Error> {
        if let rtc::interceptor::Packet::Rtcp(packets) = &m.message.packet {
            let wanted: Vec<_> = packets
                .iter()
                .filter(|p| is_keyframe_request(p.as_ref()) || p.as_any().is::<SenderReport>())
                .cloned()
                .collect();
            if wanted.is_empty() {
                // Reports and NACKs were handled by the interceptors before this one.
                return Ok(());
            }
            m.message.packet = rtc::interceptor::Packet::Rtcp(wanted);
            m.message.add(rtc::interceptor::Attribute::DeliverToApplication);
        }
        self.read.push_back(m);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, m: rtc::interceptor::TaggedPacket) -> Result<(), Self::Error> {
        self.write.push_back(m);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write.pop_front()
    }
}

impl rtc::interceptor::Interceptor for KeyframeRequests {
    fn bind_local_stream(&mut self, _: &rtc::interceptor::StreamInfo) {}
    fn unbind_local_stream(&mut self, _: &rtc::interceptor::StreamInfo) {}
    fn bind_remote_stream(&mut self, _: &rtc::interceptor::StreamInfo) {}
    fn unbind_remote_stream(&mut self, _: &rtc::interceptor::StreamInfo) {}
}

/// The payload type negotiated for `codec` on a sender: the entry with the same
/// MIME type and format parameters, else the first with the same MIME type. (The
/// first entry of all can be another codec, or H.264 in another packetisation mode.)
pub(crate) fn payload_type_for(
    codecs: &[rtc::rtp_transceiver::rtp_sender::RTCRtpCodecParameters],
    codec: &rtc::rtp_transceiver::rtp_sender::RTCRtpCodec,
) -> Option<u8> {
    let same_mime = |c: &&rtc::rtp_transceiver::rtp_sender::RTCRtpCodecParameters| {
        c.rtp_codec.mime_type.eq_ignore_ascii_case(&codec.mime_type)
    };
    codecs
        .iter()
        .filter(same_mime)
        .find(|c| c.rtp_codec.sdp_fmtp_line == codec.sdp_fmtp_line)
        .or_else(|| codecs.iter().find(same_mime))
        .map(|c| c.payload_type)
}

/// The connection in `slot`, created with `handler` on first use.
pub(crate) async fn get_or_create(
    slot: &tokio::sync::Mutex<Option<Pc>>,
    handler: impl FnOnce() -> Arc<dyn PeerConnectionEventHandler>,
    network: &Network,
) -> Result<Pc, PeerError> {
    let mut guard = slot.lock().await;
    if let Some(pc) = guard.as_ref() {
        return Ok(pc.clone());
    }
    let pc = new_pc(handler(), network).await?;
    *guard = Some(pc.clone());
    Ok(pc)
}

/// A track description with one encoding: our SSRC and codec.
pub(crate) fn one_encoding_track(
    stream_id: String,
    track_id: String,
    label: String,
    kind: rtc::rtp_transceiver::rtp_sender::RtpCodecKind,
    ssrc: u32,
    codec: rtc::rtp_transceiver::rtp_sender::RTCRtpCodec,
) -> webrtc::media_stream::MediaStreamTrack {
    use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodingParameters, RTCRtpEncodingParameters};
    webrtc::media_stream::MediaStreamTrack::new(
        stream_id,
        track_id,
        label,
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() },
            codec,
            ..Default::default()
        }],
    )
}

/// A handler for connections whose events nobody needs.
pub(crate) struct Quiet;

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Quiet {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_extmap_ids_and_levels() {
        let sdp = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\na=extmap:4/recvonly urn:ietf:params:rtp-hdrext:sdes:mid\r\n";
        assert_eq!(extmap_id(sdp, AUDIO_LEVEL_URI), Some(1));
        assert_eq!(extmap_id(sdp, "urn:ietf:params:rtp-hdrext:sdes:mid"), Some(4));
        assert_eq!(extmap_id(sdp, "urn:x"), None);
        assert_eq!(audio_level(&[0x80]), Some(1.0));
        assert!(audio_level(&[127]).unwrap() < 1e-6);
        assert!((audio_level(&[20]).unwrap() - 0.1).abs() < 1e-3);
    }
}
