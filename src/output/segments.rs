//! HLS: MPEG-TS segments of the requested duration, each starting on a keyframe
//! the encoder is asked for at the boundary, and the playlists (EVENT, version 4,
//! program-date-time, ENDLIST at the end; optionally a live playlist of the last
//! segments). Boundaries are on media time (segment k starts at k x duration), and
//! each program-date-time is the start's wall time plus media time, so the two
//! cannot drift apart however long the recording. Playlists are replaced
//! atomically (written aside, then renamed) after each segment closes, so a player
//! following them live never reads half a file.
//!
//! Written here rather than with FFmpeg's `hls` muxer: that muxer neither writes a
//! second, sliding playlist beside the full one nor reports each segment as it
//! closes, which the results (and uploads, next) need.

use super::OnWritten;
use super::OutputError;
use super::mux::MuxWriter;
use super::stream::PacketSink;
use crate::encode::{EncodedPacket, StreamKind, StreamSpec};
use crate::sync::lock;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Frame times are whole microseconds (15 fps: 66,666 µs), so a frame meant to fall on a
/// boundary may come a few µs before it: it still starts the segment.
const CUT_SLACK_US: i64 = 1000;

/// Segments a live playlist keeps.
pub(crate) const LIVE_WINDOW: usize = 5;

#[derive(Debug, Clone)]
pub struct SegmentsPlan {
    /// Directory of the segments and playlists.
    pub dir: PathBuf,
    /// File name prefix of the segments (no directory).
    pub prefix: String,
    /// Playlist file name (in `dir`).
    pub playlist: String,
    pub live_playlist: Option<String>,
    pub duration_s: u32,
    /// Name segments by their start time (UTC) rather than by index.
    pub timestamp_names: bool,
    /// Names as reported (relative to the output directory).
    pub playlist_name: String,
    pub live_playlist_name: String,
}

struct Segment {
    name: String,
    start_us: i64,
    duration_us: i64,
}

struct State {
    plan: SegmentsPlan,
    /// Told of each closed segment and rewritten playlist.
    on_written: Option<OnWritten>,
    specs: Vec<StreamSpec>,
    writer: Option<MuxWriter>,
    current: Option<(String, i64)>,
    /// The segment just cut, still taking audio from before the cut (audio is mixed
    /// behind video, so it arrives after the keyframe that starts the next segment).
    closing: Option<(MuxWriter, String, i64, i64)>,
    /// Segments opened so far (the next one's index).
    opened: usize,
    done: Vec<Segment>,
    /// Wall time (Unix µs) of media time 0.
    wall_origin_us: Option<i64>,
    /// Start of the next segment, media µs.
    next_cut_us: i64,
    keyframe_wanted: bool,
    bytes: i64,
    failed: Option<String>,
    started_at: i64,
    ended_at: i64,
    last_pts_us: i64,
}

pub struct SegmentSink(Mutex<State>);

/// How far an HLS output has got (the egress job reports it as LiveKit's SegmentsInfo).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SegmentsProgress {
    /// Names as reported (relative to the output directory).
    pub playlist_name: String,
    pub live_playlist_name: String,
    /// Closed segments: their total length, bytes and number.
    pub duration_us: i64,
    pub bytes: i64,
    pub segment_count: i64,
    /// Where the playlists are written.
    pub playlist_path: PathBuf,
    pub live_playlist_path: Option<PathBuf>,
    /// Unix ns of the first segment's start, and of the end (0: not yet).
    pub started_at: i64,
    pub ended_at: i64,
}

impl SegmentSink {
    /// `on_written` is told of each segment as it closes, then of the rewritten playlists.
    pub fn new(plan: SegmentsPlan, on_written: Option<OnWritten>) -> Self {
        Self(Mutex::new(State {
            plan,
            on_written,
            specs: Vec::new(),
            writer: None,
            current: None,
            closing: None,
            opened: 0,
            done: Vec::new(),
            wall_origin_us: None,
            next_cut_us: 0,
            keyframe_wanted: true,
            bytes: 0,
            failed: None,
            started_at: 0,
            ended_at: 0,
            last_pts_us: 0,
        }))
    }

    pub fn progress(&self) -> SegmentsProgress {
        let s = lock(&self.0);
        SegmentsProgress {
            playlist_name: s.plan.playlist_name.clone(),
            live_playlist_name: s.plan.live_playlist_name.clone(),
            duration_us: s.done.iter().map(|g| g.duration_us).sum(),
            bytes: s.bytes,
            playlist_path: s.plan.dir.join(&s.plan.playlist),
            live_playlist_path: s.plan.live_playlist.as_deref().map(|n| s.plan.dir.join(n)),
            segment_count: s.done.len() as i64,
            started_at: s.started_at,
            ended_at: s.ended_at,
        }
    }

    /// (name, media start s, duration s) of every closed segment, for the manifest.
    pub fn segments(&self) -> Vec<(String, f64, f64)> {
        lock(&self.0)
            .done
            .iter()
            .map(|g| (g.name.clone(), g.start_us as f64 / 1e6, g.duration_us as f64 / 1e6))
            .collect()
    }

    /// Why the output stopped, if it failed.
    pub fn error(&self) -> Option<String> {
        lock(&self.0).failed.clone()
    }
}

fn us(ts: i64, tb: ffmpeg_next::Rational) -> i64 {
    ts * 1_000_000 * tb.0 as i64 / tb.1.max(1) as i64
}

impl State {
    fn segment_name(&self, index: usize, start_us: i64) -> String {
        if self.plan.timestamp_names {
            let wall = self.wall_origin_us.unwrap_or(0) + start_us;
            let t = chrono::DateTime::<chrono::Utc>::from_timestamp_micros(wall).unwrap_or_default();
            format!("{}_{}.ts", self.plan.prefix, t.format("%Y%m%d%H%M%S%3f"))
        } else {
            format!("{}_{index:05}.ts", self.plan.prefix)
        }
    }

    fn open(&mut self, start_us: i64) -> Result<(), OutputError> {
        let name = self.segment_name(self.opened, start_us);
        self.opened += 1;
        let path = self.plan.dir.join(&name);
        let p = path.to_string_lossy().into_owned();
        // One PES per audio frame, each with its own timestamp, so a segment's audio starts exactly.
        self.writer = Some(MuxWriter::create(&p, "mpegts", &self.specs, &[("pes_payload_size", "0")], &p)?.direct());
        self.current = Some((name, start_us));
        Ok(())
    }

    /// Closes the open segment (ending at `end_us`) and rewrites the playlists.
    fn close(&mut self, end_us: i64, last: bool) -> Result<(), OutputError> {
        self.finish_closing()?;
        if let (Some(w), Some((name, start_us))) = (self.writer.take(), self.current.take()) {
            self.finalise(w, name, start_us, end_us)?;
        }
        self.write_playlists(last)
    }

    /// Lets the segment just cut take late audio until audio reaches the cut.
    fn cut(&mut self, at_us: i64, has_audio: bool) -> Result<(), OutputError> {
        self.finish_closing()?;
        if let (Some(w), Some((name, start_us))) = (self.writer.take(), self.current.take()) {
            if has_audio {
                self.closing = Some((w, name, start_us, at_us));
            } else {
                self.finalise(w, name, start_us, at_us)?;
                self.write_playlists(false)?;
            }
        }
        Ok(())
    }

    fn finish_closing(&mut self) -> Result<(), OutputError> {
        if let Some((w, name, start_us, end_us)) = self.closing.take() {
            self.finalise(w, name, start_us, end_us)?;
            self.write_playlists(false)?;
        }
        Ok(())
    }

    fn finalise(&mut self, w: MuxWriter, name: String, start_us: i64, end_us: i64) -> Result<(), OutputError> {
        w.finish()?;
        let path = self.plan.dir.join(&name);
        self.bytes += std::fs::metadata(&path).map(|m| m.len() as i64).unwrap_or(0);
        if let Some(f) = &self.on_written {
            f(&path, true);
        }
        self.done.push(Segment { name, start_us, duration_us: (end_us - start_us).max(0) });
        Ok(())
    }

    /// Rewrites the playlists (and tells the owner: the final ones are their last version).
    fn write_playlists(&self, ended: bool) -> Result<(), OutputError> {
        let full = self.playlist(&self.done, 0, true, ended);
        let path = self.plan.dir.join(&self.plan.playlist);
        write_atomic(&path, &full)?;
        let mut written = vec![path];
        if let Some(live) = &self.plan.live_playlist {
            let first = self.done.len().saturating_sub(LIVE_WINDOW);
            let text = self.playlist(&self.done[first..], first, false, ended);
            let path = self.plan.dir.join(live);
            write_atomic(&path, &text)?;
            written.push(path);
        }
        if let Some(f) = &self.on_written {
            for p in &written {
                f(p, ended);
            }
        }
        Ok(())
    }

    fn playlist(&self, segments: &[Segment], sequence: usize, event: bool, ended: bool) -> String {
        let wall_origin_us = self.wall_origin_us.unwrap_or(0);
        playlist_text(segments, sequence, event, ended, self.plan.duration_s, wall_origin_us)
    }

    fn write(&mut self, p: &EncodedPacket) -> Result<(), OutputError> {
        let Some(pts) = p.packet.pts().or(p.packet.dts()) else { return Ok(()) };
        let pts_us = us(pts, p.time_base);
        let has_video = self.specs.iter().any(|s| s.kind == StreamKind::Video);
        let has_audio = self.specs.iter().any(|s| s.kind == StreamKind::Audio);
        let cut_here = if has_video { p.kind == StreamKind::Video && p.packet.is_key() } else { true };
        if self.writer.is_none() {
            if !cut_here {
                return Ok(()); // wait for the first keyframe
            }
            let now = crate::time::unix_ns();
            self.wall_origin_us = Some(now / 1000 - pts_us);
            self.started_at = now;
            self.next_cut_us = pts_us + self.plan.duration_s as i64 * 1_000_000;
            self.open(pts_us)?;
        } else if cut_here
            && let Some(next) = cut_point(self.next_cut_us, pts_us, self.plan.duration_s as i64 * 1_000_000)
        {
            self.cut(pts_us, has_audio && has_video)?;
            self.next_cut_us = next;
            self.open(pts_us)?;
        }
        self.last_pts_us = self.last_pts_us.max(pts_us + us(p.packet.duration(), p.time_base));
        // Audio from before the last cut belongs to the segment before it.
        if p.kind == StreamKind::Audio
            && let Some((w, _, _, end_us)) = self.closing.as_mut()
        {
            if pts_us < *end_us {
                let copy = EncodedPacket { kind: p.kind, packet: p.packet.clone(), time_base: p.time_base };
                return w.write(copy);
            }
            self.finish_closing()?;
        }
        if let Some(w) = self.writer.as_mut() {
            let copy = EncodedPacket { kind: p.kind, packet: p.packet.clone(), time_base: p.time_base };
            w.write(copy)?;
        }
        Ok(())
    }
}

/// Whether a packet that can start a segment (a keyframe, or any packet for audio only)
/// at `pts_us` cuts one, the next cut being due at `next_cut_us`: then the cut after it,
/// whole segment lengths on (a keyframe late by more than a segment skips a cut rather
/// than making short segments after it).
fn cut_point(next_cut_us: i64, pts_us: i64, every_us: i64) -> Option<i64> {
    if pts_us + CUT_SLACK_US < next_cut_us {
        return None;
    }
    let mut next = next_cut_us;
    while next <= pts_us + CUT_SLACK_US {
        next += every_us.max(1);
    }
    Some(next)
}

/// A playlist's text: version 4, the target duration (the longest segment, at least the
/// planned length), each segment with its program date-time on the wall clock, and
/// ENDLIST once the recording has ended. `event` marks the full playlist (segments are
/// only added), `sequence` is the first segment's index (the live one slides).
fn playlist_text(
    segments: &[Segment],
    sequence: usize,
    event: bool,
    ended: bool,
    planned_s: u32,
    wall_origin_us: i64,
) -> String {
    let target = segments
        .iter()
        .map(|g| (g.duration_us as f64 / 1e6).round() as u64)
        .max()
        .unwrap_or(planned_s as u64)
        .max(planned_s as u64);
    let mut t = String::from("#EXTM3U\n#EXT-X-VERSION:4\n");
    if event {
        t.push_str("#EXT-X-PLAYLIST-TYPE:EVENT\n");
    }
    t.push_str(&format!("#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:{sequence}\n"));
    for g in segments {
        let wall = wall_origin_us + g.start_us;
        let pdt = chrono::DateTime::<chrono::Utc>::from_timestamp_micros(wall).unwrap_or_default();
        t.push_str(&format!(
            "#EXT-X-PROGRAM-DATE-TIME:{}\n#EXTINF:{:.3},\n{}\n",
            pdt.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
            g.duration_us as f64 / 1e6,
            g.name
        ));
    }
    if ended {
        t.push_str("#EXT-X-ENDLIST\n");
    }
    t
}

fn write_atomic(path: &Path, text: &str) -> Result<(), OutputError> {
    let tmp = path.with_extension("m3u8.tmp");
    let io = |cause| OutputError::Io { path: path.display().to_string(), cause };
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

impl PacketSink for SegmentSink {
    fn start(&self, specs: &[StreamSpec]) {
        let mut s = lock(&self.0);
        s.specs = specs.to_vec();
        // The prefix may name a folder below the playlist's (LiveKit's relative segment prefix).
        let dir = s.plan.dir.join(&s.plan.prefix).parent().map(Path::to_path_buf).unwrap_or_else(|| s.plan.dir.clone());
        if let Err(e) = std::fs::create_dir_all(&dir) {
            s.failed = Some(format!("{}: {e}", dir.display()));
        }
    }

    fn write(&self, p: &EncodedPacket) {
        let mut s = lock(&self.0);
        if s.failed.is_some() {
            return;
        }
        if let Err(e) = s.write(p) {
            // This output stops; the others go on.
            tracing::warn!(error = %e, "HLS output failed");
            s.writer = None;
            s.failed = Some(e.to_string());
        }
    }

    fn finish(&self) {
        let mut s = lock(&self.0);
        if s.failed.is_none() && (s.writer.is_some() || s.closing.is_some()) {
            let end = s.last_pts_us;
            if let Err(e) = s.close(end, true) {
                s.failed = Some(e.to_string());
            }
        }
        s.ended_at = crate::time::unix_ns();
    }

    fn active(&self) -> bool {
        lock(&self.0).failed.is_none()
    }

    /// A keyframe at every segment boundary (media time), so each segment starts on one.
    fn keyframe_wanted(&self, next_pts_us: i64) -> bool {
        let mut s = lock(&self.0);
        if s.keyframe_wanted {
            s.keyframe_wanted = false;
            return true;
        }
        s.writer.is_some() && next_pts_us + CUT_SLACK_US >= s.next_cut_us
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_cut_at_the_first_keyframe_due_and_late_keyframes_skip_cuts() {
        let s = 1_000_000;
        // Due at 2 s: a keyframe at 1.9 s does not cut, one at 2 s (or a millisecond early) does.
        assert_eq!(cut_point(2 * s, 1_900_000, 2 * s), None);
        assert_eq!(cut_point(2 * s, 2 * s, 2 * s), Some(4 * s));
        assert_eq!(cut_point(2 * s, 2 * s - 999, 2 * s), Some(4 * s));
        // Keyframes every 3 s against 2 s segments: cut at 3 s, next due at 4 s; at 6 s, next 8 s.
        assert_eq!(cut_point(2 * s, 3 * s, 2 * s), Some(4 * s));
        assert_eq!(cut_point(4 * s, 6 * s, 2 * s), Some(8 * s));
        // A keyframe 5 s late skips the cuts it missed.
        assert_eq!(cut_point(2 * s, 7 * s, 2 * s), Some(8 * s));
    }

    #[test]
    fn playlists_as_players_read_them() {
        let seg = |name: &str, start_s: f64, dur_s: f64| Segment {
            name: name.into(),
            start_us: (start_s * 1e6) as i64,
            duration_us: (dur_s * 1e6) as i64,
        };
        let done = [seg("a_00000.ts", 0.0, 2.0), seg("a_00001.ts", 2.0, 2.533), seg("a_00002.ts", 4.533, 1.2)];
        // 2026-12-04T10:00:00Z as media time 0.
        let origin = 1_796_378_400_000_000;
        let full = playlist_text(&done, 0, true, true, 2, origin);
        assert_eq!(
            full,
            "#EXTM3U\n#EXT-X-VERSION:4\n#EXT-X-PLAYLIST-TYPE:EVENT\n#EXT-X-TARGETDURATION:3\n#EXT-X-MEDIA-SEQUENCE:0\n\
             #EXT-X-PROGRAM-DATE-TIME:2026-12-04T10:00:00.000Z\n#EXTINF:2.000,\na_00000.ts\n\
             #EXT-X-PROGRAM-DATE-TIME:2026-12-04T10:00:02.000Z\n#EXTINF:2.533,\na_00001.ts\n\
             #EXT-X-PROGRAM-DATE-TIME:2026-12-04T10:00:04.533Z\n#EXTINF:1.200,\na_00002.ts\n\
             #EXT-X-ENDLIST\n"
        );
        // The live playlist: no type, a sliding sequence, no ENDLIST while recording; the
        // target is never below the planned length.
        let live = playlist_text(&done[2..], 2, false, false, 2, origin);
        assert!(live.starts_with("#EXTM3U\n#EXT-X-VERSION:4\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:2\n"));
        assert!(!live.contains("ENDLIST") && !live.contains("PLAYLIST-TYPE"));
        assert_eq!(live.matches("#EXTINF").count(), 1);
    }
}
