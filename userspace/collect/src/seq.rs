//! Per-exporter counters and sequence tracking for one collector socket.

use std::net::{IpAddr, Ipv6Addr};
use xacct_core::stats::ExporterStats;
use xacct_wire::netflow::{DatagramStats, NetflowHeader, VERSION_IPFIX};
use xacct_wire::sflow::SflowDatagram;

#[derive(Debug)]
struct Exporter {
    stats: ExporterStats,
    /// The sequence number the next datagram should carry; None until known (first datagram,
    /// or after one whose record count we could not establish).
    next_seq: Option<u32>,
}

impl Exporter {
    fn new(protocol: &'static str, exporter: IpAddr, domain: u32) -> Self {
        Exporter {
            stats: ExporterStats {
                protocol,
                exporter,
                domain,
                datagrams: 0,
                records: 0,
                malformed: Vec::new(),
                unknown_template_sets: 0,
                seq_gaps_forward: 0,
                seq_gaps_backward: 0,
            },
            next_seq: None,
        }
    }

    /// Compares `seq` with the expected value and sets the next expectation, `advance` past
    /// `seq` (None when unknown). The difference is read as a signed 32-bit value so counters
    /// that wrap still compare right.
    fn sequence(&mut self, seq: u32, advance: Option<u32>) {
        if let Some(want) = self.next_seq {
            let d = seq.wrapping_sub(want) as i32;
            if d > 0 {
                self.stats.seq_gaps_forward += 1;
            } else if d < 0 {
                self.stats.seq_gaps_backward += 1;
            }
        }
        self.next_seq = advance.map(|a| seq.wrapping_add(a));
    }

    fn malformed(&mut self, why: &'static str) {
        match self.stats.malformed.iter_mut().find(|(w, _)| *w == why) {
            Some((_, n)) => *n += 1,
            None => self.stats.malformed.push((why, 1)),
        }
    }
}

/// Exporter domains one socket keeps apart. Anyone can send a datagram with a spoofed source
/// address or domain id, so beyond this many the rest share one row (exporter `::`, domain
/// 4294967295) instead of growing the map without bound.
pub(crate) const MAX_EXPORTERS: usize = 4096;

/// The exporter domains one socket has heard from.
#[derive(Debug, Default)]
pub(crate) struct Exporters {
    // foldhash: looked up for every datagram (SipHash showed in perf); bounded, and seeded per
    // process.
    map: foldhash::HashMap<(&'static str, IpAddr, u32), Exporter>,
}

/// The domain a NetFlow header names: v9 source id / IPFIX observation domain; for v5–v8, whose
/// sequence counts flows per engine, the engine type and id.
fn nf_domain(h: &NetflowHeader) -> u32 {
    match h.version {
        9 | VERSION_IPFIX => h.source_id,
        _ => u32::from(h.engine_type) << 8 | u32::from(h.engine_id),
    }
}

impl Exporters {
    fn get(&mut self, protocol: &'static str, ip: IpAddr, domain: u32) -> &mut Exporter {
        let key = if self.map.len() >= MAX_EXPORTERS && !self.map.contains_key(&(protocol, ip, domain)) {
            (protocol, IpAddr::V6(Ipv6Addr::UNSPECIFIED), u32::MAX)
        } else {
            (protocol, ip, domain)
        };
        self.map.entry(key).or_insert_with(|| Exporter::new(key.0, key.1, key.2))
    }

    pub(crate) fn netflow_ok(&mut self, src: IpAddr, st: &DatagramStats, records: u64) {
        let h = &st.header;
        let e = self.get("netflow", src, nf_domain(h));
        e.stats.datagrams += 1;
        e.stats.records += records;
        e.stats.unknown_template_sets += u64::from(st.unknown_template_sets);
        match h.version {
            // v1 has no sequence number.
            1 => {}
            // Flows exported before this datagram.
            5 | 7 | 8 => e.sequence(h.sequence, Some(u32::from(h.count))),
            // Datagrams sent.
            9 => e.sequence(h.sequence, Some(1)),
            // Data records sent before this message: its own data records include options
            // data and sets we could not decode yet, whose record count is unknown.
            _ => {
                let advance = (st.unknown_template_sets == 0).then(|| st.records + st.options_records);
                e.sequence(h.sequence, advance)
            }
        }
    }

    pub(crate) fn netflow_err(&mut self, src: IpAddr, header: Option<&NetflowHeader>, records: u64, why: &'static str) {
        let e = self.get("netflow", src, header.map(nf_domain).unwrap_or(0));
        e.stats.datagrams += 1;
        e.stats.records += records;
        e.malformed(why);
        // What follows cannot be checked against a datagram we could not fully read.
        e.next_seq = None;
    }

    pub(crate) fn sflow_ok(&mut self, d: &SflowDatagram, records: u64, skipped: u64) {
        let e = self.get("sflow", d.agent, d.sub_agent_id);
        e.stats.datagrams += 1;
        e.stats.records += records;
        if skipped > 0 {
            // Samples sfacctd would not account either (no decodable header, QinQ).
            for _ in 0..skipped {
                e.malformed("sample_not_accounted");
            }
        }
        e.sequence(d.sequence, Some(1));
    }

    pub(crate) fn sflow_err(&mut self, src: IpAddr, records: u64, skipped: u64, why: &'static str) {
        // The agent address sits in the header we could not read: the sender stands for it.
        let e = self.get("sflow", src, 0);
        e.stats.datagrams += 1;
        e.stats.records += records;
        for _ in 0..skipped {
            e.malformed("sample_not_accounted");
        }
        e.malformed(why);
    }

    /// Every exporter's counters, sorted, and the socket's totals for `SourceStats::extra`.
    pub(crate) fn snapshot(&self) -> (Vec<ExporterStats>, Vec<(&'static str, u64)>) {
        let mut rows: Vec<ExporterStats> = self.map.values().map(|e| e.stats.clone()).collect();
        rows.sort_by(|a, b| (a.protocol, a.exporter, a.domain).cmp(&(b.protocol, b.exporter, b.domain)));
        let sum = |f: fn(&ExporterStats) -> u64| rows.iter().map(f).sum::<u64>();
        let totals = vec![
            ("datagrams", sum(|s| s.datagrams)),
            ("flow_records", sum(|s| s.records)),
            ("malformed_datagrams", sum(|s| s.malformed.iter().map(|(_, n)| n).sum())),
            ("unknown_template_sets", sum(|s| s.unknown_template_sets)),
            ("seq_gaps_forward", sum(|s| s.seq_gaps_forward)),
            ("seq_gaps_backward", sum(|s| s.seq_gaps_backward)),
        ];
        (rows, totals)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spoofed_exporters_share_one_row_beyond_the_bound() {
        let mut e = Exporters::default();
        let st = |seq| DatagramStats {
            header: NetflowHeader { version: 5, sequence: seq, count: 1, ..NetflowHeader::default() },
            records: 1,
            ..DatagramStats::default()
        };
        for i in 0..(MAX_EXPORTERS as u32 + 100) {
            e.netflow_ok(IpAddr::from(i.to_be_bytes()), &st(0), 1);
        }
        let (rows, totals) = e.snapshot();
        assert_eq!(rows.len(), MAX_EXPORTERS + 1);
        let overflow = rows.iter().find(|r| r.domain == u32::MAX).expect("overflow row");
        assert_eq!((overflow.exporter, overflow.datagrams), (IpAddr::V6(Ipv6Addr::UNSPECIFIED), 100));
        assert_eq!(totals.iter().find(|(k, _)| *k == "datagrams").map(|t| t.1), Some(MAX_EXPORTERS as u64 + 100));
    }

    #[test]
    fn gaps_forward_backward_and_wrap() {
        let mut e = Exporter::new("netflow", "10.0.0.1".parse().unwrap(), 0);
        e.sequence(100, Some(30)); // first: nothing to compare with
        e.sequence(130, Some(30)); // as expected
        e.sequence(190, Some(30)); // 30 flows lost
        e.sequence(200, Some(30)); // behind
        e.sequence(u32::MAX - 9, Some(10)); // far jump
        e.sequence(0, Some(1)); // wrapped exactly
        assert_eq!((e.stats.seq_gaps_forward, e.stats.seq_gaps_backward), (1, 2));
    }
}
