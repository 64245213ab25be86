//! Types shared by the XDP program (built for `bpfel-unknown-none`) and userspace.
//!
//! `no_std` so the kernel side can use them; `#[repr(C)]` with no implicit padding so both sides
//! agree on layout byte for byte (the kernel hashes whole keys, so a padding hole with garbage
//! in it would split one flow into many). With the `user` feature they implement `aya::Pod`.
#![cfg_attr(not(test), no_std)]

/// Map names in the object, shared so that the loader cannot drift from the program.
pub mod maps {
    /// `Array<XdpConfig>`, one entry.
    pub const CONFIG: &str = "XACCT_CONFIG";
    /// `Array<u32>`, one entry: which flow map (0 or 1) the program counts into.
    pub const EPOCH: &str = "XACCT_EPOCH";
    /// `PerCpuHashMap<FlowKey, FlowValue>` for epoch 0.
    pub const FLOWS_0: &str = "XACCT_FLOWS0";
    /// `PerCpuHashMap<FlowKey, FlowValue>` for epoch 1.
    pub const FLOWS_1: &str = "XACCT_FLOWS1";
    /// `PerCpuHashMap<FlowKey4, FlowValue>` for epoch 0 and 1: IPv4 flows with
    /// [`super::FLAG_COMPACT_V4`].
    pub const FLOWS4_0: &str = "XACCT_FLOWS4_0";
    pub const FLOWS4_1: &str = "XACCT_FLOWS4_1";
    /// `Array<FlowSlot4>` (mmapable): the per-CPU tables that IPv4 flows with
    /// [`super::FLAG_COMPACT_V4`] are counted in first; what does not fit goes to `FLOWS4_*`.
    /// One region of `table_slots` slots ([`super::XdpConfig::table_slots`]) per CPU and epoch,
    /// region `2 * cpu + epoch`: one map for both epochs, so that the program has one copy of
    /// the code that counts into it.
    pub const TABLE4: &str = "XACCT_TABLE4";
    /// `Array<FlowSlot>` (mmapable): the same in front of `FLOWS_*`, for the full key.
    pub const TABLE: &str = "XACCT_TABLE";
    /// `Array<u64>` (mmapable; arrays store values 8 bytes apart anyway), one per table: the
    /// slots each CPU has taken in each epoch, so the harvest visits those only. Region `r`'s
    /// list is at `r * (table_slots + 1)`: a count, then the slot numbers.
    pub const USED4: &str = "XACCT_USED4";
    pub const USED: &str = "XACCT_USED";
    /// `PerCpuArray<CpuState>`, one entry: the counters and the clock cache, so that one map
    /// lookup per packet serves both.
    pub const COUNTERS: &str = "XACCT_COUNTERS";
    /// `XskMap` indexed by RX queue.
    pub const XSKS: &str = "XACCT_XSKS";
    /// `LpmTrie<[u8; 4], u8>` source / destination IPv4 nets.
    pub const V4_SRC: &str = "XACCT_V4_SRC";
    pub const V4_DST: &str = "XACCT_V4_DST";
    /// `LpmTrie<[u8; 16], u8>` source / destination IPv6 nets.
    pub const V6_SRC: &str = "XACCT_V6_SRC";
    pub const V6_DST: &str = "XACCT_V6_DST";
    /// `Array<u8>` of 256: non-zero = protocol admitted.
    pub const PROTOS: &str = "XACCT_PROTOS";
    /// `Array<u8>` of 65536: bit [`super::PORT_SRC`] / [`super::PORT_DST`] = admitted as
    /// source / destination port.
    pub const PORTS: &str = "XACCT_PORTS";
    /// `Array<u8>` of 4096: non-zero = outermost VLAN id admitted.
    pub const VLANS: &str = "XACCT_VLANS";
    /// `LruHashMap<StreamKey, u32>`: packets seen per stream (both directions), while
    /// [`super::FLAG_CLASSIFY`] hands each stream's first packets to userspace.
    pub const STREAMS: &str = "XACCT_STREAMS";
    /// `LruHashMap<FragKey, FragEntry>`: the ports of IP datagrams whose first fragment the
    /// program saw, for their later fragments (see [`super::FragEntry`]).
    pub const FRAGS: &str = "XACCT_FRAGS";
}

/// Name of the XDP program in the object.
pub const PROGRAM_NAME: &str = "xacct_xdp";

/// Default capacity of each flow map (entries, shared by all CPUs).
pub const DEFAULT_FLOW_ENTRIES: u32 = 65536;
/// Capacity of the stream map (LRU: when full, the least recently seen stream is forgotten, and
/// a forgotten stream that comes back is handed up again from its first packet).
pub const DEFAULT_STREAM_ENTRIES: u32 = 65536;
/// Capacity of the fragment map (LRU: datagrams in reassembly at once; when full, the least
/// recently seen datagram is forgotten and its remaining later fragments go up to userspace,
/// which accounts them with ports 0 as orphans, never loses them).
pub const FRAG_ENTRIES: u32 = 65536;
/// How long a datagram's fragment entry stays good after its last fragment, as userspace's
/// fragment table keeps them (`xacctd::frag::FRAG_TIMEOUT`, 60 s).
pub const FRAG_TIMEOUT_NS: u64 = 60_000_000_000;
/// Capacity of the XSKMAP: the highest RX queue index that can have a socket, plus one.
pub const MAX_QUEUES: u32 = 256;

/// Per-reason counters the XDP program keeps (indexes into the per-CPU counter array). Every frame the
/// program sees is counted in `Seen` and then in exactly one outcome counter (`Malformed`,
/// `NonIp`, `PreFiltered`, `Aggregated`, `Redirected`, `MapFullFallback`), so
/// `Seen` = the sum of those six. `MapFull` and `RedirectFailed` say why, and overlap them.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpCounter {
    /// Every frame the program ran on.
    Seen = 0,
    /// Headers the program could not parse (truncated, IHL < 5, bad version, …); the frame
    /// gets the configured action, unaccounted, as the userspace decoder would count it as
    /// malformed.
    Malformed = 1,
    /// Frames with no IPv4/IPv6 payload (ARP, LLDP, …): never accounted, never pre-filtered.
    NonIp = 2,
    /// Frames no pre-filter rule admitted.
    PreFiltered = 3,
    /// Frames counted into the flow map.
    Aggregated = 4,
    /// Frames that found the flow map full and were redirected to AF_XDP.
    MapFull = 5,
    /// Frames redirected to an AF_XDP socket (for any reason, map full included).
    Redirected = 6,
    /// Frames that could not be redirected (no socket on their RX queue) after the map was
    /// full: passed to the stack, not accounted. The loss is here, counted.
    MapFullFallback = 7,
    /// Frames that needed userspace for another reason (fragment, deep tag stack, config) and
    /// could not be redirected: counted into the flow map anyway (also in `Aggregated`).
    RedirectFailed = 8,
    /// Frames redirected because they are among their stream's first
    /// [`XdpConfig::classify_packets`] (also counted in `Redirected`).
    Classify = 9,
    /// Later IP fragments given their datagram's ports in the kernel, from its first fragment
    /// (also counted in their outcome, usually `Aggregated`).
    FragmentPorts = 10,
}

/// Number of [`XdpCounter`] slots.
pub const XDP_COUNTERS: u32 = 11;

impl XdpCounter {
    /// All counters, in index order.
    pub const ALL: [XdpCounter; XDP_COUNTERS as usize] = [
        XdpCounter::Seen,
        XdpCounter::Malformed,
        XdpCounter::NonIp,
        XdpCounter::PreFiltered,
        XdpCounter::Aggregated,
        XdpCounter::MapFull,
        XdpCounter::Redirected,
        XdpCounter::MapFullFallback,
        XdpCounter::RedirectFailed,
        XdpCounter::Classify,
        XdpCounter::FragmentPorts,
    ];

    /// Short stable name for logs and `xacct -t`.
    pub const fn name(self) -> &'static str {
        match self {
            XdpCounter::Seen => "xdp_seen",
            XdpCounter::Malformed => "xdp_malformed",
            XdpCounter::NonIp => "xdp_non_ip",
            XdpCounter::PreFiltered => "xdp_prefiltered",
            XdpCounter::Aggregated => "xdp_aggregated",
            XdpCounter::MapFull => "xdp_map_full",
            XdpCounter::Redirected => "xdp_redirected",
            XdpCounter::MapFullFallback => "xdp_map_full_lost",
            XdpCounter::RedirectFailed => "xdp_redirect_failed",
            XdpCounter::Classify => "xdp_to_classify",
            XdpCounter::FragmentPorts => "xdp_fragment_ports",
        }
    }
}

/// Per-CPU state of the XDP program (the one entry of [`maps::COUNTERS`]).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuState {
    /// Indexed by [`XdpCounter`].
    pub counters: [u64; XDP_COUNTERS as usize],
    /// Clock cache: the `jiffies` value for which `clock_ns` was read. The program reads
    /// `bpf_ktime_get_coarse_ns()` (a helper call costing about 20 ns, a third of the program)
    /// only when `jiffies` (inlined by the verifier: one load) has moved on. The coarse clock
    /// itself only advances once per tick, so the cached value is what the helper would return
    /// give or take one tick.
    pub clock_jiffies: u64,
    pub clock_ns: u64,
    /// The program's scratch word: an offset stored and read back here is unknown to the
    /// verifier, so that the headers after PPPoE or an MPLS stack are verified once for every
    /// encapsulation and tag count instead of once per combination (which passed the
    /// verifier's limit of a million instructions).
    pub scratch: u64,
}

/// Kernel flow key. Fields a configuration does not keep are zero, so flows that differ only
/// there aggregate into one entry, exactly as userspace projection would merge them; the
/// encapsulation fields after `pad` are the exception (see the program's `project`): 0 for
/// plain IP, kept as parsed for PPPoE/MPLS, merged by the workers' projection.
/// Addresses and ports are in network byte order as on the wire (ports as `[u8; 2]` so that the
/// layout has no endianness question); IPv4 addresses fill the first 4 bytes.
///
/// Aligned to 8 (the field offsets are unchanged): with byte-array fields alone the alignment
/// would be 1, and the BPF backend then zeroes and copies the key one byte at a time.
#[repr(C, align(8))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    pub src_addr: [u8; 16],
    pub dst_addr: [u8; 16],
    // Each MAC starts 8-aligned, so that the program's stores to it (4 + 2 bytes) are aligned,
    // as the verifier demands of stack writes.
    pub src_mac: [u8; 6],
    /// EtherType after any VLAN tags, big endian bytes.
    pub ethertype: [u8; 2],
    pub dst_mac: [u8; 6],
    /// Outermost VLAN id (12 bits), 0 when untagged; big endian bytes.
    pub vlan: [u8; 2],
    pub src_port: [u8; 2],
    pub dst_port: [u8; 2],
    /// 4 or 6. Always kept, so v4 and v6 keys never collide.
    pub family: u8,
    pub proto: u8,
    /// IPv4 TOS / IPv6 traffic class.
    pub tos: u8,
    /// Explicit so there is no implicit padding; always 0.
    pub pad: u8,
    /// MPLS top and bottom label (20 bits as a big-endian u32) and the labels in the stack
    /// ([`KEEP_MPLS_TOP`], [`KEEP_MPLS_BOTTOM`], [`KEEP_MPLS_DEPTH`]).
    pub mpls_top: [u8; 4],
    pub mpls_bottom: [u8; 4],
    /// PPPoE session id, big endian, the VLAN tags before the network layer, and [`ENCAP_PPPOE`]
    /// / [`ENCAP_MPLS_MULTICAST`]: what libpcap's `vlan`, `mpls` and `pppoes` test
    /// ([`KEEP_ENCAP`]).
    // These three are zeroed together, as one aligned 4-byte store (the verifier refuses
    // misaligned stack writes, which LLVM makes of neighbouring bytes otherwise).
    pub pppoe_session: [u8; 2],
    pub vlan_depth: u8,
    pub encap: u8,
    pub mpls_depth: u8,
    /// Explicit so there is no implicit padding; always 0.
    pub pad2: [u8; 3],
}

/// [`FlowKey::encap`]: the frame was a PPPoE session frame.
pub const ENCAP_PPPOE: u8 = 1;
/// [`FlowKey::encap`]: the MPLS EtherType was the multicast one (0x8848).
pub const ENCAP_MPLS_MULTICAST: u8 = 2;

impl FlowKey {
    pub fn src_port(&self) -> u16 {
        u16::from_be_bytes(self.src_port)
    }
    pub fn dst_port(&self) -> u16 {
        u16::from_be_bytes(self.dst_port)
    }
    pub fn vlan(&self) -> u16 {
        u16::from_be_bytes(self.vlan)
    }
    pub fn ethertype(&self) -> u16 {
        u16::from_be_bytes(self.ethertype)
    }
    pub fn mpls_top(&self) -> u32 {
        u32::from_be_bytes(self.mpls_top)
    }
    pub fn mpls_bottom(&self) -> u32 {
        u32::from_be_bytes(self.mpls_bottom)
    }
    pub fn pppoe_session(&self) -> u16 {
        u16::from_be_bytes(self.pppoe_session)
    }
}

/// Compact kernel flow key for IPv4 when no plugin needs MAC addresses
/// ([`FLAG_COMPACT_V4`]): the kernel hashes and compares whole keys, and jhash over these 16
/// bytes costs less than a third of what it costs over [`FlowKey`]'s 56, the largest single
/// cost of the program. The fields mean what [`FlowKey`]'s do; family is 4, the MACs are zero,
/// and the EtherType is IPv4's when [`KEEP_ETHERTYPE`] is set.
#[repr(C, align(8))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FlowKey4 {
    pub src_addr: [u8; 4],
    pub dst_addr: [u8; 4],
    pub src_port: [u8; 2],
    pub dst_port: [u8; 2],
    pub proto: u8,
    pub tos: u8,
    pub vlan: [u8; 2],
}

impl FlowKey4 {
    /// The full key this compact key stands for, given the program's `KEEP_*` bits.
    pub fn expand(&self, key_fields: u32) -> FlowKey {
        let mut k = FlowKey { family: 4, proto: self.proto, tos: self.tos, vlan: self.vlan, ..FlowKey::default() };
        k.src_addr[..4].copy_from_slice(&self.src_addr);
        k.dst_addr[..4].copy_from_slice(&self.dst_addr);
        k.src_port = self.src_port;
        k.dst_port = self.dst_port;
        if key_fields & KEEP_ETHERTYPE != 0 {
            k.ethertype = 0x0800u16.to_be_bytes();
        }
        k
    }
}

/// A stream for classification: both endpoints of a conversation in a canonical order (the
/// smaller address/port pair first), so that both directions share one entry, as a classifier
/// with a context per stream needs.
#[repr(C, align(8))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct StreamKey {
    pub addr_a: [u8; 16],
    pub addr_b: [u8; 16],
    pub port_a: [u8; 2],
    pub port_b: [u8; 2],
    pub family: u8,
    pub proto: u8,
    pub pad: [u8; 2],
}

/// An IP datagram, as its fragments name it: userspace's fragment table key
/// (`xacctd::frag::FragKey`: addresses, protocol, identification; IPv4's 16-bit id widened).
#[repr(C, align(8))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FragKey {
    pub src_addr: [u8; 16],
    pub dst_addr: [u8; 16],
    pub id: u32,
    pub family: u8,
    pub proto: u8,
    pub pad: [u8; 2],
}

/// What the kernel knows of a datagram in fragments. The program counts a first fragment
/// itself and notes its ports here, so the later fragments are counted in the kernel too, with
/// those ports. A later fragment that comes first finds no ports: it goes up to userspace,
/// whose fragment table holds it, and the entry is left `pending` so that the datagram's other
/// fragments, the first one included, follow it up. The first fragment then fills in the
/// ports, and fragments after it stay in the kernel again.
#[repr(C, align(8))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FragEntry {
    /// Source and destination port of the first fragment, network order.
    pub ports: [u8; 4],
    /// 1 while the ports are unknown and userspace holds fragments of the datagram.
    pub pending: u32,
    /// `bpf_ktime_get_coarse_ns()` of the datagram's last fragment: older than
    /// [`FRAG_TIMEOUT_NS`], the entry counts as absent.
    pub last_ns: u64,
}

/// Consecutive slots a key may occupy from its home slot in a per-CPU table
/// ([`maps::TABLE4_0`], [`maps::TABLE_0`]); past them, the flow goes to the hash map.
pub const TABLE_PROBES: u32 = 4;

/// A key of a per-CPU flow table, compared and hashed as whole words: a few instructions
/// where the kernel's hash maps call out and run jhash over the bytes.
pub trait TableKey: Copy {
    const WORDS: usize;
    fn words(&self) -> [u64; 9];

    #[inline(always)]
    fn same(&self, o: &Self) -> bool {
        let (a, b) = (self.words(), o.words());
        let mut i = 0;
        while i < Self::WORDS {
            if a[i] != b[i] {
                return false;
            }
            i += 1;
        }
        true
    }

    /// Where the key's probe sequence starts in a table of `slots` (a power of two) slots: the
    /// words folded with rotations, then one multiplicative hash, whose high bits are used.
    #[inline(always)]
    fn home(&self, slots: u32) -> u32 {
        let w = self.words();
        let mut h = 0u64;
        let mut i = 0;
        while i < Self::WORDS {
            h ^= w[i].rotate_left(13 * i as u32);
            i += 1;
        }
        ((h.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as u32) & slots.wrapping_sub(1)
    }
}

impl TableKey for FlowKey4 {
    const WORDS: usize = 2;
    #[inline(always)]
    fn words(&self) -> [u64; 9] {
        let (a, b, p, q) = (self.src_addr, self.dst_addr, self.src_port, self.dst_port);
        [
            u64::from_ne_bytes([a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3]]),
            u64::from_ne_bytes([p[0], p[1], q[0], q[1], self.proto, self.tos, self.vlan[0], self.vlan[1]]),
            0,
            0,
            0,
            0,
            0,
            0,
            0,
        ]
    }
}

impl TableKey for FlowKey {
    const WORDS: usize = 9;
    #[inline(always)]
    fn words(&self) -> [u64; 9] {
        let w8 = |b: &[u8]| u64::from_ne_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
        let (m, n, e, v) = (self.src_mac, self.dst_mac, self.ethertype, self.vlan);
        [
            w8(&self.src_addr[..8]),
            w8(&self.src_addr[8..]),
            w8(&self.dst_addr[..8]),
            w8(&self.dst_addr[8..]),
            u64::from_ne_bytes([m[0], m[1], m[2], m[3], m[4], m[5], e[0], e[1]]),
            u64::from_ne_bytes([n[0], n[1], n[2], n[3], n[4], n[5], v[0], v[1]]),
            u64::from_ne_bytes([
                self.src_port[0],
                self.src_port[1],
                self.dst_port[0],
                self.dst_port[1],
                self.family,
                self.proto,
                self.tos,
                self.pad,
            ]),
            u64::from_ne_bytes([
                self.mpls_top[0],
                self.mpls_top[1],
                self.mpls_top[2],
                self.mpls_top[3],
                self.mpls_bottom[0],
                self.mpls_bottom[1],
                self.mpls_bottom[2],
                self.mpls_bottom[3],
            ]),
            u64::from_ne_bytes([
                self.pppoe_session[0],
                self.pppoe_session[1],
                self.vlan_depth,
                self.encap,
                self.mpls_depth,
                self.pad2[0],
                self.pad2[1],
                self.pad2[2],
            ]),
        ]
    }
}

/// A slot of a per-CPU flow table: a key and its counters. Free while its packet count is 0.
/// Only its own CPU writes a slot while its epoch is current, so counting takes plain stores:
/// no atomics, no locks, no call; userspace reads and zeroes the other epoch's tables through
/// a memory mapping (see userspace/xdp's crate doc).
pub trait TableSlot: Copy {
    type Key: TableKey;
    fn key(&self) -> &Self::Key;
    fn is_free(&self) -> bool;
    /// Takes this free slot for `k`'s first packet of the epoch.
    fn start(&mut self, k: &Self::Key, bytes: u32, flags: u8, now: u64);
    /// Counts one more packet. False, with nothing counted, when the slot's counters cannot
    /// take it (the packet then goes to the hash map).
    fn count(&mut self, bytes: u32, flags: u8, now: u64) -> bool;
    /// The counters as a [`FlowValue`], given the `CLOCK_MONOTONIC` time of the harvest.
    fn value(&self, now_ns: u64) -> FlowValue;
}

/// Right shift from `bpf_ktime_get_coarse_ns()` to [`FlowSlot4::stamp`]'s time unit
/// (2^20 ns, about a millisecond; the stamp's 24 bits wrap after 4.9 hours, and a slot lives
/// one harvest interval).
pub const STAMP_SHIFT: u32 = 20;
const STAMP_TIME: u32 = 0x00ff_ffff;

/// A slot of the IPv4 table: half a cache line, so that with many flows twice as many slots
/// share each cache line and page as with [`FlowValue`]'s 40 bytes (each packet's slot is a
/// cache and TLB miss then). The packet count is 32-bit: a flow that reaches 2^32 - 1 packets in
/// one epoch on one CPU goes on in the hash map. Only the last packet's time is kept
/// ([`FlowValue::first_seen_ns`] reads the same); userspace reports flows at that time only.
#[repr(C, align(8))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowSlot4 {
    pub key: FlowKey4,
    pub bytes: u64,
    pub packets: u32,
    /// TCP flags OR-ed in the top 8 bits; the last packet's `now >> STAMP_SHIFT` in the low 24.
    pub stamp: u32,
}

impl FlowSlot4 {
    #[inline(always)]
    fn stamp_of(now: u64, flags: u8, old: u32) -> u32 {
        (old & !STAMP_TIME) | (u32::from(flags) << 24) | ((now >> STAMP_SHIFT) as u32 & STAMP_TIME)
    }
}

impl TableSlot for FlowSlot4 {
    type Key = FlowKey4;
    #[inline(always)]
    fn key(&self) -> &FlowKey4 {
        &self.key
    }
    #[inline(always)]
    fn is_free(&self) -> bool {
        self.packets == 0
    }
    #[inline(always)]
    fn start(&mut self, k: &FlowKey4, bytes: u32, flags: u8, now: u64) {
        self.key = *k;
        self.bytes = u64::from(bytes);
        self.packets = 1;
        self.stamp = Self::stamp_of(now, flags, 0);
    }
    #[inline(always)]
    fn count(&mut self, bytes: u32, flags: u8, now: u64) -> bool {
        if self.packets == u32::MAX {
            return false;
        }
        self.packets += 1;
        self.bytes += u64::from(bytes);
        self.stamp = Self::stamp_of(now, flags, self.stamp);
        true
    }
    fn value(&self, now_ns: u64) -> FlowValue {
        let now_units = (now_ns >> STAMP_SHIFT) as u32;
        let age = now_units.wrapping_sub(self.stamp) & STAMP_TIME;
        // A stamp a tick ahead of the harvest's clock (the coarse clock is read on another
        // CPU) wraps to the far past: take it as now.
        let age = if age > STAMP_TIME / 2 { 0 } else { age };
        let last = now_ns.saturating_sub(u64::from(age) << STAMP_SHIFT).max(1);
        FlowValue {
            packets: u64::from(self.packets),
            bytes: self.bytes,
            first_seen_ns: last,
            last_seen_ns: last,
            tcp_flags: u64::from(self.stamp >> 24),
        }
    }
}

/// A slot of the full-key table: two cache lines.
#[repr(C, align(8))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowSlot {
    pub key: FlowKey,
    pub value: FlowValue,
    /// Explicit so there is no implicit padding (and the slot is 128 bytes); always 0.
    pub pad: [u64; 2],
}

impl TableSlot for FlowSlot {
    type Key = FlowKey;
    #[inline(always)]
    fn key(&self) -> &FlowKey {
        &self.key
    }
    #[inline(always)]
    fn is_free(&self) -> bool {
        self.value.packets == 0
    }
    #[inline(always)]
    fn start(&mut self, k: &FlowKey, bytes: u32, flags: u8, now: u64) {
        self.key = *k;
        self.value = FlowValue {
            packets: 1,
            bytes: u64::from(bytes),
            first_seen_ns: now,
            last_seen_ns: now,
            tcp_flags: u64::from(flags),
        };
    }
    #[inline(always)]
    fn count(&mut self, bytes: u32, flags: u8, now: u64) -> bool {
        let v = &mut self.value;
        v.packets += 1;
        v.bytes += u64::from(bytes);
        v.last_seen_ns = now;
        v.tcp_flags |= u64::from(flags);
        true
    }
    fn value(&self, _now_ns: u64) -> FlowValue {
        self.value
    }
}

/// Per-flow counters (one copy per CPU in the kernel; userspace sums them).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowValue {
    pub packets: u64,
    /// IP bytes as pmacct counts them (IPv4 total length, IPv6 payload length + 40).
    pub bytes: u64,
    /// CLOCK_MONOTONIC ns of the first and last packet, at tick resolution
    /// (`bpf_ktime_get_coarse_ns()`, cached per tick: see [`CpuState`]).
    pub first_seen_ns: u64,
    pub last_seen_ns: u64,
    /// TCP flags OR-ed over the flow's packets (0 unless [`KEEP_TCP_FLAGS`]).
    /// Only the low 8 bits are used; 64 bits because the program ORs flags in atomically on
    /// maps shared by all CPUs, and BPF has atomic OR for 64-bit words only (also no padding
    /// for LLVM to fill with the misaligned stack writes the verifier refuses).
    pub tcp_flags: u64,
}

impl FlowValue {
    /// Folds another CPU's (or harvest's) value into this one.
    pub fn merge(&mut self, o: &FlowValue) {
        if o.packets == 0 {
            return;
        }
        if self.packets == 0 || o.first_seen_ns < self.first_seen_ns {
            self.first_seen_ns = o.first_seen_ns;
        }
        self.last_seen_ns = self.last_seen_ns.max(o.last_seen_ns);
        self.packets = self.packets.wrapping_add(o.packets);
        self.bytes = self.bytes.wrapping_add(o.bytes);
        self.tcp_flags |= o.tcp_flags;
    }
}

// Which key fields the program keeps ([`XdpConfig::key_fields`]).
pub const KEEP_SRC_ADDR: u32 = 1 << 0;
pub const KEEP_DST_ADDR: u32 = 1 << 1;
pub const KEEP_SRC_PORT: u32 = 1 << 2;
pub const KEEP_DST_PORT: u32 = 1 << 3;
pub const KEEP_PROTO: u32 = 1 << 4;
pub const KEEP_TOS: u32 = 1 << 5;
pub const KEEP_VLAN: u32 = 1 << 6;
pub const KEEP_SRC_MAC: u32 = 1 << 7;
pub const KEEP_DST_MAC: u32 = 1 << 8;
pub const KEEP_ETHERTYPE: u32 = 1 << 9;
/// Not a key field: OR the TCP flags into the value.
pub const KEEP_TCP_FLAGS: u32 = 1 << 10;
pub const KEEP_MPLS_TOP: u32 = 1 << 11;
pub const KEEP_MPLS_BOTTOM: u32 = 1 << 12;
pub const KEEP_MPLS_DEPTH: u32 = 1 << 13;
/// VLAN depth, PPPoE session and [`FlowKey::encap`]: only filters read them.
pub const KEEP_ENCAP: u32 = 1 << 14;
pub const KEEP_ALL: u32 = (1 << 15) - 1;
/// Fields the compact IPv4 key cannot hold: with any of them kept, every flow takes the full
/// key.
pub const KEEP_FULL_KEY_ONLY: u32 =
    KEEP_SRC_MAC | KEEP_DST_MAC | KEEP_MPLS_TOP | KEEP_MPLS_BOTTOM | KEEP_MPLS_DEPTH | KEEP_ENCAP;

// Behaviour flags ([`XdpConfig::flags`]).
/// Evaluate the pre-filter rules ([`XdpConfig::rule_kinds`]); off = admit everything.
pub const FLAG_PREFILTER: u32 = 1 << 0;
/// Every admitted IP packet needs userspace (a plugin wants per-packet data): redirect all of
/// them to AF_XDP instead of aggregating.
pub const FLAG_REDIRECT_ALL: u32 = 1 << 1;
/// Hand the first [`XdpConfig::classify_packets`] packets of every stream (both directions
/// together, see [`StreamKey`]) to AF_XDP, where the classifiers see their payload; the stream's
/// later packets are counted in the kernel.
pub const FLAG_CLASSIFY: u32 = 1 << 2;
/// Count IPv4 flows under the compact [`FlowKey4`] (set when no MAC address is kept).
pub const FLAG_COMPACT_V4: u32 = 1 << 3;

// Pre-filter rule kinds present ([`XdpConfig::rule_kinds`]); a packet is admitted when any
// present kind matches it (an over-approximation of the union of the plugins' filters, which
// userspace re-checks per plugin).
pub const RULE_V4_SRC: u32 = 1 << 0;
pub const RULE_V4_DST: u32 = 1 << 1;
pub const RULE_V6_SRC: u32 = 1 << 2;
pub const RULE_V6_DST: u32 = 1 << 3;
pub const RULE_PROTO: u32 = 1 << 4;
pub const RULE_PORT: u32 = 1 << 5;
pub const RULE_VLAN: u32 = 1 << 6;
/// Every IPv4 packet is admitted.
pub const RULE_IPV4: u32 = 1 << 7;
/// Every IPv6 packet is admitted.
pub const RULE_IPV6: u32 = 1 << 8;

/// Bits of a [`maps::PORTS`] entry.
pub const PORT_SRC: u8 = 1;
pub const PORT_DST: u8 = 2;

/// XDP return codes used in [`XdpConfig::action`] (values of the kernel's `enum xdp_action`).
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;

/// The program's configuration (entry 0 of [`maps::CONFIG`]).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XdpConfig {
    /// `KEEP_*` bits.
    pub key_fields: u32,
    /// What to return after counting (or pre-filtering) a frame: [`XDP_PASS`] or [`XDP_DROP`].
    pub action: u32,
    /// `FLAG_*` bits.
    pub flags: u32,
    /// `RULE_*` bits: which rule maps hold rules.
    pub rule_kinds: u32,
    /// With [`FLAG_CLASSIFY`]: how many packets of each stream go to userspace.
    pub classify_packets: u32,
    /// Slots of each per-CPU table ([`maps::TABLE4_0`], [`maps::TABLE_0`]), a power of two;
    /// 0: no tables.
    pub table_slots: u32,
}

impl Default for XdpConfig {
    fn default() -> Self {
        XdpConfig {
            key_fields: KEEP_ALL,
            action: XDP_PASS,
            flags: 0,
            rule_kinds: 0,
            classify_packets: 0,
            table_slots: 0,
        }
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain `#[repr(C)]` integer/byte-array structs with no padding and no invalid bit
    // patterns, as `aya::Pod` requires.
    unsafe impl aya::Pod for super::FlowKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::FlowValue {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::XdpConfig {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::CpuState {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::StreamKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::FlowKey4 {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::FlowSlot4 {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::FlowSlot {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::FragKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::FragEntry {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_have_no_padding() {
        // Sum of the field sizes: any implicit padding would make size_of larger.
        assert_eq!(core::mem::size_of::<FlowKey>(), 16 + 16 + 6 + 6 + 2 * 4 + 4 + 4 + 4 + 2 + 3 + 3);
        assert_eq!(core::mem::align_of::<FlowKey>(), 8);
        assert_eq!(core::mem::size_of::<FlowValue>(), 8 * 4 + 8);
        assert_eq!(core::mem::size_of::<XdpConfig>(), 24);
        assert_eq!(core::mem::size_of::<StreamKey>(), 16 + 16 + 2 + 2 + 4);
        assert_eq!(core::mem::size_of::<FlowKey4>(), 16);
        assert_eq!(core::mem::size_of::<FlowSlot4>(), 32);
        assert_eq!(core::mem::size_of::<FlowSlot>(), 128);
        assert_eq!(core::mem::size_of::<FragKey>(), 16 + 16 + 4 + 4);
        assert_eq!(core::mem::size_of::<FragEntry>(), 16);
        assert_eq!(core::mem::size_of::<CpuState>(), 8 * (XDP_COUNTERS as usize + 3));
    }

    #[test]
    fn compact_slot_counts_and_dates_its_flow() {
        let ms = 1u64 << STAMP_SHIFT;
        let t0 = 1_000_000 * ms;
        let mut s = FlowSlot4::default();
        assert!(s.is_free());
        s.start(&FlowKey4::default(), 100, 0x02, t0);
        assert!(s.count(60, 0x10, t0 + 5 * ms));
        assert!(!s.is_free());
        let v = s.value(t0 + 25 * ms);
        assert_eq!((v.packets, v.bytes, v.tcp_flags), (2, 160, 0x12));
        assert_eq!(v.last_seen_ns, t0 + 5 * ms);
        assert_eq!(v.first_seen_ns, v.last_seen_ns);
        // The 24-bit time wraps: still right across the wrap, and a stamp a little ahead of the
        // harvest's clock reads as the harvest's time.
        let near_wrap = (u64::from(STAMP_TIME) - 2) * ms;
        s.start(&FlowKey4::default(), 1, 0, near_wrap);
        assert_eq!(s.value(near_wrap + 10 * ms).last_seen_ns, near_wrap);
        assert_eq!(s.value(near_wrap - ms).last_seen_ns, near_wrap - ms);
        // A full packet count leaves the packet to the hash map.
        s.packets = u32::MAX;
        assert!(!s.count(1, 0, near_wrap));
        assert_eq!(s.packets, u32::MAX);
    }

    #[test]
    fn compact_key_expands_to_the_full_key_the_program_would_have_used() {
        let c = FlowKey4 {
            src_addr: [10, 0, 0, 1],
            dst_addr: [10, 0, 0, 2],
            src_port: [0, 80],
            dst_port: [4, 0],
            proto: 6,
            tos: 8,
            vlan: [0, 42],
        };
        let mut want = FlowKey {
            family: 4,
            proto: 6,
            tos: 8,
            vlan: [0, 42],
            src_port: [0, 80],
            dst_port: [4, 0],
            ..FlowKey::default()
        };
        want.src_addr[..4].copy_from_slice(&[10, 0, 0, 1]);
        want.dst_addr[..4].copy_from_slice(&[10, 0, 0, 2]);
        assert_eq!(c.expand(KEEP_ALL & !KEEP_ETHERTYPE), want);
        want.ethertype = [0x08, 0x00];
        assert_eq!(c.expand(KEEP_ALL), want);
    }

    #[test]
    fn merge_sums_and_spans() {
        let mut a = FlowValue { packets: 1, bytes: 10, first_seen_ns: 50, last_seen_ns: 60, tcp_flags: 2 };
        a.merge(&FlowValue { packets: 2, bytes: 5, first_seen_ns: 40, last_seen_ns: 55, tcp_flags: 16 });
        a.merge(&FlowValue::default());
        assert_eq!((a.packets, a.bytes, a.first_seen_ns, a.last_seen_ns, a.tcp_flags), (3, 15, 40, 60, 18));
    }
}
