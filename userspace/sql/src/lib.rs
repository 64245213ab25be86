//! SQL plugins: `pgsql`, `mysql` and `sqlite3` write aggregates into pmacct's tables.
//!
//! Data flow at each refresh: the plugin harvests its table, applies `sql_preprocess`
//! ([`preprocess`]), turns entries into one [`Batch`]-like unit per destination table and bin,
//! appends it to the durable [`spool`] (write-ahead), writes it to the database in one
//! transaction that also records the batch id (so a replay after a crash or outage is applied at
//! most once), then removes it from the spool and runs `sql_trigger_exec` ([`trigger`]).

pub mod batch;
pub mod db;
#[doc(hidden)]
pub mod fuzzing;
pub mod plugin;
pub mod preprocess;
pub mod schema;
pub mod spool;
pub mod targets;
pub mod trigger;
