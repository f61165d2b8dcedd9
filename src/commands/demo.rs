//! `tessera demo`: devroom, synthetic participants (one shares its screen, one joins
//! late, one leaves, one toggles its microphone, all in speaking turns) and a
//! recorder, in one process.

use super::{logging, recording};
use anyhow::{Context, Result};
use std::time::Duration;
use tessera::cli::DemoArgs;
use tessera::devroom::synthetic::SyntheticOptions;
use tessera::devroom::{DevRoom, DevRoomConfig};
use tessera::encode::EncodingOptions;
use tessera::layout::LayoutSet;
use tessera::recorder::RecordJob;

pub fn run(a: DemoArgs) -> Result<()> {
    // The demo prints its own summary; its room's comings and goings would drown it.
    logging::init("warn", false);
    let set = LayoutSet::builtin()?;
    let layout = set.resolve(&a.layout)?;
    if let Some(dir) = a.output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async move {
        let (key, secret) = ("devkey", "secret");
        let room = DevRoom::start(DevRoomConfig {
            bind: "127.0.0.1:0".parse()?,
            api_key: key.into(),
            api_secret: secret.into(),
            empty_timeout: Duration::from_secs(5),
            impair: Default::default(),
        })
        .await?;
        let synthetic = SyntheticOptions {
            url: room.url(),
            api_key: key.into(),
            api_secret: secret.into(),
            room: "demo".into(),
            count: 4,
            screen_share: true,
            late_joiner: true,
            leaver: true,
            mute_toggle: true,
            duration: Some(a.duration + Duration::from_secs(8)),
            ..Default::default()
        };
        println!("devroom at {} with 4 synthetic participants in room \"demo\"", room.url());
        let participants = tokio::spawn(tessera::devroom::synthetic::run(synthetic));
        let token = tessera::recorder::token::mint(key, secret, "demo", &tessera::egress::new_egress_id())?;
        let mut job = RecordJob::new(&room.url(), &token, layout, EncodingOptions::default(), &a.output);
        job.spec.limit = Some(a.duration);
        recording::record_and_report(job, &a.layout).await?;
        println!("  (CPU includes devroom and the synthetic participants' encoders, all in this process)");
        participants.abort();
        Ok(())
    })
}
