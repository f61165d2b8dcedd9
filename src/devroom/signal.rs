//! The signal endpoint: `/rtc` WebSocket, `/rtc/validate`, and `/rtc/v1` answered
//! with 404 so LiveKit's SDKs fall back to two peer connections (v0); and the three RoomService
//! calls the egress side needs (ListRooms, ListParticipants, DeleteRoom, UpdateParticipant).

use super::room::{self, Outbound, PROTOCOL_VERSION, Registry, Room};
use crate::auth::{AuthError, Keys};
use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use livekit_protocol as proto;
use prost::Message as _;
use proto::signal_request::Message as In;
use proto::signal_response::Message as Out;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::mpsc;

pub struct Server {
    pub registry: Arc<Registry>,
    pub keys: Keys,
}

pub(crate) fn router(server: Arc<Server>) -> Router {
    Router::new()
        .route("/", get(|| async { "devroom: a local LiveKit-protocol room server\n" }))
        .route("/rtc", get(rtc))
        .route("/rtc/validate", get(validate))
        .route("/rtc/v1", get(single_pc_not_supported))
        .route("/rtc/v1/validate", get(single_pc_not_supported))
        .route("/twirp/livekit.RoomService/DeleteRoom", axum::routing::post(delete_room))
        .route("/twirp/livekit.RoomService/ListRooms", axum::routing::post(list_rooms))
        .route("/twirp/livekit.RoomService/ListParticipants", axum::routing::post(list_participants))
        .route("/twirp/livekit.RoomService/UpdateParticipant", axum::routing::post(update_participant))
        .with_state(server)
}

/// The token from `Authorization: Bearer` (Rust SDK) or `access_token` (JS SDK).
fn token<'a>(headers: &'a HeaderMap, query: &'a HashMap<String, String>) -> &'a str {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .or(query.get("access_token").map(String::as_str))
        .unwrap_or("")
}

fn refuse(e: AuthError) -> Response {
    tracing::info!("refused a connection: {e}");
    (StatusCode::UNAUTHORIZED, [(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")], e.to_string()).into_response()
}

async fn validate(
    State(s): State<Arc<Server>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    match s.keys.verify_join(token(&headers, &q)) {
        Ok(_) => ([(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")], "success").into_response(),
        Err(e) => refuse(e),
    }
}

/// LiveKit's clients try the single-connection path first and fall back to `/rtc`
/// on a 404 (whose body must not say the room does not exist).
async fn single_pc_not_supported() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")],
        "devroom speaks the two-peer-connection protocol (/rtc) only",
    )
        .into_response()
}

/// A Twirp error as LiveKit's server writes it.
struct TwirpError {
    status: StatusCode,
    code: &'static str,
    msg: String,
}

impl TwirpError {
    fn new(status: StatusCode, code: &'static str, msg: impl Into<String>) -> Self {
        Self { status, code, msg: msg.into() }
    }
}

impl IntoResponse for TwirpError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "code": self.code, "msg": self.msg }).to_string();
        (self.status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}

/// A RoomService call: the caller's verified claims and its request, read as protobuf or
/// JSON by Content-Type (LiveKit's server SDKs send either); the answer goes back the same way.
struct RoomServiceCall<T> {
    claims: livekit_api::access_token::Claims,
    req: T,
    protobuf: bool,
}

impl<T: prost::Message + Default + serde::de::DeserializeOwned> RoomServiceCall<T> {
    fn read(s: &Server, headers: &HeaderMap, body: &[u8], what: &str) -> Result<Self, TwirpError> {
        let claims = s
            .keys
            .verify(token(headers, &HashMap::new()))
            .map_err(|e| TwirpError::new(StatusCode::UNAUTHORIZED, "unauthenticated", e.to_string()))?;
        let protobuf = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/protobuf"));
        let req = if protobuf {
            T::decode(body).map_err(|e| e.to_string())
        } else {
            serde_json::from_slice(body).map_err(|e| e.to_string())
        }
        .map_err(|e| TwirpError::new(StatusCode::BAD_REQUEST, "malformed", format!("{what}: {e}")))?;
        Ok(Self { claims, req, protobuf })
    }

    fn reply<R: prost::Message + serde::Serialize>(&self, r: &R) -> Response {
        if self.protobuf {
            ([(header::CONTENT_TYPE, "application/protobuf")], r.encode_to_vec()).into_response()
        } else {
            let json = serde_json::to_string(r).unwrap_or_else(|_| "{}".into());
            ([(header::CONTENT_TYPE, "application/json")], json).into_response()
        }
    }
}

/// RoomService.ListRooms: the open rooms, as LiveKit's server lists them (roomList grant).
async fn list_rooms(
    State(s): State<Arc<Server>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, TwirpError> {
    let call = RoomServiceCall::<proto::ListRoomsRequest>::read(&s, &headers, &body, "ListRoomsRequest")?;
    if !call.claims.video.room_list {
        return Err(TwirpError::new(StatusCode::FORBIDDEN, "permission_denied", "the token does not grant roomList"));
    }
    Ok(call.reply(&proto::ListRoomsResponse { rooms: s.registry.list(&call.req.names) }))
}

/// RoomService.ListParticipants: who is in a room now, as LiveKit's server lists them
/// (roomAdmin for that room).
async fn list_participants(
    State(s): State<Arc<Server>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, TwirpError> {
    let call = RoomServiceCall::<proto::ListParticipantsRequest>::read(&s, &headers, &body, "ListParticipantsRequest")?;
    let (v, req) = (&call.claims.video, &call.req);
    if !v.room_admin || v.room != req.room {
        let msg = format!("the token does not grant roomAdmin for room {:?}", req.room);
        return Err(TwirpError::new(StatusCode::FORBIDDEN, "permission_denied", msg));
    }
    let participants = s.registry.participants(&req.room).ok_or_else(|| {
        TwirpError::new(StatusCode::NOT_FOUND, "not_found", format!("room {:?} does not exist", req.room))
    })?;
    Ok(call.reply(&proto::ListParticipantsResponse { participants }))
}

/// RoomService.DeleteRoom: closes a room, as LiveKit's server does; everyone in it is
/// told to leave. Needs a token with the roomCreate grant.
async fn delete_room(
    State(s): State<Arc<Server>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, TwirpError> {
    let call = RoomServiceCall::<proto::DeleteRoomRequest>::read(&s, &headers, &body, "DeleteRoomRequest")?;
    if !call.claims.video.room_create {
        return Err(TwirpError::new(StatusCode::FORBIDDEN, "permission_denied", "the token does not grant roomCreate"));
    }
    if !s.registry.close(&call.req.room) {
        let msg = format!("room {:?} does not exist", call.req.room);
        return Err(TwirpError::new(StatusCode::NOT_FOUND, "not_found", msg));
    }
    Ok(call.reply(&proto::DeleteRoomResponse {}))
}

/// RoomService.UpdateParticipant: metadata, name and attributes of a participant, sent to
/// everyone in the room. Needs roomAdmin for that room. LiveKit's egress service uses it to
/// hand a template its new layout (`{"layout": ...}` as the recorder's metadata).
async fn update_participant(
    State(s): State<Arc<Server>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, TwirpError> {
    let call =
        RoomServiceCall::<proto::UpdateParticipantRequest>::read(&s, &headers, &body, "UpdateParticipantRequest")?;
    let (v, req) = (&call.claims.video, &call.req);
    if !v.room_admin || v.room != req.room {
        let msg = format!("the token does not grant roomAdmin for room {:?}", req.room);
        return Err(TwirpError::new(StatusCode::FORBIDDEN, "permission_denied", msg));
    }
    let info = s.registry.update_participant(req).ok_or_else(|| {
        let msg = format!("participant {:?} is not in room {:?}", req.identity, req.room);
        TwirpError::new(StatusCode::NOT_FOUND, "not_found", msg)
    })?;
    Ok(call.reply(&info))
}

async fn rtc(
    State(s): State<Arc<Server>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    let grant = match s.keys.verify_join(token(&headers, &q)) {
        Ok(g) => g,
        Err(e) => return refuse(e),
    };
    let protocol = q.get("protocol").and_then(|p| p.parse().ok()).unwrap_or(PROTOCOL_VERSION);
    // A client resuming after its connection broke: its old connection may not have noticed yet.
    if q.get("reconnect").is_some_and(|v| v == "1" || v == "true")
        && let Some(sid) = q.get("sid").cloned()
    {
        for _ in 0..40 {
            if let Some(parked) = s.registry.unpark_for(&sid, &grant) {
                tracing::info!(participant = %sid, "resuming");
                return ws.on_upgrade(move |socket| resumed(s, socket, sid, parked));
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        tracing::info!(participant = %sid, "nothing to resume: joining afresh");
    }
    ws.on_upgrade(move |socket| connection(s, socket, grant, protocol))
}

/// What a signal connection serves: a participant, its media and its outgoing messages.
struct Attached {
    room: Arc<Room>,
    sid: String,
    identity: String,
    media: Arc<super::media::Session>,
    outbox: room::SharedOutbox,
}

async fn resumed(s: Arc<Server>, socket: WebSocket, sid: String, p: room::Parked) {
    let first = Out::Reconnect(proto::ReconnectResponse::default());
    let a = Attached { room: p.room, sid, identity: p.identity, media: p.media, outbox: p.outbox };
    serve(s, socket, a, first, false).await;
}

/// One participant's connection: the join, then requests until it leaves or breaks.
async fn connection(s: Arc<Server>, socket: WebSocket, grant: crate::auth::Grant, protocol: i32) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (can_subscribe, identity) = (grant.can_subscribe, grant.identity.clone());
    let joined = s.registry.join(grant, tx.clone(), protocol);
    let media = joined.room.media.session(&joined.sid, can_subscribe, Arc::new(tx));
    tracing::info!(room = %joined.room.name, participant = %joined.sid, "joined");
    let outbox = Arc::new(tokio::sync::Mutex::new(rx));
    let a = Attached { room: joined.room, sid: joined.sid, identity, media, outbox };
    serve(s, socket, a, Out::Join(joined.response), true).await;
}

/// Serves a participant on one WebSocket. A leave (or the server closing the session) ends
/// the participant; a connection that just breaks parks it, to be resumed.
async fn serve(s: Arc<Server>, socket: WebSocket, a: Attached, first: Out, fresh: bool) {
    let Attached { room, sid, identity, media, outbox } = a;
    let (mut sink, mut stream) = socket.split();
    let first = proto::SignalResponse { message: Some(first) };
    let sent = sink.send(Message::Binary(first.encode_to_vec().into())).await.is_ok();
    // A late joiner receives what is already published.
    if fresh && sent {
        let media = media.clone();
        tokio::spawn(async move { media.subscribe_existing().await });
    }
    // Replies go out in the encoding the client uses (protobuf unless it sent JSON text).
    let json = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let json_w = json.clone();
    let closing = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let closing_w = closing.clone();
    let dropping = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let dropping_w = dropping.clone();
    let outbox_w = outbox.clone();
    let writer = tokio::spawn(async move {
        let mut rx = outbox_w.lock().await;
        while let Some(out) = rx.recv().await {
            match out {
                Outbound::Signal(m) => {
                    let msg = if json_w.load(std::sync::atomic::Ordering::Relaxed) {
                        Message::Text(serde_json::to_string(&*m).unwrap_or_default().into())
                    } else {
                        Message::Binary(m.encode_to_vec().into())
                    };
                    if sink.send(msg).await.is_err() {
                        break;
                    }
                }
                Outbound::Close(reason) => {
                    closing_w.store(true, std::sync::atomic::Ordering::Relaxed);
                    let leave = proto::SignalResponse {
                        message: Some(Out::Leave(proto::LeaveRequest {
                            reason: reason as i32,
                            action: proto::leave_request::Action::Disconnect as i32,
                            ..Default::default()
                        })),
                    };
                    let _ = sink.send(Message::Binary(leave.encode_to_vec().into())).await;
                    let _ = sink.close().await;
                    break;
                }
                Outbound::Drop => {
                    dropping_w.store(true, std::sync::atomic::Ordering::Relaxed);
                    let _ = sink.close().await;
                    break;
                }
            }
        }
    });
    let mut left = false;
    while sent && let Some(frame) = stream.next().await {
        let request = match frame {
            Ok(Message::Binary(b)) => proto::SignalRequest::decode(b.as_ref()).map_err(|e| e.to_string()),
            Ok(Message::Text(t)) => {
                json.store(true, std::sync::atomic::Ordering::Relaxed);
                serde_json::from_str::<proto::SignalRequest>(t.as_str()).map_err(|e| e.to_string())
            }
            // A client closing its WebSocket is leaving (unless it answers our own close);
            // a connection that errors or just ends has broken and may resume.
            Ok(Message::Close(_)) => {
                left = !dropping.load(std::sync::atomic::Ordering::Relaxed);
                break;
            }
            Err(_) => break,
            Ok(_) => continue,
        };
        let request = match request {
            Ok(r) => r,
            Err(e) => {
                // A malformed message ends this connection only.
                tracing::warn!(participant = %sid, "malformed signal message, closing the connection: {e}");
                left = true;
                break;
            }
        };
        match handle(&room, &sid, &media, request) {
            Handled::Done => {}
            Handled::Leave => {
                left = true;
                break;
            }
            Handled::Media(action) => {
                if let Err(e) = run_media(&media, *action).await {
                    tracing::warn!(participant = %sid, "media: {e}");
                }
            }
        }
    }
    writer.abort();
    let gone = !room::state(&room).participants.contains_key(&sid);
    if left || gone || closing.load(std::sync::atomic::Ordering::Relaxed) {
        s.registry.leave(&room, &sid);
        room.media.remove(&sid).await;
        tracing::info!(room = %room.name, participant = %sid, "left");
    } else {
        s.registry.park(&sid, room::Parked { room, identity, outbox, media });
    }
}

/// What a request needs after the roster is updated.
enum Handled {
    Done,
    Leave,
    Media(Box<In>),
}

async fn run_media(media: &Arc<super::media::Session>, action: In) -> Result<(), crate::peer::PeerError> {
    match action {
        In::Offer(o) => media.on_offer(o).await,
        In::Answer(a) => media.on_answer(a).await,
        In::Trickle(t) => media.on_trickle(t).await,
        In::TrackSetting(t) => {
            tracing::debug!("track settings: {t:?}");
            // Width (when given) picks the layer: LiveKit's default ladder is 180/360/full.
            #[allow(deprecated)]
            let q = if t.width > 0 {
                match t.width {
                    0..=400 => proto::VideoQuality::Low,
                    401..=800 => proto::VideoQuality::Medium,
                    _ => proto::VideoQuality::High,
                }
            } else {
                proto::VideoQuality::try_from(t.quality).unwrap_or(proto::VideoQuality::High)
            };
            media.set_quality(&t.track_sids, q);
            Ok(())
        }
        In::Subscription(u) => {
            let mut sids = u.track_sids;
            sids.extend(u.participant_tracks.into_iter().flat_map(|p| p.track_sids));
            media.set_subscribed(&sids, u.subscribe).await
        }
        _ => Ok(()),
    }
}

/// Handles one request under the room lock.
fn handle(room: &Arc<Room>, sid: &str, media: &Arc<super::media::Session>, req: proto::SignalRequest) -> Handled {
    let Some(message) = req.message else { return Handled::Done };
    let mut st = room::state(room);
    let Some(me) = st.participants.get_mut(sid) else { return Handled::Leave };
    match message {
        In::Ping(ts) => me.send(Out::Pong(ts)),
        In::PingReq(p) => {
            me.send(Out::PongResp(proto::Pong { last_ping_timestamp: p.timestamp, timestamp: room::now_ms() }))
        }
        In::Leave(_) => return Handled::Leave,
        m @ (In::Offer(_) | In::Answer(_) | In::Trickle(_) | In::TrackSetting(_)) => {
            return Handled::Media(Box::new(m));
        }
        In::AddTrack(req) => {
            if !me.grant.can_publish {
                tracing::warn!(participant = %sid, "AddTrack without the canPublish grant: ignored");
                return Handled::Done;
            }
            let track = track_info(&req);
            crate::sync::lock(&media.cids).insert(req.cid.clone(), track.sid.clone());
            me.info.tracks.push(track.clone());
            me.info.is_publisher = true;
            me.send(Out::TrackPublished(proto::TrackPublishedResponse { cid: req.cid, track: Some(track) }));
            Room::publish_change(&mut st, sid);
        }
        In::Mute(m) => {
            if let Some(t) = me.info.tracks.iter_mut().find(|t| t.sid == m.sid) {
                t.muted = m.muted;
                Room::publish_change(&mut st, sid);
            }
        }
        In::UpdateMetadata(m) => {
            if !m.name.is_empty() {
                me.info.name = m.name;
            }
            if !m.metadata.is_empty() {
                me.info.metadata = m.metadata;
            }
            me.info.attributes.extend(m.attributes);
            Room::publish_change(&mut st, sid);
        }
        other => tracing::debug!(participant = %sid, "not handled yet: {other:?}"),
    }
    Handled::Done
}

/// The published track as others will see it. The deprecated fields are still
/// read by SDKs a few versions old, so they are filled too.
#[allow(deprecated)]
fn track_info(req: &proto::AddTrackRequest) -> proto::TrackInfo {
    let video = req.r#type == proto::TrackType::Video as i32;
    let mime = req
        .simulcast_codecs
        .first()
        .map(|c| c.codec.clone())
        .filter(|c| !c.is_empty())
        .map(|c| if c.contains('/') { c } else { format!("{}/{}", if video { "video" } else { "audio" }, c) })
        .unwrap_or_else(|| if video { "video/vp8".into() } else { "audio/opus".into() });
    proto::TrackInfo {
        sid: room::new_sid("TR_"),
        r#type: req.r#type,
        name: req.name.clone(),
        muted: req.muted,
        width: req.width,
        height: req.height,
        simulcast: req.layers.len() > 1,
        disable_dtx: req.disable_dtx,
        source: req.source,
        layers: req.layers.clone(),
        mime_type: mime.clone(),
        codecs: vec![proto::SimulcastCodecInfo {
            mime_type: mime,
            cid: req.cid.clone(),
            layers: req.layers.clone(),
            ..Default::default()
        }],
        stereo: req.stereo,
        disable_red: req.disable_red,
        stream: req.stream.clone(),
        audio_features: req.audio_features.clone(),
        ..Default::default()
    }
}
