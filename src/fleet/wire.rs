//! psrpc's wire format on Redis, as livekit-server v1.13 (psrpc v0.7.2) writes it: every
//! payload is an `internal.Msg` (wire-identical to `google.protobuf.Any`) holding one of four
//! envelopes, and the RPC's own message rides as plain protobuf bytes inside the envelope.
//! The envelopes and `rpc.StartEgressRequest` are not in `livekit-protocol`, so they are
//! declared here with prost's derive (psrpc's `internal.proto` and protocol's
//! `rpc/egress.proto`, field numbers as published).

use livekit_protocol as proto;
use prost::Message;

const TYPE_PREFIX: &str = "type.googleapis.com/internal.";

#[derive(Clone, PartialEq, Message)]
struct Msg {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
    /// NATS only; empty on Redis.
    #[prost(string, tag = "3")]
    channel: String,
}

/// A call: `raw_request` is the RPC's message. `sent_at` and `expiry` are Unix nanoseconds.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct Request {
    #[prost(string, tag = "1")]
    pub request_id: String,
    #[prost(string, tag = "2")]
    pub client_id: String,
    #[prost(int64, tag = "3")]
    pub sent_at: i64,
    #[prost(int64, tag = "4")]
    pub expiry: i64,
    #[prost(bool, tag = "5")]
    pub multi: bool,
    #[prost(map = "string, string", tag = "7")]
    pub metadata: std::collections::HashMap<String, String>,
    #[prost(bytes = "vec", tag = "8")]
    pub raw_request: Vec<u8>,
}

/// An answer: `raw_response`, or `error` with a psrpc `code`.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct Response {
    #[prost(string, tag = "1")]
    pub request_id: String,
    #[prost(string, tag = "2")]
    pub server_id: String,
    #[prost(int64, tag = "3")]
    pub sent_at: i64,
    #[prost(string, tag = "5")]
    pub error: String,
    #[prost(string, tag = "6")]
    pub code: String,
    #[prost(bytes = "vec", tag = "7")]
    pub raw_response: Vec<u8>,
}

/// A server's bid for a request.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct ClaimRequest {
    #[prost(string, tag = "1")]
    pub request_id: String,
    #[prost(string, tag = "2")]
    pub server_id: String,
    #[prost(float, tag = "3")]
    pub affinity: f32,
}

/// The client's grant: the one server that handles the request.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct ClaimResponse {
    #[prost(string, tag = "1")]
    pub request_id: String,
    #[prost(string, tag = "2")]
    pub server_id: String,
}

/// One Redis payload.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Envelope {
    Request(Request),
    Response(Response),
    Claim(ClaimRequest),
    Grant(ClaimResponse),
}

impl Envelope {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let (name, value) = match self {
            Envelope::Request(m) => ("Request", m.encode_to_vec()),
            Envelope::Response(m) => ("Response", m.encode_to_vec()),
            Envelope::Claim(m) => ("ClaimRequest", m.encode_to_vec()),
            Envelope::Grant(m) => ("ClaimResponse", m.encode_to_vec()),
        };
        Msg { type_url: format!("{TYPE_PREFIX}{name}"), value, channel: String::new() }.encode_to_vec()
    }

    /// None for anything that is not one of the four envelopes (psrpc drops those too).
    pub(crate) fn decode(payload: &[u8]) -> Option<Envelope> {
        let msg = Msg::decode(payload).ok()?;
        let value = msg.value.as_slice();
        // psrpc resolves the type by the text after the last '/'.
        Some(match msg.type_url.rsplit('/').next()? {
            "internal.Request" => Envelope::Request(Request::decode(value).ok()?),
            "internal.Response" => Envelope::Response(Response::decode(value).ok()?),
            "internal.ClaimRequest" => Envelope::Claim(ClaimRequest::decode(value).ok()?),
            "internal.ClaimResponse" => Envelope::Grant(ClaimResponse::decode(value).ok()?),
            _ => return None,
        })
    }
}

/// `rpc.ListActiveEgressRequest`: no fields.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct ListActiveEgressRequest {}

/// `rpc.ListActiveEgressResponse`: the egress ids a node is running.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct ListActiveEgressResponse {
    #[prost(string, repeated, tag = "1")]
    pub egress_ids: Vec<String>,
}

/// `rpc.StartEgressRequest`: what livekit-server's egress launcher sends to the fleet.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct StartEgressRequest {
    #[prost(string, tag = "1")]
    pub egress_id: String,
    #[prost(string, tag = "3")]
    pub room_id: String,
    #[prost(oneof = "StartRequest", tags = "16, 17, 5, 11, 13, 6, 7")]
    pub request: Option<StartRequest>,
    #[prost(string, tag = "8")]
    pub token: String,
    #[prost(string, tag = "9")]
    pub ws_url: String,
    #[prost(bool, tag = "10")]
    pub cloud_backup_enabled: bool,
    #[prost(double, tag = "14")]
    pub estimated_cpu: f64,
    #[prost(int32, tag = "15")]
    pub retry_count: i32,
    #[prost(string, tag = "18")]
    pub room_name: String,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub(crate) enum StartRequest {
    #[prost(message, tag = "16")]
    Egress(proto::StartEgressRequest),
    #[prost(message, tag = "17")]
    Replay(proto::ExportReplayRequest),
    #[prost(message, tag = "5")]
    RoomComposite(proto::RoomCompositeEgressRequest),
    #[prost(message, tag = "11")]
    Web(proto::WebEgressRequest),
    #[prost(message, tag = "13")]
    Participant(proto::ParticipantEgressRequest),
    #[prost(message, tag = "6")]
    TrackComposite(proto::TrackCompositeEgressRequest),
    #[prost(message, tag = "7")]
    Track(proto::TrackEgressRequest),
}

impl StartRequest {
    /// The same request as EgressInfo carries it.
    pub(crate) fn into_info_request(self) -> proto::egress_info::Request {
        use proto::egress_info::Request as R;
        match self {
            StartRequest::Egress(r) => R::Egress(r),
            StartRequest::Replay(r) => R::Replay(r),
            StartRequest::RoomComposite(r) => R::RoomComposite(r),
            StartRequest::Web(r) => R::Web(r),
            StartRequest::Participant(r) => R::Participant(r),
            StartRequest::TrackComposite(r) => R::TrackComposite(r),
            StartRequest::Track(r) => R::Track(r),
        }
    }
}

/// A channel name in psrpc's Redis ("legacy") form: the parts joined by `|`, an empty part
/// dropped with its delimiter, each part sanitised (`[0-9A-Za-z_]` kept, any other character
/// written `u+%04x`, or `U+%08x` beyond the BMP).
pub(crate) fn channel(parts: &[&str]) -> String {
    parts.iter().filter(|p| !p.is_empty()).map(|p| sanitize(p)).collect::<Vec<_>>().join("|")
}

fn sanitize(part: &str) -> String {
    let mut out = String::with_capacity(part.len());
    for c in part.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c);
        } else if (c as u32) <= 0xffff {
            out.push_str(&format!("u+{:04x}", c as u32));
        } else {
            out.push_str(&format!("U+{:08x}", c as u32));
        }
    }
    out
}

/// Requests to a method: `Service|Method|topic|REQ`.
pub(crate) fn request_channel(service: &str, method: &str, topic: &str) -> String {
    channel(&[service, method, topic, "REQ"])
}

/// Grants for a method's requests: `Service|Method|topic|RCLAIM`.
pub(crate) fn grant_channel(service: &str, method: &str, topic: &str) -> String {
    channel(&[service, method, topic, "RCLAIM"])
}

/// Bids to a client: `Service|ClientID|CLAIM`.
pub(crate) fn claim_channel(service: &str, client_id: &str) -> String {
    channel(&[service, client_id, "CLAIM"])
}

/// Answers to a client: `Service|ClientID|RES`.
pub(crate) fn response_channel(service: &str, client_id: &str) -> String {
    channel(&[service, client_id, "RES"])
}

/// psrpc's ids: a prefix (`CLI_`, `SRV_`, `REQ_`) and 12 characters of `[a-zA-Z0-9]`.
pub(crate) fn new_id(prefix: &str) -> String {
    format!("{prefix}{}", crate::egress::random_id(12))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    const SENT: i64 = 1_754_000_000_000_000_000;

    /// The worked example in the fleet reference (§2.6): a StartEgress request for room
    /// "demo", grid, one MP4, from client CLI_a1B2c3D4e5F6.
    #[test]
    fn a_start_egress_request_is_byte_for_byte_psrpcs() {
        #[allow(deprecated)]
        let inner = StartEgressRequest {
            egress_id: "EG_Ab12Cd34Ef56".into(),
            room_id: "RM_Zz98Yy76Xx54".into(),
            request: Some(StartRequest::RoomComposite(proto::RoomCompositeEgressRequest {
                room_name: "demo".into(),
                layout: "grid".into(),
                file_outputs: vec![proto::EncodedFileOutput {
                    file_type: proto::EncodedFileType::Mp4 as i32,
                    filepath: "out/{room_name}.mp4".into(),
                    ..Default::default()
                }],
                ..Default::default()
            })),
            ..Default::default()
        };
        let env = Envelope::Request(Request {
            request_id: "REQ_x9Y8z7W6v5U4".into(),
            client_id: "CLI_a1B2c3D4e5F6".into(),
            sent_at: SENT,
            expiry: SENT + 10_000_000_000,
            raw_request: inner.encode_to_vec(),
            ..Default::default()
        });
        let golden = unhex(
            "0a24747970652e676f6f676c65617069732e636f6d2f696e7465726e616c2e526571756573741283010a105245515f78
             3959387a375736763555341210434c495f613142326333443465354636188080a4c0cfb6ddab182080c8d3e0f4b6dd
             ab1842490a0f45475f4162313243643334456635361a0f524d5f5a7a393859793736587835342a250a0464656d6f12
             04677269645a17080112136f75742f7b726f6f6d5f6e616d657d2e6d7034",
        );
        assert_eq!(env.encode(), golden);
        assert_eq!(Envelope::decode(&golden), Some(env));
        let Some(Envelope::Request(r)) = Envelope::decode(&golden) else { panic!("not a request") };
        assert_eq!(StartEgressRequest::decode(r.raw_request.as_slice()).unwrap(), inner);
    }

    #[test]
    fn bids_grants_answers_and_stops_are_byte_for_byte_psrpcs() {
        let (req, srv) = ("REQ_x9Y8z7W6v5U4", "SRV_q1W2e3R4t5Y6");
        let bid = Envelope::Claim(ClaimRequest { request_id: req.into(), server_id: srv.into(), affinity: 1.0 });
        assert_eq!(
            bid.encode(),
            unhex(
                "0a29747970652e676f6f676c65617069732e636f6d2f696e7465726e616c2e436c61696d5265717565737412290a
                 105245515f783959387a3757367635553412105352565f7131573265335234743559361d0000803f"
            )
        );
        let grant = Envelope::Grant(ClaimResponse { request_id: req.into(), server_id: srv.into() });
        let golden_grant = unhex(
            "0a2a747970652e676f6f676c65617069732e636f6d2f696e7465726e616c2e436c61696d526573706f6e736512240a
             105245515f783959387a3757367635553412105352565f713157326533523474355936",
        );
        assert_eq!(grant.encode(), golden_grant);
        assert_eq!(Envelope::decode(&golden_grant), Some(grant));
        let info = proto::EgressInfo {
            egress_id: "EG_Ab12Cd34Ef56".into(),
            room_id: "RM_Zz98Yy76Xx54".into(),
            room_name: "demo".into(),
            started_at: SENT + 50_000_000,
            updated_at: SENT + 50_000_000,
            ..Default::default()
        };
        let answer = Envelope::Response(Response {
            request_id: req.into(),
            server_id: srv.into(),
            sent_at: SENT + 60_000_000,
            raw_response: info.encode_to_vec(),
            ..Default::default()
        });
        assert_eq!(
            answer.encode(),
            unhex(
                "0a25747970652e676f6f676c65617069732e636f6d2f696e7465726e616c2e526573706f6e7365126d0a105245515f
                 783959387a3757367635553412105352565f71315732653352347435593618808ef2dccfb6ddab183a3d0a0f45475f
                 416231324364333445663536120f524d5f5a7a393859793736587835345080e18fd8cfb6ddab186a0464656d6f9001
                 80e18fd8cfb6ddab18"
            )
        );
        let refusal = Envelope::Response(Response {
            request_id: req.into(),
            server_id: srv.into(),
            sent_at: SENT + 60_000_000,
            error: "not enough CPU".into(),
            code: "unavailable".into(),
            ..Default::default()
        });
        assert_eq!(
            refusal.encode(),
            unhex(
                "0a25747970652e676f6f676c65617069732e636f6d2f696e7465726e616c2e526573706f6e7365124b0a105245515f
                 783959387a3757367635553412105352565f71315732653352347435593618808ef2dccfb6ddab182a0e6e6f742065
                 6e6f75676820435055320b756e617661696c61626c65"
            )
        );
        let stop = unhex(
            "0a24747970652e676f6f676c65617069732e636f6d2f696e7465726e616c2e52657175657374124b0a105245515f73
             37543675355634773358321210434c495f68314a326b334c346d354e36188080a4c0cfb6ddab182080bce5d6dab6dd
             ab1842110a0f45475f416231324364333445663536",
        );
        let Some(Envelope::Request(r)) = Envelope::decode(&stop) else { panic!("not a request") };
        assert_eq!((r.client_id.as_str(), r.expiry - r.sent_at), ("CLI_h1J2k3L4m5N6", 3_000_000_000));
        let body = proto::StopEgressRequest::decode(r.raw_request.as_slice()).unwrap();
        assert_eq!(body.egress_id, "EG_Ab12Cd34Ef56");
    }

    #[test]
    fn channel_names_drop_empty_parts_and_escape_the_rest() {
        assert_eq!(request_channel("EgressInternal", "StartEgress", ""), "EgressInternal|StartEgress|REQ");
        assert_eq!(grant_channel("EgressInternal", "StartEgress", ""), "EgressInternal|StartEgress|RCLAIM");
        assert_eq!(
            request_channel("EgressHandler", "StopEgress", "EG_Ab12Cd34Ef56"),
            "EgressHandler|StopEgress|EG_Ab12Cd34Ef56|REQ"
        );
        assert_eq!(claim_channel("IOInfo", "CLI_x"), "IOInfo|CLI_x|CLAIM");
        assert_eq!(response_channel("IOInfo", "CLI_x"), "IOInfo|CLI_x|RES");
        assert_eq!(
            request_channel("EgressInternal", "StartEgress", "my-cluster.eu"),
            "EgressInternal|StartEgress|myu+002dclusteru+002eeu|REQ"
        );
        assert_eq!(channel(&["a", "\u{1F600}"]), "a|U+0001f600");
    }

    #[test]
    fn anything_else_on_the_bus_is_dropped() {
        assert_eq!(Envelope::decode(b"not protobuf at all \xff\xff"), None);
        let other = Msg { type_url: "type.googleapis.com/internal.Stream".into(), ..Default::default() };
        assert_eq!(Envelope::decode(&other.encode_to_vec()), None);
    }
}
