//! The XDP pre-aggregation source: the kernel counts packets per flow key; this source harvests
//! the flow maps (exactly: see `xacct_xdp::XdpProgram::harvest`) at a fixed interval and hands
//! the flows to the workers as pre-aggregated [`Record`]s, which they filter and project like
//! packets. Packets the program sends to userspace arrive through AF_XDP sources instead.

use crate::batch::{Batch, BatchSink};
use crate::pcap_source::SourceEnd;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};
use xacct_core::record::{Addr, Record};
use xacct_core::stats::SourceStats;
use xacct_wire::LinkType;
use xacct_xdp::{FlowKey, FlowValue, XdpCounter, XdpError, XdpProgram};

/// Default interval between harvests (`xdp_harvest_interval`): bounds both the age of what
/// plugins see and the number of flows the kernel map must hold between harvests.
pub const HARVEST_INTERVAL: Duration = Duration::from_millis(500);

/// The attached XDP program and what is needed to turn its flows into records.
pub struct XdpHarvester {
    prog: XdpProgram,
    what: String,
    interval: Duration,
}

impl XdpHarvester {
    pub fn new(prog: XdpProgram, what: String) -> XdpHarvester {
        XdpHarvester { prog, what, interval: HARVEST_INTERVAL }
    }

    /// Harvests every `interval` instead of [`HARVEST_INTERVAL`].
    pub fn with_interval(mut self, interval: Duration) -> XdpHarvester {
        self.interval = interval;
        self
    }

    pub fn describe(&self) -> &str {
        &self.what
    }

    /// Harvests every interval until `stop`, then once more so nothing counted in
    /// the kernel is left behind.
    pub fn run(
        &mut self,
        id: usize,
        sink: &mut BatchSink,
        stop: &AtomicBool,
        stats: &SourceStats,
    ) -> Result<SourceEnd, XdpError> {
        let mut next = Instant::now() + self.interval;
        loop {
            let stopping = stop.load(Relaxed);
            if stopping || Instant::now() >= next {
                if !self.harvest_once(id, sink, stats)? {
                    return Ok(SourceEnd::WorkersGone);
                }
                self.update_stats(stats);
                if stopping {
                    return Ok(SourceEnd::Stopped);
                }
                next = Instant::now() + self.interval;
            }
            // Short sleeps so that a stop is seen quickly whatever the interval.
            std::thread::sleep(next.saturating_duration_since(Instant::now()).min(Duration::from_millis(20)));
        }
    }

    /// One harvest into batches of records. False when the workers are gone.
    fn harvest_once(&mut self, id: usize, sink: &mut BatchSink, stats: &SourceStats) -> Result<bool, XdpError> {
        let clock = Clock::now();
        let mut batch = sink.empty_for_records(LinkType::Ethernet, id);
        let mut alive = true;
        // Each batch goes to the workers as soon as it is full, so that they work while the
        // harvest goes on and hand it back to be reused. Gathered until the end of the harvest,
        // every batch of a harvest of many flows was a fresh allocation (100k flows: 400
        // batches, 40 MB faulted in and freed again each time, as much CPU as the drain).
        let mut send = |b: Batch, sink: &mut BatchSink| {
            if alive && !b.is_empty() {
                stats.received.fetch_add(b.len() as u64, Relaxed);
                alive = sink.send(b);
            }
        };
        self.prog.harvest(|k, v| {
            batch.records.push(record_of(k, v, &clock));
            if batch.is_full() {
                let full = std::mem::replace(&mut batch, sink.empty_for_records(LinkType::Ethernet, id));
                send(full, sink);
            }
        })?;
        send(batch, sink);
        Ok(alive)
    }

    /// Copies the program's counters into the source's `extra` counters.
    pub fn update_stats(&mut self, stats: &SourceStats) {
        if let Ok(c) = self.prog.counters() {
            let mut v: Vec<(&'static str, u64)> = XdpCounter::ALL.iter().map(|x| (x.name(), c.get(*x))).collect();
            // The program's live cost as the kernel measures it (with kernel.bpf_stats_enabled).
            if let Ok((runs, time)) = self.prog.run_stats() {
                if runs > 0 {
                    v.push(("xdp_runs", runs));
                    v.push(("xdp_run_ns", time.as_nanos() as u64));
                }
            }
            if let Ok(mut e) = stats.extra.lock() {
                *e = v;
            }
        }
    }
}

/// Wall and monotonic clocks read together, to date flows the kernel stamped with
/// `bpf_ktime_get_ns` (CLOCK_MONOTONIC).
struct Clock {
    wall: i64,
    mono_ns: u64,
}

impl Clock {
    fn now() -> Clock {
        let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        let mono_ns = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
            .map_or(0, |t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64);
        Clock { wall, mono_ns }
    }

    /// Wall-clock seconds of a monotonic kernel timestamp.
    fn wall_of(&self, ns: u64) -> i64 {
        self.wall - (self.mono_ns.saturating_sub(ns) / 1_000_000_000) as i64
    }
}

/// A kernel flow as a record: counters as counted, fields the key did not keep stay zero.
fn record_of(k: &FlowKey, v: &FlowValue, clock: &Clock) -> Record {
    let addr = |a: &[u8; 16]| match k.family {
        4 => Addr::V4([a[0], a[1], a[2], a[3]]),
        6 => Addr::V6(*a),
        _ => Addr::None,
    };
    let vlan = k.vlan();
    // The encapsulation fields are kept when a plugin filters (`KEEP_ENCAP`); otherwise no
    // filter reads them, and the tag count is at least what the VLAN id shows.
    let link_etype = if k.encap & xacct_xdp::ENCAP_PPPOE != 0 {
        0x8864
    } else if k.encap & xacct_xdp::ENCAP_MPLS_MULTICAST != 0 {
        0x8848
    } else if k.mpls_depth != 0 {
        0x8847
    } else {
        k.ethertype()
    };
    Record {
        src_mac: k.src_mac,
        dst_mac: k.dst_mac,
        vlan,
        vlan_depth: k.vlan_depth.max(u8::from(vlan != 0)),
        etype: k.ethertype(),
        link_etype,
        mpls_top: k.mpls_top(),
        mpls_bottom: k.mpls_bottom(),
        mpls_depth: k.mpls_depth,
        pppoe_session: k.pppoe_session(),
        src_ip: addr(&k.src_addr),
        dst_ip: addr(&k.dst_addr),
        src_port: k.src_port(),
        dst_port: k.dst_port(),
        proto: k.proto,
        tos: k.tos,
        tcp_flags: v.tcp_flags as u8,
        packets: v.packets,
        bytes: v.bytes,
        ts: clock.wall_of(v.last_seen_ns),
        first_ts: clock.wall_of(v.first_seen_ns),
        ..Record::default()
    }
}
