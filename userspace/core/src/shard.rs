//! Worker-side shard tables: open addressing with linear probing over one-byte tags, built for
//! batch updates that overlap their cache misses.
//!
//! Why not hashbrown here (the plugins' merged tables are hashbrown maps): a worker updates its
//! shard once per packet, and with 10^5+ live flows nearly every update misses the cache. To
//! hide that latency the worker first computes the slots of a whole batch and touches them
//! (loads whose results nothing waits for, so the CPU keeps dozens in flight), then updates
//! them. That needs the slot address before the update, which hashbrown does not expose, and
//! safe Rust has no prefetch instruction outside `unsafe`; plain loads do the same job here.

use crate::aggregate::{Counters, KeyBuf};
use std::hash::BuildHasher;

const MIN_CAPACITY: usize = 1024;

/// One shard for keys of `W` words.
#[derive(Debug, Clone)]
pub struct Shard<const W: usize> {
    /// 0 = empty; otherwise 0x80 | top 7 bits of the hash.
    tags: Vec<u8>,
    slots: Vec<([u64; W], Counters)>,
    len: usize,
    /// New keys are refused (see [`Shard::add_batch`]) once this many entries are held.
    limit: usize,
    hasher: foldhash::fast::FixedState,
}

impl<const W: usize> Default for Shard<W> {
    fn default() -> Self {
        Shard::with_capacity(MIN_CAPACITY)
    }
}

impl<const W: usize> Shard<W> {
    pub fn with_capacity(cap: usize) -> Self {
        let cap = cap.max(MIN_CAPACITY).next_power_of_two();
        Shard {
            tags: vec![0; cap],
            slots: vec![([0; W], Counters::default()); cap],
            len: 0,
            limit: usize::MAX,
            hasher: foldhash::fast::FixedState::with_seed(0x5eed_0f5a_4d00),
        }
    }

    #[inline]
    fn hash(&self, k: &[u64; W]) -> u64 {
        self.hasher.hash_one(k)
    }

    #[inline]
    fn tag(h: u64) -> u8 {
        0x80 | (h >> 57) as u8
    }

    #[inline]
    fn mask(&self) -> usize {
        self.tags.len() - 1
    }

    /// Adds `c` to `k`'s entry; a new key is refused (false) when `forced` is false and the
    /// shard holds `limit` entries. The check sits on the new-key path only: updates of
    /// existing entries, the common case, never look at it.
    #[inline]
    fn insert_hashed(&mut self, k: &[u64; W], h: u64, c: &Counters, forced: bool) -> bool {
        if (self.len + 1) * 4 > self.tags.len() * 3 {
            self.grow();
        }
        let mask = self.mask();
        let tag = Self::tag(h);
        let mut i = h as usize & mask;
        loop {
            let t = self.tags[i];
            if t == 0 {
                if self.len >= self.limit && !forced {
                    return false;
                }
                self.tags[i] = tag;
                self.slots[i] = (*k, *c);
                self.len += 1;
                return true;
            }
            if t == tag && self.slots[i].0 == *k {
                self.slots[i].1.add(c);
                return true;
            }
            i = (i + 1) & mask;
        }
    }

    fn grow(&mut self) {
        let mut bigger = Shard::<W>::with_capacity(self.tags.len() * 2);
        for (t, (k, c)) in self.tags.iter().zip(&self.slots) {
            if *t != 0 {
                let h = bigger.hash(k);
                bigger.insert_hashed(k, h, c, true);
            }
        }
        bigger.limit = self.limit;
        *self = bigger;
    }

    /// Adds `c` to `k`'s entry, whatever the limit.
    #[inline]
    pub fn add(&mut self, k: &[u64; W], c: &Counters) {
        let h = self.hash(k);
        self.insert_hashed(k, h, c, true);
    }

    /// Adds `n = counters.len()` entries whose keys are `keys[i*W..(i+1)*W]`, touching every
    /// target slot before updating any so that their cache misses overlap. The indexes of
    /// entries refused because the shard is at its limit are pushed to `refused` (their
    /// hashes stay in `hashes`), for the caller to fold into an overflow entry.
    pub fn add_batch(&mut self, keys: &[u64], counters: &[Counters], hashes: &mut Vec<u64>, refused: &mut Vec<u32>) {
        hashes.clear();
        let mut sink = 0u64;
        let mask = self.mask();
        for k in keys.chunks_exact(W) {
            let k: &[u64; W] = k.try_into().expect("chunks_exact(W)");
            let h = self.hash(k);
            hashes.push(h);
            let i = h as usize & mask;
            // Loads whose value only feeds `sink`: nothing stalls on them.
            sink ^= self.tags[i] as u64 ^ self.slots[i].0[0];
        }
        std::hint::black_box(sink);
        for (i, ((k, c), h)) in keys.chunks_exact(W).zip(counters).zip(hashes.iter()).enumerate() {
            let k: &[u64; W] = k.try_into().expect("chunks_exact(W)");
            if !self.insert_hashed(k, *h, c, false) {
                refused.push(i as u32);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Empties the shard, keeping its allocation.
    pub fn clear(&mut self) {
        if self.len > 0 {
            self.tags.iter_mut().for_each(|t| *t = 0);
            self.len = 0;
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u64; W], &Counters)> {
        self.tags.iter().zip(&self.slots).filter(|(t, _)| **t != 0).map(|(_, (k, c))| (k, c))
    }

    /// Bytes the shard occupies.
    pub fn allocated_bytes(&self) -> usize {
        self.tags.len() * (1 + std::mem::size_of::<([u64; W], Counters)>())
    }
}

macro_rules! shards {
    ($($v:ident = $w:literal),*) => {
        /// A worker shard with its key width chosen at construction (same widths as `Table`).
        #[derive(Debug, Clone)]
        pub enum ShardTable {
            $($v(Shard<$w>),)*
        }

        impl ShardTable {
            pub fn with_words(words: usize) -> ShardTable {
                $(if words <= $w { return ShardTable::$v(Shard::default()); })*
                panic!("key of {words} words exceeds MAX_KEY_WORDS")
            }

            /// A shard that holds `entries` without growing, and admits new keys only while
            /// it holds fewer than `limit`.
            pub fn with_words_for(words: usize, entries: usize, limit: usize) -> ShardTable {
                let cap = entries.min(limit).saturating_mul(4) / 3 + 1;
                $(if words <= $w {
                    let mut s = Shard::with_capacity(cap);
                    s.limit = limit;
                    return ShardTable::$v(s);
                })*
                panic!("key of {words} words exceeds MAX_KEY_WORDS")
            }

            /// Bytes one slot of a shard for `words`-word keys takes.
            pub fn slot_bytes(words: usize) -> usize {
                $(if words <= $w { return std::mem::size_of::<([u64; $w], Counters)>() + 1; })*
                panic!("key of {words} words exceeds MAX_KEY_WORDS")
            }

            /// New keys are admitted while the shard holds fewer entries than this.
            pub fn limit(&self) -> usize {
                match self { $(ShardTable::$v(s) => s.limit,)* }
            }

            pub fn set_limit(&mut self, limit: usize) {
                match self { $(ShardTable::$v(s) => s.limit = limit,)* }
            }

            /// Key width in words as stored (the `Table` width for the same aggregate).
            pub fn stride(&self) -> usize {
                match self { $(ShardTable::$v(_) => $w,)* }
            }

            #[inline]
            pub fn add(&mut self, key: &KeyBuf, c: &Counters) {
                match self {
                    $(ShardTable::$v(s) => s.add(key[..$w].try_into().expect("width fits KeyBuf"), c),)*
                }
            }

            /// See [`Shard::add_batch`]; `keys` holds `stride()` words per entry.
            pub fn add_batch(&mut self, keys: &[u64], counters: &[Counters], hashes: &mut Vec<u64>, refused: &mut Vec<u32>) {
                match self { $(ShardTable::$v(s) => s.add_batch(keys, counters, hashes, refused),)* }
            }

            pub fn len(&self) -> usize {
                match self { $(ShardTable::$v(s) => s.len(),)* }
            }

            pub fn is_empty(&self) -> bool {
                self.len() == 0
            }

            /// Slots allocated.
            pub fn capacity(&self) -> usize {
                match self { $(ShardTable::$v(s) => s.tags.len(),)* }
            }

            pub fn clear(&mut self) {
                match self { $(ShardTable::$v(s) => s.clear(),)* }
            }

            pub fn for_each(&self, mut f: impl FnMut(&[u64], &Counters)) {
                match self { $(ShardTable::$v(s) => for (k, c) in s.iter() { f(&k[..], c) },)* }
            }

            pub fn allocated_bytes(&self) -> usize {
                match self { $(ShardTable::$v(s) => s.allocated_bytes(),)* }
            }
        }
    };
}

shards!(W1 = 1, W2 = 2, W3 = 3, W4 = 4, W5 = 5, W6 = 6, W8 = 8, W10 = 10, W12 = 12, W14 = 14, W18 = 18, W20 = 20);

#[cfg(test)]
mod tests {
    use super::*;

    fn c(p: u64) -> Counters {
        Counters { packets: p, bytes: p * 10, flows: 0, tcp_flags: p as u8, ..Counters::default() }
    }

    #[test]
    fn single_and_batch_adds_agree_with_a_reference_map_through_growth() {
        let mut s = ShardTable::with_words(5);
        let mut b = ShardTable::with_words(5);
        let mut reference = std::collections::HashMap::new();
        let mut keys = Vec::new();
        let mut ctrs = Vec::new();
        let mut hashes = Vec::new();
        for i in 0u64..50_000 {
            let k = [i % 7919, i % 13, 0, 0, 1];
            let mut kb: KeyBuf = [0; crate::aggregate::MAX_KEY_WORDS];
            kb[..5].copy_from_slice(&k);
            s.add(&kb, &c(i));
            keys.extend_from_slice(&k);
            ctrs.push(c(i));
            if ctrs.len() == 256 {
                b.add_batch(&keys, &ctrs, &mut hashes, &mut Vec::new());
                keys.clear();
                ctrs.clear();
            }
            reference.entry(k).or_insert_with(Counters::default).add(&c(i));
        }
        b.add_batch(&keys, &ctrs, &mut hashes, &mut Vec::new());
        for t in [&s, &b] {
            assert_eq!(t.len(), reference.len());
            let mut n = 0;
            t.for_each(|k, got| {
                let k: [u64; 5] = k.try_into().unwrap();
                assert_eq!(reference.get(&k), Some(got));
                n += 1;
            });
            assert_eq!(n, reference.len());
        }
    }

    #[test]
    fn a_full_shard_refuses_new_keys_only_and_takes_forced_ones() {
        let mut s = ShardTable::with_words_for(2, 0, 100);
        let mut hashes = Vec::new();
        let mut refused = Vec::new();
        let mut keys = Vec::new();
        let mut ctrs = Vec::new();
        for i in 0u64..150 {
            keys.extend_from_slice(&[i, 0]);
            ctrs.push(c(1));
        }
        // The first 100 keys again: they are present, so they are counted, never refused.
        for i in 0u64..100 {
            keys.extend_from_slice(&[i, 0]);
            ctrs.push(c(1));
        }
        s.add_batch(&keys, &ctrs, &mut hashes, &mut refused);
        assert_eq!(s.len(), 100);
        assert_eq!(refused, (100u32..150).collect::<Vec<_>>());
        let mut total = 0;
        s.for_each(|_, c| total += c.packets);
        assert_eq!(total, 200);
        // Forced adds (the overflow entry) go in past the limit, through growth.
        let mut kb: KeyBuf = [0; crate::aggregate::MAX_KEY_WORDS];
        for i in 0..1000u64 {
            kb[0] = 1 << 40 | i;
            s.add(&kb, &c(1));
        }
        assert_eq!(s.len(), 1100);
        assert_eq!(s.limit(), 100);
    }

    #[test]
    fn clear_keeps_capacity_and_empties() {
        let mut s = ShardTable::with_words(1);
        let kb: KeyBuf = [7; crate::aggregate::MAX_KEY_WORDS];
        s.add(&kb, &c(1));
        let bytes = s.allocated_bytes();
        s.clear();
        assert!(s.is_empty());
        assert_eq!(s.allocated_bytes(), bytes);
        s.for_each(|_, _| panic!("cleared shard has entries"));
    }
}
