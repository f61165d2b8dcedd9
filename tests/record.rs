//! The recorder end to end, each scenario against devroom and against LiveKit's own
//! livekit-server (`name::devroom`, `name::livekit`): synthetic participants (our
//! room client publishing VP8 and Opus) or LiveKit's Python SDK, and Tessera
//! recording them; every check decodes the recording with FFmpeg.
//!
//! Synthetic participant i is colour `color(i)`, speaks its tone `tone_hz(i)` in
//! 3 s turns, and flashes white while beeping at 1 kHz at `in_mark` times, so
//! layout, speaker and A/V sync can be read back from pixels and samples.

mod common;

use common::rooms::{CutProxy, Kind, Server};
use common::{amplitude, audio_mono, beeps, dist, frames, probe, python, stream, who, workdir};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tessera::devroom::synthetic::SyntheticOptions;
use tessera::encode::EncodingOptions;
use tessera::layout::{LayoutSet, TileKind, TileSource, compose};
use tessera::peer::impair::Impairment;
use tessera::preview::synthetic::tone_hz;
use tessera::recorder::{RecordJob, RecordSummary};
use tessera::recording::StopHandle;
use tessera::scene::Rect;

const KEY: &str = "devkey";
const SECRET: &str = "recorder-test-secret-recorder-test-secret";

/// One recording test at a time: each runs a room, its publishers and recorders,
/// which on two cores leave no room for a second.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn server(kind: Kind, dir: &Path) -> Server {
    Server::start(kind, dir, KEY, SECRET).await
}

fn participants(
    room: &Server,
    name: &str,
    count: usize,
    tweak: impl FnOnce(&mut SyntheticOptions),
) -> tokio::task::JoinHandle<()> {
    common::service::publishers_as((KEY, SECRET), room, name, count, |o| {
        o.duration = Some(Duration::from_secs(40));
        tweak(o);
    })
}

/// Waits until `n` publishers in `name` have published their tracks. A recorder joins after them: livekit-server closes
/// a room that holds only an egress participant after its empty timeout (2 s here), which a
/// loaded machine can take to join a few publishers.
async fn joined(room: &Server, name: &str, n: u64) {
    room.wait_publishing(KEY, SECRET, name, n).await
}

fn job(room: &Server, name: &str, layout: &str, size: (u32, u32, u32), secs: f64, out: &Path) -> RecordJob {
    let token = tessera::recorder::token::mint(KEY, SECRET, name, &format!("EG_{layout}")).unwrap();
    let layout = LayoutSet::builtin().unwrap().resolve(layout).unwrap();
    let encoding = EncodingOptions {
        width: size.0,
        height: size.1,
        framerate: size.2,
        video_bitrate_kbps: 1500,
        x264_preset: "ultrafast".into(),
        ..Default::default()
    };
    let mut j = RecordJob::new(&room.url(), &token, layout, encoding, out);
    j.spec.limit = Some(Duration::from_secs_f64(secs));
    j.backend = tessera::render::Backend::Cpu;
    j
}

async fn record(job: RecordJob) -> RecordSummary {
    tessera::recorder::record(job, StopHandle::default()).await.unwrap()
}

fn median(rgb: &[u8], w: u32, r: Rect) -> [u8; 3] {
    common::median_rgb(rgb, w, r.x, r.y, r.w, r.h)
}

/// The middle of a rectangle (away from labels, counters and borders).
fn centre(r: Rect) -> Rect {
    Rect::new(r.x + r.w / 4, r.y + r.h / 4, r.w / 2, r.h / 3)
}

/// The tile rectangles a layout gives `n` cameras (and a share), in layout order.
fn rects(layout: &str, n: usize, share: bool, w: u32, h: u32) -> Vec<Rect> {
    let layout = LayoutSet::builtin().unwrap().resolve(layout).unwrap();
    let mut sources: Vec<TileSource> = (0..n)
        .map(|i| TileSource { joined_ms: i as u64, ..TileSource::camera(&format!("p{i}"), &format!("p{i}"), Some(i)) })
        .collect();
    if share {
        sources.push(TileSource { kind: TileKind::ScreenShare, video: Some(n), ..sources[0].clone() });
    }
    compose(&layout, &sources, w, h).tiles.iter().map(|t| t.rect).collect()
}

/// The participant whose tone clearly dominates the audio around `t` (16 kHz mono).
fn dominant(audio: &[f32], t: f64, n: usize) -> Option<usize> {
    let (a, b) = (((t - 0.3) * 16_000.0) as usize, ((t + 0.3) * 16_000.0) as usize);
    let x = audio.get(a..b.min(audio.len()))?;
    let mut amps: Vec<(f32, usize)> = (0..n).map(|i| (amplitude(x, 16_000.0, tone_hz(i)), i)).collect();
    amps.sort_by(|p, q| q.0.total_cmp(&p.0));
    (amps[0].0 > 0.05 && amps[0].0 > 4.0 * amps.get(1).map_or(0.0, |p| p.0)).then_some(amps[0].1)
}

/// Times to check a speaker: its tone has dominated for the last second (devroom's
/// speaker updates lag the audio by up to about 0.75 s).
fn settled_speakers(audio: &[f32], from: f64, to: f64, n: usize) -> Vec<(f64, usize)> {
    let mut out = Vec::new();
    let mut t = from;
    while t < to {
        let d = dominant(audio, t, n);
        if let Some(d) = d
            && dominant(audio, t - 1.0, n) == Some(d)
            && dominant(audio, t - 0.5, n) == Some(d)
        {
            out.push((t, d));
        }
        t += 0.25;
    }
    out
}

fn rms(x: &[f32]) -> f32 {
    (x.iter().map(|v| v * v).sum::<f32>() / x.len().max(1) as f32).sqrt()
}

/// How many sampled pixels of `r` changed clearly between frames `a` and `b` (a moving tile).
fn moved(a: &[u8], b: &[u8], w: u32, r: Rect) -> usize {
    (r.y..r.bottom())
        .step_by(4)
        .flat_map(|y| (r.x..r.right()).step_by(4).map(move |x| ((y * w + x) * 3) as usize))
        .filter(|&i| (a[i] as i32 - b[i] as i32).abs() > 40)
        .count()
}

/// Tiles read from a frame: where, and who (None: a screen share).
type Tiles = Vec<(Rect, Option<usize>)>;

fn frame_at(frames: &[Vec<u8>], t: f64, fps: f64) -> &[u8] {
    &frames[((t * fps) as usize).min(frames.len() - 1)]
}

both!(grid_speaker_and_single_speaker_follow_the_room);
async fn grid_speaker_and_single_speaker_follow_the_room(kind: Kind) {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = workdir("record-layouts");
    let room = server(kind, &dir).await;
    let pubs = participants(&room, "layouts", 4, |_| {});
    joined(&room, "layouts", 4).await;
    let (w, h, fps) = (640, 360, 15);
    let secs = 14.0;
    let paths: Vec<PathBuf> =
        ["grid", "speaker", "single-speaker"].iter().map(|l| dir.join(format!("{l}.mp4"))).collect();
    let (g, s, ss) = tokio::join!(
        record(job(&room, "layouts", "grid", (w, h, fps), secs, &paths[0])),
        record(job(&room, "layouts", "speaker", (w, h, fps), secs, &paths[1])),
        record(job(&room, "layouts", "single-speaker", (w, h, fps), secs, &paths[2])),
    );
    pubs.abort();
    for summary in [&g, &s, &ss] {
        assert_eq!(summary.participants.len(), 4, "{summary:?}");
        assert!((summary.duration_s - secs).abs() < 0.2, "{summary:?}");
    }
    let audio = audio_mono(&paths[0], 16_000);
    // A beep makes its participant a speaker for a moment too: those moments are left out.
    let marks = beeps(&audio_mono(&paths[0], 48_000));
    let checks: Vec<(f64, usize)> = settled_speakers(&audio, 1.5, secs - 0.5, 4)
        .into_iter()
        .filter(|(t, _)| !marks.iter().any(|b| (t - 1.3..t + 0.2).contains(b)))
        .collect();
    assert!(checks.len() >= 8, "too few moments with one clear speaker: {checks:?} (beeps {marks:?})");
    let speakers: std::collections::BTreeSet<usize> = checks.iter().map(|c| c.1).collect();
    assert!(speakers.len() >= 3, "speaking turns: {checks:?}");

    // Grid: four distinct colours in the four cells; the speaking border on the speaker's tile.
    let grid = frames(&paths[0], w, h);
    let cells = rects("grid", 4, false, w, h);
    let border = [0x1f, 0x8c, 0xf9];
    let mut good = 0;
    for &(t, speaker) in &checks {
        let f = frame_at(&grid, t, fps as f64);
        let people: Vec<Option<usize>> = cells.iter().map(|r| who(median(f, w, centre(*r)), 4)).collect();
        let mut seen: Vec<usize> = people.iter().flatten().copied().collect();
        seen.sort_unstable();
        seen.dedup();
        let bordered: Vec<usize> = cells
            .iter()
            .zip(&people)
            .filter(|(r, _)| dist(median(f, w, Rect::new(r.x + 12, r.y + 1, r.w - 24, 1)), border) < 60)
            .filter_map(|(_, p)| *p)
            .collect();
        if seen.len() == 4 && bordered == [speaker] {
            good += 1;
        } else {
            eprintln!("grid at {t:.2} s: speaker {speaker}, cells {people:?}, border on {bordered:?}");
        }
    }
    assert!(good * 100 >= checks.len() * 85, "grid: {good} of {} moments right", checks.len());

    // Speaker: the large tile is the active speaker; single-speaker: the whole frame is.
    for (path, layout) in [(&paths[1], "speaker"), (&paths[2], "single-speaker")] {
        let video = frames(path, w, h);
        let main = *rects(layout, 4, false, w, h).iter().max_by_key(|r| r.w * r.h).unwrap();
        let good = checks
            .iter()
            .filter(|&&(t, speaker)| who(median(frame_at(&video, t, fps as f64), w, centre(main)), 4) == Some(speaker))
            .count();
        assert!(good * 100 >= checks.len() * 85, "{layout}: {good} of {} moments right", checks.len());
    }
}

/// Flash onsets: (time of the frame's middle, participant) for frames where a
/// large area turns white that was not white the frame before.
fn flashes(video: &[Vec<u8>], w: u32, h: u32, fps: f64, n: usize) -> Vec<(f64, usize)> {
    let blocks = |f: &[u8]| -> Vec<bool> {
        let mut out = Vec::new();
        for by in 0..h / 8 {
            for bx in 0..w / 8 {
                let mut sum = 0u32;
                for y in by * 8..by * 8 + 8 {
                    for x in bx * 8..bx * 8 + 8 {
                        let i = ((y * w + x) * 3) as usize;
                        sum += (77 * f[i] as u32 + 150 * f[i + 1] as u32 + 29 * f[i + 2] as u32) >> 8;
                    }
                }
                out.push(sum / 64 > 215);
            }
        }
        out
    };
    let masks: Vec<Vec<bool>> = video.iter().map(|f| blocks(f)).collect();
    let count = |m: &Vec<bool>| m.iter().filter(|b| **b).count();
    let mut out = Vec::new();
    for k in 3..masks.len() {
        if count(&masks[k]) >= 150 && count(&masks[k - 1]) < 50 {
            // Who it was: the colour of the same blocks the frame before.
            let before = &video[k - 1];
            let mut px: [Vec<u8>; 3] = Default::default();
            for (b, white) in masks[k].iter().enumerate() {
                if *white {
                    let (bx, by) = (b as u32 % (w / 8), b as u32 / (w / 8));
                    let i = (((by * 8 + 4) * w + bx * 8 + 4) * 3) as usize;
                    for c in 0..3 {
                        px[c].push(before[i + c]);
                    }
                }
            }
            let med = px.map(|mut v| {
                v.sort_unstable();
                v[v.len() / 2]
            });
            if let Some(p) = who(med, n) {
                out.push((k as f64 / fps - 0.5 / fps, p));
            }
        }
    }
    out
}

both!(audio_and_video_stay_in_sync_for_everyone_including_a_participant_who_joins_20_s_late);
async fn audio_and_video_stay_in_sync_for_everyone_including_a_participant_who_joins_20_s_late(kind: Kind) {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = workdir("record-sync");
    let room = server(kind, &dir).await;
    let n = 3;
    let pubs = participants(&room, "sync", n, |o| {
        o.late_joiner = true;
        o.late_by = Duration::from_secs(20);
    });
    joined(&room, "sync", 1).await;
    let (w, h, fps) = (640, 360, 30);
    let path = dir.join("sync.mp4");
    let secs = 31.0;
    let summary = record(job(&room, "sync", "grid", (w, h, fps), secs, &path)).await;
    pubs.abort();
    for t in &summary.tracks {
        eprintln!("{} {} lag {} us, {} reports", t.participant_sid, t.mime, t.mean_lag_us, t.sender_reports);
    }
    assert_eq!(summary.participants.len(), n, "{summary:?}");
    let video = frames(&path, w, h);
    let audio = audio_mono(&path, 48_000);
    let flashes = flashes(&video, w, h, fps as f64, n);
    let beeps = beeps(&audio);
    eprintln!("beeps at {beeps:?}");
    let mut matched = vec![0; n];
    for &(t, p) in &flashes {
        let nearest = beeps.iter().copied().min_by(|a, b| (a - t).abs().total_cmp(&(b - t).abs()));
        let Some(b) = nearest else { panic!("no beeps at all; flashes {flashes:?}") };
        let offset_ms = (t - b) * 1000.0;
        eprintln!("flash {p} at {t:.3}, beep at {b:.3}: {offset_ms:.0} ms");
        assert!(offset_ms.abs() <= 40.0, "participant {p}: flash at {t:.3} s, beep at {b:.3} s ({offset_ms:.0} ms)");
        matched[p] += 1;
    }
    for (p, m) in matched.iter().enumerate() {
        assert!(*m >= 1, "participant {p} has no flash-and-beep in the recording: flashes {flashes:?} beeps {beeps:?}");
    }
    // The late joiner's marks are after 20 s.
    assert!(flashes.iter().any(|&(t, p)| p == n - 1 && t > 20.0), "{flashes:?}");

    // The first second has content: coloured tiles, not a black lead-in.
    let first = &video[0];
    let lit = first.chunks_exact(3).filter(|p| p.iter().map(|&c| c as u32).sum::<u32>() > 120).count();
    assert!(lit * 4 > first.len() / 3, "first frame is mostly black");
    // The last second of audio is there: as long as the video, and not silent.
    let p = probe(&path);
    let (vd, ad) = (common::f64_of(&stream(&p, "video")["duration"]), common::f64_of(&stream(&p, "audio")["duration"]));
    assert!(ad >= vd - 0.1, "audio {ad} s, video {vd} s");
    let tail = &audio[audio.len() - 48_000..];
    let level = rms(tail);
    assert!(level > 0.02, "last second of audio is silent ({level})");
}

both!(leaving_muting_and_a_screen_share_show_up_in_the_recording);
async fn leaving_muting_and_a_screen_share_show_up_in_the_recording(kind: Kind) {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = workdir("record-events");
    let room = server(kind, &dir).await;
    let pubs = participants(&room, "events", 4, |o| {
        o.leaver = true;
        o.leave_after = Duration::from_secs(8);
        o.mute_toggle = true;
        o.screen_share = true;
        o.share_after = Duration::from_secs(11);
    });
    joined(&room, "events", 4).await;
    // Full size, so the labels' muted-microphone icon is big enough to read back.
    let (w, h, fps) = (1280, 720, 15);
    let path = dir.join("events.mp4");
    let summary = record(job(&room, "events", "grid", (w, h, fps), 15.0, &path)).await;
    pubs.abort();
    assert_eq!(summary.participants.len(), 4, "{summary:?}");
    let video = frames(&path, w, h);
    // The layouts the recording can be in: grid of 4, grid of 3 (Bob gone), speaker with a share.
    let candidates = [rects("grid", 4, false, w, h), rects("grid", 3, false, w, h), rects("grid", 3, true, w, h)];
    // The synthetic share is light grey; a flash is full white.
    let is_share = |c: [u8; 3]| c.iter().all(|&v| (215..=248).contains(&v));
    // For a frame: the layout that explains it, and who is in each tile (None: the share).
    let read = |f: &[u8]| -> Option<(usize, Tiles)> {
        candidates.iter().enumerate().find_map(|(k, cells)| {
            let tiles: Vec<(Rect, Option<usize>)> = cells
                .iter()
                .map(|r| {
                    let c = median(f, w, centre(*r));
                    (*r, who(c, 4), is_share(c))
                })
                // Only the speaker layout has a share (a flash is white too).
                .filter(|(_, p, share)| p.is_some() || (*share && k == 2))
                .map(|(r, p, _)| (r, p))
                .collect();
            (tiles.len() == cells.len()).then_some((k, tiles))
        })
    };
    // Carol's label: the muted-microphone icon is red.
    let red_in_label = |f: &[u8], r: Rect| -> usize {
        let mut red = 0;
        for y in r.y + r.h * 2 / 3..r.bottom() {
            for x in r.x..r.x + r.w / 3 {
                let i = ((y * w + x) * 3) as usize;
                if f[i] > 180 && f[i + 1] < 140 && f[i + 2] < 140 {
                    red += 1;
                }
            }
        }
        red
    };
    let mut timeline = Vec::new();
    for k in 1..28 {
        let t = k as f64 * 0.5;
        // A flash (a white tile for up to 133 ms) can be misread: the layout is the one most of
        // three frames 200 ms apart agree on.
        let reads: Vec<(f64, usize, Tiles)> = [0.0, 0.2, 0.4]
            .iter()
            .filter_map(|d| read(frame_at(&video, t + d, fps as f64)).map(|(l, tiles)| (t + d, l, tiles)))
            .collect();
        let Some((t, layout, tiles)) =
            reads.iter().find(|(_, l, _)| reads.iter().filter(|(_, m, _)| m == l).count() >= 2).cloned()
        else {
            continue;
        };
        let f = frame_at(&video, t, fps as f64);
        let bob = tiles.iter().any(|(_, p)| *p == Some(1));
        let carol_muted = tiles.iter().find(|(_, p)| *p == Some(2)).map(|(r, _)| red_in_label(f, *r) >= 10);
        timeline.push((t, layout, bob, carol_muted));
    }
    assert!(timeline.len() >= 20, "frames not explained by any layout: {timeline:?}");
    // Bob (1) is there, then leaves for good; Alice's share turns grid into speaker, for good.
    // His first frame may come a moment after the others' (subscription and keyframe race).
    let bob_in = timeline.iter().position(|e| e.2).expect("Bob never shows");
    assert!(timeline[bob_in].0 <= 2.0, "Bob shows only at {} s: {timeline:?}", timeline[bob_in].0);
    let bob_left = bob_in + timeline[bob_in..].iter().position(|e| !e.2).expect("Bob never leaves");
    assert!(timeline[bob_left..].iter().all(|e| !e.2), "{timeline:?}");
    assert!(timeline[..bob_left].iter().any(|e| e.1 == 0), "no grid of four before Bob left: {timeline:?}");
    let shared = timeline.iter().position(|e| e.1 == 2).expect("the share never shows");
    assert!(shared > bob_left && timeline[shared..].iter().all(|e| e.1 == 2), "{timeline:?}");
    // Carol (2) mutes and unmutes every 4 s: her tile shows the muted icon, then not, then again.
    let states: Vec<bool> = timeline.iter().filter_map(|e| e.3).collect();
    let changes = states.windows(2).filter(|w| w[0] != w[1]).count();
    assert!(changes >= 2 && states.iter().filter(|m| **m).count() >= 3, "{timeline:?}");
}

both!(sixteen_participants_record_without_dropped_frames_until_the_room_closes);
async fn sixteen_participants_record_without_dropped_frames_until_the_room_closes(kind: Kind) {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = workdir("record-sixteen");
    let room = server(kind, &dir).await;
    let pubs = participants(&room, "sixteen", 16, |o| {
        o.camera = (320, 180);
        o.fps = 10;
    });
    // The recorder joins once all sixteen are in: livekit-server closes a room that holds only
    // an egress participant after its empty timeout (2 s here), and sixteen publishers can take
    // longer than that to join on a loaded machine.
    joined(&room, "sixteen", 16).await;
    let (w, h, fps) = (1280, 720, 15);
    let path = dir.join("sixteen.mp4");
    let mut j = job(&room, "sixteen", "grid", (w, h, fps), 60.0, &path);
    j.spec.limit = None;
    let recording = tokio::spawn(tessera::recorder::record(j, StopHandle::default()));
    tokio::time::sleep(Duration::from_secs(14)).await;
    room.delete_room(KEY, SECRET, "sixteen").await.unwrap();
    let summary = tokio::time::timeout(Duration::from_secs(20), recording).await.unwrap().unwrap().unwrap();
    pubs.abort();
    assert!(summary.ended_by.to_string().contains("the server ended the session"), "{}", summary.ended_by);
    assert_eq!(summary.participants.len(), 16, "{summary:?}");
    // Every tick is a frame: as many frames as the duration holds, evenly spaced.
    let expected = (summary.duration_s * fps as f64).round() as u64;
    assert_eq!(summary.file.video_frames, expected, "{summary:?}");
    let p = probe(&path);
    let v = stream(&p, "video");
    assert_eq!(v["nb_frames"].as_str().and_then(|s| s.parse::<u64>().ok()), Some(expected));
    assert_eq!(v["r_frame_rate"], "15/1");
    // All sixteen show up in the grid once they have joined and before the room closes. On
    // livekit-server sixteen publishers take several seconds to join, and DeleteRoom takes them
    // out one by one (the grid shrinking) before the recorder's own leave, so the whole
    // recording is read, every third frame, and at least a second's worth must show them all.
    let video = frames(&path, w, h);
    let cells = rects("grid", 16, false, w, h);
    assert_eq!(cells.len(), 16);
    let visible: Vec<usize> = video
        .iter()
        .step_by(3)
        .map(|f| {
            let mut seen: Vec<usize> = cells.iter().filter_map(|r| who(median(f, w, centre(*r)), 16)).collect();
            seen.sort_unstable();
            seen.dedup();
            seen.len()
        })
        .collect();
    assert!(visible.iter().filter(|n| **n >= 15).count() >= 5, "participants visible, every 0.2 s: {visible:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loss_and_jitter_are_recovered_with_nack_and_pli_and_the_recording_stays_continuous() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = workdir("record-loss");
    // devroom only: its links drop and delay packets (livekit-server's would need netem).
    let room = Server::Dev(
        common::rooms::devroom(KEY, SECRET, Impairment { loss: 0.10, jitter: Duration::from_millis(50) }).await,
    );
    let pubs = participants(&room, "loss", 2, |_| {});
    joined(&room, "loss", 2).await;
    let (w, h, fps) = (640, 360, 15);
    let path = dir.join("loss.mp4");
    let mut j = job(&room, "loss", "grid", (w, h, fps), 12.0, &path);
    // Audio waits longer for late packets than on a clean network.
    j.audio_delay = Duration::from_millis(300);
    let summary = record(j).await;
    pubs.abort();
    for t in &summary.tracks {
        eprintln!("{t:?}");
    }
    eprintln!("mixer: {:?}", summary.audio);
    let video_tracks: Vec<_> = summary.tracks.iter().filter(|t| t.mime.eq_ignore_ascii_case("video/vp8")).collect();
    assert_eq!(video_tracks.len(), 2, "{summary:?}");
    for t in &video_tracks {
        assert!(t.jitter.gaps_filled > 0, "no retransmission filled a gap: {t:?}");
        assert!(t.keyframe_requests >= 1, "{t:?}");
        // Most of 12 s at 15 fps decoded despite 10% loss.
        assert!(t.decoded >= 120, "{t:?}");
    }
    // Continuous: both tiles keep moving (the synthetic pattern's bar; a lost frame can freeze a
    // tile until the keyframe it asks for arrives, well under a second) and there is sound.
    let video = frames(&path, w, h);
    let cells = rects("grid", 2, false, w, h);
    for s in 1..11 {
        let (a, b) = (frame_at(&video, s as f64 - 0.5, 15.0), frame_at(&video, s as f64 + 0.5, 15.0));
        for r in &cells {
            let c = median(b, w, centre(*r));
            let flash = c.iter().all(|&v| v > 240);
            assert!(who(c, 2).is_some() || flash, "tile not showing a participant at {s}.5 s: {c:?}");
            assert!(moved(a, b, w, *r) > 20, "tile frozen from {} s to {s}.5 s", s - 1);
        }
    }
    let audio = audio_mono(&path, 16_000);
    for s in 1..11 {
        assert!(rms(&audio[s * 16_000..(s + 1) * 16_000]) > 0.02, "silence in second {s}");
    }
}

both!(tessera_record_records_a_python_sdk_publisher_and_finalises_on_sigint);
async fn tessera_record_records_a_python_sdk_publisher_and_finalises_on_sigint(kind: Kind) {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = workdir("record-python");
    let room = server(kind, &dir).await;
    let url = room.url();
    let mut publisher = tokio::process::Command::new(python())
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/lk_publish.py"))
        // 1280x720: the SDK publishes three simulcast layers (320x180, 640x360, 1280x720).
        .args([
            "--url",
            &url,
            "--key",
            KEY,
            "--secret",
            SECRET,
            "--room",
            "py",
            "--seconds",
            "20",
            "--size",
            "1280x720",
        ])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let path = dir.join("python.mp4");
    let mut recorder = tokio::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["record", "--url", &url, "--api-key", KEY, "--api-secret", SECRET, "--room", "py"])
        .args(["--width", "320", "--height", "180", "--fps", "15", "--renderer", "cpu", "-o"])
        .arg(&path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await;
    // Its tile is about 300 px wide: the recorder asked for, and gets, the low simulcast layer.
    if let Some(dev) = room.devroom() {
        let layers = dev.registry.room("py").map(|r| r.media.forwarded_layers()).unwrap_or_default();
        assert!(
            layers.iter().any(|(_, _, rid)| rid == "q")
                && layers.iter().all(|(_, _, rid)| rid == "q" || rid.is_empty()),
            "layers forwarded: {layers:?}"
        );
    }
    let pid = recorder.id().unwrap() as i32;
    // SAFETY: signalling a child we started and still own.
    unsafe { libc::kill(pid, libc::SIGINT) };
    let out = tokio::time::timeout(Duration::from_secs(15), async {
        let mut stdout = String::new();
        use tokio::io::AsyncReadExt;
        recorder.stdout.take().unwrap().read_to_string(&mut stdout).await.unwrap();
        (recorder.wait().await.unwrap(), stdout)
    })
    .await
    .expect("the recorder stops after SIGINT");
    let _ = publisher.kill().await;
    assert!(out.0.success(), "tessera record failed: {}", out.1);
    assert!(out.1.contains("participants seen: pub"), "{}", out.1);
    // What the server forwarded, as decoded: the 320x180 layer, which fits the 320x180 frame.
    let sizes = out.1.lines().find_map(|l| l.trim().strip_prefix("decoded at ")).unwrap_or_default().to_string();
    let last_width: u32 =
        sizes.rsplit(", then ").next().and_then(|s| s.split('x').next()).and_then(|w| w.parse().ok()).unwrap_or(0);
    assert_eq!(last_width, 320, "decoded sizes: {sizes}; {}", out.1);
    let p = probe(&path);
    let d = common::f64_of(&p["format"]["duration"]);
    assert!((4.0..10.5).contains(&d), "duration {d}");
    // The publisher's colour (200, 40, 40) fills its tile; its 440 Hz tone is in the mix.
    let video = frames(&path, 320, 180);
    let c = median(frame_at(&video, d - 1.0, 15.0), 320, Rect::new(120, 60, 80, 60));
    assert!(dist(c, [200, 40, 40]) < 60, "{c:?}");
    let audio = audio_mono(&path, 16_000);
    let tail = &audio[audio.len() - 32_000..audio.len() - 8_000];
    assert!(amplitude(tail, 16_000.0, 440.0) > 0.05, "no 440 Hz tone");
}

both!(a_dropped_signal_connection_is_resumed_and_the_recording_goes_on);
async fn a_dropped_signal_connection_is_resumed_and_the_recording_goes_on(kind: Kind) {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = workdir("record-resume");
    let room = server(kind, &dir).await;
    let pubs = participants(&room, "resume", 2, |_| {});
    joined(&room, "resume", 2).await;
    let (w, h, fps) = (640, 360, 15);
    let path = dir.join("resume.mp4");
    // The recorder's signal connection goes through a proxy that can cut it.
    let target = room.url().trim_start_matches("ws://").parse().unwrap();
    let proxy = CutProxy::start(target).await;
    let mut j = job(&room, "resume", "grid", (w, h, fps), 10.0, &path);
    j.url = proxy.url();
    let recording = tokio::spawn(tessera::recorder::record(j, StopHandle::default()));
    tokio::time::sleep(Duration::from_secs(4)).await;
    proxy.cut();
    let summary = tokio::time::timeout(Duration::from_secs(30), recording).await.unwrap().unwrap().unwrap();
    pubs.abort();
    assert_eq!(summary.signal_resumed, 1, "{summary:?}");
    assert_eq!(summary.ended_by, tessera::recording::EndReason::DurationEnded);
    let expected = (summary.duration_s * fps as f64).round() as u64;
    assert_eq!(summary.file.video_frames, expected, "{summary:?}");
    assert!((summary.duration_s - 10.0).abs() < 0.2, "{summary:?}");
    // Both participants are still recorded, moving and heard, after the drop.
    two_live(&path, (w, h, fps), 7.0, 8, "after the drop");
}

/// A grid of two at `(w, h, fps)`: at `t + 1.5` s both tiles show their participant and
/// moved since `t`, and second `second` of the audio is not silent.
fn two_live(path: &Path, (w, h, fps): (u32, u32, u32), t: f64, second: usize, what: &str) {
    let video = frames(path, w, h);
    let (a, b) = (frame_at(&video, t, fps as f64), frame_at(&video, t + 1.5, fps as f64));
    for r in &rects("grid", 2, false, w, h) {
        assert!(who(median(b, w, centre(*r)), 2).is_some(), "{what}: a tile without its participant");
        assert!(moved(a, b, w, *r) > 20, "{what}: a tile froze");
    }
    let audio = audio_mono(path, 16_000);
    assert!(rms(&audio[second * 16_000..(second + 1) * 16_000]) > 0.02, "{what}: silence");
}

both!(the_last_participant_leaving_closes_the_room_and_ends_the_recording);
async fn the_last_participant_leaving_closes_the_room_and_ends_the_recording(kind: Kind) {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = workdir(&format!("record-empty-{kind:?}"));
    let room = server(kind, &dir).await;
    // Both leave after 5 s; the server closes the room after its empty timeout (2 s here).
    let pubs = participants(&room, "emptying", 2, |o| o.duration = Some(Duration::from_secs(5)));
    joined(&room, "emptying", 2).await;
    let path = dir.join("emptying.mp4");
    let mut j = job(&room, "emptying", "grid", (320, 180, 15), 60.0, &path);
    j.spec.limit = None;
    let summary = tokio::time::timeout(Duration::from_secs(30), record(j)).await.expect("the room closes");
    pubs.abort();
    assert!(summary.ended_by.to_string().contains("server"), "{}", summary.ended_by);
    assert_eq!(summary.participants.len(), 2, "{summary:?}");
    // What was recorded is whole: decodes cleanly and lasts about as long as the participants stayed.
    let (ok, errors) = common::decode_errors(&path);
    assert!(ok && errors.is_empty(), "{errors}");
    let d = common::f64_of(&probe(&path)["format"]["duration"]);
    assert!((3.0..9.5).contains(&d), "duration {d}");
}

/// How a recorder on another machine than its LiveKit server reaches it: livekit-server in
/// a network namespace of its own (its own address on a veth pair), Tessera and the
/// publishers outside it; first over UDP, then with every UDP packet to and from that
/// host dropped, so media must come over ICE-TCP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_livekit_server_on_another_host_is_recorded_over_udp_and_with_udp_blocked() {
    let _one = ONE_AT_A_TIME.lock().await;
    for blocked in [false, true] {
        let dir = workdir(if blocked { "record-remote-tcp" } else { "record-remote-udp" });
        let host = common::netns::Host::create();
        if blocked {
            host.block_udp();
        }
        let mut o = common::livekit::Options::new(KEY, SECRET);
        o.ip = host.ip.clone();
        o.netns = Some(host.name.clone());
        o.tcp = true;
        let room = Server::Real(common::livekit::LiveKit::start(&dir, &o));
        let pubs = participants(&room, "remote", 2, |_| {});
        joined(&room, "remote", 2).await;
        let (w, h, fps) = (640, 360, 15);
        let path = dir.join("remote.mp4");
        let summary = record(job(&room, "remote", "grid", (w, h, fps), 8.0, &path)).await;
        pubs.abort();
        let how = if blocked { "UDP blocked" } else { "over UDP" };
        assert_eq!(summary.participants.len(), 2, "{how}: {summary:?}");
        two_live(&path, (w, h, fps), 5.0, 5, how);
        drop(room);
        drop(host);
    }
}

both!(a_browser_publisher_s_simulcast_layer_follows_its_tile_when_the_layout_changes);
async fn a_browser_publisher_s_simulcast_layer_follows_its_tile_when_the_layout_changes(kind: Kind) {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = workdir(&format!("record-browser-simulcast-{kind:?}"));
    let room = server(kind, &dir).await;
    // livekit-client in Chromium, 1280x720 at 15 fps: three layers, 320x180, 640x360 and 1280x720.
    // Its tone is the loudest in the room, so single-speaker shows it.
    let token = common::browser::join_token(KEY, SECRET, "web", "browser");
    // (A loaded machine would scale its layers down; it drops frames instead.)
    let query = [
        ("seconds", "60"),
        ("size", "1280x720"),
        ("fps", "15"),
        ("gain", "0.9"),
        ("degradation", "maintain-resolution"),
    ];
    let mut browser = common::browser::BrowserPublisher::start(&room.url(), &token, &query).await;
    browser.wait_for("PUBLISHED", Duration::from_secs(40)).await;
    let layers = browser.wait_for("LAYERS", Duration::from_secs(5)).await;
    assert_eq!(layers, "LAYERS q:320x180,h:640x360,f:1280x720");
    let others = participants(&room, "web", 3, |o| o.duration = Some(Duration::from_secs(45)));
    joined(&room, "web", 3).await;

    // A grid of four at 640x360 (tiles of about 308x168, the low layer), then single-speaker (the
    // browser full frame, the middle layer), switched as UpdateLayout switches a job's layout.
    let out = dir.join("browser.mp4");
    let (w, h) = (640, 360);
    let job = job(&room, "web", "grid", (w, h, 15), 26.0, &out);
    let live = job.layout.clone();
    let spawned = std::time::Instant::now();
    let recording = tokio::spawn(record(job));
    tokio::time::sleep(Duration::from_secs(13)).await;
    live.set(LayoutSet::builtin().unwrap().resolve("single-speaker").unwrap());
    let switched = spawned.elapsed().as_secs_f64();
    let s = recording.await.unwrap();
    let console = browser.stop().await;
    others.abort();
    assert!(!console.iter().any(|l| l.starts_with("DISCONNECTED")), "{console:?}");

    // What the server forwarded, as decoded: the low layer while the tile was small, then the middle one.
    let video = s.tracks.iter().find(|t| t.participant_identity == "browser" && t.mime.starts_with("video"));
    let sizes = &video.unwrap_or_else(|| panic!("no browser video: {:?}", s.tracks)).sizes;
    eprintln!("{kind:?}: the browser's video decoded at {sizes:?}, layout switched {switched:.1} s in");
    let low = sizes.iter().position(|&s| s == (320, 180));
    assert!(
        low.is_some() && sizes.last() == Some(&(640, 360)) && low < sizes.iter().rposition(|&s| s == (640, 360)),
        "decoded sizes {sizes:?}"
    );

    // And in the picture: the browser's blue in one of four tiles, then filling the frame.
    // (The switch is at `switched` s after the job started, less the join and first frame, in file time.)
    let frames = frames(&out, w, h);
    let ready = s.first_frame_after.map(|d| d.as_secs_f64()).unwrap_or(0.0);
    let blue = |f: &[u8], r: Rect| dist(median(f, w, r), [0, 128, 255]) < 60;
    let tiles = rects("grid", 4, false, w, h);
    let before: Vec<bool> = (20..((switched - ready - 2.5) * 15.0) as usize)
        .filter_map(|i| frames.get(i))
        .map(|f| tiles.iter().filter(|r| blue(f, centre(**r))).count() == 1)
        .collect();
    assert!(before.len() > 40 && before.iter().filter(|b| **b).count() * 10 >= before.len() * 9, "grid: {before:?}");
    let after: Vec<bool> = (((switched + 1.5) * 15.0) as usize..frames.len().saturating_sub(8))
        .map(|i| blue(&frames[i], Rect::new(w / 4, h / 4, w / 2, h / 2)))
        .collect();
    assert!(after.len() > 40 && after.iter().filter(|b| **b).count() * 10 >= after.len() * 9, "full: {after:?}");
}
