//! The layout engine: the room's tiles in, a scene out. Reproduces LiveKit's
//! default template (components-js GridLayout / FocusLayout / CarouselLayout):
//! grid selection, paging, sort order, speaker strip, single speaker.

use super::Layout;
use super::spec::{CameraFit, CameraOff, GridOption, Kind, Orientation};
use crate::scene::{Anchor, Border, Fit, Overlay, OverlayContent, Rect, Scene, SourceId, Tile};
use std::cmp::Ordering;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TileKind {
    Camera,
    ScreenShare,
}

/// One candidate tile: a participant's camera (or its absence) or a screen share,
/// what LiveKit calls a track reference.
#[derive(Debug, Clone, PartialEq)]
pub struct TileSource {
    pub identity: String,
    pub name: String,
    pub kind: TileKind,
    /// The decoded video to show, if the track exists and is not muted.
    pub video: Option<SourceId>,
    pub speaking: bool,
    /// 0..1, as LiveKit's audio level.
    pub audio_level: f32,
    pub audio_muted: bool,
    /// Room-clock milliseconds of the last time this participant spoke.
    pub last_spoke_ms: Option<u64>,
    pub joined_ms: u64,
}

impl TileSource {
    /// A camera tile: nobody speaking, nothing muted, joined at time 0.
    pub fn camera(identity: &str, name: &str, video: Option<SourceId>) -> Self {
        Self {
            identity: identity.into(),
            name: name.into(),
            kind: TileKind::Camera,
            video,
            speaking: false,
            audio_level: 0.0,
            audio_muted: false,
            last_spoke_ms: None,
            joined_ms: 0,
        }
    }
}

/// LiveKit's order: screen shares first, then speaking (louder first), then most
/// recently spoken, then camera on, then earliest joined.
fn order(a: &TileSource, b: &TileSource) -> Ordering {
    let share = |t: &TileSource| t.kind != TileKind::ScreenShare;
    share(a)
        .cmp(&share(b))
        .then_with(|| match (a.speaking, b.speaking) {
            (true, true) => b.audio_level.total_cmp(&a.audio_level),
            (x, y) => y.cmp(&x),
        })
        .then_with(|| match (a.last_spoke_ms, b.last_spoke_ms) {
            (Some(x), Some(y)) => y.cmp(&x),
            (x, y) => y.is_some().cmp(&x.is_some()),
        })
        .then_with(|| b.video.is_some().cmp(&a.video.is_some()))
        .then_with(|| a.joined_ms.cmp(&b.joined_ms))
}

/// LiveKit's `selectGridLayout`: the first grid holding every tile for which no
/// later grid of the same size suits the orientation better; if the output is too
/// small for it, the largest smaller grid that fits (and the rest is paged).
pub(crate) fn select_grid(options: &[GridOption], count: usize, width: u32, height: u32) -> GridOption {
    let orientation = if width > height { Orientation::Landscape } else { Orientation::Portrait };
    let fits_orientation = |g: &GridOption| g.orientation.is_none_or(|o| o == orientation);
    let usable: Vec<&GridOption> = options.iter().filter(|g| fits_orientation(g)).collect();
    let fits_size = |g: &GridOption| width >= g.min_width && height >= g.min_height;
    // Smallest grid that holds everyone, else the largest one.
    let wanted = usable.iter().position(|g| g.max_tiles() >= count).unwrap_or(usable.len().saturating_sub(1));
    usable[..=wanted]
        .iter()
        .rev()
        .find(|g| fits_size(g))
        .or(usable.first())
        .map(|g| (*g).clone())
        .unwrap_or(GridOption { columns: 1, rows: 1, min_width: 0, min_height: 0, orientation: None })
}

fn even(v: f32) -> u32 {
    ((v / 2.0).round() * 2.0).max(0.0) as u32
}

/// A float rectangle snapped to even pixels on every edge.
fn snap(x0: f32, y0: f32, x1: f32, y1: f32) -> Rect {
    let (x, y) = (even(x0), even(y0));
    let (r, b) = (even(x1).max(x + 2), even(y1).max(y + 2));
    Rect::new(x, y, r - x, b - y)
}

/// Builds the scene for one output frame. Pure: the same tiles and layout always
/// give the same scene, so a layout switch shows on the very next frame.
pub fn compose(layout: &Layout, sources: &[TileSource], width: u32, height: u32) -> Scene {
    let has_share = sources.iter().any(|s| s.kind == TileKind::ScreenShare);
    let layout = match (&layout.screen_share, has_share) {
        (Some(other), true) => other.as_ref(),
        _ => layout,
    };
    let spec = &layout.spec;
    let mut tiles: Vec<&TileSource> = sources
        .iter()
        .filter(|s| s.kind == TileKind::ScreenShare || s.video.is_some() || spec.camera_off == CameraOff::Placeholder)
        .collect();
    tiles.sort_by(|a, b| order(a, b));

    let mut scene = Scene { width, height, background: layout.theme.background, tiles: Vec::new() };
    if tiles.is_empty() {
        return scene;
    }
    let full = Rect::new(0, 0, width, height);
    let short = width.min(height);
    let chrome_off = (spec.single_full_frame && tiles.len() == 1) || spec.kind == Kind::Single;
    if chrome_off {
        scene.tiles.push(tile(layout, tiles[0], full, short, false));
        return scene;
    }
    let (w, h, p, g) = (width as f32, height as f32, spec.padding as f32, spec.gap as f32);
    match spec.kind {
        Kind::Grid | Kind::Single => {
            let grid = select_grid(&spec.grid, tiles.len(), width, height);
            let shown = tiles.len().min(grid.max_tiles());
            // Rows are implicit in LiveKit's CSS grid (`grid-auto-rows: 1fr`): only
            // as many as the shown tiles need, sharing the full height.
            let rows = shown.div_ceil(grid.columns as usize).max(1);
            let (cols, rows) = (grid.columns as f32, rows as f32);
            let cw = (w - 2.0 * p - (cols - 1.0) * g) / cols;
            let ch = (h - 2.0 * p - (rows - 1.0) * g) / rows;
            for (i, t) in tiles.iter().take(grid.max_tiles()).enumerate() {
                let (c, r) = ((i as u32 % grid.columns) as f32, (i as u32 / grid.columns) as f32);
                let x0 = p + c * (cw + g);
                let y0 = p + r * (ch + g);
                scene.tiles.push(tile(layout, t, snap(x0, y0, x0 + cw, y0 + ch), short, true));
            }
        }
        Kind::Speaker => {
            let [sa, fa] = spec.strip_ratio.unwrap_or([1.0, 5.0]);
            let aspect = spec.strip_tile_aspect.unwrap_or(16.0 / 9.0);
            let below = w / h < spec.strip_below_aspect.unwrap_or(0.0);
            let (focus, strip) = tiles.split_first().map(|(f, s)| (*f, s)).unwrap_or((tiles[0], &[]));
            // The strip holds round(length / span) tiles that share its length, as
            // CarouselLayout does (span = the tile's breadth over its aspect).
            let count_for = |length: f32, span: f32| ((length / span.max(1.0)).round().max(1.0)) as usize;
            if below {
                // Narrow outputs: focus on top, a row of tiles underneath.
                let inner = h - 2.0 * p - g;
                let strip_h = inner * sa / (sa + fa);
                let focus_rect = snap(p, p, w - p, p + inner - strip_h);
                scene.tiles.push(tile(layout, focus, focus_rect, short, true));
                let n = count_for(w - 2.0 * p, strip_h * aspect).min(strip.len().max(1));
                let tile_w = (w - 2.0 * p - g * (n as f32 - 1.0)) / n as f32;
                let y0 = h - p - strip_h;
                for (i, t) in strip.iter().take(n).enumerate() {
                    let x0 = p + i as f32 * (tile_w + g);
                    scene.tiles.push(tile(layout, t, snap(x0, y0, x0 + tile_w, h - p), short, true));
                }
            } else {
                // Wide outputs: a column of tiles on the left, focus on the right.
                let inner = w - 2.0 * p - g;
                let strip_w = inner * sa / (sa + fa);
                let focus_rect = snap(p + strip_w + g, p, w - p, h - p);
                scene.tiles.push(tile(layout, focus, focus_rect, short, true));
                let n = count_for(h - 2.0 * p, strip_w / aspect);
                let tile_h = (h - 2.0 * p - g * (n as f32 - 1.0)) / n as f32;
                for (i, t) in strip.iter().take(n).enumerate() {
                    let y0 = p + i as f32 * (tile_h + g);
                    scene.tiles.push(tile(layout, t, snap(p, y0, p + strip_w, y0 + tile_h), short, true));
                }
            }
        }
    }
    scene
}

/// One tile with its chrome: corners, speaking border, label, placeholder.
fn tile(layout: &Layout, src: &TileSource, rect: Rect, short_side: u32, chrome: bool) -> Tile {
    let theme = &layout.theme;
    // Text scales with the output (14 px at 720p), not with the tile, like a page at that size.
    let scale = (short_side as f32 / 720.0).max(0.5);
    let whole = src.kind == TileKind::ScreenShare || layout.spec.camera_fit == CameraFit::Contain;
    let fit = if whole { Fit::Contain } else { Fit::Cover };
    let mut overlays = Vec::new();
    if src.video.is_none() {
        let initials: String = src.name.split_whitespace().filter_map(|w| w.chars().next()).take(2).collect();
        let font_px = (rect.w.min(rect.h) as f32 * 0.28).round().max(8.0) as u32;
        overlays.push(Overlay {
            anchor: Anchor::Center,
            content: OverlayContent::Initials {
                text: initials.to_uppercase(),
                font_px,
                color: theme.placeholder_color,
                circle: theme.placeholder_circle,
            },
        });
    }
    if layout.spec.labels && chrome {
        let name = match src.kind {
            TileKind::Camera => src.name.clone(),
            TileKind::ScreenShare => format!("{} (screen)", src.name),
        };
        overlays.push(Overlay {
            anchor: Anchor::BottomLeft { margin: (4.0 * scale).round() as u32 },
            content: OverlayContent::Label {
                text: name,
                muted: src.audio_muted && src.kind == TileKind::Camera,
                font_px: (theme.label_font_px * scale).round() as u32,
                color: theme.label_color,
                background: theme.label_background,
            },
        });
    }
    let border = (chrome && src.speaking && src.kind == TileKind::Camera && theme.speaking_border_width > 0.0)
        .then_some(Border { width: theme.speaking_border_width, color: theme.speaking_border_color });
    Tile {
        rect,
        background: theme.tile_background,
        radius: if chrome { layout.spec.radius } else { 0.0 },
        video: src.video.map(|v| (v, fit)),
        border,
        overlays,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::LayoutSet;

    pub(crate) fn cams(n: usize) -> Vec<TileSource> {
        (0..n)
            .map(|i| TileSource {
                joined_ms: i as u64,
                ..TileSource::camera(&format!("p{i}"), &format!("P {i}"), Some(i))
            })
            .collect()
    }

    fn grid_of(n: usize, w: u32, h: u32) -> (u32, u32) {
        let set = LayoutSet::builtin().unwrap();
        let g = select_grid(&set.resolve("grid").unwrap().spec.grid, n, w, h);
        (g.columns, g.rows)
    }

    #[test]
    fn grid_selection_matches_livekit() {
        assert_eq!(grid_of(1, 1280, 720), (1, 1));
        assert_eq!(grid_of(2, 1280, 720), (2, 1));
        assert_eq!(grid_of(2, 720, 1280), (1, 2));
        assert_eq!(grid_of(3, 1280, 720), (2, 2));
        assert_eq!(grid_of(5, 1280, 720), (3, 3));
        assert_eq!(grid_of(16, 1280, 720), (4, 4));
        assert_eq!(grid_of(17, 1280, 720), (5, 5));
        assert_eq!(grid_of(30, 1280, 720), (5, 5));
        // 5x5 needs 1100 px and 4x4 960 px: a 1000-px output pages at 16.
        assert_eq!(grid_of(20, 1000, 600), (4, 4));
        // 2x2 needs 560 px.
        assert_eq!(grid_of(4, 480, 270), (2, 1));
    }

    #[test]
    fn sort_order_follows_livekit() {
        let mut s = cams(4);
        s[3].speaking = true;
        s[3].audio_level = 0.2;
        s[2].speaking = true;
        s[2].audio_level = 0.9;
        s[1].last_spoke_ms = Some(5);
        s[0].video = None;
        s.push(TileSource { kind: TileKind::ScreenShare, identity: "p0".into(), video: Some(9), ..s[0].clone() });
        let mut r: Vec<&TileSource> = s.iter().collect();
        r.sort_by(|a, b| order(a, b));
        let ids: Vec<_> = r.iter().map(|t| (t.identity.as_str(), t.kind)).collect();
        assert_eq!(ids[0], ("p0", TileKind::ScreenShare));
        assert_eq!(ids[1..].iter().map(|x| x.0).collect::<Vec<_>>(), ["p2", "p3", "p1", "p0"]);
    }

    #[test]
    fn tiles_are_even_and_inside_the_frame() {
        let set = LayoutSet::builtin().unwrap();
        for name in set.names() {
            let layout = set.resolve(&name).unwrap();
            for n in [1, 2, 3, 4, 7, 9, 16, 30] {
                for (w, h) in [(1280, 720), (720, 1280), (1920, 1080), (640, 360), (16, 16)] {
                    let scene = compose(&layout, &cams(n), w, h);
                    assert!(!scene.tiles.is_empty());
                    for t in &scene.tiles {
                        let r = t.rect;
                        assert!(r.x % 2 == 0 && r.y % 2 == 0 && r.w % 2 == 0 && r.h % 2 == 0, "{name} {n} {r:?}");
                        assert!(r.right() <= w && r.bottom() <= h, "{name} {n} {w}x{h} {r:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_layout_switch_shows_on_the_next_frame() {
        // compose keeps no state: the frame after UpdateLayout uses the new layout.
        let set = LayoutSet::builtin().unwrap();
        let s = cams(4);
        let grid = compose(&set.resolve("grid").unwrap(), &s, 1280, 720);
        let single = compose(&set.resolve("single-speaker-light").unwrap(), &s, 1280, 720);
        let grid_again = compose(&set.resolve("grid").unwrap(), &s, 1280, 720);
        assert_eq!(grid.tiles.len(), 4);
        assert_eq!(single.tiles.len(), 1);
        assert_eq!(single.tiles[0].rect, Rect::new(0, 0, 1280, 720));
        assert_eq!(single.background, crate::color::Rgba::WHITE);
        assert_eq!(grid, grid_again);
    }

    #[test]
    fn screen_share_turns_grid_into_speaker() {
        let set = LayoutSet::builtin().unwrap();
        let grid = set.resolve("grid").unwrap();
        let mut s = cams(3);
        s.push(TileSource { kind: TileKind::ScreenShare, video: Some(7), ..s[1].clone() });
        let scene = compose(&grid, &s, 1280, 720);
        assert_eq!(scene.tiles[0].video, Some((7, Fit::Contain)));
        assert!(scene.tiles[0].rect.w > 900, "the share is the big tile");
    }
}
