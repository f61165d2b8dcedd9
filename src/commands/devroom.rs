//! `tessera devroom`: a local LiveKit-protocol room server, optionally with synthetic
//! participants in it (or only those, published into another server).

use super::logging;
use anyhow::{Context, Result, bail};
use std::time::Duration;
use tessera::cli::DevroomArgs;
use tessera::devroom::synthetic::{SyntheticError, SyntheticOptions};
use tessera::devroom::{DevRoom, DevRoomConfig};
use tessera::encode::VideoCodec;
use tessera::peer::impair::Impairment;
use tokio::task::JoinHandle;

pub fn run(a: DevroomArgs) -> Result<()> {
    logging::init(logging::DEFAULT, false);
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async {
        let codec = match a.codec.to_ascii_lowercase().as_str() {
            "vp8" => VideoCodec::Vp8,
            "h264" => VideoCodec::H264,
            other => bail!("--codec {other}: use vp8 or h264"),
        };
        match &a.publish_to {
            Some(url) => publish(&a, url, codec).await,
            None => host(&a, codec).await,
        }
    })
}

/// `--publish-to`: no room server, only the synthetic participants, in another server.
async fn publish(a: &DevroomArgs, url: &str, codec: VideoCodec) -> Result<()> {
    let Some(publishers) = synthetic(a, url.to_string(), codec) else { bail!("--publish-to needs --synthetic N") };
    tokio::select! {
        r = publishers => r.context("the publishers stopped")??,
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}

/// The room server (with the synthetic participants, if any), until it stops or Ctrl-C.
async fn host(a: &DevroomArgs, codec: VideoCodec) -> Result<()> {
    let room = DevRoom::start(DevRoomConfig {
        bind: a.bind,
        api_key: a.api_key.clone(),
        api_secret: a.api_secret.clone(),
        empty_timeout: Duration::from_secs(a.empty_timeout),
        impair: Impairment { loss: a.loss_percent / 100.0, jitter: Duration::from_millis(a.jitter_ms) },
    })
    .await
    .with_context(|| format!("binding {}", a.bind))?;
    println!("devroom: {}", room.url());
    let synthetic = synthetic(a, room.url(), codec);
    tokio::select! {
        _ = room.wait() => {}
        _ = tokio::signal::ctrl_c() => {}
        Some(Ok(Err(e))) = async { match synthetic { Some(t) => Some(t.await), None => None } } => {
            return Err(e.into());
        }
    }
    Ok(())
}

/// Starts the `--synthetic` participants in the room at `url`; none without the flag.
fn synthetic(a: &DevroomArgs, url: String, codec: VideoCodec) -> Option<JoinHandle<Result<(), SyntheticError>>> {
    (a.synthetic > 0).then(|| {
        let o = SyntheticOptions {
            url,
            api_key: a.api_key.clone(),
            api_secret: a.api_secret.clone(),
            room: a.room.clone(),
            count: a.synthetic,
            screen_share: a.screen_share,
            late_joiner: a.late_joiner,
            leaver: a.leaver,
            mute_toggle: a.mute_toggle,
            wall_clock_marks: a.wall_clock_marks,
            fps: 15,
            codec,
            duration: None,
            ..Default::default()
        };
        println!("{} synthetic participants in room {:?}", a.synthetic, a.room);
        tokio::spawn(tessera::devroom::synthetic::run(o))
    })
}
