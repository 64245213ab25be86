//! Packet sources. Each source thread reads frames (libpcap live interface or pcap file) into
//! [`Batch`]es and hands them to the workers through a [`BatchSink`]; batches come back empty
//! through a recycle channel so the steady state allocates nothing.
//!
//! XDP pre-aggregation and AF_XDP rings (a later issue) produce the same batches/records.

pub mod batch;
pub mod pcap_source;
pub mod savefile;

pub use batch::{Batch, BatchSink, FrameMeta, SinkMode};
pub use pcap_source::{CaptureError, PcapSource, SourceEnd};
