//! Whose media a room recording holds: LiveKit's room composite, participant, track
//! composite and v2 media-source egress are one recording of different subjects.

/// What a room recording takes from the room.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Subject {
    /// Everyone in the room.
    #[default]
    Room,
    /// One participant (by identity): its camera and microphone, or its screen share and
    /// screen-share audio, followed as it mutes, unpublishes and republishes.
    Participant { identity: String, screen_share: bool },
    /// One audio track and one video track, by sid (either may be absent).
    Tracks { audio: Option<String>, video: Option<String> },
    /// A v2 media source: one video (by track or by participant) and the audio its routes
    /// pick, each routed to a channel.
    Media { video: Option<VideoPick>, audio: AudioPick },
}

/// The video of a media source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoPick {
    Track(String),
    /// A participant's camera, or its screen share while it has one when preferred.
    Participant {
        identity: String,
        prefer_screen_share: bool,
    },
}

/// The audio of a media source: tracks matched by routes, each to its channel; with
/// `capture_all`, every other audio track too, in both channels.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AudioPick {
    pub capture_all: bool,
    pub routes: Vec<AudioRoute>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioRoute {
    pub matches: RouteMatch,
    pub channel: Channel,
}

/// Which audio tracks a route takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteMatch {
    Track(String),
    Identity(String),
    /// LiveKit's participant kind (`ParticipantInfo.Kind`).
    Kind(i32),
}

/// Where a route's audio goes in the stereo mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Both,
    Left,
    Right,
}

/// An audio track as a route sees it.
pub struct AudioTrackRef<'a> {
    pub sid: &'a str,
    pub identity: &'a str,
    pub kind: i32,
}

impl AudioPick {
    /// The channel `track` is recorded to, or None when no route takes it.
    pub fn channel_of(&self, track: &AudioTrackRef) -> Option<Channel> {
        let hit = self.routes.iter().find(|r| match &r.matches {
            RouteMatch::Track(sid) => sid == track.sid,
            RouteMatch::Identity(id) => id == track.identity,
            RouteMatch::Kind(k) => *k == track.kind,
        });
        match hit {
            Some(r) => Some(r.channel),
            None if self.capture_all => Some(Channel::Both),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_matching_route_wins_and_capture_all_takes_the_rest() {
        let pick = AudioPick {
            capture_all: false,
            routes: vec![
                AudioRoute { matches: RouteMatch::Track("TR_a".into()), channel: Channel::Left },
                AudioRoute { matches: RouteMatch::Kind(4), channel: Channel::Right },
                AudioRoute { matches: RouteMatch::Identity("bob".into()), channel: Channel::Both },
            ],
        };
        let t = |sid, identity, kind| AudioTrackRef { sid, identity, kind };
        assert_eq!(pick.channel_of(&t("TR_a", "agent", 4)), Some(Channel::Left));
        assert_eq!(pick.channel_of(&t("TR_b", "agent", 4)), Some(Channel::Right));
        assert_eq!(pick.channel_of(&t("TR_c", "bob", 0)), Some(Channel::Both));
        assert_eq!(pick.channel_of(&t("TR_d", "carol", 0)), None);
        let all = AudioPick { capture_all: true, ..pick };
        assert_eq!(all.channel_of(&t("TR_d", "carol", 0)), Some(Channel::Both));
    }
}
