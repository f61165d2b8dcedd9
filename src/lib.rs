//! Tessera: records LiveKit rooms without a browser.
//!
//! Data flows one way: sources (synthetic now, the room later) give frames and
//! audio stamped on the job's clock -> `layout` builds a `scene` per tick ->
//! `render` composites it -> `audio` mixes -> `encode` -> `output` writes.

// Image code walks planes, strides and colour components in step; an index says so
// more plainly than zipped iterators.
#![allow(clippy::needless_range_loop)]

pub mod api;
pub mod audio;
pub mod auth;
pub mod browser;
pub mod cli;
pub mod color;
pub mod compositor;
pub mod config;
pub mod decode;
pub mod devroom;
pub mod egress;
pub mod encode;
pub mod frame;
pub mod layout;
pub mod metrics;
pub mod output;
pub mod peer;
pub mod pipeline;
pub mod preview;
pub mod recorder;
pub mod recording;
pub mod render;
pub mod room;
pub mod scene;
pub mod secrets;
pub mod service;
pub mod sync;
pub mod time;
pub mod upload;
pub mod usage;
