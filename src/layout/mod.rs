//! Layouts as data: loading `layouts/`, resolving names like `grid-light`, and
//! turning the room's tiles into a [`Scene`](crate::scene::Scene) (see `engine`).

pub(crate) mod engine;
pub mod spec;

use spec::{LayoutSpec, ThemeSpec};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use thiserror::Error;

pub use engine::{TileKind, TileSource, compose};

#[derive(Debug, Error)]
pub enum LayoutError {
    #[error("layout file {file}: {cause}")]
    Parse { file: String, cause: toml::de::Error },
    #[error("layout file {file}: `{key}` {why}")]
    Invalid { file: String, key: String, why: String },
    #[error("cannot read layouts from {path}: {cause}")]
    Io { path: PathBuf, cause: std::io::Error },
    #[error("unknown layout {name:?}; known layouts: {known}")]
    Unknown { name: String, known: String },
    #[error("no theme file layouts/themes/default.toml")]
    NoDefaultTheme,
}

/// The layouts and themes shipped in the repository, compiled in so the binary
/// works from any directory. A layouts directory given at start-up replaces them.
const BUILTIN: &[(&str, &str)] = &[
    ("grid.toml", include_str!("../../layouts/grid.toml")),
    ("speaker.toml", include_str!("../../layouts/speaker.toml")),
    ("single-speaker.toml", include_str!("../../layouts/single-speaker.toml")),
    ("themes/default.toml", include_str!("../../layouts/themes/default.toml")),
    ("themes/light.toml", include_str!("../../layouts/themes/light.toml")),
];

/// The layout of participant and track composite egress, apart from the room layouts (a
/// layouts directory given at start-up does not replace it).
const PARTICIPANT: &str = include_str!("../../layouts/participant.toml");

/// A layout ready to draw: its arrangement, its theme, and the layout to switch
/// to while a screen is shared.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub name: String,
    pub spec: LayoutSpec,
    pub theme: ThemeSpec,
    pub screen_share: Option<Box<Layout>>,
}

/// Every layout and theme known to this process, validated.
#[derive(Debug, Clone)]
pub struct LayoutSet {
    layouts: BTreeMap<String, LayoutSpec>,
    themes: BTreeMap<String, ThemeSpec>,
}

impl LayoutSet {
    /// The layout a participant or track composite egress is drawn with (default theme).
    pub fn participant() -> Result<Layout, LayoutError> {
        let default_theme = BUILTIN.iter().find(|(n, _)| *n == "themes/default.toml").map(|(_, t)| t.to_string());
        let files = [("participant.toml".to_string(), PARTICIPANT.to_string())]
            .into_iter()
            .chain(default_theme.map(|t| ("themes/default.toml".to_string(), t)));
        Self::from_files(files)?.resolve("participant")
    }

    /// The layouts compiled into the binary.
    pub fn builtin() -> Result<Self, LayoutError> {
        Self::from_files(BUILTIN.iter().map(|(n, t)| (n.to_string(), t.to_string())))
    }

    /// Reads `dir/*.toml` and `dir/themes/*.toml`.
    pub fn load_dir(dir: &Path) -> Result<Self, LayoutError> {
        let mut files = Vec::new();
        for (sub, prefix) in [(dir.to_path_buf(), ""), (dir.join("themes"), "themes/")] {
            let entries = std::fs::read_dir(&sub).map_err(|cause| LayoutError::Io { path: sub.clone(), cause })?;
            for entry in entries {
                let path = entry.map_err(|cause| LayoutError::Io { path: sub.clone(), cause })?.path();
                if path.extension().is_some_and(|e| e == "toml") {
                    let text = std::fs::read_to_string(&path)
                        .map_err(|cause| LayoutError::Io { path: path.clone(), cause })?;
                    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                    files.push((format!("{prefix}{name}"), text));
                }
            }
        }
        Self::from_files(files)
    }

    /// Parses and checks files named like `grid.toml` or `themes/light.toml`.
    pub fn from_files(files: impl IntoIterator<Item = (String, String)>) -> Result<Self, LayoutError> {
        let mut layouts = BTreeMap::new();
        let mut themes = BTreeMap::new();
        for (file, text) in files {
            let stem = file.trim_start_matches("themes/").trim_end_matches(".toml").to_string();
            let invalid = |(key, why): (String, String)| LayoutError::Invalid { file: file.clone(), key, why };
            if file.starts_with("themes/") {
                let theme: ThemeSpec =
                    toml::from_str(&text).map_err(|cause| LayoutError::Parse { file: file.clone(), cause })?;
                theme.check().map_err(invalid)?;
                themes.insert(stem, theme);
            } else {
                let spec: LayoutSpec =
                    toml::from_str(&text).map_err(|cause| LayoutError::Parse { file: file.clone(), cause })?;
                spec.check().map_err(invalid)?;
                layouts.insert(stem, spec);
            }
        }
        if !themes.contains_key("default") {
            return Err(LayoutError::NoDefaultTheme);
        }
        let set = Self { layouts, themes };
        // A screen-share layout must exist; checked once here rather than mid-recording.
        for (name, spec) in &set.layouts {
            if let Some(other) = &spec.screen_share_layout
                && !set.layouts.contains_key(other)
            {
                return Err(LayoutError::Invalid {
                    file: format!("{name}.toml"),
                    key: "screen_share_layout".into(),
                    why: format!("names {other:?}, which is not a layout here"),
                });
            }
        }
        Ok(set)
    }

    /// Every name `resolve` accepts, e.g. `grid`, `grid-light`.
    pub fn names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for l in self.layouts.keys() {
            names.push(l.clone());
            for t in self.themes.keys().filter(|t| *t != "default") {
                names.push(format!("{l}-{t}"));
            }
        }
        names
    }

    /// Resolves a LiveKit layout name: `<layout>` or `<layout>-<theme>`; empty means `grid`.
    pub fn resolve(&self, name: &str) -> Result<Layout, LayoutError> {
        let name = if name.is_empty() { "grid" } else { name };
        let unknown = || LayoutError::Unknown { name: name.to_string(), known: self.names().join(", ") };
        let (base, theme) = if self.layouts.contains_key(name) {
            (name, "default")
        } else {
            let (base, theme) = name.rsplit_once('-').ok_or_else(unknown)?;
            // LiveKit also accepts `-dark`, which is the default look.
            let theme = if theme == "dark" { "default" } else { theme };
            (base, theme)
        };
        let spec = self.layouts.get(base).ok_or_else(unknown)?.clone();
        let theme_spec = self.themes.get(theme).ok_or_else(unknown)?.clone();
        let screen_share = match &spec.screen_share_layout {
            Some(other) if other != base => {
                let other_name = if theme == "default" { other.clone() } else { format!("{other}-{theme}") };
                Some(Box::new(self.resolve(&other_name)?))
            }
            _ => None,
        };
        Ok(Layout { name: name.to_string(), spec, theme: theme_spec, screen_share })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_participant_layout_is_apart_from_the_room_layouts() {
        let l = LayoutSet::participant().unwrap();
        assert_eq!((l.spec.kind, l.spec.camera_fit), (spec::Kind::Single, spec::CameraFit::Contain));
        assert!(LayoutSet::builtin().unwrap().resolve("participant").is_err());
    }

    #[test]
    fn builtin_layouts_resolve() {
        let set = LayoutSet::builtin().unwrap();
        for n in [
            "grid",
            "grid-light",
            "speaker",
            "speaker-light",
            "single-speaker",
            "single-speaker-light",
            "",
            "grid-dark",
        ] {
            set.resolve(n).unwrap_or_else(|e| panic!("{n}: {e}"));
        }
        assert_eq!(set.resolve("grid-light").unwrap().theme.background, crate::color::Rgba::WHITE);
        let e = set.resolve("mosaic").unwrap_err().to_string();
        assert!(e.contains("unknown layout \"mosaic\"") && e.contains("single-speaker-light"), "{e}");
    }
}
