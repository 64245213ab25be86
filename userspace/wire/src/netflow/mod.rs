//! NetFlow v1/v5/v7/v8/v9 and IPFIX decoding (and v5/v9/IPFIX encoding), no IO.
//!
//! Every format is turned into the same plain-data [`FlowRecord`] and handed to a [`FlowSink`]
//! together with the datagram's [`NetflowHeader`] (so callers can track sequence gaps and
//! sampling per exporter). Malformations come back as a typed [`NetflowError`] whose
//! [`NetflowError::reason`] is a stable label for counters.
//!
//! Entry points:
//! - [`decode_fixed`] for v1, v5, v7 and v8 (stateless);
//! - [`Decoder::decode`] for every version, keeping v9/IPFIX templates in a [`TemplateCache`].
//!
//! # Partial datagrams
//! v1–v8 datagrams are checked as a whole before the first record is handed out. A v9/IPFIX
//! datagram is walked set by set: when a set is malformed the walk stops with an error, and
//! records from the sets before it have already been delivered (they were well formed; dropping
//! them would hide traffic). Callers count the error either way.
//!
//! # Data that arrives before its template
//! A data set whose template is unknown is counted (`DatagramStats::unknown_template_sets`) and
//! a copy is held in a small per-exporter buffer (see [`Limits`]). When the template arrives,
//! the held sets are decoded then and their records delivered through the same sink, with the
//! header of the datagram they came in. When the buffer is full the oldest held set is dropped
//! and counted (`DatagramStats::pending_dropped`).
//!
//! # Times
//! `first_switched`/`last_switched` are exporter uptimes in ms (v1–v9, and IPFIX IEs 21/22);
//! `start_ms`/`end_ms` are always resolved to unix milliseconds when the datagram carries enough
//! to do so (header sysUptime + unix time, IPFIX absolute time IEs, or IPFIX
//! systemInitTimeMilliseconds from options data), else 0.

mod encode;
mod fixed;
mod flowsets;
mod templates;

use std::net::{IpAddr, Ipv4Addr};

pub use encode::{encode_v5, MessageBuilder};
pub use fixed::decode_fixed;
pub use templates::{DomainState, Limits, TemplateCache, TemplateField, TemplateState, PMACCT_PEN};

/// The version number IPFIX messages carry in their header.
pub const VERSION_IPFIX: u16 = 10;

/// One flow (or, for v8, one aggregate of flows) in a common shape. Absent fields are zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowRecord {
    pub src_addr: IpAddr,
    pub dst_addr: IpAddr,
    pub next_hop: IpAddr,
    /// BGP next hop (IE 18 / 63).
    pub bgp_next_hop: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    pub proto: u8,
    pub tos: u8,
    pub tcp_flags: u8,
    pub input: u32,
    pub output: u32,
    pub src_as: u32,
    pub dst_as: u32,
    pub src_mask: u8,
    pub dst_mask: u8,
    pub vlan: u16,
    /// dot1qCustomerVlanId (IE 245), 0 when absent.
    pub cvlan: u16,
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub packets: u64,
    pub bytes: u64,
    /// 1 for a plain flow record; the v8 aggregate's flow count or IPFIX deltaFlowCount.
    pub flows: u64,
    /// Exporter uptime (ms) at the first/last packet, when the format gives it.
    pub first_switched: u32,
    pub last_switched: u32,
    /// First/last packet in unix ms (0 when it cannot be resolved).
    pub start_ms: u64,
    pub end_ms: u64,
    pub engine_type: u8,
    pub engine_id: u8,
    /// Packet sampling interval (1 in N) and algorithm/mode, from the v5 header, the record
    /// itself, or the exporter's sampling options data; 0 = unknown/unsampled.
    pub sampling_interval: u32,
    pub sampling_algorithm: u8,
    /// flowSamplerID / selectorId the record refers to (v9 IE 48, IPFIX 302), 0 if none.
    pub sampler_id: u32,
    /// IE 61 flowDirection: 0 ingress, 1 egress; `None` when not exported.
    pub direction: Option<u8>,
    /// pmacct's tag and tag2 (IPFIX enterprise 43874 elements 1 and 2), 0 when absent.
    pub tag: u64,
    pub tag2: u64,
}

impl Default for FlowRecord {
    fn default() -> Self {
        let zero = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        FlowRecord {
            src_addr: zero,
            dst_addr: zero,
            next_hop: zero,
            bgp_next_hop: zero,
            src_port: 0,
            dst_port: 0,
            proto: 0,
            tos: 0,
            tcp_flags: 0,
            input: 0,
            output: 0,
            src_as: 0,
            dst_as: 0,
            src_mask: 0,
            dst_mask: 0,
            vlan: 0,
            cvlan: 0,
            src_mac: [0; 6],
            dst_mac: [0; 6],
            packets: 0,
            bytes: 0,
            flows: 1,
            first_switched: 0,
            last_switched: 0,
            start_ms: 0,
            end_ms: 0,
            engine_type: 0,
            engine_id: 0,
            sampling_interval: 0,
            sampling_algorithm: 0,
            sampler_id: 0,
            direction: None,
            tag: 0,
            tag2: 0,
        }
    }
}

/// The datagram header, normalised across versions (fields a version lacks are zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NetflowHeader {
    /// 1, 5, 7, 8, 9 or 10 (IPFIX).
    pub version: u16,
    /// Record count from the header (v1–v9); for IPFIX the message length.
    pub count: u16,
    /// Exporter uptime in ms (0 for IPFIX, which has none).
    pub sys_uptime_ms: u32,
    pub unix_secs: u32,
    pub unix_nsecs: u32,
    /// v5/v7/v8: flows seen before this datagram; v9: datagrams sent; IPFIX: data records sent.
    pub sequence: u32,
    /// v9 source id / IPFIX observation domain id (0 for v1–v8).
    pub source_id: u32,
    pub engine_type: u8,
    pub engine_id: u8,
    /// v5 header sampling: interval (low 14 bits) and mode (top 2 bits).
    pub sampling_interval: u16,
    pub sampling_mode: u8,
    /// v8 aggregation scheme and its version.
    pub aggregation: u8,
    pub agg_version: u8,
}

impl NetflowHeader {
    /// Export time in unix ms.
    pub fn unix_ms(&self) -> u64 {
        u64::from(self.unix_secs) * 1000 + u64::from(self.unix_nsecs / 1_000_000)
    }

    /// Converts an exporter uptime (ms) into unix ms using this header's clock pair. Uptime
    /// wraps at 2^32 ms (~49.7 days), so the difference is taken modulo 2^32: a flow that
    /// started just before the wrap still lands in the past.
    pub fn uptime_to_unix_ms(&self, uptime_ms: u32) -> u64 {
        let ago = u64::from(self.sys_uptime_ms.wrapping_sub(uptime_ms));
        self.unix_ms().saturating_sub(ago)
    }
}

/// Sampling parameters an exporter announced in v9/IPFIX options data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SamplingInfo {
    pub exporter: Option<IpAddr>,
    pub source_id: u32,
    /// Sampler the parameters belong to (0 = the whole exporter/domain).
    pub sampler_id: u32,
    /// 1 in N packets.
    pub interval: u32,
    pub algorithm: u8,
}

/// Receives decoded records (and sampling announcements) from a decoder.
pub trait FlowSink {
    fn record(&mut self, header: &NetflowHeader, record: &FlowRecord);
    /// Options data announcing sampling; the same values are also applied to later records of
    /// that exporter/domain (`FlowRecord::sampling_interval`). Default: ignored.
    fn sampling(&mut self, _info: &SamplingInfo) {}
}

impl<F: FnMut(&NetflowHeader, &FlowRecord)> FlowSink for F {
    fn record(&mut self, header: &NetflowHeader, record: &FlowRecord) {
        self(header, record)
    }
}

/// What one datagram contained, for the per-exporter counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DatagramStats {
    pub header: NetflowHeader,
    /// Flow records delivered from this datagram (not counting replayed held sets).
    pub records: u32,
    /// Options data records seen.
    pub options_records: u32,
    /// Templates and options templates added or refreshed.
    pub templates: u32,
    pub templates_withdrawn: u32,
    /// Data sets whose template was unknown (each is held if the buffer allows).
    pub unknown_template_sets: u32,
    /// Held data sets dropped because the per-exporter buffer was full.
    pub pending_dropped: u32,
    /// Records delivered from held sets that this datagram's templates unlocked.
    pub replayed_records: u32,
    /// Held sets that turned out malformed once their template arrived (dropped).
    pub replay_malformed: u32,
    /// Sets with a reserved set id, skipped.
    pub skipped_sets: u32,
}

/// Why a datagram (or part of it) could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NetflowError {
    #[error("datagram shorter than a version field")]
    Empty,
    #[error("unsupported NetFlow version {0}")]
    BadVersion(u16),
    #[error("truncated v{version} header ({len} bytes)")]
    TruncatedHeader { version: u16, len: usize },
    #[error("header count {count} exceeds the v{version} maximum {max}")]
    TooManyRecords { version: u16, count: u16, max: u16 },
    #[error("header count {count} but room for {room} records")]
    CountMismatch { count: u16, room: usize },
    #[error("unknown v8 aggregation scheme {0}")]
    BadAggregation(u8),
    #[error("IPFIX message length {declared} but datagram has {actual} bytes")]
    BadMessageLength { declared: u16, actual: usize },
    #[error("set {set_id} has bad length {len} ({remaining} bytes left)")]
    BadSetLength { set_id: u16, len: u16, remaining: usize },
    #[error("template record truncated in set {set_id}")]
    TruncatedTemplate { set_id: u16 },
    #[error("template {template_id} has no fields")]
    TemplateTooShort { template_id: u16 },
    #[error("template {template_id} has {fields} fields (limit {max})")]
    TooManyFields { template_id: u16, fields: usize, max: usize },
    #[error("template {template_id} records would exceed 65535 bytes")]
    TemplateTooLong { template_id: u16 },
    #[error("template {template_id} field {ie} has length 0")]
    ZeroLengthField { template_id: u16, ie: u16 },
    #[error("template id {0} is below 256")]
    BadTemplateId(u16),
    #[error("options template {template_id} has bad scope/option lengths")]
    BadOptionsTemplate { template_id: u16 },
    #[error("exporter already has {max} templates")]
    TooManyTemplates { max: usize },
    #[error("template cache already holds {max} exporter domains")]
    TooManyDomains { max: usize },
    #[error("variable-length field runs past the end of its record (template {template_id})")]
    TruncatedVarLen { template_id: u16 },
    #[error("template withdrawal in a NetFlow v9 datagram (template {template_id})")]
    WithdrawalInV9 { template_id: u16 },
}

impl NetflowError {
    /// Stable short label for per-reason malformed counters.
    pub fn reason(&self) -> &'static str {
        match self {
            NetflowError::Empty => "empty",
            NetflowError::BadVersion(_) => "bad_version",
            NetflowError::TruncatedHeader { .. } => "truncated_header",
            NetflowError::TooManyRecords { .. } => "too_many_records",
            NetflowError::CountMismatch { .. } => "count_mismatch",
            NetflowError::BadAggregation(_) => "bad_aggregation",
            NetflowError::BadMessageLength { .. } => "bad_message_length",
            NetflowError::BadSetLength { .. } => "bad_set_length",
            NetflowError::TruncatedTemplate { .. } => "truncated_template",
            NetflowError::TemplateTooShort { .. } => "template_too_short",
            NetflowError::TooManyFields { .. } => "too_many_fields",
            NetflowError::TemplateTooLong { .. } => "template_too_long",
            NetflowError::ZeroLengthField { .. } => "zero_length_field",
            NetflowError::BadTemplateId(_) => "bad_template_id",
            NetflowError::BadOptionsTemplate { .. } => "bad_options_template",
            NetflowError::TooManyTemplates { .. } => "too_many_templates",
            NetflowError::TooManyDomains { .. } => "too_many_domains",
            NetflowError::TruncatedVarLen { .. } => "truncated_varlen",
            NetflowError::WithdrawalInV9 { .. } => "withdrawal_in_v9",
        }
    }
}

/// Decodes any NetFlow version, keeping v9/IPFIX templates between datagrams.
#[derive(Debug, Default)]
pub struct Decoder {
    pub templates: TemplateCache,
}

impl Decoder {
    pub fn new(limits: Limits) -> Self {
        Decoder { templates: TemplateCache::new(limits) }
    }

    /// Decodes one datagram from `exporter`, delivering records to `sink`.
    pub fn decode<S: FlowSink + ?Sized>(
        &mut self,
        exporter: IpAddr,
        datagram: &[u8],
        sink: &mut S,
    ) -> Result<DatagramStats, NetflowError> {
        match version(datagram)? {
            1 | 5 | 7 | 8 => {
                let mut records = 0u32;
                let header = decode_fixed(datagram, &mut |h: &NetflowHeader, r: &FlowRecord| {
                    records += 1;
                    sink.record(h, r)
                })?;
                Ok(DatagramStats { header, records, ..DatagramStats::default() })
            }
            9 | VERSION_IPFIX => flowsets::decode(&mut self.templates, exporter, datagram, sink),
            v => Err(NetflowError::BadVersion(v)),
        }
    }
}

fn version(datagram: &[u8]) -> Result<u16, NetflowError> {
    datagram.first_chunk::<2>().map(|v| u16::from_be_bytes(*v)).ok_or(NetflowError::Empty)
}

// Readers over slices that return 0 past the end instead of panicking. On fixed-size records
// the length is checked once up front, and after inlining the compiler drops these checks.
#[inline]
fn be16(b: &[u8], o: usize) -> u16 {
    match b.get(o..o + 2) {
        Some(&[x, y]) => u16::from_be_bytes([x, y]),
        _ => 0,
    }
}

#[inline]
fn be32(b: &[u8], o: usize) -> u32 {
    match b.get(o..o + 4) {
        Some(&[a, c, d, e]) => u32::from_be_bytes([a, c, d, e]),
        _ => 0,
    }
}

#[inline]
fn byte(b: &[u8], o: usize) -> u8 {
    b.get(o).copied().unwrap_or(0)
}

#[inline]
fn v4(b: &[u8], o: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(be32(b, o)))
}
