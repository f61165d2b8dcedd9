//! `tessera record`: joins a LiveKit room as a hidden recorder and records the composite.

use super::{encoding, layout_set, logging, recording};
use anyhow::{Context, Result, bail};
use std::time::Duration;
use tessera::cli::RecordArgs;
use tessera::recorder::RecordJob;
use tessera::recording::Media;
use tessera::render::Backend;

pub fn run(a: RecordArgs) -> Result<()> {
    logging::init(logging::DEFAULT, false);
    let set = layout_set::load(a.layouts_dir.as_deref())?;
    let layout = set.resolve(&a.layout)?;
    let encoding = encoding::options(&a.size)?;
    let token = match (&a.token, &a.room) {
        (Some(t), _) => t.clone(),
        (None, Some(room)) => {
            tessera::recorder::token::mint(&a.api_key, &a.api_secret, room, &tessera::egress::new_egress_id())?
        }
        (None, None) => bail!("--room is needed to mint a token (or give --token)"),
    };
    let mut job = RecordJob::new(&a.url, &token, layout, encoding, &a.output);
    if a.audio_only {
        job.spec.media = Media::AudioOnly;
    }
    job.backend = a.renderer.parse::<Backend>().map_err(anyhow::Error::msg)?;
    job.video_delay = Duration::from_millis(a.delay_ms);
    job.spec.limit = a.duration;
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async move { recording::record_and_report(job, &a.layout).await })
}
