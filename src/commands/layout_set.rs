//! The layouts a command offers: the built-in ones, or those in a directory.

use anyhow::Result;
use std::path::Path;
use tessera::layout::LayoutSet;

/// The layout files in `dir` (checked), or the built-in layouts without one.
pub fn load(dir: Option<&Path>) -> Result<LayoutSet> {
    Ok(match dir {
        Some(d) => LayoutSet::load_dir(d)?,
        None => LayoutSet::builtin()?,
    })
}
