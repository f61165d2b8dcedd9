//! One clock for the room. Every track's RTP timestamps are mapped onto the
//! recorder's clock (microseconds since it started) through the sender reports
//! the server sends for it (RTCP SR: this RTP time is this wall-clock time), so
//! a participant's audio and video line up whatever their arrival jitter. Until
//! a track's first report, its arrivals anchor it: the earliest arrival relative to
//! its RTP time over the track's first seconds (the shortest network delay), not
//! the first packet's, which can come late (a connection still settling, a keyframe
//! that was asked for). livekit-server's reports never reach us (webrtc-rs 0.21
//! drops the whole RTCP compound they come in, see docs/architecture.md), so with
//! it this anchor is what lines a participant's audio and video up.
//!
//! The server's wall clock is not ours: the offset between them is estimated
//! from the reports' arrival (the smallest `arrival - ntp` seen, which is the
//! offset plus the shortest network delay) and shared by every track, because
//! one server writes all the reports a subscriber receives.
//!
//! Time is always passed in, so this is tested without waiting.

/// Seconds between the NTP epoch (1900) and the Unix epoch (1970).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// NTP 32.32 fixed point as microseconds since the Unix epoch.
pub(crate) fn ntp_to_unix_us(ntp: u64) -> i64 {
    let secs = (ntp >> 32) as i64 - NTP_UNIX_OFFSET as i64;
    let frac = ((ntp & 0xffff_ffff) * 1_000_000) >> 32;
    secs * 1_000_000 + frac as i64
}

/// The server's wall clock as seen from ours.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ServerClock {
    /// Our clock minus the server's (µs), the smallest seen.
    offset_us: Option<i64>,
}

impl ServerClock {
    /// A sender report with server time `ntp_us` arrived at our time `arrival_us`.
    pub(crate) fn observe(&mut self, ntp_us: i64, arrival_us: i64) {
        let o = arrival_us - ntp_us;
        self.offset_us = Some(self.offset_us.map_or(o, |cur| cur.min(o)));
    }

    pub(crate) fn local_of(&self, ntp_us: i64) -> Option<i64> {
        self.offset_us.map(|o| ntp_us + o)
    }
}

/// How long a track's arrivals are watched for the shortest delay.
const LEARN_US: i64 = 3_000_000;

/// One track's RTP clock.
#[derive(Debug, Clone)]
pub(crate) struct TrackClock {
    rate: i64,
    /// Last extended timestamp, for unwrapping.
    last: Option<i64>,
    /// (our time of the first packet, the smallest of our time minus media time (µs) so
    /// far): the anchor, learnt over `LEARN_US` from the first packet, then fixed, so that
    /// clock drift does not creep in.
    anchor: Option<(i64, i64)>,
    /// (extended RTP time, server time µs) of the latest sender report.
    report: Option<(i64, i64)>,
}

impl TrackClock {
    pub(crate) fn new(clock_rate: u32) -> Self {
        Self { rate: clock_rate.max(1) as i64, last: None, anchor: None, report: None }
    }

    /// Extends a 32-bit RTP timestamp past wraparounds (either way, for reordering).
    fn extend(&mut self, ts: u32) -> i64 {
        let ext = match self.last {
            None => ts as i64,
            Some(last) => {
                let delta = ts.wrapping_sub(last as u32) as i32 as i64;
                last + delta
            }
        };
        self.last = Some(self.last.map_or(ext, |l| l.max(ext)));
        ext
    }

    /// A sender report: RTP time `rtp` is server wall-clock time `ntp_us`.
    pub(crate) fn on_report(&mut self, rtp: u32, ntp_us: i64) {
        let ext = self.extend(rtp);
        self.report = Some((ext, ntp_us));
    }

    /// Our time (µs) of a sample with RTP time `rtp` that arrived at `arrival_us`.
    pub(crate) fn local_time(&mut self, rtp: u32, arrival_us: i64, server: &ServerClock) -> i64 {
        let ext = self.extend(rtp);
        let media_us = ext * 1_000_000 / self.rate;
        let offset = arrival_us - media_us;
        let (first, anchor) = self.anchor.get_or_insert((arrival_us, offset));
        if arrival_us - *first <= LEARN_US {
            *anchor = (*anchor).min(offset);
        }
        match self.report.and_then(|(r, ntp)| server.local_of(ntp).map(|l| (r, l))) {
            Some((base_rtp, base_us)) => base_us + (ext - base_rtp) * 1_000_000 / self.rate,
            None => media_us + *anchor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ntp_converts_to_unix_time() {
        // 1 Jan 1970 00:00:01.5 in NTP.
        let ntp = ((NTP_UNIX_OFFSET + 1) << 32) | (1u64 << 31);
        assert_eq!(ntp_to_unix_us(ntp), 1_500_000);
    }

    #[test]
    fn before_a_report_the_first_arrival_anchors_the_track() {
        let server = ServerClock::default();
        let mut c = TrackClock::new(90_000);
        assert_eq!(c.local_time(1000, 5_000, &server), 5_000);
        // 3000 ticks later is 33.3 ms later whatever the arrival.
        assert_eq!(c.local_time(4000, 60_000, &server), 38_333);
    }

    #[test]
    fn without_reports_the_shortest_delay_in_the_first_seconds_anchors_the_track() {
        let server = ServerClock::default();
        let mut c = TrackClock::new(48_000);
        // The first packet came 250 ms late (a burst as the connection settled).
        assert_eq!(c.local_time(0, 250_000, &server), 250_000);
        // 20 ms of audio later, one arrives on time: the anchor moves to it.
        assert_eq!(c.local_time(960, 20_000, &server), 20_000);
        assert_eq!(c.local_time(1920, 45_000, &server), 40_000);
        // After the learning time, a quicker arrival (our clock drifting) moves nothing.
        assert_eq!(c.local_time(48_000 * 4, 3_990_000, &server), 4_000_000);
    }

    #[test]
    fn timestamps_unwrap() {
        let server = ServerClock::default();
        let mut c = TrackClock::new(48_000);
        assert_eq!(c.local_time(u32::MAX - 479, 0, &server), 0);
        assert_eq!(c.local_time(480, 20_000, &server), 20_000);
        // A reordered packet from before the wrap.
        assert_eq!(c.local_time(u32::MAX - 959, 30_000, &server), -10_000);
    }

    /// Audio and video of one sender arrive with different delays; their reports put
    /// the flash and the beep, sent together, at the same time.
    #[test]
    fn reports_line_up_tracks_that_arrive_with_different_delays() {
        let mut server = ServerClock::default();
        let server_epoch = 1_700_000_000_000_000i64; // the server's wall clock at our time 0
        // Reports arrive 2 ms and 30 ms after being sent.
        server.observe(server_epoch + 1_000_000, 1_002_000);
        server.observe(server_epoch + 1_500_000, 1_530_000);
        let (mut video, mut audio) = (TrackClock::new(90_000), TrackClock::new(48_000));
        // Both were sampled at server time epoch+1 s with these RTP times.
        video.on_report(90_000, server_epoch + 1_000_000);
        audio.on_report(48_000, server_epoch + 1_000_000);
        // A mark sent at server time epoch+2 s: video arrives 80 ms late, audio 5 ms.
        let v = video.local_time(180_000, 2_080_000, &server);
        let a = audio.local_time(96_000, 2_005_000, &server);
        assert_eq!(v, a);
        assert_eq!(v, 2_002_000); // the shortest delay seen is part of the offset
    }

    #[test]
    fn the_offset_keeps_the_smallest_delay() {
        let mut s = ServerClock::default();
        s.observe(100, 150);
        s.observe(200, 230);
        s.observe(300, 400);
        assert_eq!(s.local_of(1000), Some(1030));
    }
}
