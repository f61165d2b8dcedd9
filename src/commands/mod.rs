//! One module per command, each with a `run` that starts the log and does the
//! command's work; helpers two commands share sit in modules of their own.

pub mod bench_render;
pub mod demo;
pub mod devroom;
pub mod layouts;
pub mod preview;
pub mod record;
pub mod serve;

mod encoding;
mod layout_set;
mod logging;
mod recording;
