//! `tessera serve`: LiveKit's Egress API.

use super::{layout_set, logging};
use anyhow::Result;
use tessera::cli::ServeArgs;
use tessera::config::{Loaded, ServiceConfig};

/// Reads the configuration first: it sets the log's level and format.
pub fn run(a: ServeArgs) -> Result<()> {
    let loaded = load_config(&a)?;
    logging::init(&format!("warn,tessera={}", loaded.config.log_level()), loaded.config.logging.json);
    let layouts = layout_set::load(loaded.config.layouts_dir.as_deref())?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(tessera::service::serve(loaded, layouts))
}

/// `--config` (or TESSERA_CONFIG), else the file EGRESS_CONFIG_FILE names; without
/// either, the loader reads the YAML in the environment or takes the defaults.
fn load_config(a: &ServeArgs) -> Result<Loaded> {
    let path = a.config.clone().or_else(|| std::env::var_os("EGRESS_CONFIG_FILE").map(Into::into));
    Ok(ServiceConfig::load(path.as_deref())?)
}
