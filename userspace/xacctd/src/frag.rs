//! IP fragment table: later fragments carry no L4 header, so they get the ports of their first
//! fragment, as pmacctd does (pmacctd also holds later fragments that arrive before the first
//! one). Shared by all workers behind a mutex: batches are spread round-robin, so the first and
//! later fragments of a datagram may meet on different workers, and fragments are rare enough
//! that the lock is never on the common path.
//!
//! Unlike pmacctd, fragments whose first fragment never comes are not lost: after
//! [`FRAG_TIMEOUT`] (or at shutdown) they are accounted with ports 0 and counted as orphans.

use hashbrown::HashMap;
use xacct_core::record::{Addr, Record};

/// Seconds (record time) a datagram's fragments are kept waiting for each other. The XDP
/// program keeps its first fragments' ports as long (`xacct_xdp::FRAG_TIMEOUT_NS`).
pub const FRAG_TIMEOUT: i64 = 60;
/// Table size at which expired entries are first pruned.
const PRUNE_AT: usize = 4096;
/// Datagrams followed at once, and later fragments held in all: a flood of fragments (every
/// one a new datagram id) must not grow the table without end. Past them a fragment is not
/// followed: a later fragment is accounted at once with ports 0, as an orphan, and counted
/// as untracked.
pub const MAX_DATAGRAMS: usize = 1 << 20;
pub const MAX_HELD: usize = 1 << 18;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragKey {
    pub src: Addr,
    pub dst: Addr,
    pub proto: u8,
    pub id: u32,
}

#[derive(Debug, Default)]
struct Entry {
    ports: Option<(u16, u16)>,
    pending: Vec<Record>,
    last: i64,
}

#[derive(Debug, Default)]
pub struct FragTable {
    map: HashMap<FragKey, Entry>,
    newest: i64,
    /// Size at which the next prune runs: twice what the last one left (at least
    /// [`PRUNE_AT`]), so pruning costs O(1) per fragment however many datagrams are live. A
    /// fixed threshold scanned the whole table on every fragment once more than that many
    /// datagrams were younger than the timeout (80 ms of a 2 s run with ~10k fragments in
    /// perf/xacct-vethbench's 100k-flow mix).
    prune_at: usize,
    /// Later fragments held now.
    held: usize,
    /// Fragments not followed because the table was full, since the last [`Self::take_untracked`].
    untracked: u64,
}

impl FragTable {
    /// A first fragment: remembers its ports and returns the later fragments that were waiting
    /// for it, ports filled in.
    pub fn first(&mut self, key: FragKey, r: &Record, orphans: &mut Vec<Record>) -> Vec<Record> {
        self.tick(r.ts, orphans);
        if !self.map.contains_key(&key) && self.map.len() >= MAX_DATAGRAMS {
            self.untracked += 1;
            return Vec::new();
        }
        let e = self.map.entry(key).or_default();
        e.ports = Some((r.src_port, r.dst_port));
        e.last = r.ts;
        let mut held = std::mem::take(&mut e.pending);
        self.held -= held.len();
        for h in &mut held {
            h.src_port = r.src_port;
            h.dst_port = r.dst_port;
        }
        held
    }

    /// A later fragment: its ports if the first fragment was seen (`Some`), otherwise it is
    /// held until the first fragment arrives or times out (`None`), or, with the table full,
    /// pushed to `orphans` at once.
    pub fn later(&mut self, key: FragKey, r: &Record, orphans: &mut Vec<Record>) -> Option<(u16, u16)> {
        self.tick(r.ts, orphans);
        if !self.map.contains_key(&key) && self.map.len() >= MAX_DATAGRAMS {
            self.untracked += 1;
            orphans.push(*r);
            return None;
        }
        let held = self.held;
        let e = self.map.entry(key).or_default();
        e.last = r.ts;
        match e.ports {
            Some(p) => Some(p),
            None if held >= MAX_HELD => {
                self.untracked += 1;
                orphans.push(*r);
                None
            }
            None => {
                e.pending.push(*r);
                self.held += 1;
                None
            }
        }
    }

    /// Fragments not followed for want of room since the last call.
    pub fn take_untracked(&mut self) -> u64 {
        std::mem::take(&mut self.untracked)
    }

    fn tick(&mut self, ts: i64, orphans: &mut Vec<Record>) {
        self.newest = self.newest.max(ts);
        if self.map.len() >= self.prune_at.max(PRUNE_AT) {
            let cutoff = self.newest - FRAG_TIMEOUT;
            let held = &mut self.held;
            self.map.retain(|_, e| {
                if e.last < cutoff {
                    *held -= e.pending.len();
                    orphans.append(&mut e.pending);
                    false
                } else {
                    true
                }
            });
            self.prune_at = (self.map.len() * 2).max(PRUNE_AT);
        }
    }

    /// Every fragment still waiting (end of input): accounted with ports 0.
    pub fn drain(&mut self, orphans: &mut Vec<Record>) {
        for (_, mut e) in self.map.drain() {
            orphans.append(&mut e.pending);
        }
        self.held = 0;
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frag(ts: i64, sp: u16, dp: u16) -> Record {
        Record {
            src_ip: Addr::V4([1, 1, 1, 1]),
            dst_ip: Addr::V4([2, 2, 2, 2]),
            proto: 17,
            src_port: sp,
            dst_port: dp,
            ts,
            packets: 1,
            bytes: 100,
            ..Record::default()
        }
    }

    const K: FragKey = FragKey { src: Addr::V4([1, 1, 1, 1]), dst: Addr::V4([2, 2, 2, 2]), proto: 17, id: 7 };

    #[test]
    fn the_kernel_keeps_fragments_as_long() {
        assert_eq!(xacct_xdp::FRAG_TIMEOUT_NS, FRAG_TIMEOUT as u64 * 1_000_000_000);
    }

    #[test]
    fn later_after_first_gets_ports() {
        let mut t = FragTable::default();
        let mut o = Vec::new();
        assert!(t.first(K, &frag(1, 53, 1234), &mut o).is_empty());
        assert_eq!(t.later(K, &frag(1, 0, 0), &mut o), Some((53, 1234)));
        assert!(o.is_empty());
    }

    #[test]
    fn later_before_first_is_held_then_released_with_ports() {
        let mut t = FragTable::default();
        let mut o = Vec::new();
        assert_eq!(t.later(K, &frag(1, 0, 0), &mut o), None);
        let held = t.first(K, &frag(1, 53, 1234), &mut o);
        assert_eq!(held.len(), 1);
        assert_eq!((held[0].src_port, held[0].dst_port), (53, 1234));
    }

    #[test]
    fn pruning_is_amortised_and_still_expires() {
        let mut t = FragTable::default();
        let mut o = Vec::new();
        let key = |id| FragKey { id, ..K };
        // More live datagrams than the first threshold: one prune, which keeps them all and
        // doubles the threshold, so the next fragments do not scan the table again.
        for id in 0..PRUNE_AT as u32 + 10 {
            t.first(key(id), &frag(1, 53, 1234), &mut o);
        }
        assert_eq!(t.len(), PRUNE_AT + 10);
        assert!(t.prune_at >= 2 * (PRUNE_AT - 1), "threshold {} after a prune that kept all", t.prune_at);
        // Past the timeout, the next prune (at the doubled size) drops the expired ones and
        // hands their held fragments over as orphans.
        t.later(key(u32::MAX), &frag(2, 0, 0), &mut o);
        let late = 3 + FRAG_TIMEOUT;
        let fresh = t.prune_at as u32;
        for id in 0..fresh {
            t.first(key(1_000_000 + id), &frag(late, 53, 1234), &mut o);
        }
        assert_eq!(t.len(), fresh as usize, "every expired entry pruned, every fresh one kept");
        assert_eq!(o.len(), 1, "the held later fragment is an orphan, not lost");
    }

    #[test]
    fn orphans_are_returned_not_lost() {
        let mut t = FragTable::default();
        let mut o = Vec::new();
        t.later(K, &frag(1, 0, 0), &mut o);
        t.drain(&mut o);
        assert_eq!(o.len(), 1);
        assert!(t.is_empty());
    }

    #[test]
    fn a_flood_of_unmatched_fragments_is_held_up_to_the_cap_then_accounted_at_once() {
        let mut t = FragTable::default();
        let mut o = Vec::new();
        let key = |id| FragKey { id, ..K };
        for id in 0..(MAX_HELD + 10) as u32 {
            assert_eq!(t.later(key(id), &frag(1, 0, 0), &mut o), None);
        }
        assert_eq!((o.len(), t.take_untracked(), t.take_untracked()), (10, 10, 0));
        // A first fragment releases its held ones and makes room again.
        let released = t.first(key(0), &frag(1, 53, 53), &mut o);
        assert_eq!(released.len(), 1);
        assert!(t.later(key(u32::MAX - 1), &frag(1, 0, 0), &mut o).is_none());
        assert_eq!((o.len(), t.take_untracked()), (10, 0));
        t.drain(&mut o);
        assert_eq!(o.len(), 10 + MAX_HELD);
    }
}
