//! Time bins for `print_history` / `sql_history` with `*_history_roundoff`.
//! CONTRACT: `History::parse(value, roundoff: Option<&str>)`, `History::bin_start(ts) -> i64`.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct History {
    _p: (),
}

impl History {
    pub fn bin_start(&self, ts: i64) -> i64 {
        ts
    }
}
