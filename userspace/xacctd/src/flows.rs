//! The `flows` counter for packet sources: a packet that starts a flow carries `flows = 1`.
//!
//! pmacctd semantics (CONFIG-KEYS: `pmacctd_flow_lifetime`, `pmacctd_flow_tcp_lifetime`): a
//! flow is the bidirectional 5-tuple; it expires after the lifetime without packets. In
//! addition a TCP flow that saw FIN or RST is restarted by the next SYN, so reused ports are
//! new connections. (pmacctd 1.7.7 itself crashes when `flows` is aggregated, so these rules
//! cannot be compared against it; they are stated here and tested in tests/flows.rs.)
//!
//! Batches are spread over workers round-robin, so both directions of a flow may be seen by
//! different workers: the state is shared, split over many independently locked shards so
//! workers rarely meet on one lock. Only built when some plugin aggregates `flows`.

use hashbrown::HashMap;
use std::sync::Mutex;
use xacct_core::record::{Addr, Record};

const SHARDS: usize = 64;
/// Flows followed at once (per shard: this over [`SHARDS`]). A flood of new five-tuples must
/// not grow the state without end: past it, with expired flows pruned, a packet of a flow not
/// followed counts as a flow start (`flows` over-counts rather than under-counts) and as
/// untracked.
pub const MAX_FLOWS: usize = 1 << 22;
const TCP: u8 = 6;
const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FlowKey {
    a: (Addr, u16),
    b: (Addr, u16),
    proto: u8,
}

impl FlowKey {
    /// The same key for both directions.
    fn of(r: &Record) -> FlowKey {
        let x = (r.src_ip, r.src_port);
        let y = (r.dst_ip, r.dst_port);
        let (a, b) = if x <= y { (x, y) } else { (y, x) };
        FlowKey { a, b, proto: r.proto }
    }
}

#[derive(Debug, Clone, Copy)]
struct FlowState {
    last: i64,
    closed: bool,
}

#[derive(Debug, Default)]
struct Shard {
    map: HashMap<FlowKey, FlowState>,
    prune_at: usize,
}

/// Shared flow state.
#[derive(Debug)]
pub struct FlowTracker {
    shards: Vec<Mutex<Shard>>,
    lifetime: i64,
    tcp_lifetime: i64,
    hasher: foldhash::fast::FixedState,
}

impl FlowTracker {
    pub fn new(lifetime: u64, tcp_lifetime: u64) -> FlowTracker {
        FlowTracker {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard { map: HashMap::new(), prune_at: 4096 })).collect(),
            lifetime: lifetime as i64,
            tcp_lifetime: tcp_lifetime as i64,
            hasher: foldhash::fast::FixedState::with_seed(0xf10e),
        }
    }

    /// Sets `r.flows` to 1 when `r` starts a flow, 0 otherwise. False when the flow could not
    /// be followed (the state is full; see [`MAX_FLOWS`]).
    pub fn track(&self, r: &mut Record) -> bool {
        use std::hash::BuildHasher;
        let key = FlowKey::of(r);
        let i = self.hasher.hash_one(key) as usize % SHARDS;
        let lifetime = if r.proto == TCP { self.tcp_lifetime } else { self.lifetime };
        let syn_only = r.proto == TCP && r.tcp_flags & (SYN | ACK) == SYN;
        let ends = r.proto == TCP && r.tcp_flags & (FIN | RST) != 0;
        let mut shard = self.shards[i].lock().unwrap_or_else(|e| e.into_inner());
        let new = match shard.map.get_mut(&key) {
            Some(s) => {
                let new = r.ts - s.last > lifetime || (s.closed && syn_only);
                s.last = s.last.max(r.ts);
                s.closed = if new { ends } else { s.closed || ends };
                new
            }
            None => {
                if shard.map.len() >= MAX_FLOWS / SHARDS {
                    let keep = self.tcp_lifetime.max(self.lifetime);
                    let now = r.ts;
                    shard.map.retain(|_, s| now - s.last <= keep);
                }
                if shard.map.len() >= MAX_FLOWS / SHARDS {
                    r.flows = 1;
                    return false;
                }
                shard.map.insert(key, FlowState { last: r.ts, closed: ends });
                true
            }
        };
        if shard.map.len() >= shard.prune_at {
            // Expired flows are forgotten; the threshold doubles if most are still live so
            // pruning stays amortised O(1) per packet.
            let now = r.ts;
            let keep = self.tcp_lifetime.max(self.lifetime);
            shard.map.retain(|_, s| now - s.last <= keep);
            shard.prune_at = (shard.map.len() * 2).max(4096);
        }
        r.flows = new as u64;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(ts: i64, src: u8, dst: u8, sp: u16, dp: u16, proto: u8, flags: u8) -> Record {
        Record {
            src_ip: Addr::V4([10, 0, 0, src]),
            dst_ip: Addr::V4([10, 0, 0, dst]),
            src_port: sp,
            dst_port: dp,
            proto,
            tcp_flags: flags,
            ts,
            packets: 1,
            ..Record::default()
        }
    }

    fn starts(t: &FlowTracker, mut r: Record) -> u64 {
        assert!(t.track(&mut r));
        r.flows
    }

    #[test]
    fn both_directions_are_one_flow() {
        let t = FlowTracker::new(60, 60);
        assert_eq!(starts(&t, pkt(0, 1, 2, 1000, 80, TCP, SYN)), 1);
        assert_eq!(starts(&t, pkt(0, 2, 1, 80, 1000, TCP, SYN | ACK)), 0);
        assert_eq!(starts(&t, pkt(1, 1, 2, 1000, 80, TCP, ACK)), 0);
    }

    #[test]
    fn idle_longer_than_lifetime_starts_a_new_flow() {
        let t = FlowTracker::new(60, 60);
        assert_eq!(starts(&t, pkt(0, 1, 2, 53, 53, 17, 0)), 1);
        assert_eq!(starts(&t, pkt(60, 1, 2, 53, 53, 17, 0)), 0);
        assert_eq!(starts(&t, pkt(121, 1, 2, 53, 53, 17, 0)), 1);
    }

    #[test]
    fn syn_after_fin_reuses_ports_as_a_new_connection() {
        let t = FlowTracker::new(60, 60);
        assert_eq!(starts(&t, pkt(0, 1, 2, 1000, 80, TCP, SYN)), 1);
        assert_eq!(starts(&t, pkt(1, 1, 2, 1000, 80, TCP, FIN | ACK)), 0);
        assert_eq!(starts(&t, pkt(1, 2, 1, 80, 1000, TCP, FIN | ACK)), 0);
        assert_eq!(starts(&t, pkt(2, 1, 2, 1000, 80, TCP, SYN)), 1);
    }
}
