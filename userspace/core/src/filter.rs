//! libpcap filter expressions (`aggregate_filter`, `pcap_filter`, pre_tag_map `filter=`),
//! evaluated on [`Record`] fields so that packets and flow records get the same answer.
//!
//! CONTRACT (stable API): `Filter::parse(&str) -> Result<Filter, FilterError>`,
//! `Filter::matches(&self, &Record) -> bool`.

use crate::record::Record;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{msg} (at column {col})")]
pub struct FilterError {
    pub msg: String,
    pub col: usize,
}

/// A compiled filter expression.
#[derive(Debug, Clone)]
pub struct Filter {
    _src: String,
}

impl Filter {
    pub fn parse(expr: &str) -> Result<Filter, FilterError> {
        Ok(Filter { _src: expr.to_string() })
    }

    #[inline]
    pub fn matches(&self, _r: &Record) -> bool {
        true
    }
}
