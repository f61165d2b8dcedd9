//! Layout and theme files (`layouts/*.toml`, `layouts/themes/*.toml`): their
//! shape and the checks that turn a bad file into a clear error.

use crate::color::Rgba;
use serde::Deserialize;

/// Which arrangement a layout file describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Equal tiles in the smallest grid that fits.
    Grid,
    /// One large tile plus a strip of the others.
    Speaker,
    /// The active speaker (or the screen share) alone, full frame.
    Single,
}

/// What to do with a participant whose camera is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CameraOff {
    /// No tile (LiveKit's template shows only participants with video).
    Hide,
    /// A tile with the participant's initials.
    Placeholder,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Orientation {
    Landscape,
    Portrait,
}

/// One grid the `grid` kind may choose, like LiveKit's `GRID_LAYOUTS`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridOption {
    pub columns: u32,
    pub rows: u32,
    #[serde(default)]
    pub min_width: u32,
    #[serde(default)]
    pub min_height: u32,
    pub orientation: Option<Orientation>,
}

impl GridOption {
    pub(crate) fn max_tiles(&self) -> usize {
        (self.columns * self.rows) as usize
    }
}

/// A layout file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayoutSpec {
    pub kind: Kind,
    /// Space around the tiles, pixels.
    #[serde(default)]
    pub padding: u32,
    /// Space between tiles, pixels.
    #[serde(default)]
    pub gap: u32,
    /// Tile corner radius, pixels.
    #[serde(default)]
    pub radius: f32,
    /// Name labels (with a muted icon) on tiles.
    #[serde(default)]
    pub labels: bool,
    pub camera_off: CameraOff,
    /// Layout used instead while someone shares a screen (grid -> speaker, as LiveKit).
    pub screen_share_layout: Option<String>,
    /// Grids to choose from, smallest first (`grid` kind).
    #[serde(default)]
    pub grid: Vec<GridOption>,
    /// Strip : focus proportion (`speaker` kind), like CSS `1fr 5fr`.
    pub strip_ratio: Option<[f32; 2]>,
    /// Width / height of a strip tile (`speaker` kind).
    pub strip_tile_aspect: Option<f32>,
    /// Outputs with width/height below this put the strip under the focus tile.
    pub strip_below_aspect: Option<f32>,
    /// With one tile only, draw it full frame without gaps, corners or border.
    #[serde(default)]
    pub single_full_frame: bool,
    /// How a camera fills its tile: `cover` (cropped, LiveKit's template) or `contain`
    /// (whole, letterboxed). Screen shares are always whole.
    #[serde(default)]
    pub camera_fit: CameraFit,
}

/// How a camera fills its tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CameraFit {
    #[default]
    Cover,
    Contain,
}

/// A theme file: colours and text sizes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThemeSpec {
    pub background: Rgba,
    pub tile_background: Rgba,
    pub speaking_border_color: Rgba,
    pub speaking_border_width: f32,
    pub label_color: Rgba,
    pub label_background: Rgba,
    /// Label text size in pixels for a 720-pixel-high output; scaled with the output.
    pub label_font_px: f32,
    pub placeholder_color: Rgba,
    pub placeholder_circle: Rgba,
}

impl LayoutSpec {
    /// Checks values the TOML types cannot: returns (key, why) for the first problem.
    pub fn check(&self) -> Result<(), (String, String)> {
        let bad = |k: &str, why: &str| Err((k.to_string(), why.to_string()));
        if !(0.0..=512.0).contains(&self.radius) {
            return bad("radius", "must be between 0 and 512 pixels");
        }
        if self.padding > 512 || self.gap > 512 {
            return bad(if self.padding > 512 { "padding" } else { "gap" }, "must be at most 512 pixels");
        }
        match self.kind {
            Kind::Grid => {
                if self.grid.is_empty() {
                    return bad("grid", "a grid layout needs at least one [[grid]] entry");
                }
                for (i, g) in self.grid.iter().enumerate() {
                    if g.columns == 0 || g.rows == 0 || g.columns > 16 || g.rows > 16 {
                        return bad(&format!("grid[{i}]"), "columns and rows must be 1 to 16");
                    }
                }
                if self.grid.windows(2).any(|w| w[1].max_tiles() < w[0].max_tiles()) {
                    return bad("grid", "entries must be ordered from fewest to most tiles");
                }
            }
            Kind::Speaker => {
                match self.strip_ratio {
                    Some([a, b]) if a > 0.0 && b > 0.0 => {}
                    Some(_) => return bad("strip_ratio", "both parts must be positive"),
                    None => return bad("strip_ratio", "a speaker layout needs strip_ratio = [strip, focus]"),
                }
                match self.strip_tile_aspect {
                    Some(a) if (0.2..=5.0).contains(&a) => {}
                    Some(_) => return bad("strip_tile_aspect", "must be between 0.2 and 5"),
                    None => return bad("strip_tile_aspect", "a speaker layout needs strip_tile_aspect"),
                }
            }
            Kind::Single => {}
        }
        Ok(())
    }
}

impl ThemeSpec {
    pub fn check(&self) -> Result<(), (String, String)> {
        if !(0.0..=64.0).contains(&self.speaking_border_width) {
            return Err(("speaking_border_width".into(), "must be between 0 and 64 pixels".into()));
        }
        if !(4.0..=200.0).contains(&self.label_font_px) {
            return Err(("label_font_px".into(), "must be between 4 and 200 pixels".into()));
        }
        Ok(())
    }
}
