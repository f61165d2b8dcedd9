//! The two room servers the end-to-end tests run against: devroom (ours, with
//! loss and jitter injection) and LiveKit's own livekit-server (the judge).
//! A scenario is written once against [`Server`] and run on both (`both!`).

use super::livekit::{LiveKit, Options};
use livekit_api::access_token::VideoGrants;
use serde_json::json;
use std::path::Path;
use std::time::Duration;
use tessera::devroom::{DevRoom, DevRoomConfig};
use tessera::peer::impair::Impairment;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Devroom,
    LiveKit,
}

pub enum Server {
    Dev(DevRoom),
    Real(LiveKit),
}

impl Server {
    /// Starts a server of `kind` on loopback with `key`/`secret`; an empty room closes 2 s after its last participant.
    pub async fn start(kind: Kind, dir: &Path, key: &str, secret: &str) -> Server {
        match kind {
            Kind::Devroom => Server::Dev(devroom(key, secret, Impairment::default()).await),
            Kind::LiveKit => Server::Real(LiveKit::start(dir, &Options::new(key, secret))),
        }
    }

    pub fn url(&self) -> String {
        match self {
            Server::Dev(d) => d.url(),
            Server::Real(l) => l.url(),
        }
    }

    pub fn devroom(&self) -> Option<&DevRoom> {
        match self {
            Server::Dev(d) => Some(d),
            Server::Real(_) => None,
        }
    }

    /// One RoomService call (Twirp JSON) as an operator with `grants`: the answer's JSON.
    async fn room_service(
        &self,
        (key, secret): (&str, &str),
        method: &str,
        grants: livekit_api::access_token::VideoGrants,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, String> {
        let http = self.url().replacen("ws://", "http://", 1);
        let token = livekit_api::access_token::AccessToken::with_api_key(key, secret)
            .with_identity("operator")
            .with_grants(grants)
            .to_jwt()
            .map_err(|e| e.to_string())?;
        let resp = reqwest::Client::new()
            .post(format!("{http}/twirp/livekit.RoomService/{method}"))
            .bearer_auth(token)
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(format!("{method}: HTTP {status}: {text}"));
        }
        serde_json::from_str(&text).map_err(|e| format!("{method}: {e}: {text}"))
    }

    /// How many participants are in a room now, by RoomService.ListParticipants (ListRooms'
    /// count is refreshed only now and then on livekit-server); an error when it is not open.
    #[allow(dead_code)]
    pub async fn participant_count(&self, key: &str, secret: &str, room: &str) -> Result<u64, String> {
        let grants = VideoGrants { room_admin: true, room: room.into(), ..Default::default() };
        let body = self.room_service((key, secret), "ListParticipants", grants, json!({ "room": room })).await?;
        Ok(body["participants"].as_array().map_or(0, |p| p.len() as u64))
    }

    /// Waits (up to 60 s) until `n` participants in `room` have published their tracks.
    #[allow(dead_code)]
    pub async fn wait_publishing(&self, key: &str, secret: &str, room: &str, n: u64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let now = self.publishing_count(key, secret, room).await.unwrap_or(0);
            if now >= n {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "only {now} of the {n} publishers in {room} published");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Waits (up to 60 s) until `room`'s participants have published `tracks` tracks in all;
    /// returns them as ListParticipants describes them.
    #[allow(dead_code)]
    pub async fn wait_tracks(&self, key: &str, secret: &str, room: &str, tracks: usize) -> Vec<serde_json::Value> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let p = self.participants(key, secret, room).await.unwrap_or_default();
            let now: usize = p.iter().map(|p| p["tracks"].as_array().map_or(0, |t| t.len())).sum();
            if now >= tracks {
                return p;
            }
            assert!(std::time::Instant::now() < deadline, "only {now} of {tracks} tracks in {room}: {p:?}");
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    /// RoomService.ListParticipants: `room`'s participants as the server describes them (JSON).
    #[allow(dead_code)]
    pub async fn participants(&self, key: &str, secret: &str, room: &str) -> Result<Vec<serde_json::Value>, String> {
        let grants = VideoGrants { room_admin: true, room: room.into(), ..Default::default() };
        let body = self.room_service((key, secret), "ListParticipants", grants, json!({ "room": room })).await?;
        Ok(body["participants"].as_array().cloned().unwrap_or_default())
    }

    /// How many participants in `room` have published at least one track (joined is not yet
    /// publishing: a recording that starts between the two misses the first frames).
    #[allow(dead_code)]
    pub async fn publishing_count(&self, key: &str, secret: &str, room: &str) -> Result<u64, String> {
        let grants = VideoGrants { room_admin: true, room: room.into(), ..Default::default() };
        let body = self.room_service((key, secret), "ListParticipants", grants, json!({ "room": room })).await?;
        let publishing = |p: &serde_json::Value| p["tracks"].as_array().is_some_and(|t| !t.is_empty());
        Ok(body["participants"].as_array().map_or(0, |p| p.iter().filter(|p| publishing(p)).count() as u64))
    }

    /// RoomService.CreateRoom with `body` as the request; the Room it answers.
    #[allow(dead_code)]
    pub async fn create_room(
        &self,
        key: &str,
        secret: &str,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, String> {
        let grants = VideoGrants { room_create: true, ..Default::default() };
        self.room_service((key, secret), "CreateRoom", grants, body).await
    }

    /// Closes a room the way an operator does: RoomService.DeleteRoom.
    pub async fn delete_room(&self, key: &str, secret: &str, room: &str) -> Result<(), String> {
        let grants = VideoGrants { room_create: true, ..Default::default() };
        self.room_service((key, secret), "DeleteRoom", grants, json!({ "room": room })).await.map(|_| ())
    }
}

pub async fn devroom(key: &str, secret: &str, impair: Impairment) -> DevRoom {
    DevRoom::start(DevRoomConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        api_key: key.into(),
        api_secret: secret.into(),
        empty_timeout: Duration::from_secs(2),
        impair,
    })
    .await
    .unwrap()
}

/// One `#[tokio::test]` per server for a scenario `async fn name(kind: Kind)`:
/// `name::devroom` and `name::livekit`.
#[macro_export]
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn devroom() {
                super::$name($crate::common::rooms::Kind::Devroom).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn livekit() {
                super::$name($crate::common::rooms::Kind::LiveKit).await
            }
        }
    };
}

/// A TCP proxy in front of a server's signal port whose connections can be cut
/// (a broken network path, not a server that said goodbye).
pub struct CutProxy {
    pub port: u16,
    cut: tokio::sync::watch::Sender<u32>,
    task: tokio::task::JoinHandle<()>,
}

impl CutProxy {
    pub async fn start(target: std::net::SocketAddr) -> CutProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (cut, rx) = tokio::sync::watch::channel(0u32);
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut rx = rx.clone();
                rx.borrow_and_update();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = rx.changed() => {}
                    }
                    // Dropped without a close handshake on the WebSocket: a cut, not a leave.
                });
            }
        });
        CutProxy { port, cut, task }
    }

    /// The URL to give clients instead of the server's.
    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    /// Cuts every connection open now (new ones go through).
    pub fn cut(&self) {
        self.cut.send_modify(|n| *n += 1);
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
