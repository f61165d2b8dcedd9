//! `tessera record`: joins a LiveKit room as a hidden recorder and records the composite.

use super::{encoding, layout_set, logging, recording};
use anyhow::{Context, Result, bail};
use std::time::Duration;
use tessera::cli::RecordArgs;
use tessera::layout::LayoutSet;
use tessera::recorder::RecordJob;
use tessera::recorder::track::TrackJob;
use tessera::recording::{Media, Subject};
use tessera::render::Backend;

pub fn run(a: RecordArgs) -> Result<()> {
    logging::init(logging::DEFAULT, false);
    let set = layout_set::load(a.layouts_dir.as_deref())?;
    let layout = match &a.participant {
        Some(_) => LayoutSet::participant()?,
        None => set.resolve(&a.layout)?,
    };
    let encoding = encoding::options(&a.size)?;
    let token = match (&a.token, &a.room) {
        (Some(t), _) => t.clone(),
        (None, Some(room)) => {
            tessera::recorder::token::mint(&a.api_key, &a.api_secret, room, &tessera::egress::new_egress_id())?
        }
        (None, None) => bail!("--room is needed to mint a token (or give --token)"),
    };
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    if let Some(track) = &a.track {
        let mut job = TrackJob::new(&a.url, &token, track);
        job.file = Some(a.output.clone());
        job.limit = a.duration;
        return rt.block_on(recording::record_track_and_report(job));
    }
    let mut job = RecordJob::new(&a.url, &token, layout, encoding, &a.output);
    if a.audio_only {
        job.spec.media = Media::AudioOnly;
    }
    if let Some(identity) = &a.participant {
        job.subject = Subject::Participant { identity: identity.clone(), screen_share: a.screen_share };
    }
    job.backend = a.renderer.parse::<Backend>().map_err(anyhow::Error::msg)?;
    job.video_delay = Duration::from_millis(a.delay_ms);
    job.spec.limit = a.duration;
    let shown = a.participant.as_ref().map(|p| format!("participant {p}")).unwrap_or_else(|| a.layout.clone());
    rt.block_on(async move { recording::record_and_report(job, &shown).await })
}
