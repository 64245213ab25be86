//! The XDP program: parses Ethernet / 802.1Q / 802.1ad / QinQ / PPPoE / MPLS / IPv4 / IPv6 /
//! TCP / UDP / ICMP,
//! applies the pre-filter rules, counts per flow into a per-CPU hash map selected by an epoch,
//! and redirects to the RX queue's AF_XDP socket what must go to userspace. Later IP fragments
//! get their datagram's ports from an LRU map of first fragments, so fragments stay in the
//! kernel unless a later one comes before its first.
//!
//! It parses exactly as `xacct_wire::decode` does (userspace/wire/src/packet.rs): same bytes
//! (IPv4 total length, IPv6 payload length + 40, the rest of the frame when those are 0),
//! outermost VLAN id, PPPoE sessions (PPP IPv4/IPv6, the rest not IP), MPLS stacks of up to
//! four labels (deeper ones, and Cisco FabricPath/VN-Tag frames, go to userspace), ports only
//! in first fragments, IPv6 extension headers (hop-by-hop,
//! routing, fragment, destination options, AH) skipped. Frames the userspace decoder would call
//! malformed are counted as such here and never accounted.
//!
//! On the host (not `target_arch = "bpf"`) this builds as an empty binary, so that the
//! workspace builds and tests everywhere; the real object is built by userspace/xdp's build.rs.
#![cfg_attr(target_arch = "bpf", no_std, no_main)]
// The BPF target has atomic adds but no compare-and-swap, so `core::sync::atomic` offers no
// `fetch_add` there: the intrinsic is the way to LLVM's `atomicrmw add` (BPF_ATOMIC). The
// build already runs with RUSTC_BOOTSTRAP=1 (aya-build's `-Z build-std`).
#![cfg_attr(target_arch = "bpf", allow(internal_features), feature(core_intrinsics))]

#[cfg(not(target_arch = "bpf"))]
fn main() {}

#[cfg(target_arch = "bpf")]
mod prog {

    use aya_ebpf::{
        bindings::{xdp_action, BPF_F_MMAPABLE, BPF_NOEXIST},
        helpers::{bpf_get_smp_processor_id, bpf_jiffies64, bpf_ktime_get_coarse_ns},
        macros::{map, xdp},
        maps::{lpm_trie::Key, Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, PerCpuHashMap, XskMap},
        programs::XdpContext,
    };
    use xacct_ebpf_common::*;

    #[map(name = "XACCT_CONFIG")]
    static CONFIG: Array<XdpConfig> = Array::with_max_entries(1, 0);
    #[map(name = "XACCT_EPOCH")]
    static EPOCH: Array<u32> = Array::with_max_entries(1, 0);
    #[map(name = "XACCT_FLOWS0")]
    static FLOWS0: PerCpuHashMap<FlowKey, FlowValue> = PerCpuHashMap::with_max_entries(DEFAULT_FLOW_ENTRIES, 0);
    #[map(name = "XACCT_FLOWS1")]
    static FLOWS1: PerCpuHashMap<FlowKey, FlowValue> = PerCpuHashMap::with_max_entries(DEFAULT_FLOW_ENTRIES, 0);
    #[map(name = "XACCT_FLOWS4_0")]
    static FLOWS4_0: HashMap<FlowKey4, FlowValue> = HashMap::with_max_entries(DEFAULT_FLOW_ENTRIES, 0);
    #[map(name = "XACCT_FLOWS4_1")]
    static FLOWS4_1: HashMap<FlowKey4, FlowValue> = HashMap::with_max_entries(DEFAULT_FLOW_ENTRIES, 0);
    #[map(name = "XACCT_TABLE4")]
    static TABLE4: Array<FlowSlot4> = Array::with_max_entries(1, BPF_F_MMAPABLE);
    #[map(name = "XACCT_USED4")]
    static USED4: Array<u64> = Array::with_max_entries(1, BPF_F_MMAPABLE);
    #[map(name = "XACCT_TABLE")]
    static TABLE: Array<FlowSlot> = Array::with_max_entries(1, BPF_F_MMAPABLE);
    #[map(name = "XACCT_USED")]
    static USED: Array<u64> = Array::with_max_entries(1, BPF_F_MMAPABLE);
    #[map(name = "XACCT_COUNTERS")]
    static COUNTERS: PerCpuArray<CpuState> = PerCpuArray::with_max_entries(1, 0);
    #[map(name = "XACCT_XSKS")]
    static XSKS: XskMap = XskMap::with_max_entries(MAX_QUEUES, 0);
    #[map(name = "XACCT_V4_SRC")]
    static V4_SRC: LpmTrie<[u8; 4], u8> = LpmTrie::with_max_entries(4096, 0);
    #[map(name = "XACCT_V4_DST")]
    static V4_DST: LpmTrie<[u8; 4], u8> = LpmTrie::with_max_entries(4096, 0);
    #[map(name = "XACCT_V6_SRC")]
    static V6_SRC: LpmTrie<[u8; 16], u8> = LpmTrie::with_max_entries(4096, 0);
    #[map(name = "XACCT_V6_DST")]
    static V6_DST: LpmTrie<[u8; 16], u8> = LpmTrie::with_max_entries(4096, 0);
    #[map(name = "XACCT_PROTOS")]
    static PROTOS: Array<u8> = Array::with_max_entries(256, 0);
    #[map(name = "XACCT_PORTS")]
    static PORTS: Array<u8> = Array::with_max_entries(65536, 0);
    #[map(name = "XACCT_VLANS")]
    static VLANS: Array<u8> = Array::with_max_entries(4096, 0);
    #[map(name = "XACCT_STREAMS")]
    static STREAMS: LruHashMap<StreamKey, u32> = LruHashMap::with_max_entries(DEFAULT_STREAM_ENTRIES, 0);
    #[map(name = "XACCT_FRAGS")]
    static FRAGS: LruHashMap<FragKey, FragEntry> = LruHashMap::with_max_entries(FRAG_ENTRIES, 0);

    const ETH_P_IP: u16 = 0x0800;
    const ETH_P_IPV6: u16 = 0x86dd;
    const ETH_P_8021Q: u16 = 0x8100;
    const ETH_P_8021AD: u16 = 0x88a8;
    const ETH_P_QINQ_9100: u16 = 0x9100;
    const ETH_P_PPP_SES: u16 = 0x8864;
    const ETH_P_MPLS_UC: u16 = 0x8847;
    const ETH_P_MPLS_MC: u16 = 0x8848;
    /// Cisco FabricPath and VN-Tag: decoded in userspace only.
    const ETH_P_CISCO_FP: u16 = 0x8903;
    const ETH_P_CISCO_VNTAG: u16 = 0x8926;
    const PPP_IP: u16 = 0x0021;
    const PPP_IPV6: u16 = 0x0057;
    /// MPLS labels walked in the kernel; a deeper stack goes to userspace.
    const MAX_MPLS_LABELS: usize = 4;
    const IPPROTO_HOPOPTS: u8 = 0;
    const IPPROTO_TCP: u8 = 6;
    const IPPROTO_UDP: u8 = 17;
    const IPPROTO_ROUTING: u8 = 43;
    const IPPROTO_FRAGMENT: u8 = 44;
    const IPPROTO_AH: u8 = 51;
    const IPPROTO_DSTOPTS: u8 = 60;
    /// Tags beyond this many go to userspace (the verifier needs a bounded loop; real links
    /// carry at most two).
    const MAX_VLAN_TAGS: usize = 3;
    /// IPv6 extension headers walked in the kernel; a longer chain goes to userspace.
    const MAX_EXT_HEADERS: usize = 6;
    /// Errno of a racing insert of the same key on another CPU.
    const EEXIST: i64 = 17;

    enum Verdict {
        Malformed,
        NonIp,
        /// More VLAN tags or IPv6 extension headers than the bounded parser walks.
        Deep,
        /// Parsed into the caller's key: IP bytes, TCP flags, and which fragment of its datagram
        /// the packet is.
        Ip {
            bytes: u32,
            tcp_flags: u8,
            frag: Frag,
        },
    }

    /// A packet's place in its IP datagram.
    #[derive(Clone, Copy)]
    enum Frag {
        /// Not fragmented.
        Whole,
        /// The fragment at offset 0, which holds the L4 header; the datagram's identification.
        First(u32),
        /// A fragment past offset 0: no L4 header, so no ports of its own.
        Later(u32),
    }

    /// This CPU's counters and clock cache, looked up once per packet.
    struct Counters(*mut CpuState);

    impl Counters {
        #[inline(always)]
        fn get() -> Option<Counters> {
            COUNTERS.get_ptr_mut(0).map(Counters)
        }

        #[inline(always)]
        fn count(&self, c: XdpCounter) {
            // SAFETY: this CPU's copy of the one entry, and XDP runs with preemption disabled:
            // nothing else writes it concurrently. `c` is a valid index by construction
            // (`XDP_COUNTERS` slots, one per variant), so `get_mut` never fails.
            if let Some(v) = unsafe { (*self.0).counters.get_mut(c as usize) } {
                *v += 1;
            }
        }

        /// `v` as the verifier sees a value loaded from a map: any number (see
        /// [`CpuState::scratch`]).
        #[inline(always)]
        fn opaque(&self, v: u64) -> u64 {
            // SAFETY: as in `count`; volatile so that LLVM keeps the store and the load.
            unsafe {
                let s = &raw mut (*self.0).scratch;
                core::ptr::write_volatile(s, v);
                core::ptr::read_volatile(s)
            }
        }

        /// `bpf_ktime_get_coarse_ns()`, read at most once per tick on this CPU (see
        /// [`CpuState::clock_jiffies`]).
        #[inline(always)]
        fn now(&self) -> u64 {
            // SAFETY: as in `count`; the helpers have no preconditions.
            unsafe {
                let j = bpf_jiffies64();
                let s = &mut *self.0;
                if s.clock_jiffies != j || s.clock_ns == 0 {
                    s.clock_ns = bpf_ktime_get_coarse_ns();
                    s.clock_jiffies = j;
                }
                s.clock_ns
            }
        }
    }

    /// The `N` bytes at `off`, or `None` when the frame ends before them. The comparison
    /// against `data_end` is what the verifier needs to accept the read.
    #[inline(always)]
    fn bytes<const N: usize>(ctx: &XdpContext, off: usize) -> Option<[u8; N]> {
        let start = ctx.data();
        let end = ctx.data_end();
        if start + off + N > end {
            return None;
        }
        // SAFETY: the range [start+off, start+off+N) was just checked to lie inside the frame.
        Some(unsafe { core::ptr::read_unaligned((start + off) as *const [u8; N]) })
    }

    #[inline(always)]
    fn be16(b: [u8; 2]) -> u16 {
        u16::from_be_bytes(b)
    }

    #[inline(always)]
    fn parse(ctx: &XdpContext, c: &Counters, key: &mut FlowKey, keep: u32) -> Verdict {
        let frame_len = ctx.data_end() - ctx.data();
        // The EtherType alone, and each MAC only when kept and straight into the key: read
        // as one 14-byte header, the MACs' twelve bytes were loaded and kept in registers (or
        // spilled) on every packet, ~30 instructions for nothing when no MAC is kept.
        let Some(et) = bytes::<2>(ctx, 12) else { return Verdict::Malformed };
        if keep & KEEP_DST_MAC != 0 {
            let Some(m) = bytes::<6>(ctx, 0) else { return Verdict::Malformed };
            key.dst_mac = m;
        }
        if keep & KEEP_SRC_MAC != 0 {
            let Some(m) = bytes::<6>(ctx, 6) else { return Verdict::Malformed };
            key.src_mac = m;
        }
        let mut etype = be16(et);
        let mut off = 14usize;
        let mut frag = Frag::Whole;
        let mut depth = 0u8;
        for _ in 0..MAX_VLAN_TAGS {
            if !matches!(etype, ETH_P_8021Q | ETH_P_8021AD | ETH_P_QINQ_9100) {
                break;
            }
            let Some(t) = bytes::<4>(ctx, off) else { return Verdict::Malformed };
            if depth == 0 {
                key.vlan = (be16([t[0], t[1]]) & 0x0fff).to_be_bytes();
            }
            depth += 1;
            etype = be16([t[2], t[3]]);
            off += 4;
        }
        if matches!(etype, ETH_P_8021Q | ETH_P_8021AD | ETH_P_QINQ_9100) {
            return Verdict::Deep;
        }
        if etype != ETH_P_IP && etype != ETH_P_IPV6 {
            // PPPoE and MPLS as `xacct_wire::decode` walks them; the rest is not IP, or (Cisco
            // tags, deep stacks) left to userspace.
            match etype {
                ETH_P_PPP_SES => {
                    let Some(h) = bytes::<8>(ctx, off) else { return Verdict::Malformed };
                    key.pppoe_session = [h[2], h[3]];
                    key.encap = ENCAP_PPPOE;
                    etype = match be16([h[6], h[7]]) {
                        PPP_IP => ETH_P_IP,
                        PPP_IPV6 => ETH_P_IPV6,
                        _ => return Verdict::NonIp,
                    };
                    off += 8;
                }
                ETH_P_MPLS_UC | ETH_P_MPLS_MC => {
                    if etype == ETH_P_MPLS_MC {
                        key.encap = ENCAP_MPLS_MULTICAST;
                    }
                    let mut bottom = false;
                    let mut n = 0u8;
                    for _ in 0..MAX_MPLS_LABELS {
                        let Some(l) = bytes::<4>(ctx, off) else { return Verdict::Malformed };
                        let label = [0, l[0] >> 4, (l[0] << 4) | (l[1] >> 4), (l[1] << 4) | (l[2] >> 4)];
                        if n == 0 {
                            key.mpls_top = label;
                        }
                        key.mpls_bottom = label;
                        n += 1;
                        off += 4;
                        if l[2] & 1 != 0 {
                            bottom = true;
                            break;
                        }
                    }
                    if !bottom {
                        return Verdict::Deep;
                    }
                    key.mpls_depth = n;
                    let Some(v) = bytes::<1>(ctx, off) else { return Verdict::Malformed };
                    etype = match v[0] >> 4 {
                        4 => ETH_P_IP,
                        6 => ETH_P_IPV6,
                        _ => return Verdict::NonIp,
                    };
                }
                ETH_P_CISCO_FP | ETH_P_CISCO_VNTAG => return Verdict::Deep,
                _ => return Verdict::NonIp,
            }
            // Plain IP keeps its constant offsets (nothing added there); every encapsulated
            // path goes on with an offset and header counts the verifier does not know (one
            // word: offset, tags, labels, encapsulation bits), so that what follows is verified
            // once for them all, not once per combination of tags and encapsulation.
            let w = c.opaque(
                off as u64 | u64::from(depth) << 8 | u64::from(key.mpls_depth) << 16 | u64::from(key.encap) << 24,
            );
            off = (w & 0xff) as usize;
            key.vlan_depth = (w >> 8) as u8;
            key.mpls_depth = (w >> 16) as u8;
            key.encap = (w >> 24) as u8;
        } else {
            key.vlan_depth = depth;
        }

        key.ethertype = etype.to_be_bytes();
        let bytes_ip;
        let l4;
        let mut later_fragment = false;
        match etype {
            ETH_P_IP => {
                // Three loads (two 8-byte words and the destination), fields taken by shifts:
                // read as 20 bytes, the header's fields were loaded one by one and mostly
                // spilled to the stack before use.
                let Some(w0) = bytes::<8>(ctx, off).map(u64::from_le_bytes) else { return Verdict::Malformed };
                let Some(w1) = bytes::<8>(ctx, off + 8).map(u64::from_le_bytes) else { return Verdict::Malformed };
                let Some(dst) = bytes::<4>(ctx, off + 16) else { return Verdict::Malformed };
                let vihl = w0 as u8;
                if vihl >> 4 != 4 {
                    return Verdict::Malformed;
                }
                let hlen = usize::from(vihl & 0x0f) * 4;
                if hlen < 20 || frame_len < off + hlen {
                    return Verdict::Malformed;
                }
                let total = u32::from(u16::from_be((w0 >> 16) as u16));
                bytes_ip = if total == 0 {
                    (frame_len - off) as u32
                } else if (total as usize) < hlen {
                    return Verdict::Malformed;
                } else {
                    total
                };
                key.family = 4;
                key.tos = (w0 >> 8) as u8;
                key.proto = (w1 >> 8) as u8;
                key.src_addr[..4].copy_from_slice(&((w1 >> 32) as u32).to_le_bytes());
                key.dst_addr[..4].copy_from_slice(&dst);
                let fo = u16::from_be((w0 >> 48) as u16);
                later_fragment = fo & 0x1fff != 0;
                let id = u32::from(u16::from_be((w0 >> 32) as u16));
                if later_fragment {
                    frag = Frag::Later(id);
                } else if fo & 0x2000 != 0 {
                    frag = Frag::First(id);
                }
                l4 = off + hlen;
            }
            ETH_P_IPV6 => {
                // Read piecewise, straight into the key: the BPF stack is 512 bytes.
                let Some(h) = bytes::<8>(ctx, off) else { return Verdict::Malformed };
                let Some(src) = bytes::<16>(ctx, off + 8) else { return Verdict::Malformed };
                let Some(dst) = bytes::<16>(ctx, off + 24) else { return Verdict::Malformed };
                if h[0] >> 4 != 6 {
                    return Verdict::Malformed;
                }
                key.family = 6;
                key.tos = (h[0] << 4) | (h[1] >> 4);
                let plen = u32::from(be16([h[4], h[5]]));
                bytes_ip = if plen == 0 { ((frame_len - off) as u32).max(40) } else { plen + 40 };
                key.src_addr = src;
                key.dst_addr = dst;
                let mut next = h[6];
                let mut at = off + 40;
                let mut done = false;
                for _ in 0..MAX_EXT_HEADERS {
                    let len = match next {
                        IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS => {
                            let Some(e) = bytes::<2>(ctx, at) else { return Verdict::Malformed };
                            next = e[0];
                            (usize::from(e[1]) + 1) * 8
                        }
                        IPPROTO_AH => {
                            let Some(e) = bytes::<2>(ctx, at) else { return Verdict::Malformed };
                            next = e[0];
                            (usize::from(e[1]) + 2) * 4
                        }
                        IPPROTO_FRAGMENT => {
                            let Some(f) = bytes::<8>(ctx, at) else { return Verdict::Malformed };
                            next = f[0];
                            let fo = be16([f[2], f[3]]);
                            later_fragment = fo >> 3 != 0;
                            let id = u32::from_be_bytes([f[4], f[5], f[6], f[7]]);
                            if later_fragment {
                                frag = Frag::Later(id);
                            } else if fo & 1 != 0 {
                                frag = Frag::First(id);
                            }
                            8
                        }
                        _ => {
                            done = true;
                            break;
                        }
                    };
                    if frame_len < at + len {
                        return Verdict::Malformed;
                    }
                    at += len;
                    if later_fragment {
                        done = true;
                        break;
                    }
                }
                if !done {
                    // A chain longer than the kernel walks: userspace finishes it.
                    return Verdict::Deep;
                }
                key.proto = next;
                l4 = at;
            }
            _ => return Verdict::NonIp,
        }
        let mut tcp_flags = 0u8;
        if !later_fragment {
            match key.proto {
                IPPROTO_TCP => {
                    let Some(p) = bytes::<4>(ctx, l4) else { return Verdict::Malformed };
                    key.src_port = [p[0], p[1]];
                    key.dst_port = [p[2], p[3]];
                    if let Some(f) = bytes::<1>(ctx, l4 + 13) {
                        tcp_flags = f[0];
                    }
                }
                IPPROTO_UDP => {
                    let Some(p) = bytes::<4>(ctx, l4) else { return Verdict::Malformed };
                    key.src_port = [p[0], p[1]];
                    key.dst_port = [p[2], p[3]];
                }
                _ => {}
            }
        }
        Verdict::Ip { bytes: bytes_ip, tcp_flags, frag }
    }

    /// An LPM trie key for an IPv6 address, built with aligned 4-byte stores. aya's `Key` is a
    /// packed struct whose data sits at offset 4; built from it, LLVM (allowed misaligned
    /// accesses for the packet reads) would store the address with 8-byte stores at offsets
    /// 4 and 12, and the verifier refuses misaligned stack writes.
    #[repr(C, align(8))]
    struct LpmKeyV6 {
        prefix_len: u32,
        data: [u32; 4],
    }

    impl LpmKeyV6 {
        #[inline(always)]
        fn as_key(&self) -> &Key<[u8; 16]> {
            // SAFETY: `Key<[u8; 16]>` is `repr(C, packed)` { u32, [u8; 16] }: the same bytes at
            // the same offsets as `LpmKeyV6`, with alignment 1, so the reference is valid.
            unsafe { &*(self as *const LpmKeyV6).cast::<Key<[u8; 16]>>() }
        }
    }

    #[inline(always)]
    fn lpm_key_v6(addr: &[u8; 16]) -> LpmKeyV6 {
        let mut k = LpmKeyV6 { prefix_len: 128, data: [0; 4] };
        for (i, w) in k.data.iter_mut().enumerate() {
            let word = u32::from_ne_bytes([addr[4 * i], addr[4 * i + 1], addr[4 * i + 2], addr[4 * i + 3]]);
            // SAFETY: `w` is a valid, aligned `u32` of a local. Volatile only so that LLVM does
            // not merge the four stores into misaligned 8-byte ones (see `LpmKeyV6`).
            unsafe { core::ptr::write_volatile(w, word) };
        }
        k
    }

    /// Whether any present pre-filter rule admits the packet.
    #[inline(always)]
    fn admitted(cfg: &XdpConfig, k: &FlowKey) -> bool {
        let r = cfg.rule_kinds;
        if k.family == 4 {
            if r & RULE_IPV4 != 0 {
                return true;
            }
            let src = [k.src_addr[0], k.src_addr[1], k.src_addr[2], k.src_addr[3]];
            if r & RULE_V4_SRC != 0 && V4_SRC.get(Key::new(32, src)).is_some() {
                return true;
            }
            let dst = [k.dst_addr[0], k.dst_addr[1], k.dst_addr[2], k.dst_addr[3]];
            if r & RULE_V4_DST != 0 && V4_DST.get(Key::new(32, dst)).is_some() {
                return true;
            }
        } else {
            if r & RULE_IPV6 != 0 {
                return true;
            }
            if r & RULE_V6_SRC != 0 && V6_SRC.get(lpm_key_v6(&k.src_addr).as_key()).is_some() {
                return true;
            }
            if r & RULE_V6_DST != 0 && V6_DST.get(lpm_key_v6(&k.dst_addr).as_key()).is_some() {
                return true;
            }
        }
        if r & RULE_PROTO != 0 && PROTOS.get(u32::from(k.proto)).is_some_and(|v| *v != 0) {
            return true;
        }
        if r & RULE_PORT != 0 {
            if PORTS.get(u32::from(k.src_port())).is_some_and(|v| *v & PORT_SRC != 0) {
                return true;
            }
            if PORTS.get(u32::from(k.dst_port())).is_some_and(|v| *v & PORT_DST != 0) {
                return true;
            }
        }
        r & RULE_VLAN != 0 && VLANS.get(u32::from(k.vlan())).is_some_and(|v| *v != 0)
    }

    /// Zeroes what the configuration does not keep, so those flows merge in the kernel.
    #[inline(always)]
    fn project(keep: u32, k: &mut FlowKey) {
        if keep & KEEP_SRC_ADDR == 0 {
            k.src_addr = [0; 16];
        }
        if keep & KEEP_DST_ADDR == 0 {
            k.dst_addr = [0; 16];
        }
        if keep & KEEP_SRC_PORT == 0 {
            k.src_port = [0; 2];
        }
        if keep & KEEP_DST_PORT == 0 {
            k.dst_port = [0; 2];
        }
        if keep & KEEP_PROTO == 0 {
            k.proto = 0;
        }
        if keep & KEEP_TOS == 0 {
            k.tos = 0;
        }
        if keep & KEEP_VLAN == 0 {
            k.vlan = [0; 2];
        }
        if keep & KEEP_SRC_MAC == 0 {
            k.src_mac = [0; 6];
        }
        if keep & KEEP_DST_MAC == 0 {
            k.dst_mac = [0; 6];
        }
        if keep & KEEP_ETHERTYPE == 0 {
            k.ethertype = [0; 2];
        }
        // The MPLS labels and depth, the tag count and PPPoE session are not zeroed here: they
        // are 0 for plain IP, and MPLS/PPPoE flows that differ only there are merged by the
        // workers' projection, which is exact either way. Zeroing them (four more branches on
        // `keep`, or masks, which LLVM turns back into branches) took the verifier past its
        // million instructions.
    }

    /// Counts one packet into `flows`; false when the map is full.
    #[inline(always)]
    fn add<K>(flows: &PerCpuHashMap<K, FlowValue>, key: &K, bytes: u32, flags: u8, now: u64) -> bool {
        // SAFETY (both derefs below): the value is this CPU's copy of a per-CPU entry and XDP
        // runs with preemption disabled, so no one else writes it meanwhile. Entries are only
        // deleted by userspace from the map of the other epoch, after an RCU grace period.
        if let Some(v) = flows.get_ptr_mut(key) {
            unsafe {
                (*v).packets += 1;
                (*v).bytes += u64::from(bytes);
                (*v).last_seen_ns = now;
                (*v).tcp_flags |= u64::from(flags);
                if (*v).first_seen_ns == 0 {
                    (*v).first_seen_ns = now;
                }
            }
            return true;
        }
        let init = FlowValue {
            packets: 1,
            bytes: u64::from(bytes),
            first_seen_ns: now,
            last_seen_ns: now,
            tcp_flags: u64::from(flags),
        };
        match flows.insert(key, &init, u64::from(BPF_NOEXIST)) {
            Ok(()) => true,
            // Another CPU created the entry since our lookup: add to our copy of it (the insert
            // zero-filled the other CPUs' copies, ours included).
            Err(e) if i64::from(e) == -EEXIST => match flows.get_ptr_mut(key) {
                Some(v) => {
                    unsafe {
                        (*v).packets += 1;
                        (*v).bytes += u64::from(bytes);
                        (*v).first_seen_ns = now;
                        (*v).last_seen_ns = now;
                        (*v).tcp_flags |= u64::from(flags);
                    }
                    true
                }
                None => false,
            },
            Err(_) => false,
        }
    }

    /// Counts one packet into a map shared by all CPUs; false when the map is full.
    #[inline(always)]
    fn add_shared<K>(flows: &HashMap<K, FlowValue>, key: &K, bytes: u32, flags: u8, now: u64) -> bool {
        use core::intrinsics::{atomic_or, atomic_xadd, AtomicOrdering::Relaxed};
        #[inline(always)]
        fn bump(v: *mut FlowValue, bytes: u32, flags: u8, now: u64) {
            // SAFETY: `v` points to a live map value (RCU keeps it for the program's run);
            // the counters are updated with atomic adds since other CPUs update the same
            // entry; the timestamps are plain stores (any CPU's recent tick will do).
            unsafe {
                atomic_xadd::<u64, u64, { Relaxed }>(&raw mut (*v).packets, 1);
                atomic_xadd::<u64, u64, { Relaxed }>(&raw mut (*v).bytes, u64::from(bytes));
                if flags != 0 && (*v).tcp_flags & u64::from(flags) != u64::from(flags) {
                    atomic_or::<u64, u64, { Relaxed }>(&raw mut (*v).tcp_flags, u64::from(flags));
                }
                (*v).last_seen_ns = now;
                if (*v).first_seen_ns == 0 {
                    (*v).first_seen_ns = now;
                }
            }
        }
        if let Some(v) = flows.get_ptr_mut(key) {
            bump(v, bytes, flags, now);
            return true;
        }
        let init = FlowValue { packets: 0, bytes: 0, first_seen_ns: now, last_seen_ns: now, tcp_flags: 0 };
        // Insert empty, then add like everyone else: whichever CPU wins the insert, no packet is
        // counted twice or lost.
        let _ = flows.insert(key, &init, u64::from(BPF_NOEXIST));
        match flows.get_ptr_mut(key) {
            Some(v) => {
                bump(v, bytes, flags, now);
                true
            }
            None => false,
        }
    }

    /// The table of one key kind: the slots and the lists of slots taken.
    struct Table<S: 'static> {
        slots: &'static Array<S>,
        used: &'static Array<u64>,
    }

    /// Counts one packet into this CPU's region of `t` for `epoch` (see [`TableSlot`]): the
    /// key's slot among the [`TABLE_PROBES`] from its home, or the first free one there, which
    /// it then notes in the region's list. False when the tables are off or those slots hold
    /// other flows.
    #[inline(always)]
    fn add_table<S: TableSlot>(
        t: Table<S>,
        slots: u32,
        epoch: u32,
        k: &S::Key,
        bytes: u32,
        flags: u8,
        now: u64,
    ) -> bool {
        if slots == 0 {
            return false;
        }
        // SAFETY: the helper has no preconditions (the verifier inlines it).
        let region = unsafe { bpf_get_smp_processor_id() } * 2 + (epoch & 1);
        let home = k.home(slots);
        for i in 0..TABLE_PROBES {
            let slot = home.wrapping_add(i) & (slots - 1);
            // Array lookups by a constant map are inlined by the verifier: no call, no hash.
            let Some(s) = t.slots.get_ptr_mut(region.wrapping_mul(slots).wrapping_add(slot)) else { return false };
            // SAFETY: a live element of this CPU's region of the table. XDP runs with preemption
            // disabled and only this CPU writes its regions; that of the current epoch only
            // (userspace touches the other epoch's regions only, after an RCU grace period).
            let s = unsafe { &mut *s };
            if s.is_free() {
                let list = region.wrapping_mul(slots + 1);
                let Some(n) = t.used.get_ptr_mut(list) else { return false };
                // SAFETY: as above, for this CPU's list.
                let taken = unsafe { *n };
                // A slot is taken once an epoch (it stays taken until the harvest frees it),
                // so the list never fills; the check keeps a writer inside its own list anyway.
                if taken >= u64::from(slots) {
                    return false;
                }
                let Some(e) = t.used.get_ptr_mut(list.wrapping_add(1).wrapping_add(taken as u32)) else { return false };
                // SAFETY: as above.
                unsafe {
                    *e = u64::from(slot);
                    *n = taken + 1;
                }
                s.start(k, bytes, flags, now);
                return true;
            }
            if s.key().same(k) {
                return s.count(bytes, flags, now);
            }
        }
        false
    }

    /// Gives a later fragment its datagram's ports, or notes a first fragment's ports for the
    /// later ones (see [`FragEntry`]). True when the fragment must go up to userspace instead:
    /// a later fragment of a datagram whose ports are not known (yet), or a first fragment
    /// whose later fragments userspace holds.
    ///
    /// Not inlined: a call of its own, so its locals (the map key above all) live in its own
    /// stack frame and are gone when it returns. Inlined, they made the verifier walk the rest
    /// of the program once more for each way through here (twice the load time).
    #[inline(never)]
    fn fragment(c: &Counters, key: &mut FlowKey, id: u32, later: bool) -> bool {
        let fk = FragKey {
            src_addr: key.src_addr,
            dst_addr: key.dst_addr,
            id,
            family: key.family,
            proto: key.proto,
            pad: [0; 2],
        };
        let now = c.now();
        let ports = [key.src_port[0], key.src_port[1], key.dst_port[0], key.dst_port[1]];
        let e = match FRAGS.get_ptr_mut(&fk) {
            Some(e) => e,
            None => {
                let new = if later {
                    FragEntry { ports: [0; 4], pending: 1, last_ns: now }
                } else {
                    FragEntry { ports, pending: 0, last_ns: now }
                };
                if FRAGS.insert(&fk, &new, u64::from(BPF_NOEXIST)).is_ok() {
                    return later;
                }
                // Another CPU noted the datagram since our lookup (or the map took nothing):
                // go on from its entry.
                match FRAGS.get_ptr_mut(&fk) {
                    Some(e) => e,
                    None => return later,
                }
            }
        };
        // SAFETY: a live entry of the LRU map (RCU keeps it for the program's run). Two CPUs
        // racing on one datagram's fragments may interleave these plain stores; the worst
        // outcome is a fragment going up that could have stayed, which userspace accounts.
        let e = unsafe { &mut *e };
        let stale = now > e.last_ns.saturating_add(FRAG_TIMEOUT_NS);
        e.last_ns = now;
        if later {
            if stale {
                e.ports = [0; 4];
                e.pending = 1;
                return true;
            }
            if e.pending != 0 {
                return true;
            }
            key.src_port = [e.ports[0], e.ports[1]];
            key.dst_port = [e.ports[2], e.ports[3]];
            c.count(XdpCounter::FragmentPorts);
            false
        } else {
            let held = e.pending != 0 && !stale;
            e.ports = ports;
            e.pending = 0;
            held
        }
    }

    /// Whether `k`'s packet is among the first `limit` of its stream (both directions), which
    /// classification needs in userspace. Counts the packet into the stream map.
    #[inline(always)]
    fn classify_first(k: &FlowKey, limit: u32) -> bool {
        // Canonical order: the endpoint with the smaller (address, port) first, so a reply
        // finds its request's entry.
        let a_first = (k.src_addr, k.src_port) <= (k.dst_addr, k.dst_port);
        let (a, b) = if a_first {
            ((k.src_addr, k.src_port), (k.dst_addr, k.dst_port))
        } else {
            ((k.dst_addr, k.dst_port), (k.src_addr, k.src_port))
        };
        let s = StreamKey {
            addr_a: a.0,
            addr_b: b.0,
            port_a: a.1,
            port_b: b.1,
            family: k.family,
            proto: k.proto,
            pad: [0; 2],
        };
        match STREAMS.get_ptr_mut(&s) {
            Some(n) => {
                // SAFETY: a live entry of the LRU map (RCU-protected for the program's run).
                // Two CPUs racing on one stream may both read the same count: at worst one
                // packet more or fewer goes up, and either way it is counted exactly once.
                unsafe {
                    if *n >= limit {
                        return false;
                    }
                    *n += 1;
                }
                true
            }
            // A failed insert still hands this packet up; the next one tries again.
            None => {
                let _ = STREAMS.insert(&s, &1, 0);
                limit > 0
            }
        }
    }

    #[inline(always)]
    fn redirect(ctx: &XdpContext) -> Option<u32> {
        XSKS.redirect(ctx.rx_queue_index(), 0).ok()
    }

    #[xdp]
    pub fn xacct_xdp(ctx: XdpContext) -> u32 {
        // Never None (entry 0 of a one-entry array); the early return only satisfies the
        // verifier's null check.
        let Some(c) = Counters::get() else { return xdp_action::XDP_PASS };
        c.count(XdpCounter::Seen);
        let Some(cfg) = CONFIG.get(0) else { return xdp_action::XDP_PASS };
        let cfg = *cfg;
        let key = &mut FlowKey::default();
        let (bytes, tcp_flags, frag) = match parse(&ctx, &c, key, cfg.key_fields) {
            Verdict::Ip { bytes, tcp_flags, frag } => (bytes, tcp_flags, frag),
            Verdict::NonIp => {
                // Never pre-filtered: dropping ARP would cut the host off its link.
                c.count(XdpCounter::NonIp);
                return cfg.action;
            }
            Verdict::Deep => {
                if let Some(a) = redirect(&ctx) {
                    c.count(XdpCounter::Redirected);
                    return a;
                }
                c.count(XdpCounter::Malformed);
                return cfg.action;
            }
            Verdict::Malformed => {
                c.count(XdpCounter::Malformed);
                return cfg.action;
            }
        };
        // Fragments are resolved before the pre-filter, so that it sees a later fragment's
        // ports. Unless no port is kept (then fragments count as they are) or everything goes
        // up anyway (then userspace's fragment table does it all).
        let ports_kept = cfg.key_fields & (KEEP_SRC_PORT | KEEP_DST_PORT) != 0;
        let needs_user = ports_kept
            && cfg.flags & FLAG_REDIRECT_ALL == 0
            && match frag {
                Frag::Whole => false,
                Frag::First(id) | Frag::Later(id) => fragment(&c, key, id, matches!(frag, Frag::Later(_))),
            };
        // What must go up skips the pre-filter: userspace filters it for every plugin.
        if !needs_user && cfg.flags & FLAG_PREFILTER != 0 && !admitted(&cfg, key) {
            c.count(XdpCounter::PreFiltered);
            return cfg.action;
        }
        if needs_user || cfg.flags & FLAG_REDIRECT_ALL != 0 {
            if let Some(a) = redirect(&ctx) {
                c.count(XdpCounter::Redirected);
                return a;
            }
            // Counting it here is the next best thing: a later fragment then has ports 0, as
            // the userspace decoder gives orphans.
            c.count(XdpCounter::RedirectFailed);
        } else if cfg.flags & FLAG_CLASSIFY != 0 && classify_first(key, cfg.classify_packets) {
            if let Some(a) = redirect(&ctx) {
                c.count(XdpCounter::Classify);
                c.count(XdpCounter::Redirected);
                return a;
            }
            c.count(XdpCounter::RedirectFailed);
        }
        project(cfg.key_fields, key);
        let flags = if cfg.key_fields & KEEP_TCP_FLAGS != 0 { tcp_flags } else { 0 };
        let now = c.now();
        // One call site per map, each naming its map as a constant: the verifier then calls
        // the hash map's lookup directly. Through a pointer chosen at run time it cannot, and
        // `bpf_map_lookup_elem` costs an indirect call (~20 ns with retpolines).
        let epoch = EPOCH.get(0).map_or(0, |e| *e);
        let epoch0 = epoch == 0;
        let added = if key.family == 4 && cfg.flags & FLAG_COMPACT_V4 != 0 {
            let k4 = &FlowKey4 {
                src_addr: [key.src_addr[0], key.src_addr[1], key.src_addr[2], key.src_addr[3]],
                dst_addr: [key.dst_addr[0], key.dst_addr[1], key.dst_addr[2], key.dst_addr[3]],
                src_port: key.src_port,
                dst_port: key.dst_port,
                proto: key.proto,
                tos: key.tos,
                vlan: key.vlan,
            };
            add_table(Table { slots: &TABLE4, used: &USED4 }, cfg.table_slots, epoch, k4, bytes, flags, now)
                || if epoch0 {
                    add_shared(&FLOWS4_0, k4, bytes, flags, now)
                } else {
                    add_shared(&FLOWS4_1, k4, bytes, flags, now)
                }
        } else {
            add_table(Table { slots: &TABLE, used: &USED }, cfg.table_slots, epoch, key, bytes, flags, now)
                || if epoch0 { add(&FLOWS0, key, bytes, flags, now) } else { add(&FLOWS1, key, bytes, flags, now) }
        };
        if added {
            c.count(XdpCounter::Aggregated);
            return cfg.action;
        }
        c.count(XdpCounter::MapFull);
        if let Some(a) = redirect(&ctx) {
            c.count(XdpCounter::Redirected);
            return a;
        }
        c.count(XdpCounter::MapFullFallback);
        xdp_action::XDP_PASS
    }

    #[panic_handler]
    fn panic(_info: &core::panic::PanicInfo) -> ! {
        // SAFETY: the verifier rejects any program with a reachable panic path (there is no
        // way to unwind in BPF), so this is never reached at run time.
        unsafe { core::hint::unreachable_unchecked() }
    }
}
