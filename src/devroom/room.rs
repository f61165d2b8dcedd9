//! Rooms and their participants: who is in which room, what they publish, and
//! the signal messages each participant is sent. Media is handled elsewhere
//! (`media`); this module is the roster and the broadcasts.

use crate::auth::Grant;
use livekit_protocol as proto;
use proto::signal_response::Message as Out;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// What the connection task of a participant is told to do.
#[derive(Debug)]
pub enum Outbound {
    Signal(Box<proto::SignalResponse>),
    /// Send a leave and close the connection.
    Close(proto::DisconnectReason),
    /// Drop the WebSocket without a word, as a network failure would (tests of resuming).
    Drop,
}

pub type Sender = mpsc::UnboundedSender<Outbound>;

/// A participant's outgoing messages. The channel outlives a WebSocket: messages sent while
/// the participant reconnects wait in it and go out on the new connection.
pub(crate) type SharedOutbox = Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Outbound>>>;

/// A participant whose signal connection broke without a leave: still in the room, with
/// its media, for `RESUME_GRACE`, waiting to reconnect with `reconnect=1&sid=`.
pub(crate) struct Parked {
    pub room: Arc<Room>,
    pub identity: String,
    pub outbox: SharedOutbox,
    pub media: Arc<super::media::Session>,
}

/// How long a participant whose signal connection broke may resume (LiveKit's is similar).
pub(crate) const RESUME_GRACE: Duration = Duration::from_secs(15);

/// Milliseconds since the Unix epoch, as LiveKit's timestamps are.
pub(crate) fn now_ms() -> i64 {
    crate::time::unix_ms()
}

/// An id in LiveKit's style: a prefix and 12 random characters.
pub(crate) fn new_sid(prefix: &str) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rng();
    let tail: String = (0..12).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect();
    format!("{prefix}{tail}")
}

pub struct Participant {
    pub info: proto::ParticipantInfo,
    pub grant: Grant,
    pub tx: Sender,
}

impl Participant {
    pub fn send(&self, m: Out) {
        send(&self.tx, m);
    }
}

/// Queues a signal message; a closed channel means the connection is already gone.
pub fn send(tx: &Sender, m: Out) {
    let _ = tx.send(Outbound::Signal(Box::new(proto::SignalResponse { message: Some(m) })));
}

impl super::media::SignalSink for Sender {
    fn send(&self, m: Out) {
        send(self, m);
    }
}

pub struct RoomState {
    pub participants: BTreeMap<String, Participant>,
    /// Bumped whenever the room empties or fills, so a pending close can tell.
    pub generation: u64,
}

pub struct Room {
    pub media: Arc<super::media::RoomMedia>,
    pub sid: String,
    pub name: String,
    pub created_at: i64,
    pub state: Mutex<RoomState>,
}

impl Room {
    pub fn info(&self, participants: usize) -> proto::Room {
        proto::Room {
            sid: self.sid.clone(),
            name: self.name.clone(),
            creation_time: self.created_at / 1000,
            creation_time_ms: self.created_at,
            num_participants: participants as u32,
            empty_timeout: 0,
            ..Default::default()
        }
    }

    /// Sends an update about `info` to everyone else (never about hidden ones).
    pub(crate) fn broadcast_update(state: &RoomState, info: &proto::ParticipantInfo, hidden: bool) {
        if hidden {
            return;
        }
        for (sid, p) in &state.participants {
            if *sid != info.sid {
                p.send(Out::Update(proto::ParticipantUpdate { participants: vec![info.clone()] }));
            }
        }
    }

    /// Bumps a participant's version and tells everyone (itself included) its new state.
    pub(crate) fn publish_change(state: &mut RoomState, sid: &str) {
        let Some(p) = state.participants.get_mut(sid) else { return };
        p.info.version += 1;
        let info = p.info.clone();
        let hidden = p.grant.hidden;
        p.send(Out::Update(proto::ParticipantUpdate { participants: vec![info.clone()] }));
        Room::broadcast_update(state, &info, hidden);
    }
}

/// Every room of the server.
pub struct Registry {
    rooms: Mutex<HashMap<String, Arc<Room>>>,
    /// Participants waiting to resume, by sid.
    parked: Mutex<HashMap<String, Parked>>,
    /// How long an empty room lives before it closes.
    pub empty_timeout: Duration,
    /// What the network does to media sent to subscribers (tests of loss recovery).
    pub impair: crate::peer::impair::Impairment,
}

/// What joining gives the connection task.
pub struct Joined {
    pub room: Arc<Room>,
    pub sid: String,
    pub response: proto::JoinResponse,
}

impl Registry {
    pub fn new(empty_timeout: Duration, impair: crate::peer::impair::Impairment) -> Arc<Self> {
        Arc::new(Self { rooms: Mutex::new(HashMap::new()), parked: Mutex::new(HashMap::new()), empty_timeout, impair })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Room>>> {
        // A panic while holding the lock leaves plain data behind; keep serving.
        crate::sync::lock(&self.rooms)
    }

    pub fn room_count(&self) -> usize {
        self.lock().len()
    }

    pub fn participant_count(&self) -> usize {
        self.lock().values().map(|r| state(r).participants.len()).sum()
    }

    pub fn room(&self, name: &str) -> Option<Arc<Room>> {
        self.lock().get(name).cloned()
    }

    /// RoomService.ListRooms: the open rooms (those named, or all).
    pub fn list(&self, names: &[String]) -> Vec<proto::Room> {
        let rooms: Vec<Arc<Room>> =
            self.lock().values().filter(|r| names.is_empty() || names.contains(&r.name)).cloned().collect();
        rooms.iter().map(|r| r.info(state(r).participants.len())).collect()
    }

    /// Adds a participant to its room (created if needed) and builds its JoinResponse.
    // `ParticipantPermission::recorder` is deprecated but still read by older SDKs.
    #[allow(deprecated)]
    pub fn join(&self, grant: Grant, tx: Sender, protocol: i32) -> Joined {
        let room = self
            .lock()
            .entry(grant.room.clone())
            .or_insert_with(|| {
                Arc::new(Room {
                    media: super::media::RoomMedia::new(self.impair),
                    sid: new_sid("RM_"),
                    name: grant.room.clone(),
                    created_at: now_ms(),
                    state: Mutex::new(RoomState { participants: BTreeMap::new(), generation: 0 }),
                })
            })
            .clone();
        let sid = new_sid("PA_");
        let info = proto::ParticipantInfo {
            sid: sid.clone(),
            identity: grant.identity.clone(),
            name: grant.name.clone(),
            metadata: grant.metadata.clone(),
            state: proto::participant_info::State::Joined as i32,
            joined_at: now_ms() / 1000,
            joined_at_ms: now_ms(),
            version: 1,
            permission: Some(proto::ParticipantPermission {
                can_subscribe: grant.can_subscribe,
                can_publish: grant.can_publish,
                can_publish_data: grant.can_publish_data,
                hidden: grant.hidden,
                recorder: grant.recorder,
                ..Default::default()
            }),
            is_publisher: false,
            kind: if grant.recorder {
                proto::participant_info::Kind::Egress as i32
            } else if grant.agent {
                proto::participant_info::Kind::Agent as i32
            } else {
                proto::participant_info::Kind::Standard as i32
            },
            ..Default::default()
        };
        let mut st = state(&room);
        // A second connection with the same identity replaces the first, as in LiveKit.
        let dup: Vec<String> =
            st.participants.iter().filter(|(_, p)| p.info.identity == grant.identity).map(|(s, _)| s.clone()).collect();
        for d in dup {
            if let Some(old) = st.participants.remove(&d) {
                let _ = old.tx.send(Outbound::Close(proto::DisconnectReason::DuplicateIdentity));
                notify_left(&st, &old);
            }
        }
        let others: Vec<proto::ParticipantInfo> =
            st.participants.values().filter(|p| !p.grant.hidden).map(|p| p.info.clone()).collect();
        let hidden = grant.hidden;
        st.participants.insert(sid.clone(), Participant { info: info.clone(), grant, tx });
        st.generation += 1;
        Room::broadcast_update(&st, &info, hidden);
        let response = proto::JoinResponse {
            room: Some(room.info(st.participants.len())),
            participant: Some(info),
            other_participants: others,
            server_version: env!("CARGO_PKG_VERSION").into(),
            server_info: Some(proto::ServerInfo {
                edition: proto::server_info::Edition::Standard as i32,
                version: env!("CARGO_PKG_VERSION").into(),
                protocol: protocol.min(PROTOCOL_VERSION),
                region: "local".into(),
                node_id: "devroom".into(),
                ..Default::default()
            }),
            // Clients negotiate their own (publisher) connection first; the server
            // offers the subscriber connection when there is something to send.
            subscriber_primary: false,
            // LiveKit's defaults; the Rust SDK panics on 0.
            ping_interval: 5,
            ping_timeout: 15,
            ..Default::default()
        };
        drop(st);
        Joined { room, sid, response }
    }

    /// Keeps a participant whose connection broke for `RESUME_GRACE`; then it leaves.
    pub(crate) fn park(self: &Arc<Self>, sid: &str, parked: Parked) {
        tracing::info!(participant = %sid, "signal connection lost: waiting for it to resume");
        crate::sync::lock(&self.parked).insert(sid.to_string(), parked);
        let (reg, sid) = (self.clone(), sid.to_string());
        tokio::spawn(async move {
            tokio::time::sleep(RESUME_GRACE).await;
            if let Some(p) = reg.unpark(&sid) {
                tracing::info!(participant = %sid, "did not resume: leaving");
                reg.leave(&p.room, &sid);
                p.room.media.remove(&sid).await;
            }
        });
    }

    pub(crate) fn unpark(&self, sid: &str) -> Option<Parked> {
        crate::sync::lock(&self.parked).remove(sid)
    }

    /// The parked participant `sid`, if the token reconnecting is its own (same identity and room).
    pub(crate) fn unpark_for(&self, sid: &str, grant: &Grant) -> Option<Parked> {
        let mut parked = crate::sync::lock(&self.parked);
        let ok = parked.get(sid).is_some_and(|p| p.identity == grant.identity && p.room.name == grant.room);
        if ok { parked.remove(sid) } else { None }
    }

    /// RoomService.ListParticipants: who is in `room` now (None: no such room).
    pub fn participants(&self, room: &str) -> Option<Vec<proto::ParticipantInfo>> {
        let r = self.room(room)?;
        let st = state(&r);
        Some(st.participants.values().map(|p| p.info.clone()).collect())
    }

    /// Sets what RoomService.UpdateParticipant may change (metadata, name, attributes) on
    /// `identity` in `room` and tells everyone, the participant itself included, as LiveKit
    /// does: a recorder's template learns its new layout this way. None: no such participant.
    pub(crate) fn update_participant(&self, req: &proto::UpdateParticipantRequest) -> Option<proto::ParticipantInfo> {
        let r = self.room(&req.room)?;
        let mut st = state(&r);
        let (sid, p) = st.participants.iter_mut().find(|(_, p)| p.info.identity == req.identity)?;
        let sid = sid.clone();
        if !req.metadata.is_empty() {
            p.info.metadata = req.metadata.clone();
        }
        if !req.name.is_empty() {
            p.info.name = req.name.clone();
        }
        for (k, v) in &req.attributes {
            // An empty value deletes the attribute, as in LiveKit.
            if v.is_empty() {
                p.info.attributes.remove(k);
            } else {
                p.info.attributes.insert(k.clone(), v.clone());
            }
        }
        Room::publish_change(&mut st, &sid);
        st.participants.get(&sid).map(|p| p.info.clone())
    }

    /// Removes a participant; closes the room after `empty_timeout` if it is left empty.
    /// Recorders do not keep a room open (LiveKit's "dependent" participants): they are
    /// told the room closed, which ends their recording.
    pub fn leave(self: &Arc<Self>, room: &Arc<Room>, sid: &str) {
        let mut st = state(room);
        let Some(p) = st.participants.remove(sid) else { return };
        notify_left(&st, &p);
        st.generation += 1;
        if only_recorders(&st) {
            let generation = st.generation;
            let (reg, room) = (self.clone(), room.clone());
            let wait = self.empty_timeout;
            drop(st);
            tokio::spawn(async move {
                tokio::time::sleep(wait).await;
                let still_empty = {
                    let st = state(&room);
                    only_recorders(&st) && st.generation == generation
                };
                if still_empty && reg.remove_if_same(&room) {
                    for p in state(&room).participants.values() {
                        let _ = p.tx.send(Outbound::Close(proto::DisconnectReason::RoomClosed));
                    }
                }
            });
        }
    }

    fn remove_if_same(&self, room: &Arc<Room>) -> bool {
        let mut rooms = self.lock();
        if rooms.get(&room.name).is_some_and(|r| Arc::ptr_eq(r, room)) {
            rooms.remove(&room.name);
            tracing::info!(room = %room.name, "room closed");
            return true;
        }
        false
    }

    /// Closes a room now: every participant is told to leave.
    pub fn close(&self, name: &str) -> bool {
        let Some(room) = self.lock().remove(name) else { return false };
        let st = state(&room);
        for p in st.participants.values() {
            let _ = p.tx.send(Outbound::Close(proto::DisconnectReason::RoomDeleted));
        }
        true
    }
}

/// The newest signal protocol we speak (LiveKit's current).
pub(crate) const PROTOCOL_VERSION: i32 = 17;

/// No one but recorders (possibly no one at all) is in the room.
fn only_recorders(st: &RoomState) -> bool {
    st.participants.values().all(|p| p.grant.recorder)
}

pub fn state(room: &Room) -> std::sync::MutexGuard<'_, RoomState> {
    crate::sync::lock(&room.state)
}

fn notify_left(st: &RoomState, p: &Participant) {
    if p.grant.hidden {
        return;
    }
    let mut info = p.info.clone();
    info.state = proto::participant_info::State::Disconnected as i32;
    info.version += 1;
    info.tracks.clear();
    for other in st.participants.values() {
        other.send(Out::Update(proto::ParticipantUpdate { participants: vec![info.clone()] }));
    }
}
