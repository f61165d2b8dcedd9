//! The jitter buffer: RTP packets in (any order, duplicates, gaps), whole frames
//! out in sequence order, depacketised with the codec's depacketiser from the
//! `rtc` crate (VP8, VP9, H.264 single NAL/STAP-A/FU-A, AV1, Opus).
//!
//! Written here rather than using `rtc`'s `SampleBuilder` because that one
//! preallocates 65,536 packet and sample slots per track (about 13 MB each,
//! which rules out dozens of tracks per process) and holds every frame until the
//! next one starts. This one keeps only the packets in flight and releases a
//! frame as soon as its marker packet is in.
//!
//! A gap waits `max_wait` for the missing packet (the connection's NACK generator
//! asks for it meanwhile); after that the incomplete frame is dropped and the next
//! frame is marked `after_loss`, so the caller can ask for a keyframe. Time is
//! passed in (µs on the caller's clock).

use bytes::{Bytes, BytesMut};
use rtc::rtp::Packet;
use rtc::rtp::packetizer::Depacketizer;
use std::collections::BTreeMap;

/// A depacketised frame.
#[derive(Debug, Clone)]
pub(crate) struct Frame {
    pub data: Bytes,
    pub rtp_timestamp: u32,
    /// When its last packet arrived.
    pub arrival_us: i64,
    /// Packets were given up on since the previous frame.
    pub after_loss: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct JitterStats {
    pub packets: u64,
    pub duplicates: u64,
    /// Packets that arrived after the frame they belong to was released or dropped.
    pub too_late: u64,
    /// Missing packets that arrived while their gap was waited for: retransmissions
    /// answered to our NACKs, or packets the network reordered.
    pub gaps_filled: u64,
    /// Packets given up on (lost, or dropped with an incomplete frame).
    pub lost: u64,
    pub frames: u64,
    pub bad_payloads: u64,
}

pub(crate) struct JitterBuffer<D: Depacketizer> {
    depack: D,
    /// Every packet is a frame (audio); otherwise a frame ends at the marker bit.
    packet_per_frame: bool,
    max_wait_us: i64,
    packets: BTreeMap<u64, (Packet, i64)>,
    /// Extended sequence number of the next packet to release.
    next: Option<u64>,
    highest: Option<u64>,
    /// Since when `next` has been missing while later packets wait.
    gap_since: Option<i64>,
    loss_pending: bool,
    stats: JitterStats,
}

/// Packets held at most; beyond this the oldest gap is given up on at once.
const MAX_PACKETS: usize = 2048;

impl<D: Depacketizer> JitterBuffer<D> {
    pub(crate) fn new(depack: D, packet_per_frame: bool, max_wait_us: i64) -> Self {
        Self {
            depack,
            packet_per_frame,
            max_wait_us,
            packets: BTreeMap::new(),
            next: None,
            highest: None,
            gap_since: None,
            loss_pending: false,
            stats: JitterStats::default(),
        }
    }

    pub(crate) fn stats(&self) -> JitterStats {
        self.stats
    }

    fn extend(&self, seq: u16) -> u64 {
        match self.highest {
            None => seq as u64 + (1 << 16),
            Some(h) => {
                let delta = seq.wrapping_sub(h as u16) as i16 as i64;
                (h as i64 + delta).max(0) as u64
            }
        }
    }

    pub(crate) fn push(&mut self, pkt: Packet, now_us: i64) {
        self.stats.packets += 1;
        let ext = self.extend(pkt.header.sequence_number);
        // Before the first release the start can still move back (the first packet
        // to arrive was not the first sent).
        if self.stats.frames == 0 && self.next.is_some_and(|n| ext < n) && self.gap_since.is_none() {
            self.next = Some(ext);
        }
        if self.next.is_some_and(|n| ext < n) {
            self.stats.too_late += 1;
            return;
        }
        if self.packets.contains_key(&ext) {
            self.stats.duplicates += 1;
            return;
        }
        if self.highest.is_some_and(|h| ext < h) && self.gap_since.is_some() {
            self.stats.gaps_filled += 1;
        }
        self.highest = Some(self.highest.map_or(ext, |h| h.max(ext)));
        self.next.get_or_insert(ext);
        self.packets.insert(ext, (pkt, now_us));
        if self.packets.len() > MAX_PACKETS {
            self.skip_to_next_frame();
        }
    }

    /// The next complete frame, if one is ready at `now_us`.
    pub(crate) fn pop(&mut self, now_us: i64) -> Option<Frame> {
        loop {
            let next = self.next?;
            if !self.packets.contains_key(&next) {
                // A gap: wait for it while later packets are here, then give up.
                let first_later = *self.packets.keys().next()?;
                let since = *self.gap_since.get_or_insert(now_us);
                if now_us - since < self.max_wait_us {
                    return None;
                }
                self.stats.lost += first_later - next;
                self.loss_pending = true;
                self.gap_since = None;
                self.next = Some(first_later);
                continue;
            }
            self.gap_since = None;
            match self.complete_run(next) {
                Run::Incomplete => {
                    // Waiting for the rest of the frame; give up when a later frame has waited too long.
                    let oldest = self.packets.values().next().map(|(_, t)| *t).unwrap_or(now_us);
                    if now_us - oldest < self.max_wait_us || self.later_frame_start(next).is_none() {
                        return None;
                    }
                    self.skip_to_next_frame();
                }
                Run::Complete(end) => {
                    if let Some(f) = self.release(next, end) {
                        return Some(f);
                    }
                }
            }
        }
    }

    /// Whether packets `next..` form a whole frame, and where it ends.
    fn complete_run(&self, next: u64) -> Run {
        let Some((first, _)) = self.packets.get(&next) else { return Run::Incomplete };
        let ts = first.header.timestamp;
        let mut seq = next;
        loop {
            let Some((p, _)) = self.packets.get(&seq) else { return Run::Incomplete };
            if p.header.timestamp != ts {
                // The previous packet ended the frame without a marker.
                return Run::Complete(seq - 1);
            }
            if self.packet_per_frame || p.header.marker {
                return Run::Complete(seq);
            }
            seq += 1;
        }
    }

    /// The first held packet of a frame other than the one at `next` (a new timestamp).
    fn later_frame_start(&self, next: u64) -> Option<u64> {
        let ts = self.packets.get(&next).map(|(p, _)| p.header.timestamp);
        self.packets.iter().find(|(_, (p, _))| Some(p.header.timestamp) != ts).map(|(k, _)| *k)
    }

    /// Drops everything up to the first packet of a later frame.
    fn skip_to_next_frame(&mut self) {
        let Some(next) = self.next else { return };
        let until = self.later_frame_start(next).unwrap_or_else(|| self.highest.map_or(next, |h| h + 1));
        self.packets.retain(|k, _| *k >= until);
        self.stats.lost += until - next;
        self.loss_pending = true;
        self.gap_since = None;
        self.next = Some(until);
    }

    fn release(&mut self, from: u64, to: u64) -> Option<Frame> {
        let mut data = BytesMut::new();
        let mut ok = true;
        let mut arrival = 0;
        let mut ts = 0;
        for seq in from..=to {
            let Some((p, t)) = self.packets.remove(&seq) else { continue };
            arrival = arrival.max(t);
            ts = p.header.timestamp;
            if p.payload.is_empty() {
                continue; // padding
            }
            if seq == from && !self.depack.is_partition_head(&p.payload) {
                ok = false;
            }
            match self.depack.depacketize(&p.payload) {
                Ok(b) => data.extend_from_slice(&b),
                Err(_) => ok = false,
            }
        }
        self.next = Some(to + 1);
        if !ok || data.is_empty() {
            if !ok {
                self.stats.bad_payloads += 1;
                self.loss_pending = true;
            }
            return None;
        }
        self.stats.frames += 1;
        let after_loss = std::mem::take(&mut self.loss_pending);
        Some(Frame { data: data.freeze(), rtp_timestamp: ts, arrival_us: arrival, after_loss })
    }
}

enum Run {
    Incomplete,
    Complete(u64),
}

/// Whether a depacketised frame starts a new picture sequence (a keyframe).
pub(crate) fn is_keyframe(mime: &str, frame: &[u8]) -> bool {
    match mime.to_ascii_lowercase().as_str() {
        // VP8 payload header: bit 0 of the first byte is 0 on key frames.
        "video/vp8" => frame.first().is_some_and(|b| b & 1 == 0),
        // Annex B: an IDR slice or a sequence parameter set.
        "video/h264" => crate::output::track_file::annexb_units(frame).iter().any(|u| matches!(u[0] & 0x1f, 5 | 7)),
        "video/vp9" => vp9_keyframe(frame),
        // Not inspected: the decoder copes with what it gets.
        _ => true,
    }
}

/// VP9's uncompressed header (spec 6.2): frame marker, profile (one more reserved bit for
/// profile 3), show_existing_frame, then frame_type, 0 on key frames.
fn vp9_keyframe(frame: &[u8]) -> bool {
    let Some(&b) = frame.first() else { return false };
    let bit = |i: u32| (b >> (7 - i)) & 1;
    let profile = bit(2) | (bit(3) << 1);
    let at = if profile == 3 { 5 } else { 4 };
    b >> 6 == 0b10 && bit(at) == 0 && bit(at + 1) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::rtp::codec::opus::OpusPacket;
    use rtc::rtp::codec::vp8::Vp8Packet;

    /// A VP8 packet: a 1-byte descriptor (S bit on the first packet of a frame) and a payload byte.
    fn vp8(seq: u16, ts: u32, first: bool, marker: bool, byte: u8) -> Packet {
        let mut p = Packet::default();
        p.header.sequence_number = seq;
        p.header.timestamp = ts;
        p.header.marker = marker;
        p.payload = Bytes::from(vec![if first { 0x10 } else { 0x00 }, byte, 0, 0]);
        p
    }

    /// The marker bytes of a depacketised frame made of `vp8` packets.
    fn marks(f: &Frame) -> Vec<u8> {
        f.data.iter().step_by(3).copied().collect()
    }

    fn buffer() -> JitterBuffer<Vp8Packet> {
        JitterBuffer::new(Vp8Packet::default(), false, 100_000)
    }

    #[test]
    fn frames_come_out_whole_and_in_order_whatever_the_arrival_order() {
        let mut jb = buffer();
        jb.push(vp8(11, 3000, false, true, 2), 0);
        jb.push(vp8(10, 3000, true, false, 1), 0);
        jb.push(vp8(13, 6000, false, true, 4), 0);
        jb.push(vp8(12, 6000, true, false, 3), 0);
        let a = jb.pop(0).unwrap();
        assert_eq!((marks(&a), a.rtp_timestamp, a.after_loss), (vec![1u8, 2], 3000, false));
        assert_eq!(marks(&jb.pop(0).unwrap()), [3, 4]);
        assert!(jb.pop(0).is_none());
        assert_eq!(jb.stats().frames, 2);
    }

    #[test]
    fn a_gap_waits_for_the_retransmission_then_is_given_up() {
        let mut jb = buffer();
        jb.push(vp8(100, 0, true, true, 1), 0);
        assert!(jb.pop(0).is_some());
        // 101 is lost; 102-103 wait behind it.
        jb.push(vp8(102, 3000, false, true, 2), 10_000);
        jb.push(vp8(103, 6000, true, true, 3), 20_000);
        assert!(jb.pop(20_000).is_none());
        // The retransmission arrives in time: the frame is whole.
        jb.push(vp8(101, 3000, true, false, 9), 60_000);
        assert_eq!(marks(&jb.pop(60_000).unwrap()), [9, 2]);
        assert_eq!(jb.stats().gaps_filled, 1);
        // Now 104 is lost for good.
        assert!(jb.pop(60_000).is_some());
        jb.push(vp8(105, 9000, true, true, 5), 70_000);
        assert!(jb.pop(100_000).is_none());
        let f = jb.pop(200_001).unwrap();
        assert_eq!(marks(&f), [5]);
        assert!(f.after_loss);
        assert_eq!(jb.stats().lost, 1);
    }

    #[test]
    fn a_frame_missing_its_middle_is_dropped_when_a_later_frame_waits_too_long() {
        let mut jb = buffer();
        jb.push(vp8(1, 0, true, false, 1), 0);
        // 2 lost, 3 ends the frame; 4 is the next frame.
        jb.push(vp8(3, 0, false, true, 3), 0);
        jb.push(vp8(4, 3000, true, true, 4), 0);
        assert!(jb.pop(50_000).is_none());
        let f = jb.pop(200_000).unwrap();
        assert_eq!(marks(&f), [4]);
        assert!(f.after_loss);
    }

    #[test]
    fn sequence_numbers_wrap_and_duplicates_and_late_packets_are_ignored() {
        let mut jb = buffer();
        jb.push(vp8(65535, 0, true, true, 1), 0);
        jb.push(vp8(0, 3000, true, true, 2), 0);
        jb.push(vp8(0, 3000, true, true, 2), 0);
        assert_eq!(marks(&jb.pop(0).unwrap()), [1]);
        assert_eq!(marks(&jb.pop(0).unwrap()), [2]);
        jb.push(vp8(65535, 0, true, true, 1), 0);
        let s = jb.stats();
        assert_eq!((s.duplicates, s.too_late, s.frames), (1, 1, 2));
    }

    #[test]
    fn audio_packets_are_frames_of_their_own() {
        let mut jb = JitterBuffer::new(OpusPacket, true, 60_000);
        for (seq, b) in [(7u16, 1u8), (8, 2)] {
            let mut p = Packet::default();
            p.header.sequence_number = seq;
            p.header.timestamp = seq as u32 * 960;
            p.payload = Bytes::from(vec![b]);
            jb.push(p, 0);
        }
        assert_eq!(jb.pop(0).unwrap().data.as_ref(), &[1]);
        assert_eq!(jb.pop(0).unwrap().data.as_ref(), &[2]);
    }

    #[test]
    fn keyframes_are_recognised() {
        assert!(is_keyframe("video/VP8", &[0x10]));
        assert!(!is_keyframe("video/VP8", &[0x11]));
        assert!(is_keyframe("video/H264", &[0, 0, 0, 1, 0x67, 1, 0, 0, 1, 0x65]));
        assert!(!is_keyframe("video/H264", &[0, 0, 0, 1, 0x41, 1]));
        // VP9 profile 0: marker 10, profile 00, show_existing 0, frame_type 0 (key) / 1.
        assert!(is_keyframe("video/VP9", &[0b1000_0000]));
        assert!(!is_keyframe("video/VP9", &[0b1000_0100]));
    }
}
