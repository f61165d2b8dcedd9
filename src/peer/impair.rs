//! A bad network on demand: devroom can drop and delay the RTP it sends to
//! subscribers, so the recorder's NACK, PLI and jitter handling are tested
//! against real loss on loopback. It sits at the wire end of the interceptor
//! chain (below the NACK responder, which keeps every packet it sent, so lost
//! packets can be retransmitted, and retransmissions can be lost again).

use rand::Rng;
use rtc::interceptor::{Packet, TaggedPacket};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What the link does to outgoing RTP.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Impairment {
    /// Share of RTP packets dropped, 0..1.
    pub loss: f64,
    /// Each packet is held a random time up to this (so packets also reorder).
    pub jitter: Duration,
}

impl Impairment {
    pub fn is_none(&self) -> bool {
        self.loss <= 0.0 && self.jitter.is_zero()
    }
}

pub(crate) struct ImpairedLink {
    cfg: Impairment,
    read: VecDeque<TaggedPacket>,
    ready: VecDeque<TaggedPacket>,
    /// Held packets with their release time, in arrival order.
    held: Vec<(Instant, TaggedPacket)>,
}

impl ImpairedLink {
    pub(crate) fn new(cfg: Impairment) -> Self {
        Self { cfg, read: VecDeque::new(), ready: VecDeque::new(), held: Vec::new() }
    }
}

impl rtc::sansio::Protocol<TaggedPacket, TaggedPacket, ()> for ImpairedLink {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, m: TaggedPacket) -> Result<(), Self::Error> {
        self.read.push_back(m);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, m: TaggedPacket) -> Result<(), Self::Error> {
        if !matches!(m.message.packet, Packet::Rtp(_)) {
            self.ready.push_back(m);
            return Ok(());
        }
        let mut rng = rand::rng();
        if rng.random_bool(self.cfg.loss.clamp(0.0, 1.0)) {
            return Ok(());
        }
        if self.cfg.jitter.is_zero() {
            self.ready.push_back(m);
        } else {
            let delay = self.cfg.jitter.mul_f64(rng.random::<f64>());
            self.held.push((Instant::now() + delay, m));
        }
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.ready.pop_front()
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), Self::Error> {
        let (due, later): (Vec<_>, Vec<_>) = self.held.drain(..).partition(|(at, _)| *at <= now);
        self.held = later;
        let mut due = due;
        due.sort_by_key(|(at, _)| *at);
        self.ready.extend(due.into_iter().map(|(_, m)| m));
        Ok(())
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        self.held.iter().map(|(at, _)| *at).min()
    }
}

impl rtc::interceptor::Interceptor for ImpairedLink {
    fn bind_local_stream(&mut self, _: &rtc::interceptor::StreamInfo) {}
    fn unbind_local_stream(&mut self, _: &rtc::interceptor::StreamInfo) {}
    fn bind_remote_stream(&mut self, _: &rtc::interceptor::StreamInfo) {}
    fn unbind_remote_stream(&mut self, _: &rtc::interceptor::StreamInfo) {}
}
