//! One type for every packet source the daemon runs on a thread of its own.

use crate::afxdp::{AfXdpError, AfXdpSource};
use crate::batch::BatchSink;
use crate::pcap_source::{CaptureError, PcapSource, SourceEnd};
use crate::xdp_source::XdpHarvester;
use std::sync::atomic::AtomicBool;
use xacct_core::stats::SourceStats;
use xacct_wire::LinkType;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Pcap(#[from] CaptureError),
    #[error(transparent)]
    AfXdp(#[from] AfXdpError),
    #[error(transparent)]
    Xdp(#[from] xacct_xdp::XdpError),
}

/// A libpcap handle (live or file) or an AF_XDP socket on one RX queue.
pub enum Source {
    Pcap(PcapSource),
    AfXdp(Box<AfXdpSource>),
    /// The XDP program's flow maps, harvested.
    Xdp(Box<XdpHarvester>),
}

impl Source {
    pub fn describe(&self) -> String {
        match self {
            Source::Pcap(s) => s.describe().to_string(),
            Source::AfXdp(s) => format!("{} ({} mode)", s.describe(), s.mode()),
            Source::Xdp(s) => s.describe().to_string(),
        }
    }

    pub fn link(&self) -> LinkType {
        match self {
            Source::Pcap(s) => s.link(),
            Source::AfXdp(_) | Source::Xdp(_) => LinkType::Ethernet,
        }
    }

    /// Finite sources (pcap files) block when workers are busy instead of dropping.
    pub fn is_file(&self) -> bool {
        matches!(self, Source::Pcap(s) if s.is_file())
    }

    pub fn run(
        &mut self,
        id: usize,
        sink: &mut BatchSink,
        stop: &AtomicBool,
        stats: &SourceStats,
    ) -> Result<SourceEnd, SourceError> {
        Ok(match self {
            Source::Pcap(s) => s.run(id, sink, stop, stats)?,
            Source::AfXdp(s) => s.run(id, sink, stop, stats)?,
            Source::Xdp(s) => s.run(id, sink, stop, stats)?,
        })
    }

    /// Copies the kernel's drop counters for this source into `stats`.
    pub fn update_stats(&mut self, stats: &SourceStats) {
        match self {
            Source::Pcap(s) => s.update_kernel_drops(stats),
            Source::AfXdp(s) => s.update_stats(stats),
            Source::Xdp(s) => s.update_stats(stats),
        }
    }
}
