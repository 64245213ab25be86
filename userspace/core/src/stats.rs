//! Counters every part of the daemon updates and the CLI (`xacct -t`) and SIGUSR1 report.
//! Relaxed atomics: each counter is monotonic and read only for reporting.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use xacct_wire::DecodeError;

/// Per-source (capture handle / collector socket) counters.
#[derive(Debug, Default)]
pub struct SourceStats {
    /// Frames or datagrams handed to us by the kernel/libpcap.
    pub received: AtomicU64,
    /// Dropped by the kernel or libpcap before we saw them (pcap_stats ps_drop + ps_ifdrop).
    pub kernel_dropped: AtomicU64,
    /// Frames that failed to decode, by reason (index = `DecodeError as usize` order of ALL).
    pub malformed: [AtomicU64; DecodeError::ALL.len()],
    /// Non-IP frames that no plugin accounts (pmacctd ignores them too).
    pub non_ip: AtomicU64,
    /// Dropped because a worker queue was full (never silent).
    pub queue_dropped: AtomicU64,
    /// Later IP fragments whose first fragment never came (accounted with ports 0).
    pub fragment_orphans: AtomicU64,
    /// Records that reached the workers.
    pub processed: AtomicU64,
    /// AF_XDP: frames the kernel could not put on the socket's rx ring because it was full
    /// (we drained too slowly). Also counted in `kernel_dropped`.
    pub xsk_rx_ring_full: AtomicU64,
    /// AF_XDP: times the kernel found the fill ring empty (no free UMEM frame to receive into);
    /// the frames lost this way are in `xsk_rx_dropped`.
    pub xsk_fill_ring_empty: AtomicU64,
    /// AF_XDP: frames dropped for other reasons (no free frame, frame larger than a UMEM
    /// frame). Also counted in `kernel_dropped`.
    pub xsk_rx_dropped: AtomicU64,
    /// AF_XDP: invalid descriptors on the rx ring (a bug on one side if ever non-zero).
    pub xsk_rx_invalid_descs: AtomicU64,
    /// Counters a source kind keeps on its own (the XDP program's), as last read.
    pub extra: std::sync::Mutex<Vec<(&'static str, u64)>>,
    /// Set once a finite source (pcap file) has been read to its end and drained.
    pub finished: std::sync::atomic::AtomicBool,
    /// Collectors: per-exporter counters, as last published by the collector thread.
    pub exporters: std::sync::Mutex<Vec<ExporterStats>>,
}

/// Counters of one NetFlow/IPFIX exporter domain (address + engine or source id /
/// observation domain) or one sFlow agent + sub-agent, as seen by one collector socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExporterStats {
    /// "netflow" or "sflow".
    pub protocol: &'static str,
    pub exporter: std::net::IpAddr,
    /// NetFlow v9 source id / IPFIX observation domain / v5-v8 `engine_type << 8 | engine_id`
    /// / sFlow sub-agent id.
    pub domain: u32,
    pub datagrams: u64,
    /// Flow records (NetFlow) or flow samples (sFlow) turned into records.
    pub records: u64,
    /// Malformed datagrams by reason (the decoders' stable labels).
    pub malformed: Vec<(&'static str, u64)>,
    /// v9/IPFIX data sets whose template was unknown when they arrived.
    pub unknown_template_sets: u64,
    /// Sequence numbers that jumped ahead (datagrams or flows lost on the way) or back
    /// (reordering, or an exporter restart).
    pub seq_gaps_forward: u64,
    pub seq_gaps_backward: u64,
}

impl ExporterStats {
    /// `(name, value)` lines for `xacct -t`, prefixed with the exporter.
    pub fn counters(&self) -> Vec<(String, u64)> {
        let who = format!("{} exporter {}/{}", self.protocol, self.exporter, self.domain);
        let mut v = vec![
            (format!("{who} datagrams"), self.datagrams),
            (format!("{who} records"), self.records),
            (format!("{who} unknown_template_sets"), self.unknown_template_sets),
            (format!("{who} seq_gaps_forward"), self.seq_gaps_forward),
            (format!("{who} seq_gaps_backward"), self.seq_gaps_backward),
        ];
        v.extend(self.malformed.iter().map(|(why, n)| (format!("{who} malformed {why}"), *n)));
        v
    }
}

impl SourceStats {
    pub fn count_malformed(&self, e: DecodeError) {
        let i = DecodeError::ALL.iter().position(|x| *x == e).unwrap_or(0);
        self.malformed[i].fetch_add(1, Relaxed);
    }

    /// A copy of [`Self::extra`].
    pub fn extra_counters(&self) -> Vec<(&'static str, u64)> {
        self.extra.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Every exporter's counters as `(name, value)` lines (empty for packet sources).
    pub fn exporter_counters(&self) -> Vec<(String, u64)> {
        self.exporters.lock().map(|v| v.iter().flat_map(ExporterStats::counters).collect()).unwrap_or_default()
    }

    pub fn malformed_total(&self) -> u64 {
        self.malformed.iter().map(|c| c.load(Relaxed)).sum()
    }

    /// `(reason, count)` pairs for reasons with a non-zero count.
    pub fn malformed_by_reason(&self) -> Vec<(&'static str, u64)> {
        DecodeError::ALL
            .iter()
            .zip(&self.malformed)
            .map(|(e, c)| (e.name(), c.load(Relaxed)))
            .filter(|(_, c)| *c > 0)
            .collect()
    }
}

/// Per-plugin counters.
#[derive(Debug, Default)]
pub struct PluginStats {
    /// Records that passed the plugin's filter and were folded into its table.
    pub accounted: AtomicU64,
    /// Records rejected by the plugin's `aggregate_filter`.
    pub filtered: AtomicU64,
    /// Entries written out (print) or currently held (memory).
    pub entries_written: AtomicU64,
    /// Refreshes (shard swaps) completed.
    pub refreshes: AtomicU64,
    /// Write errors (print file could not be written, …).
    pub write_errors: AtomicU64,
}
