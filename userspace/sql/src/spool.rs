//! Durable, ordered on-disk queue of write batches (`sql_spool_dir`). BEING WRITTEN: the
//! signatures below are the agreed interface; bodies are filled in by the spool's author.

use serde::{de::DeserializeOwned, Serialize};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {what}: {source}")]
    Io { path: String, what: String, #[source] source: std::io::Error },
    #[error("spool {path}: corrupt entry: {why}")]
    Corrupt { path: String, why: String },
}

/// One plugin's spool directory. Entries are kept in push order and survive a crash: `push`
/// returns only after the entry is durable (fsync of file and directory).
pub struct Spool {
    _private: (),
}

impl Spool {
    /// Opens (creating if needed) the spool at `dir`, recovering entries left by a previous run.
    /// A torn entry (crash while writing) is moved aside and counted, never replayed half.
    pub fn open(dir: &Path) -> Result<Spool, SpoolError> {
        let _ = dir;
        unimplemented!("spool being written")
    }
    /// Appends `item` under the caller's monotonically increasing `id`.
    pub fn push<T: Serialize>(&mut self, id: u64, item: &T) -> Result<(), SpoolError> {
        let _ = (id, item);
        unimplemented!("spool being written")
    }
    /// The oldest entry, if any.
    pub fn front<T: DeserializeOwned>(&mut self) -> Result<Option<(u64, T)>, SpoolError> {
        unimplemented!("spool being written")
    }
    /// Removes the oldest entry (after it has been committed to the database).
    pub fn pop_front(&mut self) -> Result<(), SpoolError> {
        unimplemented!("spool being written")
    }
    /// Entries waiting.
    pub fn len(&self) -> usize {
        unimplemented!("spool being written")
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Bytes on disk.
    pub fn bytes(&self) -> u64 {
        unimplemented!("spool being written")
    }
    /// The highest id ever pushed to this spool (also after a restart with an empty spool), so
    /// the caller can keep ids increasing across restarts.
    pub fn last_id(&self) -> u64 {
        unimplemented!("spool being written")
    }
    /// Torn or unreadable entries moved aside since `open`.
    pub fn quarantined(&self) -> u64 {
        unimplemented!("spool being written")
    }
}
