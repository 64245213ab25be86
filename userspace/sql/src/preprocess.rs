//! `sql_preprocess` / `sql_preprocess_type`. BEING WRITTEN: the signatures below are the agreed
//! interface; bodies are filled in by this module's author.

use xacct_core::Counters;

#[derive(Debug, thiserror::Error)]
#[error("sql_preprocess: {0}")]
pub struct PreprocessError(pub String);

/// `sql_preprocess_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MatchType {
    #[default]
    Any,
    All,
}

/// A parsed `sql_preprocess` value, e.g. `qnum=1000, minp=2, minb=60000, adjb=14`.
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocess {
    _private: (),
}

/// What one `apply` did, for counters and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    pub kept: u64,
    pub dropped: u64,
    pub recovered: u64,
}

impl Preprocess {
    pub fn parse(value: &str, match_type: MatchType) -> Result<Preprocess, PreprocessError> {
        let _ = (value, match_type);
        unimplemented!("preprocess being written")
    }
    /// Applies checks and actions to one refresh's entries in place: entries that fail are
    /// removed (or kept, with `recover`), actions (`adjb`, `usrf`, fss/fsrc renormalisation)
    /// change counters. `K` is opaque to pre-processing.
    pub fn apply<K>(&self, entries: &mut Vec<(K, Counters)>) -> Outcome {
        let _ = entries;
        unimplemented!("preprocess being written")
    }
}
