//! Aggregation: an `aggregate` list compiles once into a [`Projector`] that packs the chosen
//! primitives of a [`Record`] into a compact fixed-width key; [`Table`] maps keys to
//! [`Counters`].
//!
//! Keys are `[u64; W]` with W picked per aggregate (see [`Table`]), so a `src_host` table stores
//! 24-byte keys while a 5-tuple table stores 40-byte keys, and hashing/comparing touches only
//! the words the aggregate needs. Hand-written because no crate offers a projection of a
//! runtime-chosen field set into fixed-width hashable keys; the maps themselves are `hashbrown`.

use crate::record::{Addr, Record};
use std::fmt;

/// An aggregation primitive as named in pmacct's `aggregate` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Primitive {
    Tag,
    Tag2,
    /// pre_tag_map's `set_label` (an interned id in keys; see [`crate::tag::labels`]).
    Label,
    SrcMac,
    DstMac,
    Vlan,
    SrcAs,
    DstAs,
    SrcHost,
    DstHost,
    SrcNet,
    DstNet,
    SrcMask,
    DstMask,
    SrcPort,
    DstPort,
    TcpFlags,
    Proto,
    Tos,
    Etype,
    InIface,
    OutIface,
    MplsLabelTop,
    MplsLabelBottom,
    MplsStackDepth,
    Flows,
    SumHost,
    SumNet,
    SumAs,
    SumPort,
    SumMac,
    None,
}

impl Primitive {
    pub const ALL: &'static [(&'static str, Primitive)] = &[
        ("tag", Primitive::Tag),
        ("tag2", Primitive::Tag2),
        ("label", Primitive::Label),
        ("src_mac", Primitive::SrcMac),
        ("dst_mac", Primitive::DstMac),
        ("vlan", Primitive::Vlan),
        ("src_as", Primitive::SrcAs),
        ("dst_as", Primitive::DstAs),
        ("src_host", Primitive::SrcHost),
        ("dst_host", Primitive::DstHost),
        ("src_net", Primitive::SrcNet),
        ("dst_net", Primitive::DstNet),
        ("src_mask", Primitive::SrcMask),
        ("dst_mask", Primitive::DstMask),
        ("src_port", Primitive::SrcPort),
        ("dst_port", Primitive::DstPort),
        ("tcpflags", Primitive::TcpFlags),
        ("proto", Primitive::Proto),
        ("tos", Primitive::Tos),
        ("etype", Primitive::Etype),
        ("in_iface", Primitive::InIface),
        ("out_iface", Primitive::OutIface),
        ("mpls_label_top", Primitive::MplsLabelTop),
        ("mpls_label_bottom", Primitive::MplsLabelBottom),
        ("mpls_stack_depth", Primitive::MplsStackDepth),
        ("flows", Primitive::Flows),
        ("sum_host", Primitive::SumHost),
        ("sum_net", Primitive::SumNet),
        ("sum_as", Primitive::SumAs),
        ("sum_port", Primitive::SumPort),
        ("sum_mac", Primitive::SumMac),
        ("none", Primitive::None),
    ];

    pub fn from_name(s: &str) -> Option<Primitive> {
        let s = s.trim().to_ascii_lowercase();
        Primitive::ALL.iter().find(|(n, _)| *n == s).map(|(_, p)| *p)
    }

    pub fn name(self) -> &'static str {
        Primitive::ALL.iter().find(|(_, p)| *p == self).map(|(n, _)| *n).unwrap_or("?")
    }

    fn is_sum(self) -> bool {
        matches!(
            self,
            Primitive::SumHost | Primitive::SumNet | Primitive::SumAs | Primitive::SumPort | Primitive::SumMac
        )
    }
}

impl fmt::Display for Primitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AggregateError {
    #[error("unknown aggregation primitive '{0}'")]
    Unknown(String),
    #[error("'{0}' is not supported yet")]
    NotSupported(String),
    #[error("'{0}' must be the only primitive of its aggregate")]
    MustStandAlone(Primitive),
    #[error("empty aggregate")]
    Empty,
}

/// Which field a `sum_*` primitive folds both directions into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SumKind {
    Host,
    Net,
    As,
    Port,
    Mac,
}

/// A parsed `aggregate` list, in pmacct's canonical (output) order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aggregate {
    prims: Vec<Primitive>,
    sum: Option<SumKind>,
}

impl Aggregate {
    /// Parses `src_host, dst_host, …` (comma and/or space separated).
    pub fn parse(s: &str) -> Result<Aggregate, AggregateError> {
        let mut prims = Vec::new();
        for name in s.split([',', ' ', '\t']).filter(|n| !n.trim().is_empty()) {
            let p = Primitive::from_name(name).ok_or_else(|| {
                let n = name.trim().to_string();
                // Names pmacct knows but later issues implement are refused distinctly.
                const LATER: &[&str] = &[
                    "label",
                    "class",
                    "cos",
                    "std_comm",
                    "ext_comm",
                    "lrg_comm",
                    "as_path",
                    "peer_src_ip",
                    "peer_dst_ip",
                    "peer_src_as",
                    "peer_dst_as",
                    "local_pref",
                    "med",
                    "sampling_rate",
                    "timestamp_start",
                    "timestamp_end",
                    "timestamp_arrival",
                    "src_host_country",
                    "dst_host_country",
                    "mpls_vpn_rd",
                    "export_proto_seqno",
                    "export_proto_version",
                ];
                if LATER.contains(&n.to_ascii_lowercase().as_str()) {
                    AggregateError::NotSupported(n)
                } else {
                    AggregateError::Unknown(n)
                }
            })?;
            if !prims.contains(&p) {
                prims.push(p);
            }
        }
        if prims.is_empty() {
            return Err(AggregateError::Empty);
        }
        let sum = prims.iter().copied().find(|p| p.is_sum());
        if let Some(s) = sum {
            if prims.len() > 1 {
                return Err(AggregateError::MustStandAlone(s));
            }
        }
        if prims.contains(&Primitive::None) && prims.len() > 1 {
            return Err(AggregateError::MustStandAlone(Primitive::None));
        }
        prims.sort();
        let sum = sum.map(|p| match p {
            Primitive::SumHost => SumKind::Host,
            Primitive::SumNet => SumKind::Net,
            Primitive::SumAs => SumKind::As,
            Primitive::SumPort => SumKind::Port,
            _ => SumKind::Mac,
        });
        Ok(Aggregate { prims, sum })
    }

    pub fn primitives(&self) -> &[Primitive] {
        &self.prims
    }

    pub fn has(&self, p: Primitive) -> bool {
        self.prims.contains(&p)
    }

    pub fn sum(&self) -> Option<SumKind> {
        self.sum
    }

    /// Whether records must have nets/masks/ASes resolved (networks_file lookup) for this table.
    pub fn needs_nets(&self) -> bool {
        self.prims.iter().any(|p| {
            matches!(
                p,
                Primitive::SrcNet
                    | Primitive::DstNet
                    | Primitive::SrcMask
                    | Primitive::DstMask
                    | Primitive::SrcAs
                    | Primitive::DstAs
                    | Primitive::SumNet
                    | Primitive::SumAs
            )
        })
    }
}

impl fmt::Display for Aggregate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = self.prims.iter().map(|p| p.name()).collect();
        f.write_str(&names.join(","))
    }
}

/// Counters kept per table entry. `tcp_flags` is OR-ed, as pmacct does until the entry is
/// flushed. Tables that keep time (exporters' flow keys) also keep the entry's last second
/// and how many seconds before it the first one was; both fit where padding was, so an
/// entry is no larger for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    pub packets: u64,
    pub bytes: u64,
    pub flows: u64,
    /// Unix second of the latest record (0: not kept).
    pub last: u32,
    /// Seconds from the first record to `last` (saturates at 18 hours, far beyond any time
    /// an entry stays in a shard or a harvest).
    pub span: u16,
    pub tcp_flags: u8,
}

impl Counters {
    #[inline]
    pub fn add(&mut self, o: &Counters) {
        self.packets += o.packets;
        self.bytes += o.bytes;
        self.flows += o.flows;
        self.tcp_flags |= o.tcp_flags;
        if o.last != 0 {
            if self.last == 0 {
                (self.last, self.span) = (o.last, o.span);
            } else {
                let first = self.first().min(o.first());
                self.last = self.last.max(o.last);
                self.span = (self.last - first).min(u32::from(u16::MAX)) as u16;
            }
        }
    }

    /// Unix second of the earliest record (0: not kept).
    #[inline]
    pub fn first(&self) -> u32 {
        self.last.saturating_sub(u32::from(self.span))
    }

    #[inline]
    pub fn of(r: &Record, with_flags: bool) -> Counters {
        Counters {
            packets: r.packets,
            bytes: r.bytes,
            flows: r.flows,
            tcp_flags: if with_flags { r.tcp_flags } else { 0 },
            ..Counters::default()
        }
    }

    /// [`Counters::of`] with the record's time: its second, and for a record spanning time
    /// (an XDP pre-aggregate) its first second too.
    #[inline]
    pub fn timed(r: &Record, with_flags: bool) -> Counters {
        let last = r.ts.clamp(1, i64::from(u32::MAX)) as u32;
        let first = if r.first_ts > 0 { r.first_ts.clamp(1, i64::from(last)) as u32 } else { last };
        Counters { last, span: (last - first).min(u32::from(u16::MAX)) as u16, ..Counters::of(r, with_flags) }
    }
}

/// Largest key in words: every primitive at once plus a time bin.
pub const MAX_KEY_WORDS: usize = 20;
/// A key under construction.
pub type KeyBuf = [u64; MAX_KEY_WORDS];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    SrcIp,
    DstIp,
    SrcNet,
    DstNet,
    SrcMask,
    DstMask,
    SrcAs,
    DstAs,
    SrcPort,
    DstPort,
    Proto,
    Tos,
    Etype,
    SrcMac,
    DstMac,
    Vlan,
    InIface,
    OutIface,
    Tag,
    Tag2,
    Label,
    MplsTop,
    MplsBottom,
    MplsDepth,
    Bin,
    /// 1 in the overflow entry (see [`Projector::overflow_of`]), 0 in every other key.
    Overflow,
}

impl Field {
    const fn width(self) -> usize {
        match self {
            // One family byte (0 none, 4, 6) then 16 address bytes.
            Field::SrcIp | Field::DstIp | Field::SrcNet | Field::DstNet => 17,
            Field::SrcMask | Field::DstMask | Field::Proto | Field::Tos | Field::MplsDepth | Field::Overflow => 1,
            Field::SrcPort | Field::DstPort | Field::Etype | Field::Vlan => 2,
            Field::SrcAs
            | Field::DstAs
            | Field::InIface
            | Field::OutIface
            | Field::MplsTop
            | Field::MplsBottom
            | Field::Label => 4,
            Field::SrcMac | Field::DstMac => 6,
            Field::Tag | Field::Tag2 | Field::Bin => 8,
        }
    }
}

fn put_addr(buf: &mut [u8], a: &Addr) {
    match a {
        Addr::None => buf[0] = 0,
        Addr::V4(b) => {
            buf[0] = 4;
            buf[1..5].copy_from_slice(b);
        }
        Addr::V6(b) => {
            buf[0] = 6;
            buf[1..17].copy_from_slice(b);
        }
    }
}

fn get_addr(buf: &[u8]) -> Addr {
    match buf[0] {
        4 => Addr::V4(buf[1..5].try_into().unwrap_or_default()),
        6 => Addr::V6(buf[1..17].try_into().unwrap_or_default()),
        _ => Addr::None,
    }
}

/// Byte `i` of a key laid out as [`Projector::pack_one`] writes it (native-endian words).
#[inline]
fn get_byte(key: &[u64], i: usize) -> u8 {
    key.get(i / 8).map_or(0, |w| w.to_ne_bytes()[i % 8])
}

fn set_byte(key: &mut [u64], i: usize, v: u8) {
    if let Some(w) = key.get_mut(i / 8) {
        let mut b = w.to_ne_bytes();
        b[i % 8] = v;
        *w = u64::from_ne_bytes(b);
    }
}

/// Packs the primitives of one aggregate into keys, and unpacks keys for output.
#[derive(Debug, Clone)]
pub struct Projector {
    aggregate: Aggregate,
    fields: Vec<(Field, usize)>,
    words: usize,
    with_flags: bool,
    with_times: bool,
    /// Byte offsets of the overflow marker and of the time bin (if any) in the key.
    overflow_at: usize,
    bin_at: Option<usize>,
}

impl Projector {
    /// `with_bin`: the key also carries a time bin (history tables).
    pub fn new(aggregate: &Aggregate, with_bin: bool) -> Projector {
        let mut fields = Vec::new();
        for p in aggregate.primitives() {
            let f = match p {
                Primitive::Tag => Field::Tag,
                Primitive::Tag2 => Field::Tag2,
                Primitive::Label => Field::Label,
                Primitive::SrcMac | Primitive::SumMac => Field::SrcMac,
                Primitive::DstMac => Field::DstMac,
                Primitive::Vlan => Field::Vlan,
                Primitive::SrcAs | Primitive::SumAs => Field::SrcAs,
                Primitive::DstAs => Field::DstAs,
                Primitive::SrcHost | Primitive::SumHost => Field::SrcIp,
                Primitive::DstHost => Field::DstIp,
                Primitive::SrcNet | Primitive::SumNet => Field::SrcNet,
                Primitive::DstNet => Field::DstNet,
                Primitive::SrcMask => Field::SrcMask,
                Primitive::DstMask => Field::DstMask,
                Primitive::SrcPort | Primitive::SumPort => Field::SrcPort,
                Primitive::DstPort => Field::DstPort,
                Primitive::Proto => Field::Proto,
                Primitive::Tos => Field::Tos,
                Primitive::Etype => Field::Etype,
                Primitive::InIface => Field::InIface,
                Primitive::OutIface => Field::OutIface,
                Primitive::MplsLabelTop => Field::MplsTop,
                Primitive::MplsLabelBottom => Field::MplsBottom,
                Primitive::MplsStackDepth => Field::MplsDepth,
                Primitive::TcpFlags | Primitive::Flows | Primitive::None => continue,
            };
            fields.push(f);
        }
        // sum_net also reports the mask with the net.
        if aggregate.sum() == Some(SumKind::Net) {
            fields.push(Field::SrcMask);
        }
        if with_bin {
            fields.push(Field::Bin);
        }
        fields.push(Field::Overflow);
        // Widest fields first keeps the key compact without alignment padding games.
        fields.sort_by_key(|f| std::cmp::Reverse(f.width()));
        let mut off = 0;
        let fields: Vec<(Field, usize)> = fields
            .into_iter()
            .map(|f| {
                let o = off;
                off += f.width();
                (f, o)
            })
            .collect();
        let words = off.div_ceil(8).max(1);
        assert!(words <= MAX_KEY_WORDS, "key layout exceeds MAX_KEY_WORDS");
        let at = |want: Field| fields.iter().find(|(f, _)| *f == want).map(|(_, o)| *o);
        let overflow_at = at(Field::Overflow).expect("every layout has the overflow marker");
        let bin_at = at(Field::Bin);
        Projector {
            aggregate: aggregate.clone(),
            fields,
            words,
            with_flags: aggregate.has(Primitive::TcpFlags),
            with_times: false,
            overflow_at,
            bin_at,
        }
    }

    /// The overflow entry that takes the place of `key` once a table is full: every primitive
    /// zero, the marker set, the time bin kept, so a full history table still has one exact
    /// total per bin. The marker makes it distinct from any real key, the all-zero one
    /// included.
    pub fn overflow_of(&self, key: &[u64]) -> KeyBuf {
        let mut out: KeyBuf = [0; MAX_KEY_WORDS];
        if let Some(b) = self.bin_at {
            for i in b..b + 8 {
                set_byte(&mut out, i, get_byte(key, i));
            }
        }
        set_byte(&mut out, self.overflow_at, 1);
        out
    }

    /// Whether `key` is an overflow entry.
    #[inline]
    pub fn is_overflow(&self, key: &[u64]) -> bool {
        get_byte(key, self.overflow_at) != 0
    }

    pub fn aggregate(&self) -> &Aggregate {
        &self.aggregate
    }

    /// Key width in 64-bit words.
    pub fn words(&self) -> usize {
        self.words
    }

    pub fn counters(&self, r: &Record) -> Counters {
        if self.with_times {
            Counters::timed(r, self.with_flags)
        } else {
            Counters::of(r, self.with_flags)
        }
    }

    /// The same layout whose counters also keep each entry's first and last second (for
    /// exporters).
    pub fn with_times(mut self) -> Projector {
        self.with_times = true;
        self
    }

    /// Packs `r` (with time bin `bin`, ignored unless the layout has one) into `out`; returns
    /// how many keys the record yields: 2 for `sum_*` aggregates (`out` then holds the source
    /// side and `out2` the destination side), 1 otherwise.
    #[inline]
    pub fn pack(&self, r: &Record, bin: i64, out: &mut KeyBuf, out2: &mut KeyBuf) -> usize {
        self.pack_one(r, bin, out, false);
        if self.aggregate.sum.is_some() {
            self.pack_one(r, bin, out2, true);
            2
        } else {
            1
        }
    }

    #[inline]
    fn pack_one(&self, r: &Record, bin: i64, out: &mut KeyBuf, swap: bool) {
        let mut bytes = [0u8; MAX_KEY_WORDS * 8];
        for &(f, o) in &self.fields {
            let b = &mut bytes[o..o + f.width()];
            match f {
                Field::SrcIp => put_addr(b, if swap { &r.dst_ip } else { &r.src_ip }),
                Field::DstIp => put_addr(b, &r.dst_ip),
                Field::SrcNet => put_addr(b, if swap { &r.dst_net } else { &r.src_net }),
                Field::DstNet => put_addr(b, &r.dst_net),
                Field::SrcMask => b[0] = if swap { r.dst_mask } else { r.src_mask },
                Field::DstMask => b[0] = r.dst_mask,
                Field::SrcAs => b.copy_from_slice(&(if swap { r.dst_as } else { r.src_as }).to_ne_bytes()),
                Field::DstAs => b.copy_from_slice(&r.dst_as.to_ne_bytes()),
                Field::SrcPort => b.copy_from_slice(&(if swap { r.dst_port } else { r.src_port }).to_ne_bytes()),
                Field::DstPort => b.copy_from_slice(&r.dst_port.to_ne_bytes()),
                Field::Proto => b[0] = r.proto,
                Field::Tos => b[0] = r.tos,
                Field::Etype => b.copy_from_slice(&r.etype.to_ne_bytes()),
                Field::SrcMac => b.copy_from_slice(if swap { &r.dst_mac } else { &r.src_mac }),
                Field::DstMac => b.copy_from_slice(&r.dst_mac),
                Field::Vlan => b.copy_from_slice(&r.vlan.to_ne_bytes()),
                Field::InIface => b.copy_from_slice(&r.in_iface.to_ne_bytes()),
                Field::OutIface => b.copy_from_slice(&r.out_iface.to_ne_bytes()),
                Field::Tag => b.copy_from_slice(&r.tag.to_ne_bytes()),
                Field::Tag2 => b.copy_from_slice(&r.tag2.to_ne_bytes()),
                Field::Label => b.copy_from_slice(&r.label.to_ne_bytes()),
                Field::MplsTop => b.copy_from_slice(&r.mpls_top.to_ne_bytes()),
                Field::MplsBottom => b.copy_from_slice(&r.mpls_bottom.to_ne_bytes()),
                Field::MplsDepth => b[0] = r.mpls_depth,
                Field::Bin => b.copy_from_slice(&bin.to_ne_bytes()),
                Field::Overflow => b[0] = 0,
            }
        }
        for (w, chunk) in out.iter_mut().zip(bytes.chunks_exact(8)).take(self.words) {
            *w = u64::from_ne_bytes(chunk.try_into().unwrap_or_default());
        }
    }

    /// Rebuilds the primitives of a key (everything else zero) and its time bin (0 if none).
    pub fn unpack(&self, key: &[u64]) -> (Record, i64) {
        let mut bytes = [0u8; MAX_KEY_WORDS * 8];
        for (w, chunk) in key.iter().zip(bytes.chunks_exact_mut(8)) {
            chunk.copy_from_slice(&w.to_ne_bytes());
        }
        let mut r = Record::default();
        let mut bin = 0i64;
        for &(f, o) in &self.fields {
            let b = &bytes[o..o + f.width()];
            let u16_ = || u16::from_ne_bytes([b[0], b[1]]);
            let u32_ = || u32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
            let u64_ = || u64::from_ne_bytes(b[..8].try_into().unwrap_or_default());
            match f {
                Field::SrcIp => r.src_ip = get_addr(b),
                Field::DstIp => r.dst_ip = get_addr(b),
                Field::SrcNet => r.src_net = get_addr(b),
                Field::DstNet => r.dst_net = get_addr(b),
                Field::SrcMask => r.src_mask = b[0],
                Field::DstMask => r.dst_mask = b[0],
                Field::SrcAs => r.src_as = u32_(),
                Field::DstAs => r.dst_as = u32_(),
                Field::SrcPort => r.src_port = u16_(),
                Field::DstPort => r.dst_port = u16_(),
                Field::Proto => r.proto = b[0],
                Field::Tos => r.tos = b[0],
                Field::Etype => r.etype = u16_(),
                Field::SrcMac => r.src_mac.copy_from_slice(&b[..6]),
                Field::DstMac => r.dst_mac.copy_from_slice(&b[..6]),
                Field::Vlan => r.vlan = u16_(),
                Field::InIface => r.in_iface = u32_(),
                Field::OutIface => r.out_iface = u32_(),
                Field::Tag => r.tag = u64_(),
                Field::Tag2 => r.tag2 = u64_(),
                Field::Label => r.label = u32_(),
                Field::MplsTop => r.mpls_top = u32_(),
                Field::MplsBottom => r.mpls_bottom = u32_(),
                Field::MplsDepth => r.mpls_depth = b[0],
                Field::Bin => bin = u64_() as i64,
                Field::Overflow => {}
            }
        }
        (r, bin)
    }
}

/// What a bounded merge or insert turned away: keys refused (with repeats), their counters,
/// and an estimate of how many distinct keys they were.
#[derive(Debug, Default, Clone)]
pub struct Refused {
    pub keys: u64,
    pub counters: Counters,
    pub distinct: crate::hll::HyperLogLog,
}

impl Refused {
    #[inline]
    pub fn note(&mut self, hash: u64, c: &Counters) {
        self.keys += 1;
        self.counters.add(c);
        self.distinct.add_hash(hash);
    }

    pub fn is_empty(&self) -> bool {
        self.keys == 0
    }

    /// Empties it for reuse (the counter's registers stay allocated).
    pub fn clear(&mut self) {
        if self.keys > 0 {
            self.keys = 0;
            self.counters = Counters::default();
            self.distinct.clear();
        }
    }
}

type Map<const W: usize> = hashbrown::HashMap<[u64; W], Counters, foldhash::fast::FixedState>;

macro_rules! tables {
    ($($v:ident = $w:literal),*) => {
        /// An aggregation table: key → counters, with the key width chosen at construction.
        /// One variant per width so each map stores exactly-sized keys inline.
        #[derive(Debug, Clone)]
        pub enum Table {
            $($v(Map<$w>),)*
        }

        impl Table {
            /// A table for keys of `words` 64-bit words (rounded up to a supported width).
            pub fn with_words(words: usize) -> Table {
                $(if words <= $w { return Table::$v(Map::<$w>::with_hasher(foldhash::fast::FixedState::with_seed(0x9e37_79b9))); })*
                panic!("key of {words} words exceeds MAX_KEY_WORDS")
            }

            /// Adds `c` to the entry for `key` (the first `words` words are used).
            #[inline]
            pub fn add(&mut self, key: &KeyBuf, c: &Counters) {
                match self {
                    $(Table::$v(m) => {
                        let k: &[u64; $w] = key[..$w].try_into().expect("width fits KeyBuf");
                        match m.get_mut(k) {
                            Some(e) => e.add(c),
                            None => { m.insert(*k, *c); }
                        }
                    })*
                }
            }

            pub fn len(&self) -> usize {
                match self { $(Table::$v(m) => m.len(),)* }
            }

            pub fn is_empty(&self) -> bool {
                self.len() == 0
            }

            /// Empties the table, keeping its allocation for reuse.
            pub fn clear(&mut self) {
                match self { $(Table::$v(m) => m.clear(),)* }
            }

            pub fn capacity(&self) -> usize {
                match self { $(Table::$v(m) => m.capacity(),)* }
            }

            /// Folds every entry of `other` into `self` (same layout required).
            pub fn merge_from(&mut self, other: &Table) {
                match (self, other) {
                    $((Table::$v(a), Table::$v(b)) => {
                        a.reserve(b.len().saturating_sub(a.capacity() - a.len()));
                        for (k, c) in b {
                            a.entry(*k).and_modify(|e| e.add(c)).or_insert(*c);
                        }
                    })*
                    _ => panic!("merging tables of different key widths"),
                }
            }

            /// Folds a worker shard into `self` (shard widths match `Table` widths).
            pub fn merge_shard(&mut self, shard: &crate::shard::ShardTable) {
                match self {
                    $(Table::$v(a) => {
                        a.reserve(shard.len().saturating_sub(a.capacity() - a.len()));
                        shard.for_each(|k, c| {
                            let k: [u64; $w] = k.try_into().expect("shard width equals table width");
                            a.entry(k).and_modify(|e| e.add(c)).or_insert(*c);
                        });
                    })*
                }
            }

            /// Like [`Table::merge_shard`], but a key not yet in the table is admitted only
            /// while it holds fewer than `limit` entries; the counters of the others go to
            /// their overflow entry (`proj.overflow_of`), which is always admitted.
            pub fn merge_shard_bounded(
                &mut self,
                shard: &crate::shard::ShardTable,
                limit: usize,
                proj: &Projector,
                refused: &mut Refused,
            ) {
                use std::hash::BuildHasher;
                match self {
                    $(Table::$v(a) => {
                        let room = limit.saturating_sub(a.len());
                        a.reserve(shard.len().min(room).saturating_sub(a.capacity() - a.len()));
                        shard.for_each(|k, c| {
                            let k: [u64; $w] = k.try_into().expect("shard width equals table width");
                            let full = a.len() >= limit;
                            match a.entry(k) {
                                hashbrown::hash_map::Entry::Occupied(mut e) => e.get_mut().add(c),
                                hashbrown::hash_map::Entry::Vacant(v) => {
                                    if !full || proj.is_overflow(&k) {
                                        v.insert(*c);
                                    } else {
                                        let h = v.into_key();
                                        refused.note(a.hasher().hash_one(&h), c);
                                        let o = proj.overflow_of(&h);
                                        let o: [u64; $w] = o[..$w].try_into().expect("width fits KeyBuf");
                                        a.entry(o).and_modify(|e| e.add(c)).or_insert(*c);
                                    }
                                }
                            }
                        });
                    })*
                }
            }

            /// Bytes one bucket of a table for `words`-word keys takes (key, counters and
            /// its control byte), for sizing tables to a memory budget.
            pub fn bucket_bytes(words: usize) -> usize {
                $(if words <= $w { return std::mem::size_of::<([u64; $w], Counters)>() + 1; })*
                panic!("key of {words} words exceeds MAX_KEY_WORDS")
            }

            /// Visits every entry.
            pub fn for_each(&self, mut f: impl FnMut(&[u64], &Counters)) {
                match self { $(Table::$v(m) => for (k, c) in m { f(&k[..], c) },)* }
            }

            /// Keeps only the entries for which `f` returns true (it may also edit counters).
            pub fn retain(&mut self, mut f: impl FnMut(&[u64], &mut Counters) -> bool) {
                match self { $(Table::$v(m) => m.retain(|k, c| f(&k[..], c)),)* }
            }

            /// Bytes the table's allocation occupies (keys, counters and control bytes).
            pub fn allocated_bytes(&self) -> usize {
                match self {
                    $(Table::$v(m) => {
                        let buckets = if m.capacity() == 0 { 0 } else { (m.capacity() * 8 / 7).next_power_of_two() };
                        buckets * (std::mem::size_of::<([u64; $w], Counters)>() + 1)
                    })*
                }
            }
        }
    };
}

tables!(W1 = 1, W2 = 2, W3 = 3, W4 = 4, W5 = 5, W6 = 6, W8 = 8, W10 = 10, W12 = 12, W14 = 14, W18 = 18, W20 = 20);

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16) -> Record {
        Record {
            src_ip: Addr::V4(src),
            dst_ip: Addr::V4(dst),
            src_port: sp,
            dst_port: dp,
            proto: 6,
            packets: 1,
            bytes: 100,
            tcp_flags: 0x02,
            ..Record::default()
        }
    }

    #[test]
    fn pack_unpack_roundtrip_five_tuple() {
        let agg = Aggregate::parse("src_host,dst_host,src_port,dst_port,proto").unwrap();
        let p = Projector::new(&agg, true);
        assert_eq!(p.words(), 6); // 17+17+8(bin)+2+2+1+1(overflow marker) = 48 bytes
        let r = rec([10, 0, 0, 1], [10, 0, 0, 2], 1234, 80);
        let (mut k, mut k2) = ([0; MAX_KEY_WORDS], [0; MAX_KEY_WORDS]);
        assert_eq!(p.pack(&r, 3600, &mut k, &mut k2), 1);
        let (u, bin) = p.unpack(&k[..p.words()]);
        assert_eq!(bin, 3600);
        assert_eq!((u.src_ip, u.dst_ip, u.src_port, u.dst_port, u.proto), (r.src_ip, r.dst_ip, 1234, 80, 6));
        assert_eq!(u.tos, 0);
    }

    #[test]
    fn unselected_fields_do_not_split_entries() {
        let agg = Aggregate::parse("src_host").unwrap();
        let p = Projector::new(&agg, false);
        let mut t = Table::with_words(p.words());
        let (mut k, mut k2) = ([0; MAX_KEY_WORDS], [0; MAX_KEY_WORDS]);
        for dp in 0..10 {
            let r = rec([10, 0, 0, 1], [10, 0, 0, 2], 1, dp);
            p.pack(&r, 0, &mut k, &mut k2);
            t.add(&k, &p.counters(&r));
        }
        assert_eq!(t.len(), 1);
        t.for_each(|_, c| assert_eq!((c.packets, c.bytes, c.tcp_flags), (10, 1000, 0)));
    }

    #[test]
    fn sum_host_counts_both_directions() {
        let agg = Aggregate::parse("sum_host").unwrap();
        let p = Projector::new(&agg, false);
        let r = rec([10, 0, 0, 1], [10, 0, 0, 2], 1, 2);
        let (mut k, mut k2) = ([0; MAX_KEY_WORDS], [0; MAX_KEY_WORDS]);
        assert_eq!(p.pack(&r, 0, &mut k, &mut k2), 2);
        assert_eq!(p.unpack(&k[..p.words()]).0.src_ip, Addr::V4([10, 0, 0, 1]));
        assert_eq!(p.unpack(&k2[..p.words()]).0.src_ip, Addr::V4([10, 0, 0, 2]));
    }

    #[test]
    fn v4_and_v6_never_collide() {
        let agg = Aggregate::parse("src_host").unwrap();
        let p = Projector::new(&agg, false);
        let mut v6 = [0u8; 16];
        v6[..4].copy_from_slice(&[10, 0, 0, 1]);
        let a = Record { src_ip: Addr::V4([10, 0, 0, 1]), ..Record::default() };
        let b = Record { src_ip: Addr::V6(v6), ..Record::default() };
        let (mut ka, mut kb, mut x) = ([0; MAX_KEY_WORDS], [0; MAX_KEY_WORDS], [0; MAX_KEY_WORDS]);
        p.pack(&a, 0, &mut ka, &mut x);
        p.pack(&b, 0, &mut kb, &mut x);
        assert_ne!(ka[..p.words()], kb[..p.words()]);
    }

    #[test]
    fn tcpflags_are_ored_and_merge_adds() {
        let agg = Aggregate::parse("src_host,tcpflags").unwrap();
        let p = Projector::new(&agg, false);
        let mut t1 = Table::with_words(p.words());
        let mut t2 = Table::with_words(p.words());
        let (mut k, mut k2) = ([0; MAX_KEY_WORDS], [0; MAX_KEY_WORDS]);
        let mut r = rec([1, 1, 1, 1], [2, 2, 2, 2], 1, 2);
        p.pack(&r, 0, &mut k, &mut k2);
        t1.add(&k, &p.counters(&r));
        r.tcp_flags = 0x10;
        t2.add(&k, &p.counters(&r));
        t1.merge_from(&t2);
        t1.for_each(|_, c| assert_eq!((c.packets, c.tcp_flags), (2, 0x12)));
    }

    #[test]
    fn mpls_primitives_roundtrip_and_every_primitive_fits() {
        let agg = Aggregate::parse("mpls_label_top,mpls_label_bottom,mpls_stack_depth,src_host").unwrap();
        assert_eq!(agg.to_string(), "src_host,mpls_label_top,mpls_label_bottom,mpls_stack_depth");
        let p = Projector::new(&agg, false);
        let r = Record { mpls_top: 0xfffff, mpls_bottom: 16, mpls_depth: 3, ..rec([1, 2, 3, 4], [5, 6, 7, 8], 1, 2) };
        let (mut k, mut k2) = ([0; MAX_KEY_WORDS], [0; MAX_KEY_WORDS]);
        p.pack(&r, 0, &mut k, &mut k2);
        let (u, _) = p.unpack(&k[..p.words()]);
        assert_eq!((u.mpls_top, u.mpls_bottom, u.mpls_depth, u.src_ip), (0xfffff, 16, 3, r.src_ip));
        // Records that differ only in the stack split entries.
        let mut other = k;
        p.pack(&Record { mpls_depth: 2, ..r }, 0, &mut other, &mut k2);
        assert_ne!(k[..p.words()], other[..p.words()]);
        // Every non-sum primitive at once, with a time bin, still fits the widest key.
        let all: Vec<&str> =
            Primitive::ALL.iter().filter(|(_, p)| !p.is_sum() && *p != Primitive::None).map(|(n, _)| *n).collect();
        let every = Aggregate::parse(&all.join(",")).unwrap();
        assert!(Projector::new(&every, true).words() <= MAX_KEY_WORDS);
    }

    #[test]
    fn overflow_entry_keeps_the_bin_only_and_differs_from_every_real_key() {
        for (agg, with_bin) in [("src_host,dst_host,src_port,dst_port,proto", true), ("tag", false), ("proto", true)] {
            let p = Projector::new(&Aggregate::parse(agg).unwrap(), with_bin);
            let (mut k, mut k2) = ([0; MAX_KEY_WORDS], [0; MAX_KEY_WORDS]);
            // The all-zero record is a real key; its overflow entry is not.
            p.pack(&Record::default(), 7200, &mut k, &mut k2);
            assert!(!p.is_overflow(&k[..p.words()]), "{agg}");
            let o = p.overflow_of(&k[..p.words()]);
            assert!(p.is_overflow(&o[..p.words()]), "{agg}");
            assert_ne!(o[..p.words()], k[..p.words()], "{agg}");
            assert_eq!(p.unpack(&o[..p.words()]).1, if with_bin { 7200 } else { 0 }, "{agg}");
            // Every key of one bin has the same overflow entry.
            p.pack(&rec([9, 9, 9, 9], [8, 8, 8, 8], 1, 2), 7200, &mut k2, &mut k);
            assert_eq!(p.overflow_of(&k2[..p.words()]), o, "{agg}");
        }
    }

    #[test]
    fn bounded_merge_keeps_totals_exact_and_counts_what_it_refused() {
        let agg = Aggregate::parse("src_host,dst_port").unwrap();
        let p = Projector::new(&agg, false);
        let mut shard = crate::shard::ShardTable::with_words(p.words());
        let (mut k, mut k2) = ([0; MAX_KEY_WORDS], [0; MAX_KEY_WORDS]);
        for i in 0..1000u16 {
            let r = rec([10, 0, (i >> 8) as u8, i as u8], [1, 1, 1, 1], 1, i);
            p.pack(&r, 0, &mut k, &mut k2);
            shard.add(&k, &p.counters(&r));
        }
        let mut t = Table::with_words(p.words());
        let mut refused = Refused::default();
        t.merge_shard_bounded(&shard, 300, &p, &mut refused);
        // 300 keys and the overflow entry.
        assert_eq!(t.len(), 301);
        assert_eq!(refused.keys, 700);
        assert_eq!(refused.counters.packets, 700);
        let e = refused.distinct.estimate();
        assert!((680..=720).contains(&e), "{e}");
        // Merging the same shard again: the 300 present keys count, the rest overflow again.
        t.merge_shard_bounded(&shard, 300, &p, &mut refused);
        let (mut total, mut over) = (0, 0);
        t.for_each(|k, c| {
            total += c.packets;
            if p.is_overflow(k) {
                over = c.packets;
            }
        });
        assert_eq!((t.len(), total, over), (301, 2000, 1400));
        assert_eq!(refused.distinct.estimate(), e, "repeats are not new distinct keys");
    }

    #[test]
    fn aggregate_errors() {
        assert!(matches!(Aggregate::parse("src_hots"), Err(AggregateError::Unknown(_))));
        assert!(matches!(Aggregate::parse("class"), Err(AggregateError::NotSupported(_))));
        assert!(matches!(Aggregate::parse("sum_host,proto"), Err(AggregateError::MustStandAlone(_))));
        assert!(matches!(Aggregate::parse(""), Err(AggregateError::Empty)));
    }
}
