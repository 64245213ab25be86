//! Packet sources. Each source thread reads frames (libpcap live interface or pcap file) into
//! [`Batch`]es and hands them to the workers through a [`BatchSink`]; batches come back empty
//! through a recycle channel so the steady state allocates nothing.
//!
//! AF_XDP sockets ([`afxdp`], one per RX queue) produce the same batches; XDP pre-aggregation
//! (a later issue) produces records.

pub mod afxdp;
pub mod batch;
pub mod pcap_source;
pub mod savefile;
pub mod source;
pub mod xdp_source;

pub use afxdp::{AfXdpConfig, AfXdpError, AfXdpSource, BindMode, Steering};
pub use batch::{Batch, BatchSink, FrameMeta, SinkMode};
pub use pcap_source::{CaptureError, PcapSource, SourceEnd};
pub use source::{Source, SourceError};
pub use xdp_source::XdpHarvester;
