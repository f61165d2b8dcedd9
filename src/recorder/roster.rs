//! Who is in the room and what they publish, as the server's updates describe
//! it, turned into the tiles the layout engine places (one camera tile per
//! participant, one per screen share), in LiveKit's terms.

use crate::layout::{TileKind, TileSource};
use crate::recording::{AudioTrackRef, Channel, Subject, VideoPick};
use livekit_protocol as proto;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone)]
struct Participant {
    identity: String,
    name: String,
    joined_ms: u64,
    tracks: Vec<proto::TrackInfo>,
    speaking: bool,
    level: f32,
    last_spoke_ms: Option<u64>,
    /// LiveKit's participant kind AGENT.
    agent: bool,
    /// LiveKit's participant kind (`ParticipantInfo.Kind`).
    kind: i32,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct Roster {
    participants: BTreeMap<String, Participant>,
    /// Every identity seen, for the summary.
    seen: BTreeSet<String>,
    /// Identity by participant sid, departed ones included.
    identities: std::collections::HashMap<String, String>,
}

/// A video track a tile shows.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TileVideo {
    pub track_sid: String,
}

impl Roster {
    /// Applies participant descriptions (a join response's or an update's).
    pub(crate) fn update(&mut self, infos: Vec<proto::ParticipantInfo>) {
        for info in infos {
            if info.state == proto::participant_info::State::Disconnected as i32 {
                self.participants.remove(&info.sid);
                continue;
            }
            // Other recorders and agents are not drawn, as in LiveKit's template.
            if info.kind == proto::participant_info::Kind::Egress as i32 {
                continue;
            }
            self.seen.insert(info.identity.clone());
            self.identities.insert(info.sid.clone(), info.identity.clone());
            let joined_ms =
                if info.joined_at_ms > 0 { info.joined_at_ms as u64 } else { info.joined_at.max(0) as u64 * 1000 };
            let p = self.participants.entry(info.sid.clone()).or_insert_with(|| Participant {
                identity: info.identity.clone(),
                name: String::new(),
                joined_ms,
                tracks: Vec::new(),
                speaking: false,
                level: 0.0,
                last_spoke_ms: None,
                agent: false,
                kind: 0,
            });
            p.agent = info.kind == proto::participant_info::Kind::Agent as i32;
            p.kind = info.kind;
            p.name = if info.name.is_empty() { info.identity.clone() } else { info.name.clone() };
            p.tracks = info.tracks;
        }
    }

    /// Applies a speakers update at room time `now_ms` (LiveKit sends only the changes).
    pub(crate) fn speakers(&mut self, speakers: Vec<proto::SpeakerInfo>, now_ms: u64) {
        for s in speakers {
            if let Some(p) = self.participants.get_mut(&s.sid) {
                p.speaking = s.active;
                p.level = s.level;
                if s.active {
                    p.last_spoke_ms = Some(now_ms);
                }
            }
        }
    }

    pub(crate) fn seen(&self) -> Vec<String> {
        self.seen.iter().cloned().collect()
    }

    /// The identity of a participant seen in the room (it may have left since).
    pub(crate) fn identity_of(&self, sid: &str) -> Option<&str> {
        self.identities.get(sid).map(|s| s.as_str())
    }

    /// Whether a track is part of `subject`: None while the roster does not know the track
    /// (its participant's update has not come yet).
    pub(crate) fn wants(&self, track_sid: &str, subject: &Subject) -> Option<bool> {
        match subject {
            Subject::Room => Some(true),
            Subject::Tracks { audio, video } => {
                Some(audio.as_deref() == Some(track_sid) || video.as_deref() == Some(track_sid))
            }
            Subject::Participant { identity, screen_share } => {
                let (p, t) = self.track(track_sid)?;
                Some(&p.identity == identity && is_share(t.source) == *screen_share)
            }
            Subject::Media { video, audio } => {
                if matches!(video, Some(VideoPick::Track(v)) if v == track_sid) {
                    return Some(true);
                }
                let (p, t) = self.track(track_sid)?;
                Some(if t.r#type == proto::TrackType::Audio as i32 {
                    audio.channel_of(&AudioTrackRef { sid: track_sid, identity: &p.identity, kind: p.kind }).is_some()
                } else {
                    matches!(video, Some(VideoPick::Participant { identity, .. }) if identity == &p.identity)
                })
            }
        }
    }

    /// The channel a media source routes an audio track to (None: not known yet, or no route).
    pub(crate) fn routed(&self, track_sid: &str, subject: &Subject) -> Option<Channel> {
        let Subject::Media { audio, .. } = subject else { return None };
        let (p, _) = self.track(track_sid)?;
        audio.channel_of(&AudioTrackRef { sid: track_sid, identity: &p.identity, kind: p.kind })
    }

    /// A track and its participant.
    fn track(&self, track_sid: &str) -> Option<(&Participant, &proto::TrackInfo)> {
        self.participants.values().find_map(|p| p.tracks.iter().find(|t| t.sid == track_sid).map(|t| (p, t)))
    }

    /// A published track: its publisher's identity and the track as the server describes it.
    pub(crate) fn published(&self, track_sid: &str) -> Option<(&str, &proto::TrackInfo)> {
        self.track(track_sid).map(|(p, t)| (p.identity.as_str(), t))
    }

    /// The sid of `identity`'s track from `source` (LiveKit's lower-case source name:
    /// camera, microphone, screen_share, screen_share_audio).
    pub(crate) fn track_of(&self, identity: &str, source: &str) -> Option<&str> {
        let named = |t: &&proto::TrackInfo| {
            proto::TrackSource::try_from(t.source).is_ok_and(|s| s.as_str_name().eq_ignore_ascii_case(source))
        };
        self.participants
            .values()
            .filter(|p| p.identity == identity)
            .find_map(|p| p.tracks.iter().find(named))
            .map(|t| t.sid.as_str())
    }

    /// Whether a track is an agent's (None: the roster does not know the track yet).
    pub(crate) fn is_agents(&self, track_sid: &str) -> Option<bool> {
        self.track(track_sid).map(|(p, _)| p.agent)
    }

    /// Whether a track is published in the room now.
    pub(crate) fn has_track(&self, track_sid: &str) -> bool {
        self.track(track_sid).is_some()
    }

    fn has_participant(&self, identity: &str) -> bool {
        self.participants.values().any(|p| p.identity == identity)
    }

    /// Whether `subject` is in the room now: its participant, or one of its tracks.
    pub(crate) fn has(&self, subject: &Subject) -> bool {
        match subject {
            Subject::Room => true,
            Subject::Participant { identity, .. }
            | Subject::Media { video: Some(VideoPick::Participant { identity, .. }), .. } => {
                self.has_participant(identity)
            }
            Subject::Media { video: Some(VideoPick::Track(v)), .. } => self.has_track(v),
            Subject::Tracks { .. } | Subject::Media { video: None, .. } => {
                self.participants.values().flat_map(|p| &p.tracks).any(|t| self.wants(&t.sid, subject) == Some(true))
            }
        }
    }

    /// The tiles to lay out and, for each, the video track it shows (if a frame is there:
    /// `has_video` says so). The tile's `video` is its index into the returned tracks. Only
    /// `subject`'s participants and tracks are drawn.
    pub(crate) fn tiles(
        &self,
        has_video: impl Fn(&str) -> bool,
        subject: &Subject,
    ) -> (Vec<TileSource>, Vec<TileVideo>) {
        let mut sources = Vec::new();
        let mut videos = Vec::new();
        let mut video = |sid: &str| {
            videos.push(TileVideo { track_sid: sid.to_string() });
            Some(videos.len() - 1)
        };
        for p in self.participants.values() {
            let live = |source: proto::TrackSource| {
                p.tracks.iter().find(|t| {
                    t.r#type == proto::TrackType::Video as i32
                        && t.source == source as i32
                        && !t.muted
                        && has_video(&t.sid)
                })
            };
            // The one video of a track subject, or of a participant media source.
            let one = match subject {
                Subject::Tracks { video: Some(v), .. } | Subject::Media { video: Some(VideoPick::Track(v)), .. } => {
                    p.tracks.iter().find(|t| &t.sid == v)
                }
                Subject::Media { video: Some(VideoPick::Participant { identity, prefer_screen_share }), .. }
                    if &p.identity == identity =>
                {
                    let share = live(proto::TrackSource::ScreenShare).filter(|_| *prefer_screen_share);
                    share.or_else(|| {
                        p.tracks.iter().find(|t| {
                            t.r#type == proto::TrackType::Video as i32
                                && matches!(t.source, s if s == proto::TrackSource::Camera as i32 || s == proto::TrackSource::Unknown as i32)
                        })
                    })
                }
                _ => None,
            };
            match subject {
                Subject::Room => {}
                Subject::Participant { identity, .. } if &p.identity != identity => continue,
                Subject::Participant { .. } => {}
                Subject::Tracks { video: Some(_), .. } | Subject::Media { video: Some(_), .. } => {
                    let Some(t) = one else { continue };
                    let shown = (!t.muted && has_video(&t.sid)).then(|| t.sid.clone());
                    let kind = if is_share(t.source) { TileKind::ScreenShare } else { TileKind::Camera };
                    sources.push(TileSource {
                        identity: p.identity.clone(),
                        name: p.name.clone(),
                        kind,
                        video: shown.and_then(|sid| video(&sid)),
                        speaking: false,
                        audio_level: 0.0,
                        audio_muted: false,
                        last_spoke_ms: None,
                        joined_ms: p.joined_ms,
                    });
                    continue;
                }
                Subject::Tracks { video: None, .. } | Subject::Media { video: None, .. } => continue,
            }
            let mic = p.tracks.iter().find(|t| t.r#type == proto::TrackType::Audio as i32);
            let camera = live(proto::TrackSource::Camera).or_else(|| live(proto::TrackSource::Unknown));
            let base = TileSource {
                identity: p.identity.clone(),
                name: p.name.clone(),
                kind: TileKind::Camera,
                video: None,
                speaking: p.speaking,
                audio_level: p.level,
                audio_muted: mic.is_none_or(|m| m.muted),
                last_spoke_ms: p.last_spoke_ms,
                joined_ms: p.joined_ms,
            };
            let (camera_tile, share_tile) = match subject {
                Subject::Participant { screen_share, .. } => (!screen_share, *screen_share),
                _ => (true, true),
            };
            if camera_tile {
                sources.push(TileSource { video: camera.and_then(|t| video(&t.sid)), ..base.clone() });
            }
            if !share_tile {
                continue;
            }
            if let Some(share) = live(proto::TrackSource::ScreenShare) {
                sources.push(TileSource {
                    kind: TileKind::ScreenShare,
                    video: video(&share.sid),
                    speaking: false,
                    audio_level: 0.0,
                    ..base
                });
            }
        }
        (sources, videos)
    }
}

/// A screen share's video or audio (a participant egress takes either these or the rest).
fn is_share(source: i32) -> bool {
    source == proto::TrackSource::ScreenShare as i32 || source == proto::TrackSource::ScreenShareAudio as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn track(sid: &str, kind: proto::TrackType, source: proto::TrackSource, muted: bool) -> proto::TrackInfo {
        proto::TrackInfo { sid: sid.into(), r#type: kind as i32, source: source as i32, muted, ..Default::default() }
    }

    fn person(sid: &str, tracks: Vec<proto::TrackInfo>) -> proto::ParticipantInfo {
        proto::ParticipantInfo {
            sid: sid.into(),
            identity: format!("id-{sid}"),
            name: format!("Name {sid}"),
            state: proto::participant_info::State::Active as i32,
            joined_at_ms: 1000,
            tracks,
            ..Default::default()
        }
    }

    #[test]
    fn cameras_shares_mutes_and_leaves_become_tiles() {
        use proto::{TrackSource as S, TrackType as T};
        let mut r = Roster::default();
        r.update(vec![
            person(
                "PA_a",
                vec![track("TR_ac", T::Video, S::Camera, false), track("TR_am", T::Audio, S::Microphone, true)],
            ),
            person(
                "PA_b",
                vec![track("TR_bc", T::Video, S::Camera, true), track("TR_bs", T::Video, S::ScreenShare, false)],
            ),
        ]);
        let (tiles, videos) = r.tiles(|_| true, &Subject::Room);
        assert_eq!(tiles.len(), 3);
        assert_eq!(tiles[0].video.map(|i| videos[i].track_sid.as_str()), Some("TR_ac"));
        assert!(tiles[0].audio_muted);
        // b's camera is muted: a placeholder; its share is a tile of its own.
        assert_eq!(tiles[1].video, None);
        assert_eq!(tiles[2].kind, TileKind::ScreenShare);
        // No frame yet: no video.
        assert!(r.tiles(|sid| sid != "TR_ac", &Subject::Room).0[0].video.is_none());
        // b leaves.
        r.update(vec![proto::ParticipantInfo {
            state: proto::participant_info::State::Disconnected as i32,
            ..person("PA_b", vec![])
        }]);
        assert_eq!(r.tiles(|_| true, &Subject::Room).0.len(), 1);
        assert_eq!(r.seen(), vec!["id-PA_a".to_string(), "id-PA_b".to_string()]);
    }

    #[test]
    fn a_participant_or_track_subject_keeps_only_its_own_tiles_and_tracks() {
        use proto::{TrackSource as S, TrackType as T};
        let mut r = Roster::default();
        r.update(vec![
            person(
                "PA_a",
                vec![track("TR_ac", T::Video, S::Camera, false), track("TR_am", T::Audio, S::Microphone, false)],
            ),
            person(
                "PA_b",
                vec![
                    track("TR_bc", T::Video, S::Camera, false),
                    track("TR_bs", T::Video, S::ScreenShare, false),
                    track("TR_bsa", T::Audio, S::ScreenShareAudio, false),
                ],
            ),
        ]);
        let b = Subject::Participant { identity: "id-PA_b".into(), screen_share: false };
        let (tiles, videos) = r.tiles(|_| true, &b);
        assert_eq!((tiles.len(), videos[0].track_sid.as_str()), (1, "TR_bc"));
        assert_eq!(
            (r.wants("TR_bc", &b), r.wants("TR_bsa", &b), r.wants("TR_am", &b)),
            (Some(true), Some(false), Some(false))
        );
        assert_eq!(r.wants("TR_new", &b), None, "a track not yet described");
        let share = Subject::Participant { identity: "id-PA_b".into(), screen_share: true };
        let (tiles, videos) = r.tiles(|_| true, &share);
        assert_eq!((tiles.len(), tiles[0].kind, videos[0].track_sid.as_str()), (1, TileKind::ScreenShare, "TR_bs"));
        assert_eq!(r.wants("TR_bsa", &share), Some(true));
        let pair = Subject::Tracks { audio: Some("TR_am".into()), video: Some("TR_bc".into()) };
        let (tiles, videos) = r.tiles(|_| true, &pair);
        assert_eq!((tiles.len(), tiles[0].identity.as_str(), videos[0].track_sid.as_str()), (1, "id-PA_b", "TR_bc"));
        assert!(r.wants("TR_am", &pair) == Some(true) && r.wants("TR_ac", &pair) == Some(false));
        assert!(r.has(&pair) && r.has(&b));
        r.update(vec![proto::ParticipantInfo {
            state: proto::participant_info::State::Disconnected as i32,
            ..person("PA_b", vec![])
        }]);
        assert!(!r.has(&b) && r.has(&pair), "a's microphone is still there");
    }

    #[test]
    fn speaker_updates_mark_speaking_and_last_spoke() {
        let mut r = Roster::default();
        r.update(vec![person("PA_a", vec![])]);
        r.speakers(vec![proto::SpeakerInfo { sid: "PA_a".into(), level: 0.7, active: true }], 5000);
        let t = &r.tiles(|_| true, &Subject::Room).0[0];
        assert!(t.speaking);
        assert_eq!(t.last_spoke_ms, Some(5000));
        r.speakers(vec![proto::SpeakerInfo { sid: "PA_a".into(), level: 0.0, active: false }], 6000);
        let t = &r.tiles(|_| true, &Subject::Room).0[0];
        assert!(!t.speaking);
        assert_eq!(t.last_spoke_ms, Some(5000));
    }
}
