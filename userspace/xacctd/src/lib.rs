//! The daemon's moving parts, as a library so the binary, the perf harness and the tests
//! drive the same code.
//!
//! - [`pipeline`]: per-core workers that decode frame batches into Records, filter them per
//!   plugin and fold them into worker-local shards; the [`pipeline::ShardHarvest`] that swaps
//!   shards out at a plugin's refresh.
//! - [`daemon`]: config → sources, workers, plugins, signals, shutdown with a final flush.

pub mod daemon;
pub mod files;
pub mod flows;
pub mod frag;
pub mod pipeline;
pub mod syslog;
