//! `tessera layouts`: lists the layouts (loading them checks the files).

use super::{layout_set, logging};
use anyhow::Result;
use tessera::cli::LayoutsArgs;

pub fn run(a: LayoutsArgs) -> Result<()> {
    logging::init(logging::DEFAULT, false);
    let set = layout_set::load(a.layouts_dir.as_deref())?;
    for n in set.names() {
        println!("{n}");
    }
    Ok(())
}
