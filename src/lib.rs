//! Tessera: records LiveKit rooms without a browser.
//!
//! Data flows one way: sources (synthetic now, the room later) give frames and
//! audio stamped on the job's clock -> `layout` builds a `scene` per tick ->
//! `render` composites it -> `audio` mixes -> `encode` -> `output` writes.

// Image code walks planes, strides and colour components in step; an index says so
// more plainly than zipped iterators.
#![allow(clippy::needless_range_loop)]
#![warn(unreachable_pub)]

pub(crate) mod api;
pub(crate) mod audio;
pub(crate) mod auth;
pub(crate) mod browser;
pub mod cli;
pub(crate) mod color;
pub(crate) mod compositor;
pub mod config;
pub(crate) mod decode;
pub mod devroom;
pub mod egress;
pub mod encode;
pub mod fleet;
pub mod frame;
pub mod layout;
pub(crate) mod metrics;
pub mod output;
pub mod peer;
pub(crate) mod pipeline;
pub mod preview;
pub mod recorder;
pub mod recording;
pub mod render;
pub(crate) mod room;
pub mod scene;
pub(crate) mod secrets;
pub mod service;
pub(crate) mod sync;
pub mod time;
pub mod upload;
pub mod usage;
