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

use super::OutputError;
use super::mux::MuxWriter;
use super::stream::PacketSink;
use crate::encode::{EncodedPacket, StreamKind, StreamSpec};
use crate::sync::lock;
use crate::upload::queue::Uploader;
use livekit_protocol as proto;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Frame times are whole microseconds (15 fps: 66,666 µs), so a frame meant to fall on a
/// boundary may come a few µs before it: it still starts the segment.
const CUT_SLACK_US: i64 = 1000;

/// Segments a live playlist keeps.
pub const LIVE_WINDOW: usize = 5;

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
    /// Where closed segments and rewritten playlists go, when they are uploaded.
    uploader: Option<Uploader>,
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

impl SegmentSink {
    /// With an uploader, each segment is handed over as it closes (then removed locally
    /// once up), followed by the rewritten playlists.
    pub fn new(plan: SegmentsPlan, uploader: Option<Uploader>) -> Self {
        Self(Mutex::new(State {
            plan,
            uploader,
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

    /// SegmentsInfo as EgressInfo reports it.
    pub fn info(&self) -> proto::SegmentsInfo {
        let s = lock(&self.0);
        // Where the playlist is: its upload once it is up, else the local file.
        let dir = |n: &str| {
            let p = s.plan.dir.join(n);
            s.uploader.as_ref().and_then(|u| u.location_of(&p)).unwrap_or_else(|| p.to_string_lossy().into_owned())
        };
        proto::SegmentsInfo {
            playlist_name: s.plan.playlist_name.clone(),
            live_playlist_name: s.plan.live_playlist_name.clone(),
            duration: s.done.iter().map(|g| g.duration_us).sum::<i64>() * 1000,
            size: s.bytes,
            playlist_location: dir(&s.plan.playlist),
            live_playlist_location: s.plan.live_playlist.as_deref().map(dir).unwrap_or_default(),
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
        if let Some(u) = &self.uploader {
            u.put(&path, true);
        }
        self.done.push(Segment { name, start_us, duration_us: (end_us - start_us).max(0) });
        Ok(())
    }

    /// Rewrites the playlists (and hands them to the uploader: the final ones are then
    /// removed locally once up).
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
        if let Some(u) = &self.uploader {
            for p in &written {
                u.put(p, ended);
            }
        }
        Ok(())
    }

    fn playlist(&self, segments: &[Segment], sequence: usize, event: bool, ended: bool) -> String {
        let target = segments
            .iter()
            .map(|g| (g.duration_us as f64 / 1e6).round() as u64)
            .max()
            .unwrap_or(self.plan.duration_s as u64)
            .max(self.plan.duration_s as u64);
        let mut t = String::from("#EXTM3U\n#EXT-X-VERSION:4\n");
        if event {
            t.push_str("#EXT-X-PLAYLIST-TYPE:EVENT\n");
        }
        t.push_str(&format!("#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:{sequence}\n"));
        for g in segments {
            let wall = self.wall_origin_us.unwrap_or(0) + g.start_us;
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
        } else if cut_here && pts_us + CUT_SLACK_US >= self.next_cut_us {
            self.cut(pts_us, has_audio && has_video)?;
            while self.next_cut_us <= pts_us + CUT_SLACK_US {
                self.next_cut_us += self.plan.duration_s as i64 * 1_000_000;
            }
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
