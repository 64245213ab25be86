//! xacct's source-independent core.
//!
//! Data flow inside this crate: a source's decoded packet or flow record becomes a
//! [`record::Record`]; [`maps`] fill nets/ASes/ports; [`filter`] decides per plugin whether the
//! record counts; [`aggregate`] projects it onto the plugin's key and folds it into a
//! [`aggregate::Table`]; [`format`] renders tables the way pmacct does; [`imt`] is the memory
//! table's client/server protocol. [`config`] reads pmacct-style configuration.
#![forbid(unsafe_code)]

pub mod aggregate;
pub mod budget;
pub mod config;
pub mod filter;
pub mod format;
#[doc(hidden)]
pub mod fuzzing;
pub mod history;
pub mod hll;
pub mod imt;
pub mod maps;
pub mod record;
pub mod shard;
pub mod stats;
pub mod tag;
pub mod tee;

/// The SQL plugins' configuration, under its older path.
pub use config::sql as sqlconf;

pub use aggregate::{Aggregate, Counters, Primitive, Projector, Table};
pub use record::{Addr, Record};
