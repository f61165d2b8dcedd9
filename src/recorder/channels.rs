//! Which channel of the stereo mix each audio track goes to: both (the default), or one,
//! as LiveKit's dual-channel mixing places them (its template pans each track hard left or
//! right: agents left and everyone else right, or tracks in turn as they first appear).

use crate::recording::ChannelMixing;
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Left,
    Right,
}

/// Decides, and remembers, each track's side.
#[derive(Debug, Default)]
pub(crate) struct Placer {
    mixing: ChannelMixing,
    sides: HashMap<String, Side>,
    next: Option<Side>,
}

impl Placer {
    pub(crate) fn new(mixing: ChannelMixing) -> Self {
        Self { mixing, ..Self::default() }
    }

    /// The side of `track_sid` (None: both channels). `is_agent`: whether the track is an
    /// agent's, None while that is not known (not an agent then, until it is).
    pub(crate) fn side(&mut self, track_sid: &str, is_agent: Option<bool>) -> Option<Side> {
        match self.mixing {
            ChannelMixing::Both => None,
            ChannelMixing::AgentLeft => Some(if is_agent == Some(true) { Side::Left } else { Side::Right }),
            ChannelMixing::Alternate => {
                if let Some(s) = self.sides.get(track_sid) {
                    return Some(*s);
                }
                let s = self.next.unwrap_or(Side::Left);
                self.next = Some(if s == Side::Left { Side::Right } else { Side::Left });
                self.sides.insert(track_sid.to_string(), s);
                Some(s)
            }
        }
    }
}

/// Moves interleaved stereo samples to one side: the pair's mean there (a mono voice keeps
/// its level, as a panner gives a mono input), silence on the other.
pub(crate) fn place(side: Side, samples: &mut [f32]) {
    for pair in samples.chunks_exact_mut(2) {
        let m = (pair[0] + pair[1]) * 0.5;
        (pair[0], pair[1]) = match side {
            Side::Left => (m, 0.0),
            Side::Right => (0.0, m),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_go_left_and_alternate_tracks_keep_their_side() {
        let mut both = Placer::new(ChannelMixing::Both);
        assert_eq!(both.side("TR_a", Some(true)), None);
        let mut agent = Placer::new(ChannelMixing::AgentLeft);
        assert_eq!(agent.side("TR_a", Some(true)), Some(Side::Left));
        assert_eq!(agent.side("TR_b", Some(false)), Some(Side::Right));
        assert_eq!(agent.side("TR_c", None), Some(Side::Right));
        let mut alt = Placer::new(ChannelMixing::Alternate);
        assert_eq!(alt.side("TR_a", None), Some(Side::Left));
        assert_eq!(alt.side("TR_b", None), Some(Side::Right));
        assert_eq!(alt.side("TR_a", None), Some(Side::Left), "kept for the track's life");
        assert_eq!(alt.side("TR_c", None), Some(Side::Left));
    }

    #[test]
    fn placing_keeps_a_mono_voice_level_on_one_side() {
        let mut s = vec![0.5, 0.5, -0.2, 0.2];
        place(Side::Right, &mut s);
        assert_eq!(s, [0.0, 0.5, 0.0, 0.0]);
        let mut s = vec![0.5, 0.5];
        place(Side::Left, &mut s);
        assert_eq!(s, [0.5, 0.0]);
    }
}
