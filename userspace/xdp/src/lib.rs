//! Loads the XDP program (ebpf/xdp), attaches it to an interface, feeds it pre-filter rules and
//! AF_XDP sockets, and harvests its per-flow counts exactly.
//!
//! # Exact harvest
//! The program counts into one of two sets of flow tables and maps, chosen per packet by the
//! value in the epoch map: first this CPU's part of a table (see
//! `xacct_ebpf_common::TableSlot` and the `table` module), else a hash map.
//! [`XdpProgram::harvest`] flips the epoch, then waits until no program run that may have read
//! the old epoch is still running, then reads and resets the old tables and maps. The wait is
//! an RCU grace period: an XDP program runs to completion inside an RCU read-side critical
//! section (NAPI / softirq context, preemption disabled), and the kernel's `bpf()` syscall calls
//! `synchronize_rcu()` after every update of an array-of-maps ("so that userspace, when we return
//! to it, knows that all non-sleepable programs that could be running use the new map value",
//! `maybe_wait_bpf_programs` in kernel/bpf/syscall.c, since Linux 4.x). So the loader keeps a
//! one-slot `BPF_MAP_TYPE_ARRAY_OF_MAPS` that the program never reads and updates it after the
//! flip: when that update returns, every packet is either in the old map (read now) or will
//! be in the new one (read next time). No sleep, no guess.
//!
//! The tables are read and zeroed through a memory mapping, only the slots each CPU listed as
//! taken. The hash maps are read thousands of flows per bpf() call (`BPF_MAP_LOOKUP_BATCH`,
//! Linux 5.6+), then the entries that had traffic are zeroed (`BPF_MAP_UPDATE_BATCH`) and the
//! idle ones deleted (`BPF_MAP_DELETE_BATCH`): a flow that goes on is counted with a lookup,
//! never re-inserted, which on live traffic with 100k flows cut the program's cost per packet
//! several times (an insert pops a free-list element, from another CPU's list when the
//! harvester freed it there).
//! Where the kernel refuses batch commands, it walks per key and deletes.
//!
//! # Stale programs
//! The program is attached through a bpf_link, which the kernel detaches when the last file
//! descriptor to it closes, so a crashed daemon leaves nothing behind. A program attached the
//! legacy netlink way (an older kernel, an older xacctd, `ip link set … xdp`) does outlive its
//! process: [`XdpProgram::attach`] removes one named [`PROGRAM_NAME`] before attaching, and
//! logs it.

mod batch;
mod table;

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::Command;
use std::time::Duration;

use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{Array, Map, MapData, MapError, PerCpuArray, PerCpuHashMap, XskMap};
use aya::programs::{ProgramError, TestRun, TestRunOptions, Xdp, XdpMode};
use aya::{Ebpf, EbpfError, EbpfLoader};
use xacct_ebpf_common::{self as common, maps, TableSlot};
pub use xacct_ebpf_common::{
    FlowKey, FlowKey4, FlowSlot, FlowSlot4, FlowValue, XdpConfig, XdpCounter, ENCAP_MPLS_MULTICAST, ENCAP_PPPOE,
    FRAG_TIMEOUT_NS, KEEP_ALL, KEEP_DST_ADDR, KEEP_DST_MAC, KEEP_DST_PORT, KEEP_ENCAP, KEEP_ETHERTYPE,
    KEEP_MPLS_BOTTOM, KEEP_MPLS_DEPTH, KEEP_MPLS_TOP, KEEP_PROTO, KEEP_SRC_ADDR, KEEP_SRC_MAC, KEEP_SRC_PORT,
    KEEP_TCP_FLAGS, KEEP_TOS, KEEP_VLAN, PROGRAM_NAME, XDP_COUNTERS,
};

/// The XDP object built by build.rs (aligned: the ELF parser reads it in place).
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xacct-xdp"));

#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    #[error("loading the XDP object: {0}")]
    Load(#[from] EbpfError),
    #[error("XDP program: {0}")]
    Program(#[from] ProgramError),
    #[error("XDP map: {0}")]
    Map(#[from] MapError),
    #[error("the XDP object has no map or program named {0}")]
    Missing(&'static str),
    #[error("cannot attach XDP to {iface}: native mode: {native}; generic mode: {generic}")]
    Attach { iface: String, native: String, generic: String },
    #[error("{what}: {source}")]
    Syscall { what: &'static str, source: io::Error },
    #[error("an XDP program ({other}) is already attached to {iface} and is not ours")]
    Busy { iface: String, other: String },
}

/// What the program does with a frame once it is counted (or pre-filtered, or not IP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Action {
    /// Hand it on to the kernel stack (the probe is also a host).
    #[default]
    Pass,
    /// Drop it (a mirror port: nothing else needs the frame).
    Drop,
}

/// How the program is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// In the driver, before any socket buffer exists.
    Native,
    /// In the kernel stack (`XDP_FLAGS_SKB_MODE`): works on every interface, slower.
    Generic,
}

/// Load-time settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// `KEEP_*` bits: key fields the kernel keeps (the rest are zeroed and aggregate).
    pub key_fields: u32,
    pub action: Action,
    /// Capacity of each of the two flow maps (shared by all CPUs), and the slots (rounded up to
    /// a power of two) of each CPU's IPv4 table in front of them, memory permitting.
    pub flow_entries: u32,
    /// Send every admitted IP packet to AF_XDP instead of counting it in the kernel.
    pub redirect_all: bool,
    /// Send the first this many packets of every stream (both directions) to AF_XDP, for
    /// classification; 0 = off.
    pub classify_packets: u32,
    /// Count in the per-CPU tables first (see `xacct_ebpf_common::TableSlot`), the hash maps
    /// taking only what does not fit; off: the hash maps only.
    pub tables: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            key_fields: KEEP_ALL,
            action: Action::Pass,
            flow_entries: common::DEFAULT_FLOW_ENTRIES,
            redirect_all: false,
            classify_packets: 0,
            tables: true,
        }
    }
}

/// Kernel pre-filter rules: a packet is admitted when ANY rule admits it (userspace then applies
/// each plugin's own filter). `pass_all` (the default) disables the pre-filter, for filters the
/// kernel cannot express.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    pub pass_all: bool,
    pub v4_src: Vec<(std::net::Ipv4Addr, u8)>,
    pub v4_dst: Vec<(std::net::Ipv4Addr, u8)>,
    pub v6_src: Vec<(std::net::Ipv6Addr, u8)>,
    pub v6_dst: Vec<(std::net::Ipv6Addr, u8)>,
    pub protos: Vec<u8>,
    pub src_ports: Vec<u16>,
    pub dst_ports: Vec<u16>,
    /// Outermost VLAN ids.
    pub vlans: Vec<u16>,
    /// Admit every IPv4 / IPv6 packet.
    pub ipv4: bool,
    pub ipv6: bool,
}

impl Default for Rules {
    fn default() -> Self {
        Rules::pass_all()
    }
}

impl Rules {
    pub fn pass_all() -> Rules {
        Rules { pass_all: true, ..Rules::none() }
    }

    /// A pre-filter with no rule yet: admits nothing until rules are added.
    pub fn none() -> Rules {
        Rules {
            pass_all: false,
            v4_src: vec![],
            v4_dst: vec![],
            v6_src: vec![],
            v6_dst: vec![],
            protos: vec![],
            src_ports: vec![],
            dst_ports: vec![],
            vlans: vec![],
            ipv4: false,
            ipv6: false,
        }
    }
}

/// Where [`XdpProgram::attach`] attached, and why native mode was not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    pub mode: Mode,
    /// The native attach error when `mode` is [`Mode::Generic`].
    pub native_error: Option<String>,
}

/// The program's counters, summed over CPUs; index with [`XdpCounter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters(pub [u64; XDP_COUNTERS as usize]);

impl Counters {
    pub fn get(&self, c: XdpCounter) -> u64 {
        self.0.get(c as usize).copied().unwrap_or(0)
    }
}

/// One BPF_PROG_TEST_RUN measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestRunReport {
    /// The XDP action the program returned.
    pub action: u32,
    /// Mean time per run, as the kernel measured it.
    pub per_run: Duration,
}

/// The loaded program and its maps.
pub struct XdpProgram {
    ebpf: Ebpf,
    config: XdpConfig,
    epoch: u32,
    /// One-slot array-of-maps updated only to wait for an RCU grace period (see the crate doc).
    barrier: OwnedFd,
    /// Its inner map (also the value written): a standalone one-entry array.
    barrier_inner: OwnedFd,
    attached: Option<(String, aya::programs::xdp::XdpLinkId)>,
    /// Possible CPUs: how many per-CPU values the kernel returns per key.
    nr_cpus: usize,
    /// The kernel refused the batch drain once: walk per key from then on.
    batch_refused: bool,
    batch_buffers: (batch::Buffers<FlowKey>, batch::Buffers<FlowKey4>),
    /// The per-CPU tables: the full key's, and the compact IPv4 key's when in use (none when
    /// off).
    tables: Option<(table::Tables<FlowSlot>, Option<table::Tables<FlowSlot4>>)>,
}

impl XdpProgram {
    /// Loads and verifies the program with `opts`; it is not attached yet.
    pub fn load(opts: Options) -> Result<XdpProgram, XdpError> {
        let compact = opts.key_fields & common::KEEP_FULL_KEY_ONLY == 0;
        let compact_entries = if compact { opts.flow_entries.max(1) } else { 1 };
        let nr_cpus = aya::util::nr_cpus()
            .map_err(|(_, source)| XdpError::Syscall { what: "reading /sys/devices/system/cpu/possible", source })?;
        let slot_bytes = std::mem::size_of::<FlowSlot>() + if compact { std::mem::size_of::<FlowSlot4>() } else { 0 };
        let table_slots = if opts.tables { table_slots(opts.flow_entries, nr_cpus, slot_bytes as u64) } else { 0 };
        let table4_slots = if compact { table_slots } else { 0 };
        // A region per CPU and epoch (see `maps::TABLE`).
        let regions = 2 * nr_cpus;
        let slots_of = |slots: u32| (slots as usize * regions).clamp(1, u32::MAX as usize) as u32;
        let lists = |slots: u32| ((slots as usize + 1) * regions).clamp(1, u32::MAX as usize) as u32;
        let mut ebpf = EbpfLoader::new()
            .map_max_entries(maps::TABLE, slots_of(table_slots))
            .map_max_entries(maps::TABLE4, slots_of(table4_slots))
            .map_max_entries(maps::USED, lists(table_slots))
            .map_max_entries(maps::USED4, lists(table4_slots))
            .map_max_entries(maps::FLOWS_0, opts.flow_entries.max(1))
            .map_max_entries(maps::FLOWS_1, opts.flow_entries.max(1))
            .map_max_entries(maps::FLOWS4_0, compact_entries)
            .map_max_entries(maps::FLOWS4_1, compact_entries)
            // Without classification the stream map is never touched: keep it tiny.
            .map_max_entries(
                maps::STREAMS,
                if opts.classify_packets > 0 { opts.flow_entries.max(common::DEFAULT_STREAM_ENTRIES) } else { 1 },
            )
            .load(OBJECT)?;
        let prog: &mut Xdp = ebpf.program_mut(PROGRAM_NAME).ok_or(XdpError::Missing(PROGRAM_NAME))?.try_into()?;
        prog.load()?;
        let mut flags = 0;
        if opts.redirect_all {
            flags |= common::FLAG_REDIRECT_ALL;
        }
        if opts.classify_packets > 0 {
            flags |= common::FLAG_CLASSIFY;
        }
        if compact {
            flags |= common::FLAG_COMPACT_V4;
        }
        let config = XdpConfig {
            key_fields: opts.key_fields,
            action: match opts.action {
                Action::Pass => common::XDP_PASS,
                Action::Drop => common::XDP_DROP,
            },
            flags,
            rule_kinds: 0,
            classify_packets: opts.classify_packets,
            table_slots,
        };
        let (barrier, barrier_inner) = barrier_maps()?;
        let mut me = XdpProgram {
            ebpf,
            config,
            epoch: 0,
            barrier,
            barrier_inner,
            attached: None,
            nr_cpus,
            batch_refused: false,
            batch_buffers: Default::default(),
            tables: None,
        };
        if table_slots != 0 {
            let wide = table::Tables::open(&me.ebpf, maps::TABLE, maps::USED, table_slots, regions)?;
            let narrow = if compact {
                Some(table::Tables::open(&me.ebpf, maps::TABLE4, maps::USED4, table_slots, regions)?)
            } else {
                None
            };
            me.tables = Some((wide, narrow));
        }
        me.write_config()?;
        Ok(me)
    }

    fn map_mut(&mut self, name: &'static str) -> Result<&mut Map, XdpError> {
        self.ebpf.map_mut(name).ok_or(XdpError::Missing(name))
    }

    fn write_config(&mut self) -> Result<(), XdpError> {
        let cfg = self.config;
        let mut a: Array<&mut MapData, XdpConfig> = Array::try_from(self.map_mut(maps::CONFIG)?)?;
        a.set(0, cfg, 0)?;
        Ok(())
    }

    /// Attaches to `iface`, natively if the driver can, else in generic mode. A stale copy of
    /// this program left attached the legacy way is removed first (see the crate doc).
    pub fn attach(&mut self, iface: &str) -> Result<Attached, XdpError> {
        remove_stale(iface)?;
        let prog: &mut Xdp = self.ebpf.program_mut(PROGRAM_NAME).ok_or(XdpError::Missing(PROGRAM_NAME))?.try_into()?;
        let (id, attached) = match prog.attach(iface, XdpMode::Driver) {
            Ok(id) => (id, Attached { mode: Mode::Native, native_error: None }),
            Err(native) => match prog.attach(iface, XdpMode::Skb) {
                Ok(id) => {
                    let why = error_chain(&native);
                    tracing::info!("{iface}: native XDP refused ({why}); attached in generic mode");
                    (id, Attached { mode: Mode::Generic, native_error: Some(why) })
                }
                Err(generic) => {
                    return Err(XdpError::Attach {
                        iface: iface.to_string(),
                        native: error_chain(&native),
                        generic: error_chain(&generic),
                    })
                }
            },
        };
        self.attached = Some((iface.to_string(), id));
        Ok(attached)
    }

    /// Detaches from the interface (also done on drop).
    pub fn detach(&mut self) -> Result<(), XdpError> {
        if let Some((_, id)) = self.attached.take() {
            let prog: &mut Xdp =
                self.ebpf.program_mut(PROGRAM_NAME).ok_or(XdpError::Missing(PROGRAM_NAME))?.try_into()?;
            prog.detach(id)?;
        }
        Ok(())
    }

    /// Replaces the pre-filter rules.
    pub fn set_rules(&mut self, rules: &Rules) -> Result<(), XdpError> {
        // Admit everything while the rule maps are rewritten, so no packet is dropped by a
        // half-written rule set.
        self.config.flags &= !common::FLAG_PREFILTER;
        self.write_config()?;
        let mut kinds = 0;
        kinds |= fill_lpm(self.map_mut(maps::V4_SRC)?, rules.v4_src.iter().map(|(a, l)| (a.octets(), *l)), 32)?
            * common::RULE_V4_SRC;
        kinds |= fill_lpm(self.map_mut(maps::V4_DST)?, rules.v4_dst.iter().map(|(a, l)| (a.octets(), *l)), 32)?
            * common::RULE_V4_DST;
        kinds |= fill_lpm(self.map_mut(maps::V6_SRC)?, rules.v6_src.iter().map(|(a, l)| (a.octets(), *l)), 128)?
            * common::RULE_V6_SRC;
        kinds |= fill_lpm(self.map_mut(maps::V6_DST)?, rules.v6_dst.iter().map(|(a, l)| (a.octets(), *l)), 128)?
            * common::RULE_V6_DST;
        let protos: Vec<(u32, u8)> = rules.protos.iter().map(|p| (u32::from(*p), 1)).collect();
        kinds |= fill_set(self.map_mut(maps::PROTOS)?, 256, &protos)? * common::RULE_PROTO;
        let mut ports = vec![0u8; 65536];
        for p in &rules.src_ports {
            if let Some(v) = ports.get_mut(usize::from(*p)) {
                *v |= common::PORT_SRC;
            }
        }
        for p in &rules.dst_ports {
            if let Some(v) = ports.get_mut(usize::from(*p)) {
                *v |= common::PORT_DST;
            }
        }
        let ports: Vec<(u32, u8)> =
            ports.iter().enumerate().filter(|(_, v)| **v != 0).map(|(i, v)| (i as u32, *v)).collect();
        kinds |= fill_set(self.map_mut(maps::PORTS)?, 65536, &ports)? * common::RULE_PORT;
        let vlans: Vec<(u32, u8)> = rules.vlans.iter().map(|v| (u32::from(*v & 0x0fff), 1)).collect();
        kinds |= fill_set(self.map_mut(maps::VLANS)?, 4096, &vlans)? * common::RULE_VLAN;
        if rules.ipv4 {
            kinds |= common::RULE_IPV4;
        }
        if rules.ipv6 {
            kinds |= common::RULE_IPV6;
        }
        self.config.rule_kinds = kinds;
        if !rules.pass_all {
            self.config.flags |= common::FLAG_PREFILTER;
        }
        self.write_config()
    }

    /// Puts the AF_XDP socket `fd` (bound to RX queue `queue`) in the XSKMAP slot of that
    /// queue: the program redirects that queue's packets for userspace to it.
    pub fn insert_xsk(&mut self, queue: u32, fd: impl AsRawFd) -> Result<(), XdpError> {
        let mut m: XskMap<&mut MapData> = XskMap::try_from(self.map_mut(maps::XSKS)?)?;
        m.set(queue, fd.as_raw_fd(), 0)?;
        Ok(())
    }

    /// Drains every flow counted since the previous harvest into `f` (per-CPU values summed),
    /// exactly: each packet is seen by one harvest only. See the crate doc for how.
    pub fn harvest(&mut self, mut f: impl FnMut(&FlowKey, &FlowValue)) -> Result<(), XdpError> {
        let old = self.epoch;
        let new = old ^ 1;
        {
            let mut e: Array<&mut MapData, u32> = Array::try_from(self.map_mut(maps::EPOCH)?)?;
            e.set(0, new, 0)?;
        }
        self.epoch = new;
        self.rcu_barrier()?;
        let (name, name4) = if old == 0 { (maps::FLOWS_0, maps::FLOWS4_0) } else { (maps::FLOWS_1, maps::FLOWS4_1) };
        let key_fields = self.config.key_fields;
        let mut emit = |k: &FlowKey, per_cpu: &[FlowValue]| {
            let mut sum = FlowValue::default();
            for v in per_cpu {
                sum.merge(v);
            }
            if sum.packets != 0 {
                f(k, &sum);
            }
        };
        self.drain::<FlowKey>(name, &mut emit)?;
        if self.config.flags & common::FLAG_COMPACT_V4 != 0 {
            self.drain::<FlowKey4>(name4, &mut |k: &FlowKey4, per_cpu: &[FlowValue]| {
                emit(&k.expand(key_fields), per_cpu)
            })?;
        }
        if let Some((wide, narrow)) = &mut self.tables {
            wide.drain(old, |s: &FlowSlot| f(&s.key, &s.value));
            if let Some(narrow) = narrow {
                // Compact slots keep their time relative to now (see `FlowSlot4`).
                let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
                    .map_or(0, |t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64);
                narrow.drain(old, |s: &FlowSlot4| f(&s.key.expand(key_fields), &s.value(now)));
            }
        }
        Ok(())
    }

    /// Empties the (inactive) flow map `name`, batched when the kernel allows.
    fn drain<K: FlowMapKey>(
        &mut self,
        name: &'static str,
        emit: &mut impl FnMut(&K, &[FlowValue]),
    ) -> Result<(), XdpError> {
        if !self.batch_refused {
            let map = self.ebpf.map(name).ok_or(XdpError::Missing(name))?;
            // Checks the map's type and its key and value sizes against the buffers' types.
            let data = if K::PER_CPU {
                PerCpuHashMap::<&MapData, K, FlowValue>::try_from(map)?;
                let Map::PerCpuHashMap(data) = map else { return Err(XdpError::Missing(name)) };
                data
            } else {
                aya::maps::HashMap::<&MapData, K, FlowValue>::try_from(map)?;
                let Map::HashMap(data) = map else { return Err(XdpError::Missing(name)) };
                data
            };
            let buffers = K::buffers(&mut self.batch_buffers);
            let fd = data.fd().as_fd();
            // Read, then zero the entries that had traffic and delete the idle ones, rather than
            // delete everything: a flow that goes on finds its entry at the next epoch and is
            // counted with a lookup, where a deleted one would need an insert, which costs the
            // program several times more (a free-list pop, across CPUs when the harvester freed
            // the element on another one). Idle entries go after one quiet epoch.
            let (mut active, mut idle) = (std::mem::take(&mut buffers.active), std::mem::take(&mut buffers.idle));
            active.clear();
            idle.clear();
            let nr_cpus = if K::PER_CPU { self.nr_cpus } else { 1 };
            let r = batch::read_all(fd, nr_cpus, buffers, |k: &K, per_cpu: &[FlowValue]| {
                if per_cpu.iter().any(|v| v.packets != 0) {
                    emit(k, per_cpu);
                    active.push(*k);
                } else {
                    idle.push(*k);
                }
            });
            let r = r.and_then(|d| {
                if matches!(d, batch::Drained::All) {
                    batch::zero(fd, nr_cpus, &active, &mut buffers.zeros)?;
                    batch::delete(fd, &idle)?;
                }
                Ok(d)
            });
            buffers.active = active;
            buffers.idle = idle;
            match r {
                Ok(batch::Drained::All) => return Ok(()),
                Ok(batch::Drained::Refused(e)) => {
                    tracing::warn!("the kernel refused batch map operations ({e}): harvesting flows one by one");
                    self.batch_refused = true;
                }
                Err(source) => return Err(XdpError::Syscall { what: "draining the flow map", source }),
            }
        }
        self.harvest_per_key(name, emit)
    }

    /// The drain without batch operations: three bpf() calls per flow.
    fn harvest_per_key<K: FlowMapKey>(
        &mut self,
        name: &'static str,
        emit: &mut impl FnMut(&K, &[FlowValue]),
    ) -> Result<(), XdpError> {
        // Keys first: deleting while walking with get_next_key can restart or skip the walk.
        if !K::PER_CPU {
            let mut flows: aya::maps::HashMap<&mut MapData, K, FlowValue> =
                aya::maps::HashMap::try_from(self.map_mut(name)?)?;
            let keys: Vec<K> = flows.keys().collect::<Result<_, _>>()?;
            for k in &keys {
                let v = flows.get(k, 0)?;
                emit(k, std::slice::from_ref(&v));
                flows.remove(k)?;
            }
            return Ok(());
        }
        let mut flows: PerCpuHashMap<&mut MapData, K, FlowValue> = PerCpuHashMap::try_from(self.map_mut(name)?)?;
        let keys: Vec<K> = flows.keys().collect::<Result<_, _>>()?;
        for k in &keys {
            let per_cpu = flows.get(k, 0)?;
            emit(k, &per_cpu);
            flows.remove(k)?;
        }
        Ok(())
    }

    /// Entries held in the four flow maps, idle (zeroed) ones included: a diagnostic that walks
    /// every key, not for the hot path.
    pub fn flow_entries(&self) -> Result<usize, XdpError> {
        let mut n = 0;
        for name in [maps::FLOWS_0, maps::FLOWS_1] {
            let m = self.ebpf.map(name).ok_or(XdpError::Missing(name))?;
            n += PerCpuHashMap::<&MapData, FlowKey, FlowValue>::try_from(m)?.keys().count();
        }
        for name in [maps::FLOWS4_0, maps::FLOWS4_1] {
            let m = self.ebpf.map(name).ok_or(XdpError::Missing(name))?;
            n += aya::maps::HashMap::<&MapData, FlowKey4, FlowValue>::try_from(m)?.keys().count();
        }
        if let Some((wide, narrow)) = &self.tables {
            n += wide.in_use() + narrow.as_ref().map_or(0, table::Tables::in_use);
        }
        Ok(n)
    }

    /// The kernel's own accounting of the program on live traffic: (runs, total run time).
    /// Both stay 0 unless `kernel.bpf_stats_enabled` is 1 (it costs two clock reads per run,
    /// so it is off by default; `sysctl -w kernel.bpf_stats_enabled=1` turns it on).
    pub fn run_stats(&self) -> Result<(u64, std::time::Duration), XdpError> {
        let prog: &Xdp = self.ebpf.program(PROGRAM_NAME).ok_or(XdpError::Missing(PROGRAM_NAME))?.try_into()?;
        let info = prog.info()?;
        Ok((info.run_count(), info.run_time()))
    }

    /// The program's counters, summed over CPUs.
    pub fn counters(&self) -> Result<Counters, XdpError> {
        let m = self.ebpf.map(maps::COUNTERS).ok_or(XdpError::Missing(maps::COUNTERS))?;
        let a: PerCpuArray<&MapData, common::CpuState> = PerCpuArray::try_from(m)?;
        let mut out = Counters::default();
        for cpu in a.get(&0, 0)?.iter() {
            for (slot, v) in out.0.iter_mut().zip(&cpu.counters) {
                *slot = slot.wrapping_add(*v);
            }
        }
        Ok(out)
    }

    /// Runs the program `repeat` times on `frame` with BPF_PROG_TEST_RUN (it counts into the
    /// live maps like real traffic would).
    pub fn test_run(&self, frame: &[u8], repeat: u32) -> Result<TestRunReport, XdpError> {
        let prog: &Xdp = self.ebpf.program(PROGRAM_NAME).ok_or(XdpError::Missing(PROGRAM_NAME))?.try_into()?;
        let r =
            prog.test_run(TestRunOptions { data_in: Some(frame), repeat: repeat.max(1), ..TestRunOptions::new() })?;
        Ok(TestRunReport { action: r.return_value, per_run: r.duration })
    }

    fn rcu_barrier(&self) -> Result<(), XdpError> {
        let key: u32 = 0;
        let value: u32 = self.barrier_inner.as_raw_fd() as u32;
        let attr: [u64; 4] = [
            u64::from(self.barrier.as_raw_fd() as u32),
            &key as *const u32 as u64,
            &value as *const u32 as u64,
            0, // BPF_ANY
        ];
        bpf(BPF_MAP_UPDATE_ELEM, &attr).map(drop).map_err(|source| XdpError::Syscall { what: "RCU barrier", source })
    }
}

/// The two kinds of flow-map key, with the drain buffers kept for each.
trait FlowMapKey: aya::Pod + Default {
    /// Per-CPU map (one value per possible CPU) or one shared by all CPUs.
    const PER_CPU: bool;
    fn buffers(b: &mut (batch::Buffers<FlowKey>, batch::Buffers<FlowKey4>)) -> &mut batch::Buffers<Self>;
}

impl FlowMapKey for FlowKey {
    const PER_CPU: bool = true;
    fn buffers(b: &mut (batch::Buffers<FlowKey>, batch::Buffers<FlowKey4>)) -> &mut batch::Buffers<Self> {
        &mut b.0
    }
}

impl FlowMapKey for FlowKey4 {
    const PER_CPU: bool = false;
    fn buffers(b: &mut (batch::Buffers<FlowKey>, batch::Buffers<FlowKey4>)) -> &mut batch::Buffers<Self> {
        &mut b.1
    }
}

impl Drop for XdpProgram {
    fn drop(&mut self) {
        if let Err(e) = self.detach() {
            tracing::warn!("detaching XDP: {e}");
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// Rewrites an LPM trie with `nets`; returns 1 if it holds any (the caller's rule-kind bit).
fn fill_lpm<const N: usize>(
    map: &mut Map,
    nets: impl Iterator<Item = ([u8; N], u8)>,
    max_len: u8,
) -> Result<u32, XdpError>
where
    [u8; N]: aya::Pod,
{
    let mut trie: LpmTrie<&mut MapData, [u8; N], u8> = LpmTrie::try_from(map)?;
    let old: Vec<Key<[u8; N]>> = trie.keys().collect::<Result<_, _>>()?;
    for k in &old {
        trie.remove(k)?;
    }
    let mut any = 0;
    for (addr, len) in nets {
        trie.insert(&Key::new(u32::from(len.min(max_len)), addr), 1, 0)?;
        any = 1;
    }
    Ok(any)
}

/// Rewrites a byte-array set of `size` slots with `entries`; returns 1 if any is set.
fn fill_set(map: &mut Map, size: u32, entries: &[(u32, u8)]) -> Result<u32, XdpError> {
    let mut a: Array<&mut MapData, u8> = Array::try_from(map)?;
    // Clearing only non-zero slots: 65536 syscalls for the port set otherwise.
    let set: Vec<u32> = (0..size).filter(|i| a.get(i, 0).is_ok_and(|v| v != 0)).collect();
    for i in set {
        a.set(i, 0, 0)?;
    }
    for (i, v) in entries {
        a.set(*i, *v, 0)?;
    }
    Ok(u32::from(!entries.is_empty()))
}

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_TYPE_ARRAY: u32 = 2;
const BPF_MAP_TYPE_ARRAY_OF_MAPS: u32 = 12;

/// The bpf(2) syscall, hand-written because aya 0.14 cannot create a standalone
/// array-of-maps (its inner-map constructor is crate-private).
fn bpf<const N: usize>(cmd: libc::c_long, attr: &[u64; N]) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a properly aligned, initialised buffer of the stated size that lives for
    // the whole call; the kernel reads at most that many bytes of it (and requires nothing
    // beyond; fields it knows but we do not set are zero). Pointers inside it (key/value) point
    // to locals of the caller that outlive the call.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_ptr(), std::mem::size_of_val(attr) as libc::c_uint) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Creates the barrier array-of-maps and its inner map.
fn barrier_maps() -> Result<(OwnedFd, OwnedFd), XdpError> {
    let create = |map_type: u32, value_size: u32, inner: RawFd| -> Result<OwnedFd, XdpError> {
        // union bpf_attr, BPF_MAP_CREATE: map_type, key_size, value_size, max_entries,
        // map_flags, inner_map_fd (u32 each), then fields left zero.
        let mut attr = [0u64; 8];
        attr[0] = u64::from(map_type) | (4u64 << 32);
        attr[1] = u64::from(value_size) | (1u64 << 32);
        attr[2] = u64::from(inner as u32) << 32;
        let fd =
            bpf(BPF_MAP_CREATE, &attr).map_err(|source| XdpError::Syscall { what: "create barrier map", source })?;
        // SAFETY: BPF_MAP_CREATE returned a new file descriptor that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
    };
    let inner = create(BPF_MAP_TYPE_ARRAY, 4, 0)?;
    let outer = create(BPF_MAP_TYPE_ARRAY_OF_MAPS, 4, inner.as_fd().as_raw_fd())?;
    Ok((outer, inner))
}

/// Slots of each per-CPU table for `flow_entries`: the power of two at or above it, halved
/// until the tables of both epochs and every CPU, `slot_bytes` a slot, fit in 1 GiB. Flows
/// beyond a table's reach still go to the hash maps.
fn table_slots(flow_entries: u32, nr_cpus: usize, slot_bytes: u64) -> u32 {
    const BUDGET: u64 = 1 << 30;
    let mut slots = flow_entries.max(1).checked_next_power_of_two().unwrap_or(1 << 31);
    while slots > 1 && u64::from(slots) * slot_bytes * 2 * nr_cpus.max(1) as u64 > BUDGET {
        slots /= 2;
    }
    slots
}

/// Removes a copy of our program attached the legacy (netlink) way, which survives its
/// process. A bpf_link-attached one belongs to a live process and cannot be removed this way
/// (then attaching fails with EBUSY, as it should). Uses iproute2, already a dependency of the
/// project's set-up, rather than a hand-written netlink client for a once-per-start step.
fn remove_stale(iface: &str) -> Result<(), XdpError> {
    let Ok(out) = Command::new("ip").args(["-d", "link", "show", "dev", iface]).output() else {
        return Ok(()); // No iproute2: nothing to inspect; attach reports any conflict.
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(line) = text.lines().find(|l| l.contains("prog/xdp")) else { return Ok(()) };
    let name = line.split_whitespace().skip_while(|w| *w != "name").nth(1).unwrap_or("?").to_string();
    // Kernel program names are cut to 15 characters.
    if !PROGRAM_NAME.starts_with(name.as_str()) || name.is_empty() {
        return Err(XdpError::Busy { iface: iface.to_string(), other: line.trim().to_string() });
    }
    for off in ["xdp", "xdpgeneric", "xdpdrv"] {
        let _ = Command::new("ip").args(["link", "set", "dev", iface, off, "off"]).output();
    }
    tracing::warn!("{iface}: removed a stale XDP program left attached by an earlier run ({})", line.trim());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;
    use xacct_perf::traffic::{build, FrameSpec, L3, L4};

    /// Fills the current flow map with `n` flows, flow `i` with `1 + i % 2` packets.
    fn fill(p: &XdpProgram, n: u32) {
        for i in 0..n {
            let spec = FrameSpec {
                src_mac: [2, 0, 0, 0, 0, 1],
                dst_mac: [2, 0, 0, 0, 0, 2],
                vlans: vec![],
                l3: L3::V4 {
                    src: [198, 18 + ((i >> 16) & 1) as u8, (i >> 8) as u8, i as u8],
                    dst: [198, 19, 0, 1],
                    tos: 0,
                },
                l4: L4::Udp { sport: 1000, dport: 9 },
                payload: 10,
            };
            let r = p.test_run(&build(&spec), 1 + i % 2).unwrap_or_else(|e| panic!("test_run {i}: {e:#}"));
            assert_eq!(r.action, common::XDP_PASS);
        }
    }

    /// Harvests, checking every flow comes once with its count; returns the time taken.
    fn harvest_checked(p: &mut XdpProgram, n: u32) -> Duration {
        let mut seen = std::collections::HashSet::new();
        let mut packets = 0;
        let t = Instant::now();
        p.harvest(|k, v| {
            assert!(seen.insert(*k), "{k:?} twice");
            packets += v.packets;
        })
        .expect("harvest");
        let took = t.elapsed();
        assert_eq!(seen.len(), n as usize);
        assert_eq!(packets, u64::from(n) + u64::from(n / 2));
        took
    }

    /// The per-key fallback drains exactly too, and (timed against the batch drain) shows what
    /// the batch saves. Needs root; attached to a veth in a private network namespace because a
    /// test run of an unattached XDP program costs an RCU grace period.
    #[test]
    fn per_key_fallback_and_batch_drain() {
        if !xacct_perf::root_or_skip("BPF") {
            return;
        }
        let n: u32 = std::env::var("XDP_MANY_FLOWS").ok().and_then(|s| s.parse().ok()).unwrap_or(50_000).min(131_072);
        std::thread::spawn(move || {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
            let ok = Command::new("ip")
                .args(["link", "add", "xu0", "type", "veth", "peer", "name", "xu1"])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "creating a veth pair");
            // Hash maps only: the drain under test is theirs.
            let opts = Options { flow_entries: n.next_power_of_two(), tables: false, ..Options::default() };
            let mut p = XdpProgram::load(opts).unwrap_or_else(|e| panic!("load: {e:#}"));
            p.attach("xu1").expect("attach");
            fill(&p, n);
            p.batch_refused = true;
            let per_key = harvest_checked(&mut p, n);
            p.batch_refused = false;
            p.harvest(|k, v| panic!("left behind: {k:?} {v:?}")).expect("harvest");
            fill(&p, n);
            let batch = harvest_checked(&mut p, n);
            assert!(!p.batch_refused, "this kernel (5.6+) must take the batch drain");
            p.harvest(|k, v| panic!("left behind: {k:?} {v:?}")).expect("harvest");
            p.harvest(|k, v| panic!("left behind: {k:?} {v:?}")).expect("harvest");
            println!(
                "harvest of {n} flows: per key {:.1} ms, batch {:.1} ms",
                per_key.as_secs_f64() * 1e3,
                batch.as_secs_f64() * 1e3
            );
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e));
    }
}
