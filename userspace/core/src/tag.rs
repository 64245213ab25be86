//! Pre-tagging: pmacct's `pre_tag_map` (rules that set `tag`, `tag2` and `label` from what is
//! known about a packet or flow), its flow control (`label`/`jeq`/`return`/`stack`), the
//! `maps_index` hash index, and the per-plugin `pre_tag_filter`/`pre_tag2_filter`/
//! `pre_tag_label_filter` that route tagged records to plugins.
//!
//! Semantics follow pmacct's code (pretag.c / pretag_handlers.c), not Debian 1.7.7's bugs:
//! every match key is applied wherever the record carries the field, `return=true` emits the
//! record and goes on, and a rule setting tag and tag2 sets the tag (the first SET wins).
//! Unlike pmacct, which drops a bad line with a warning and runs on, a map with a bad line is
//! refused as a whole with file:line, so that a reload keeps the old map rather than a
//! silently thinner one.

use crate::filter::{Atom, Filter};
use crate::record::{Addr, Mac, Record};
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock, RwLock};

/// What `set_tag`/`set_tag2`/`set_label` produced for one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Tags {
    pub tag: u64,
    pub tag2: u64,
    pub label: u32,
}

impl Tags {
    pub fn apply(&self, r: &mut Record) {
        r.tag = self.tag;
        r.tag2 = self.tag2;
        r.label = self.label;
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    #[error("{file}:{line}: {why}")]
    Syntax { file: String, line: usize, why: String },
    #[error("{file}: {why}")]
    Io { file: String, why: String },
}

// ---------------------------------------------------------------------------------------------
// Labels

/// Process-wide label interner: label strings become small ids (0 = none) that records and
/// aggregation keys carry. Ids never change meaning, so tables survive map reloads.
pub struct Labels {
    inner: RwLock<LabelsInner>,
}

#[derive(Default)]
struct LabelsInner {
    names: Vec<Arc<str>>,
    ids: hashbrown::HashMap<Arc<str>, u32>,
    /// (label so far, label appended) → joined label, so chains do not build strings per record.
    joins: hashbrown::HashMap<(u32, u32), u32>,
}

pub fn labels() -> &'static Labels {
    static L: OnceLock<Labels> = OnceLock::new();
    L.get_or_init(|| {
        let mut inner = LabelsInner::default();
        let empty: Arc<str> = Arc::from("");
        inner.names.push(empty.clone());
        inner.ids.insert(empty, 0);
        Labels { inner: RwLock::new(inner) }
    })
}

impl Labels {
    pub fn intern(&self, s: &str) -> u32 {
        if let Some(id) = self.inner.read().unwrap_or_else(|e| e.into_inner()).ids.get(s) {
            return *id;
        }
        let mut w = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if let Some(id) = w.ids.get(s) {
            return *id;
        }
        let id = u32::try_from(w.names.len()).unwrap_or(u32::MAX);
        let a: Arc<str> = Arc::from(s);
        w.names.push(a.clone());
        w.ids.insert(a, id);
        id
    }

    /// Looks a label up without creating it (None: no record can carry it yet).
    pub fn get(&self, s: &str) -> Option<u32> {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).ids.get(s).copied()
    }

    pub fn name(&self, id: u32) -> Arc<str> {
        let r = self.inner.read().unwrap_or_else(|e| e.into_inner());
        r.names.get(id as usize).cloned().unwrap_or_else(|| Arc::from(""))
    }

    /// Every label by id (for clients of another process).
    pub fn all(&self) -> Vec<String> {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).names.iter().map(|n| n.to_string()).collect()
    }

    /// pmacct appends a later `set_label` to the earlier one with a comma.
    pub fn join(&self, a: u32, b: u32) -> u32 {
        if a == 0 {
            return b;
        }
        if let Some(id) = self.inner.read().unwrap_or_else(|e| e.into_inner()).joins.get(&(a, b)) {
            return *id;
        }
        let s = format!("{},{}", self.name(a), self.name(b));
        let id = self.intern(&s);
        self.inner.write().unwrap_or_else(|e| e.into_inner()).joins.insert((a, b), id);
        id
    }
}

// ---------------------------------------------------------------------------------------------
// Rules

/// pmacct's `sample_type` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SampleType {
    /// sFlow `<enterprise>:<format>`.
    Sflow {
        enterprise: u32,
        format: u32,
    },
    /// NetFlow/IPFIX: any flow data record.
    Flow,
    FlowV4,
    FlowV6,
    FlowMplsV4,
    FlowMplsV6,
    Event,
    Option,
}

const NF_BIT: u32 = 1 << 31;

impl SampleType {
    /// The record's `sample_type` encoding: sFlow `enterprise << 12 | format`, NetFlow sets
    /// the top bit and a kind. `Flow` is not a record value (records say which flow kind).
    pub fn code(self) -> u32 {
        match self {
            SampleType::Sflow { enterprise, format } => (enterprise << 12 | (format & 0xfff)) & !NF_BIT,
            SampleType::Flow => NF_BIT | 1,
            SampleType::FlowV4 => NF_BIT | 2,
            SampleType::FlowV6 => NF_BIT | 3,
            SampleType::FlowMplsV4 => NF_BIT | 4,
            SampleType::FlowMplsV6 => NF_BIT | 5,
            SampleType::Event => NF_BIT | 6,
            SampleType::Option => NF_BIT | 7,
        }
    }

    fn matches(self, code: u32) -> bool {
        match self {
            SampleType::Flow => (NF_BIT | 2..=NF_BIT | 5).contains(&code),
            t => t.code() == code,
        }
    }

    fn parse(v: &str) -> Option<SampleType> {
        Some(match v {
            "flow" => SampleType::Flow,
            "flow-ipv4" => SampleType::FlowV4,
            "flow-ipv6" => SampleType::FlowV6,
            "flow-mpls-ipv4" => SampleType::FlowMplsV4,
            "flow-mpls-ipv6" => SampleType::FlowMplsV6,
            "event" => SampleType::Event,
            "option" => SampleType::Option,
            _ => {
                let (e, f) = v.split_once(':')?;
                let format: u32 = f.parse().ok()?;
                if format > 0xfff {
                    return None;
                }
                SampleType::Sflow { enterprise: e.parse().ok()?, format }
            }
        })
    }
}

/// The record field a match key reads. Also what a daemon's sources can fill (see [`Fills`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    Ip,
    In,
    Out,
    EngineType,
    EngineId,
    AgentId,
    Nexthop,
    BgpNexthop,
    SrcAs,
    DstAs,
    SrcMac,
    DstMac,
    Vlan,
    Cvlan,
    SrcNet,
    DstNet,
    IpProto,
    SrcPort,
    DstPort,
    TcpFlags,
    SampleType,
    Direction,
    IsMulticast,
    Filter,
}

/// Which record fields the sources of a daemon fill; a map key reading a field none fills is
/// refused at load (it could never match, or always would under negation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fills {
    pub capture: bool,
    pub netflow: bool,
    pub sflow: bool,
}

impl Fills {
    pub const ALL: Fills = Fills { capture: true, netflow: true, sflow: true };

    fn fills(self, f: Field) -> bool {
        use Field::*;
        let cap = matches!(
            f,
            In | Out
                | SrcMac
                | DstMac
                | Vlan
                | SrcAs
                | DstAs
                | SrcNet
                | DstNet
                | IpProto
                | SrcPort
                | DstPort
                | TcpFlags
                | Direction
                | IsMulticast
                | Filter
        );
        let nf = !matches!(f, AgentId);
        let sf = !matches!(f, EngineType | Cvlan);
        (self.capture && cap) || (self.netflow && nf) || (self.sflow && sf)
    }
}

#[derive(Debug, Clone)]
enum Test {
    Ip(Addr, u8),
    In(u32),
    Out(u32),
    EngineType(u8),
    EngineId(u32),
    AgentId(u32),
    Nexthop(Addr, u8),
    BgpNexthop(Addr, u8),
    SrcAs(u32),
    DstAs(u32),
    SrcMac(Mac),
    DstMac(Mac),
    Vlan(u16),
    Cvlan(u16),
    SrcNet(Addr, u8),
    DstNet(Addr, u8),
    IpProto(u8),
    SrcPort(u16),
    DstPort(u16),
    TcpFlags(u8),
    SampleType(SampleType),
    Direction(u8),
    IsMulticast(bool),
    Filter(Box<Filter>),
}

fn in_prefix(a: Addr, net: Addr, len: u8) -> bool {
    !a.is_none() && std::mem::discriminant(&a) == std::mem::discriminant(&net) && a.masked(len) == net
}

impl Test {
    #[inline]
    fn eval(&self, r: &Record) -> bool {
        match self {
            Test::Ip(n, l) => in_prefix(r.exporter, *n, *l),
            Test::In(v) => r.in_iface == *v,
            Test::Out(v) => r.out_iface == *v,
            Test::EngineType(v) => r.engine_type == *v,
            Test::EngineId(v) => r.engine_id == *v,
            Test::AgentId(v) => r.agent_id == *v,
            Test::Nexthop(n, l) => in_prefix(r.nexthop, *n, *l),
            Test::BgpNexthop(n, l) => in_prefix(r.bgp_nexthop, *n, *l),
            Test::SrcAs(v) => r.src_as == *v,
            Test::DstAs(v) => r.dst_as == *v,
            Test::SrcMac(m) => r.src_mac == *m,
            Test::DstMac(m) => r.dst_mac == *m,
            Test::Vlan(v) => r.vlan == *v,
            Test::Cvlan(v) => r.cvlan == *v,
            Test::SrcNet(n, l) => in_prefix(r.src_ip, *n, *l),
            Test::DstNet(n, l) => in_prefix(r.dst_ip, *n, *l),
            Test::IpProto(v) => r.proto == *v,
            Test::SrcPort(v) => r.src_port == *v,
            Test::DstPort(v) => r.dst_port == *v,
            // pmacct compares the flags exactly, not as a mask.
            Test::TcpFlags(v) => r.tcp_flags == *v,
            Test::SampleType(t) => t.matches(r.sample_type),
            Test::Direction(v) => r.direction == *v,
            Test::IsMulticast(v) => (r.dst_mac[0] & 1 == 1) == *v,
            Test::Filter(f) => f.matches(r),
        }
    }

    fn field(&self) -> Field {
        match self {
            Test::Ip(..) => Field::Ip,
            Test::In(_) => Field::In,
            Test::Out(_) => Field::Out,
            Test::EngineType(_) => Field::EngineType,
            Test::EngineId(_) => Field::EngineId,
            Test::AgentId(_) => Field::AgentId,
            Test::Nexthop(..) => Field::Nexthop,
            Test::BgpNexthop(..) => Field::BgpNexthop,
            Test::SrcAs(_) => Field::SrcAs,
            Test::DstAs(_) => Field::DstAs,
            Test::SrcMac(_) => Field::SrcMac,
            Test::DstMac(_) => Field::DstMac,
            Test::Vlan(_) => Field::Vlan,
            Test::Cvlan(_) => Field::Cvlan,
            Test::SrcNet(..) => Field::SrcNet,
            Test::DstNet(..) => Field::DstNet,
            Test::IpProto(_) => Field::IpProto,
            Test::SrcPort(_) => Field::SrcPort,
            Test::DstPort(_) => Field::DstPort,
            Test::TcpFlags(_) => Field::TcpFlags,
            Test::SampleType(_) => Field::SampleType,
            Test::Direction(_) => Field::Direction,
            Test::IsMulticast(_) => Field::IsMulticast,
            Test::Filter(_) => Field::Filter,
        }
    }

    /// Where this test sits in an index key and its value there, for tests an index can look
    /// up (an exact value or a fixed prefix); `None` for the others.
    fn slot_value(&self, key: &mut KeyBuf) -> Option<Slot> {
        let addr = |field: Field, a: &Addr, len: u8, key: &mut KeyBuf| -> Option<Slot> {
            let v6 = match a {
                Addr::V4(b) => key.push(b).then_some(false)?,
                Addr::V6(b) => key.push(b).then_some(true)?,
                Addr::None => return None,
            };
            Some(Slot { field, len, v6 })
        };
        let plain = |field: Field, bytes: &[u8], key: &mut KeyBuf| -> Option<Slot> {
            key.push(bytes).then_some(Slot { field, len: 0, v6: false })
        };
        match self {
            Test::Ip(a, l) => addr(Field::Ip, a, *l, key),
            Test::Nexthop(a, l) => addr(Field::Nexthop, a, *l, key),
            Test::BgpNexthop(a, l) => addr(Field::BgpNexthop, a, *l, key),
            Test::SrcNet(a, l) => addr(Field::SrcNet, a, *l, key),
            Test::DstNet(a, l) => addr(Field::DstNet, a, *l, key),
            Test::In(v) => plain(Field::In, &v.to_le_bytes(), key),
            Test::Out(v) => plain(Field::Out, &v.to_le_bytes(), key),
            Test::EngineId(v) => plain(Field::EngineId, &v.to_le_bytes(), key),
            Test::AgentId(v) => plain(Field::AgentId, &v.to_le_bytes(), key),
            Test::SrcAs(v) => plain(Field::SrcAs, &v.to_le_bytes(), key),
            Test::DstAs(v) => plain(Field::DstAs, &v.to_le_bytes(), key),
            Test::EngineType(v) => plain(Field::EngineType, &[*v], key),
            Test::IpProto(v) => plain(Field::IpProto, &[*v], key),
            Test::TcpFlags(v) => plain(Field::TcpFlags, &[*v], key),
            Test::Direction(v) => plain(Field::Direction, &[*v], key),
            Test::IsMulticast(b) => plain(Field::IsMulticast, &[u8::from(*b)], key),
            Test::SrcMac(m) => plain(Field::SrcMac, m, key),
            Test::DstMac(m) => plain(Field::DstMac, m, key),
            Test::Vlan(v) => plain(Field::Vlan, &v.to_le_bytes(), key),
            Test::Cvlan(v) => plain(Field::Cvlan, &v.to_le_bytes(), key),
            Test::SrcPort(v) => plain(Field::SrcPort, &v.to_le_bytes(), key),
            Test::DstPort(v) => plain(Field::DstPort, &v.to_le_bytes(), key),
            // `sample_type=flow` matches several record codes, and filters are programs.
            Test::SampleType(SampleType::Flow) | Test::Filter(_) => None,
            Test::SampleType(t) => plain(Field::SampleType, &t.code().to_le_bytes(), key),
        }
    }

    /// The map test equal to a filter's guard atom.
    fn from_atom(a: Atom) -> Test {
        match a {
            Atom::SrcNet(a, l) => Test::SrcNet(a, l),
            Atom::DstNet(a, l) => Test::DstNet(a, l),
            Atom::SrcPort(p) => Test::SrcPort(p),
            Atom::DstPort(p) => Test::DstPort(p),
            Atom::Proto(p) => Test::IpProto(p),
            Atom::Vlan(v) => Test::Vlan(v),
            Atom::SrcMac(m) => Test::SrcMac(m),
            Atom::DstMac(m) => Test::DstMac(m),
        }
    }
}

/// Longest index key, in bytes and in fields; a rule's longer key is cut (the rule then gets
/// checked in full on every hit, which only costs time).
const MAX_KEY: usize = 64;
const MAX_SLOTS: usize = 8;

/// An index key being built: record field values side by side, fixed width per [`Slot`].
struct KeyBuf {
    b: [u8; MAX_KEY],
    n: usize,
}

impl KeyBuf {
    #[inline]
    fn new() -> KeyBuf {
        KeyBuf { b: [0; MAX_KEY], n: 0 }
    }

    #[inline]
    fn push(&mut self, v: &[u8]) -> bool {
        match self.b.get_mut(self.n..self.n + v.len()) {
            Some(d) => {
                d.copy_from_slice(v);
                self.n += v.len();
                true
            }
            None => false,
        }
    }

    #[inline]
    fn as_slice(&self) -> &[u8] {
        self.b.get(..self.n).unwrap_or_default()
    }
}

/// One field of an index key: the record field, the prefix length and family for addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Slot {
    field: Field,
    len: u8,
    v6: bool,
}

impl Slot {
    /// Bytes of this slot's value in a key.
    fn width(self) -> usize {
        use Field::*;
        match self.field {
            Ip | Nexthop | BgpNexthop | SrcNet | DstNet if self.v6 => 16,
            Ip | Nexthop | BgpNexthop | SrcNet | DstNet => 4,
            In | Out | EngineId | AgentId | SrcAs | DstAs | SampleType => 4,
            EngineType | IpProto | TcpFlags | Direction | IsMulticast => 1,
            SrcMac | DstMac => 6,
            Vlan | Cvlan | SrcPort | DstPort => 2,
            Filter => 0,
        }
    }

    /// The record's value for this slot, as the little-endian reading of the bytes
    /// [`Test::slot_value`] writes for a rule; `None` when the record cannot match it (an
    /// address of the other family, or none). Computed in registers: building the key in
    /// memory and hashing it back costs a store-forwarding stall per record.
    #[inline]
    fn record_value(self, r: &Record) -> Option<u128> {
        let addr = |a: &Addr| match (*a, self.v6) {
            (Addr::V4(b), false) => {
                let keep = u32::MAX.checked_shl(32 - u32::from(self.len.min(32))).unwrap_or(0);
                Some(u128::from(u32::from_le_bytes((u32::from_be_bytes(b) & keep).to_be_bytes())))
            }
            (Addr::V6(b), true) => {
                let keep = u128::MAX.checked_shl(128 - u32::from(self.len.min(128))).unwrap_or(0);
                Some(u128::from_le_bytes((u128::from_be_bytes(b) & keep).to_be_bytes()))
            }
            _ => None,
        };
        let mac = |m: [u8; 6]| u128::from(u64::from_le_bytes([m[0], m[1], m[2], m[3], m[4], m[5], 0, 0]));
        Some(match self.field {
            Field::Ip => addr(&r.exporter)?,
            Field::Nexthop => addr(&r.nexthop)?,
            Field::BgpNexthop => addr(&r.bgp_nexthop)?,
            Field::SrcNet => addr(&r.src_ip)?,
            Field::DstNet => addr(&r.dst_ip)?,
            Field::In => r.in_iface.into(),
            Field::Out => r.out_iface.into(),
            Field::EngineId => r.engine_id.into(),
            Field::AgentId => r.agent_id.into(),
            Field::SrcAs => r.src_as.into(),
            Field::DstAs => r.dst_as.into(),
            Field::EngineType => r.engine_type.into(),
            Field::IpProto => r.proto.into(),
            Field::TcpFlags => r.tcp_flags.into(),
            Field::Direction => r.direction.into(),
            Field::IsMulticast => u128::from(r.dst_mac[0] & 1),
            Field::SrcMac => mac(r.src_mac),
            Field::DstMac => mac(r.dst_mac),
            Field::Vlan => r.vlan.into(),
            Field::Cvlan => r.cvlan.into(),
            Field::SrcPort => r.src_port.into(),
            Field::DstPort => r.dst_port.into(),
            Field::SampleType => r.sample_type.into(),
            Field::Filter => return None,
        })
    }
}

/// The little-endian reading of a slot's key bytes (widths 1, 2, 4, 6 or 16).
#[inline]
fn key_value(b: &[u8]) -> u128 {
    match *b {
        [a] => a.into(),
        [a, b] => u16::from_le_bytes([a, b]).into(),
        [a, b, c, d] => u32::from_le_bytes([a, b, c, d]).into(),
        [a, b, c, d, e, f] => u64::from_le_bytes([a, b, c, d, e, f, 0, 0]).into(),
        _ => b.try_into().map_or(u128::MAX, u128::from_le_bytes),
    }
}

#[derive(Debug, Clone)]
struct Match {
    test: Test,
    neg: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stack {
    None,
    Sum,
    Or,
}

/// A SET value as parsed: a constant, or `N++` (every match takes the counter, then it grows
/// by one).
#[derive(Debug, Clone, Copy)]
enum SetVal {
    Const(u64),
    Incr(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Set {
    None,
    Tag,
    Tag2,
    Label,
}

#[derive(Debug)]
struct Rule {
    line: usize,
    matches: Vec<Match>,
    /// `label=`: this rule's name, a jump target.
    name: Option<String>,
}

/// What a matching rule does, in 16 bytes. Kept apart from the rules' match keys, and copied
/// into the index rows, so that a record matched through the index reads nothing of its rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Act {
    /// The tag or tag2 value, the label id, or (with `incr`) the index of the rule's counter.
    value: u64,
    /// Resolved `jeq=`: the index of the rule to continue at, or [`NO_JUMP`].
    jeq: u32,
    set: Set,
    stack: Stack,
    ret: bool,
    /// `value` is an index into [`TagMap::counters`] (`N++`).
    incr: bool,
}

const NO_JUMP: u32 = u32::MAX;
/// Bytes of an [`Act`] in an index row.
const ACT_BYTES: usize = 16;

impl Act {
    fn to_bytes(self) -> [u8; ACT_BYTES] {
        let mut b = [0u8; ACT_BYTES];
        let (v, rest) = b.split_at_mut(8);
        v.copy_from_slice(&self.value.to_le_bytes());
        let (j, rest) = rest.split_at_mut(4);
        j.copy_from_slice(&self.jeq.to_le_bytes());
        let set = match self.set {
            Set::None => 0,
            Set::Tag => 1,
            Set::Tag2 => 2,
            Set::Label => 3,
        };
        let stack = match self.stack {
            Stack::None => 0,
            Stack::Sum => 1,
            Stack::Or => 2,
        };
        rest.copy_from_slice(&[set, stack, u8::from(self.ret) | u8::from(self.incr) << 1, 0]);
        b
    }

    #[inline]
    fn from_bytes(b: &[u8]) -> Option<Act> {
        let value = u64::from_le_bytes(b.get(..8)?.try_into().ok()?);
        let jeq = u32::from_le_bytes(b.get(8..12)?.try_into().ok()?);
        let &[set, stack, flags, _] = b.get(12..16)? else { return None };
        Some(Act {
            value,
            jeq,
            set: match set {
                1 => Set::Tag,
                2 => Set::Tag2,
                3 => Set::Label,
                _ => Set::None,
            },
            stack: match stack {
                1 => Stack::Sum,
                2 => Stack::Or,
                _ => Stack::None,
            },
            ret: flags & 1 != 0,
            incr: flags & 2 != 0,
        })
    }
}

impl Rule {
    #[inline]
    fn matches(&self, r: &Record) -> bool {
        self.matches.iter().all(|m| m.test.eval(r) != m.neg)
    }
}

/// Map-wide settings (`maps_entries`, `maps_row_len`, `maps_index`) and what the daemon fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapOptions {
    /// Refuse maps with more rules than this (None: no limit).
    pub max_entries: Option<usize>,
    /// Refuse lines longer than this (None: no limit).
    pub max_row_len: Option<usize>,
    pub index: bool,
    pub fills: Fills,
}

impl Default for MapOptions {
    fn default() -> Self {
        MapOptions { max_entries: None, max_row_len: None, index: true, fills: Fills::ALL }
    }
}

/// Index over the rules: every rule with a positive exact-match key (or a `filter=` whose
/// guard gives field values it needs) is filed under those values, in one hash table per
/// combination of fields ([`Slot`]s); the rest are scanned in order. What the tables give are
/// candidates: the first match from position `p` is the lowest matching position among them
/// and the scanned rules. A rule filed under all of its keys (no filter, no negation, nothing
/// cut) is a match as soon as its key is found, without reading the rule itself.
///
/// Layout is for the cache: a table slot holds a row number, and a row is one run of bytes
/// (position, next row with the same key, key), so a hit on a 10,000-rule map reads the
/// table and one row.
#[derive(Debug, Default)]
struct Index {
    groups: Vec<Group>,
    /// Positions of the rules not in any group, ascending.
    scan: Vec<u32>,
    hasher: foldhash::fast::FixedState,
}

/// Row header: position (with [`CHECK`]) and next row, little-endian u32s, then the rule's
/// [`Act`].
const ROW_HEAD: usize = 8 + ACT_BYTES;
/// Set in a row's position when the rule must still be evaluated in full on a hit.
const CHECK: u32 = 1 << 31;
const NO_ROW: u32 = u32::MAX;

#[derive(Debug)]
struct Group {
    slots: Vec<Slot>,
    /// Bytes of a key: the sum of the slots' widths.
    width: usize,
    /// Rows of `ROW_HEAD + width` bytes, in rule order.
    rows: Vec<u8>,
    /// The first row of each distinct key; rows of one key chain by position, ascending.
    table: hashbrown::HashTable<u32>,
}

impl Group {
    /// The hash of a rule's key (its slot values, in slot order).
    fn hash_key(&self, hasher: &foldhash::fast::FixedState, key: &[u8]) -> u64 {
        use std::hash::Hasher;
        let mut h = hasher.build_hasher();
        let mut at = 0;
        for s in &self.slots {
            let w = s.width();
            h.write_u128(key_value(key.get(at..at + w).unwrap_or_default()));
            at += w;
        }
        h.finish()
    }

    /// The hash of a record's values for this group's slots, the way [`Group::hash_key`]
    /// hashes a rule's; `None` when a slot cannot match the record.
    #[inline]
    fn hash_record(&self, hasher: &foldhash::fast::FixedState, r: &Record) -> Option<u64> {
        use std::hash::Hasher;
        let mut h = hasher.build_hasher();
        for s in &self.slots {
            h.write_u128(s.record_value(r)?);
        }
        Some(h.finish())
    }

    #[inline]
    fn key_matches(&self, key: &[u8], r: &Record) -> bool {
        let mut at = 0;
        for s in &self.slots {
            let w = s.width();
            if Some(key_value(key.get(at..at + w).unwrap_or_default())) != s.record_value(r) {
                return false;
            }
            at += w;
        }
        true
    }

    #[inline]
    fn row(&self, i: u32) -> Option<&[u8]> {
        let stride = ROW_HEAD + self.width;
        self.rows.get(i as usize * stride..(i as usize + 1) * stride)
    }

    #[inline]
    fn head(row: &[u8], at: usize) -> u32 {
        row.get(at..at + 4).and_then(|b| b.try_into().ok()).map_or(NO_ROW, u32::from_le_bytes)
    }

    #[inline]
    fn key_of(&self, i: u32) -> &[u8] {
        self.row(i).and_then(|r| r.get(ROW_HEAD..)).unwrap_or_default()
    }
}

/// A rule's entries in the index: alternatives of exact tests, and whether a hit on the
/// (single) entry is already a match.
fn entries(rule: &Rule) -> Option<(Vec<Vec<Test>>, bool)> {
    let exact: Vec<Test> = rule
        .matches
        .iter()
        .filter(|m| !m.neg && m.test.slot_value(&mut KeyBuf::new()).is_some())
        .map(|m| m.test.clone())
        .collect();
    if !exact.is_empty() {
        let complete = exact.len() == rule.matches.len();
        return Some((vec![exact], complete));
    }
    // No exact key: a positive filter's guard (checked in full on every hit).
    rule.matches.iter().find_map(|m| match &m.test {
        Test::Filter(f) if !m.neg => f
            .guard()
            .map(|g| (g.into_iter().map(|alt| alt.into_iter().map(Test::from_atom).collect()).collect(), false)),
        _ => None,
    })
}

impl Index {
    fn build(rules: &[Rule], acts: &[Act]) -> Index {
        let mut ix = Index::default();
        // Per group, while building: a key's (first row, last row).
        let mut chains: Vec<hashbrown::HashMap<Vec<u8>, (u32, u32)>> = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            let pos = i as u32;
            let Some((alts, complete)) = entries(rule) else {
                ix.scan.push(pos);
                continue;
            };
            // An empty list of alternatives: the rule can never match, so it is filed nowhere.
            for mut alt in alts {
                let mut full = complete;
                let mut slotted: Vec<(Slot, Vec<u8>)> = Vec::with_capacity(alt.len());
                for t in alt.drain(..) {
                    let mut k = KeyBuf::new();
                    if let Some(slot) = t.slot_value(&mut k) {
                        slotted.push((slot, k.as_slice().to_vec()));
                    }
                }
                slotted.sort();
                slotted.dedup();
                // The same field twice with different values: this alternative never holds.
                if slotted.windows(2).any(|w| matches!(w, [a, b] if a.0 == b.0)) {
                    continue;
                }
                let mut key = KeyBuf::new();
                let mut slots = Vec::with_capacity(slotted.len());
                for (slot, v) in &slotted {
                    if slots.len() == MAX_SLOTS || !key.push(v) {
                        full = false;
                        break;
                    }
                    slots.push(*slot);
                }
                let g = match ix.groups.iter().position(|g| g.slots == slots) {
                    Some(g) => g,
                    None => {
                        let width = key.n;
                        ix.groups.push(Group { slots, width, rows: Vec::new(), table: hashbrown::HashTable::new() });
                        chains.push(hashbrown::HashMap::new());
                        ix.groups.len() - 1
                    }
                };
                let (Some(group), Some(chain)) = (ix.groups.get_mut(g), chains.get_mut(g)) else { continue };
                let row = (group.rows.len() / (ROW_HEAD + group.width)) as u32;
                let k = key.as_slice();
                match chain.get_mut(k) {
                    // A rule filed twice under one key (two alternatives alike) needs one row.
                    Some((_, last)) if group.row(*last).is_some_and(|r| Group::head(r, 0) & !CHECK == pos) => continue,
                    Some((_, last)) => {
                        let at = *last as usize * (ROW_HEAD + group.width) + 4;
                        if let Some(next) = group.rows.get_mut(at..at + 4) {
                            next.copy_from_slice(&row.to_le_bytes());
                        }
                        *last = row;
                    }
                    None => {
                        chain.insert(k.to_vec(), (row, row));
                    }
                }
                let flagged = if full { pos } else { pos | CHECK };
                group.rows.extend_from_slice(&flagged.to_le_bytes());
                group.rows.extend_from_slice(&NO_ROW.to_le_bytes());
                group.rows.extend_from_slice(&acts.get(i).map(|a| a.to_bytes()).unwrap_or_default());
                group.rows.extend_from_slice(k);
            }
        }
        for (group, chain) in ix.groups.iter_mut().zip(chains) {
            let mut table = hashbrown::HashTable::with_capacity(chain.len());
            for (k, (head, _)) in chain {
                table.insert_unique(group.hash_key(&ix.hasher, &k), head, |&i| {
                    group.hash_key(&ix.hasher, group.key_of(i))
                });
            }
            group.table = table;
        }
        ix
    }

    /// The first rule at or after `from` that matches `r`, and what it does.
    #[inline]
    fn first(&self, rules: &[Rule], acts: &[Act], r: &Record, from: usize) -> Option<(usize, Act)> {
        let mut best = usize::MAX;
        let mut act = None;
        for g in &self.groups {
            let Some(h) = g.hash_record(&self.hasher, r) else { continue };
            let Some(&head) = g.table.find(h, |&i| g.key_matches(g.key_of(i), r)) else { continue };
            let mut i = head;
            while let Some(row) = g.row(i) {
                let flagged = Group::head(row, 0);
                let p = (flagged & !CHECK) as usize;
                if p >= best {
                    break;
                }
                if p >= from && (flagged & CHECK == 0 || rules.get(p).is_some_and(|x| x.matches(r))) {
                    best = p;
                    act = row.get(8..ROW_HEAD).and_then(Act::from_bytes);
                    break;
                }
                i = Group::head(row, 4);
            }
        }
        let start = self.scan.partition_point(|p| (*p as usize) < from);
        for p in self.scan.iter().skip(start).map(|p| *p as usize) {
            if p >= best {
                break;
            }
            if rules.get(p).is_some_and(|x| x.matches(r)) {
                best = p;
                act = acts.get(p).copied();
                break;
            }
        }
        Some((best, act?))
    }
}

/// A loaded `pre_tag_map`.
#[derive(Debug)]
pub struct TagMap {
    file: String,
    rules: Vec<Rule>,
    acts: Vec<Act>,
    /// The `N++` counters, one per such rule.
    counters: Vec<AtomicU64>,
    reads_as: bool,
    index: Option<Index>,
    fields: Vec<Field>,
}

impl TagMap {
    pub fn load(path: &Path, opts: &MapOptions) -> Result<TagMap, TagError> {
        let file = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|e| TagError::Io { file: file.clone(), why: e.to_string() })?;
        parse_map_with(&text, &file, opts)
    }

    pub fn file(&self) -> &str {
        &self.file
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Record fields the rules read (for the XDP flow key and for nets resolution).
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    pub fn uses(&self, f: Field) -> bool {
        self.fields.contains(&f)
    }

    /// Whether a rule reads `src_as` or `dst_as` (which depend on a plugin's networks_file).
    #[inline]
    pub fn reads_as(&self) -> bool {
        self.reads_as
    }

    /// Source line of each rule, in map order (for diagnostics and tests).
    pub fn lines(&self) -> Vec<usize> {
        self.rules.iter().map(|r| r.line).collect()
    }

    #[inline]
    fn first(&self, r: &Record, from: usize) -> Option<(usize, Act)> {
        match &self.index {
            Some(ix) => ix.first(&self.rules, &self.acts, r, from),
            None => {
                let p = self.rules.iter().skip(from).position(|x| x.matches(r))? + from;
                Some((p, *self.acts.get(p)?))
            }
        }
    }

    /// Evaluates the map on `r`. `emit` receives the tags the record is accounted with: once,
    /// plus once more before each `return=true` jump (pmacct sends the record to the plugins
    /// there and goes on with cleared tags). An unmatched record is emitted untagged.
    #[inline]
    pub fn eval(&self, r: &Record, mut emit: impl FnMut(Tags)) {
        if r.later_fragment && (r.src_port != 0 || r.dst_port != 0) {
            // The packet itself carries no transport header: match it as it came.
            let q = Record { src_port: 0, dst_port: 0, tcp_flags: 0, ..*r };
            return self.eval(&q, emit);
        }
        let mut t = Tags::default();
        let mut from = 0;
        while let Some((_, rule)) = self.first(r, from) {
            let value = || match rule.incr {
                false => rule.value,
                true => self.counters.get(rule.value as usize).map_or(0, |c| c.fetch_add(1, Relaxed)),
            };
            match rule.set {
                Set::Tag => t.tag = stack(rule.stack, value(), t.tag),
                Set::Tag2 => t.tag2 = stack(rule.stack, value(), t.tag2),
                Set::Label => t.label = labels().join(t.label, rule.value as u32),
                Set::None => {}
            }
            if rule.jeq == NO_JUMP {
                break;
            }
            if rule.ret {
                emit(t);
                t = Tags::default();
            }
            from = rule.jeq as usize;
        }
        emit(t);
    }

    /// The tags of the record's last emission (for callers that need one result).
    pub fn eval_one(&self, r: &Record) -> Tags {
        let mut last = Tags::default();
        self.eval(r, |t| last = t);
        last
    }
}

fn stack(op: Stack, new: u64, cur: u64) -> u64 {
    match op {
        Stack::None => new,
        Stack::Sum => new.wrapping_add(cur),
        Stack::Or => new | cur,
    }
}

/// Parses a map's text with default options (every key allowed, no limits, no index): the
/// entry point for fuzzing.
pub fn parse_map(text: &str) -> Result<TagMap, TagError> {
    parse_map_with(text, "pre_tag_map", &MapOptions::default())
}

/// Splits a line into `key=value` tokens: whitespace outside single quotes separates, quotes
/// are removed (pmacct's mark_columns / strip_quotes).
fn tokens(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '\'' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if quoted {
        return Err("unterminated quote".into());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

fn parse_prefix(v: &str) -> Result<(Addr, u8), String> {
    let (a, len) = match v.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (v, None),
    };
    let ip: IpAddr = a.parse().map_err(|_| format!("'{v}' is not an address or prefix"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match len {
        Some(l) => l.parse::<u8>().ok().filter(|l| *l <= max).ok_or_else(|| format!("bad prefix length in '{v}'"))?,
        None => max,
    };
    Ok((Addr::from(ip).masked(len), len))
}

fn parse_mac(v: &str) -> Result<Mac, String> {
    let parts: Vec<&str> = v.split(':').collect();
    let mut m = [0u8; 6];
    if parts.len() != 6 {
        return Err(format!("'{v}' is not a MAC address"));
    }
    for (b, p) in m.iter_mut().zip(parts) {
        *b = u8::from_str_radix(p, 16).map_err(|_| format!("'{v}' is not a MAC address"))?;
    }
    Ok(m)
}

fn num<T: TryFrom<u64>>(v: &str, max: u64) -> Result<T, String> {
    let n: u64 = if let Some(h) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).map_err(|_| format!("'{v}' is not a number"))?
    } else {
        if !v.bytes().all(|b| b.is_ascii_digit()) || v.is_empty() {
            return Err(format!("'{v}' is not a number"));
        }
        v.parse().map_err(|_| format!("'{v}' is not a number"))?
    };
    if n > max {
        return Err(format!("{n} is out of range (at most {max})"));
    }
    T::try_from(n).map_err(|_| format!("{n} is out of range"))
}

fn parse_bool(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(format!("'{v}' is not true or false")),
    }
}

fn parse_set(v: &str) -> Result<SetVal, String> {
    let (digits, incr) = match v.strip_suffix("++") {
        Some(d) => (d, true),
        None => (v, false),
    };
    // pmacct takes decimal digits only here.
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("'{v}' is not a tag (decimal digits, optionally followed by ++)"));
    }
    let n: u64 = digits.parse().map_err(|_| format!("'{v}' is out of range"))?;
    Ok(if incr { SetVal::Incr(n) } else { SetVal::Const(n) })
}

fn parse_proto(v: &str) -> Result<u8, String> {
    match v.to_ascii_lowercase().as_str() {
        "tcp" => Ok(6),
        "udp" => Ok(17),
        "icmp" => Ok(1),
        "icmp6" | "ipv6-icmp" => Ok(58),
        "gre" => Ok(47),
        "esp" => Ok(50),
        _ => num(v, 255),
    }
}

/// Longest `label=` name pmacct keeps (MAX_LABEL_LEN - 1).
const MAX_LABEL: usize = 31;

struct RawRule {
    rule: Rule,
    act: Act,
    jeq: Option<String>,
    /// The start of an `N++` counter.
    counter: Option<u64>,
}

/// Parses a map, reporting the first bad line as `file:line: why`.
pub fn parse_map_with(text: &str, file: &str, opts: &MapOptions) -> Result<TagMap, TagError> {
    let mut raw: Vec<RawRule> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let lineno = n + 1;
        let err = |why: String| TagError::Syntax { file: file.to_string(), line: lineno, why };
        let t = line.trim();
        if t.is_empty() || t.starts_with('!') || t.starts_with('#') {
            continue;
        }
        if let Some(max) = opts.max_row_len {
            if line.len() > max {
                return Err(err(format!("line longer than maps_row_len ({max})")));
            }
        }
        if let Some(max) = opts.max_entries {
            if raw.len() >= max {
                return Err(err(format!("more rules than maps_entries ({max})")));
            }
        }
        let rule = parse_rule(t, lineno, opts).map_err(err)?;
        raw.push(rule);
    }
    // Jumps resolve to the first rule carrying the label; it must come later (pmacct scans
    // forward only). `next` is the following rule.
    let names: Vec<Option<String>> = raw.iter().map(|r| r.rule.name.clone()).collect();
    let count = raw.len();
    let mut rules = Vec::with_capacity(count);
    let mut acts = Vec::with_capacity(count);
    let mut counters = Vec::new();
    for (i, rr) in raw.into_iter().enumerate() {
        let RawRule { rule, mut act, jeq, counter } = rr;
        if let Some(n) = counter {
            act.value = counters.len() as u64;
            counters.push(AtomicU64::new(n));
        }
        if let Some(target) = jeq {
            let err = |why: String| TagError::Syntax { file: file.to_string(), line: rule.line, why };
            let j = if target == "next" {
                i + 1
            } else {
                match names.iter().position(|n| n.as_deref() == Some(target.as_str())) {
                    Some(j) if j > i => j,
                    Some(_) => {
                        return Err(err(format!("jeq={target}: label is not after this rule (jumps go forward)")))
                    }
                    None => return Err(err(format!("jeq={target}: no rule has label={target}"))),
                }
            };
            if j < count || act.ret {
                // `jeq=next` on the last rule: nothing to continue at; return still emits.
                act.jeq =
                    u32::try_from(j).ok().filter(|j| *j != NO_JUMP).ok_or_else(|| err("too many rules".into()))?;
            }
        }
        rules.push(rule);
        acts.push(act);
    }
    let mut fields: Vec<Field> = rules.iter().flat_map(|r| r.matches.iter().map(|m| m.test.field())).collect();
    fields.sort();
    fields.dedup();
    let index = opts.index.then(|| Index::build(&rules, &acts));
    let reads_as = fields.contains(&Field::SrcAs) || fields.contains(&Field::DstAs);
    Ok(TagMap { file: file.to_string(), rules, acts, counters, reads_as, index, fields })
}

fn parse_rule(line: &str, lineno: usize, opts: &MapOptions) -> Result<RawRule, String> {
    if line.contains('|') {
        return Err("'|' is not allowed in a map line".into());
    }
    let mut rule = Rule { line: lineno, matches: Vec::new(), name: None };
    let mut act = Act { value: 0, jeq: NO_JUMP, set: Set::None, stack: Stack::None, ret: false, incr: false };
    let mut jeq = None;
    let mut seen: Vec<String> = Vec::new();
    let (mut tag, mut tag2, mut label) = (None, None, None);
    for tok in tokens(line)? {
        let (k, v) = tok.split_once('=').ok_or_else(|| format!("'{tok}' is not key=value"))?;
        let key = k.to_ascii_lowercase();
        let canon = match key.as_str() {
            "id" => "set_tag",
            "id2" => "set_tag2",
            k => k,
        }
        .to_string();
        if v.is_empty() {
            return Err(format!("{key}: empty value"));
        }
        if seen.contains(&canon) {
            return Err(format!("multiple '{key}' clauses"));
        }
        seen.push(canon.clone());
        let (neg, val) = match v.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, v),
        };
        let test = match canon.as_str() {
            "set_tag" => {
                tag = Some(parse_set(v)?);
                continue;
            }
            "set_tag2" => {
                tag2 = Some(parse_set(v)?);
                continue;
            }
            "set_label" => {
                label = Some(labels().intern(v));
                continue;
            }
            "label" => {
                if v == "next" {
                    return Err("label: 'next' is reserved".into());
                }
                if v.len() > MAX_LABEL {
                    return Err(format!("label: longer than {MAX_LABEL} characters"));
                }
                rule.name = Some(v.to_string());
                continue;
            }
            "jeq" => {
                jeq = Some(v.to_string());
                continue;
            }
            "return" => {
                act.ret = parse_bool(v)?;
                continue;
            }
            "stack" => {
                act.stack = match v {
                    "sum" | "+" => Stack::Sum,
                    "or" => Stack::Or,
                    _ => return Err(format!("stack: '{v}' is not sum, + or or")),
                };
                continue;
            }
            _ => match parse_test(&canon, val, v, neg).map_err(|e| format!("{key}={v}: {e}"))? {
                Some(t) => t,
                None => return Err(format!("unknown key '{key}'")),
            },
        };
        if !opts.fills.fills(test.field()) {
            return Err(format!("key '{key}': no source of this daemon fills it"));
        }
        rule.matches.push(Match { test, neg });
    }
    if tag.is_some() && tag2.is_some() && label.is_some() {
        return Err("set_tag, set_tag2 and set_label cannot all be in one rule".into());
    }
    // pmacct's precedence: one SET takes effect per rule, tag before tag2 before label.
    let val;
    (act.set, val) = match (tag, tag2, label) {
        (Some(t), _, _) => (Set::Tag, Some(t)),
        (None, Some(t), _) => (Set::Tag2, Some(t)),
        (None, None, Some(l)) => (Set::Label, Some(SetVal::Const(u64::from(l)))),
        (None, None, None) => (Set::None, None),
    };
    let mut counter = None;
    match val {
        Some(SetVal::Const(v)) => act.value = v,
        Some(SetVal::Incr(n)) => {
            act.incr = true;
            counter = Some(n);
        }
        None => {}
    }
    if act.ret && jeq.is_none() {
        // Without a jump the scan stops anyway: nothing to return from.
        act.ret = false;
    }
    Ok(RawRule { rule, act, jeq, counter })
}

/// One match key's value (`val` without its negation, `raw` as written).
fn parse_test(key: &str, val: &str, raw: &str, neg: bool) -> Result<Option<Test>, String> {
    let no_neg = || if neg { Err("negation is not allowed".to_string()) } else { Ok(()) };
    Ok(Some(match key {
        "ip" => {
            no_neg()?;
            let (a, l) = parse_prefix(val)?;
            Test::Ip(a, l)
        }
        "filter" => {
            no_neg()?;
            Test::Filter(Box::new(Filter::parse(raw).map_err(|e| e.to_string())?))
        }
        "in" => Test::In(num(val, u64::from(u32::MAX))?),
        "out" => Test::Out(num(val, u64::from(u32::MAX))?),
        "engine_type" => Test::EngineType(num(val, 255)?),
        "engine_id" | "source_id" => Test::EngineId(num(val, u64::from(u32::MAX))?),
        "agent_id" => Test::AgentId(num(val, u64::from(u32::MAX))?),
        "nexthop" => {
            let (a, l) = parse_prefix(val)?;
            Test::Nexthop(a, l)
        }
        "bgp_nexthop" => {
            let (a, l) = parse_prefix(val)?;
            Test::BgpNexthop(a, l)
        }
        "src_as" => Test::SrcAs(num(val, u64::from(u32::MAX))?),
        "dst_as" => Test::DstAs(num(val, u64::from(u32::MAX))?),
        "src_mac" => Test::SrcMac(parse_mac(val)?),
        "dst_mac" => Test::DstMac(parse_mac(val)?),
        "vlan" => Test::Vlan(num(val, 4096)?),
        "cvlan" => Test::Cvlan(num(val, 4096)?),
        "src_net" => {
            let (a, l) = parse_prefix(val)?;
            Test::SrcNet(a, l)
        }
        "dst_net" => {
            let (a, l) = parse_prefix(val)?;
            Test::DstNet(a, l)
        }
        "ip_proto" => Test::IpProto(parse_proto(val)?),
        "src_port" => Test::SrcPort(num(val, 65535)?),
        "dst_port" => Test::DstPort(num(val, 65535)?),
        "tcp_flags" => Test::TcpFlags(num(val, 255)?),
        "sample_type" => {
            Test::SampleType(SampleType::parse(val).ok_or_else(|| format!("'{val}' is not a sample type"))?)
        }
        "direction" => Test::Direction(num(val, 1)?),
        "is_multicast" => Test::IsMulticast(parse_bool(val)?),
        _ => return Ok(None),
    }))
}

// ---------------------------------------------------------------------------------------------
// Tag filters

/// `pre_tag_filter` / `pre_tag2_filter`: comma-separated `N`, `-N`, `A-B`, `-A-B`; 0 is
/// untagged. Entries are tried in order and the first that decides wins: a positive entry
/// takes a tag in its range; a negated one drops a tag in its range and takes any other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagFilter {
    entries: Vec<(bool, u64, u64)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TagFilterError(pub String);

impl TagFilter {
    pub fn parse(s: &str) -> Result<TagFilter, TagFilterError> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        let mut entries = Vec::new();
        for e in s.split(',') {
            let (neg, body) = match e.strip_prefix('-') {
                Some(b) => (true, b),
                None => (false, e),
            };
            let n = |x: &str| x.parse::<u64>().map_err(|_| TagFilterError(format!("'{e}' is not N, -N, A-B or -A-B")));
            let (a, b) = match body.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (n(a)?, n(b)?);
                    if a >= b {
                        return Err(TagFilterError(format!("'{e}': range start must be below its end")));
                    }
                    (a, b)
                }
                None => {
                    let a = n(body)?;
                    (a, a)
                }
            };
            entries.push((neg, a, b));
        }
        if entries.len() > 96 {
            return Err(TagFilterError("more than 96 entries".into()));
        }
        Ok(TagFilter { entries })
    }

    #[inline]
    pub fn takes(&self, tag: u64) -> bool {
        for &(neg, a, b) in &self.entries {
            let inside = (a..=b).contains(&tag);
            if inside {
                return !neg;
            }
            if neg {
                return true;
            }
        }
        self.entries.is_empty()
    }
}

/// `pre_tag_label_filter`: comma-separated labels, `-x` negates, `null` is "no label". A
/// record's label is split on commas and each entry tested against every part, deciding like
/// [`TagFilter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelFilter {
    entries: Vec<(bool, Option<String>)>,
}

impl LabelFilter {
    pub fn parse(s: &str) -> Result<LabelFilter, TagFilterError> {
        let mut entries = Vec::new();
        for e in s.split(',').map(str::trim) {
            let (neg, body) = match e.strip_prefix('-') {
                Some(b) => (true, b),
                None => (false, e),
            };
            if body.is_empty() {
                return Err(TagFilterError(format!("'{s}': empty label")));
            }
            entries.push((neg, (body != "null").then(|| body.to_string())));
        }
        Ok(LabelFilter { entries })
    }

    pub fn takes(&self, label: u32) -> bool {
        let name = labels().name(label);
        for (neg, want) in &self.entries {
            let inside = match want {
                None => label == 0,
                Some(w) => label != 0 && name.split(',').any(|p| p == w),
            };
            if inside {
                return !neg;
            }
            if *neg {
                return true;
            }
        }
        self.entries.is_empty()
    }
}

/// A plugin's routing by tags: all present filters must take the record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagFilters {
    pub tag: Option<TagFilter>,
    pub tag2: Option<TagFilter>,
    pub label: Option<LabelFilter>,
}

impl TagFilters {
    pub fn is_empty(&self) -> bool {
        self.tag.is_none() && self.tag2.is_none() && self.label.is_none()
    }

    #[inline]
    pub fn takes(&self, r: &Record) -> bool {
        self.tag.as_ref().is_none_or(|f| f.takes(r.tag))
            && self.tag2.as_ref().is_none_or(|f| f.takes(r.tag2))
            && self.label.as_ref().is_none_or(|f| f.takes(r.label))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(exporter: &str, inp: u32, out: u32) -> Record {
        Record {
            exporter: Addr::from(exporter.parse::<IpAddr>().unwrap()),
            in_iface: inp,
            out_iface: out,
            ..Record::default()
        }
    }

    fn all(m: &TagMap, r: &Record) -> Vec<Tags> {
        let mut v = Vec::new();
        m.eval(r, |t| v.push(t));
        v
    }

    fn t(tag: u64) -> Tags {
        Tags { tag, ..Tags::default() }
    }

    const SEED: &str = "id=8000 ip=192.168.1.1 in=10 jeq=eval_out return=true\n\
                        id=8001 ip=192.168.1.1 in=20 jeq=eval_out return=true\n\
                        id=9000 ip=192.168.1.1 out=1 label=eval_out\n\
                        id=9001 ip=192.168.1.1 out=2\n";

    #[test]
    fn seed_jeq_return_every_path() {
        for index in [false, true] {
            let m = parse_map_with(SEED, "m", &MapOptions { index, ..MapOptions::default() }).unwrap();
            // in=10 matches, returns 8000, then the out rules decide the second emission.
            assert_eq!(all(&m, &rec("192.168.1.1", 10, 1)), vec![t(8000), t(9000)]);
            assert_eq!(all(&m, &rec("192.168.1.1", 10, 2)), vec![t(8000), t(9001)]);
            // Nothing after the jump matches: the returned copy, then an untagged one.
            assert_eq!(all(&m, &rec("192.168.1.1", 10, 3)), vec![t(8000), t(0)]);
            assert_eq!(all(&m, &rec("192.168.1.1", 20, 1)), vec![t(8001), t(9000)]);
            assert_eq!(all(&m, &rec("192.168.1.1", 20, 2)), vec![t(8001), t(9001)]);
            // Neither in rule: first match wins among the rest, one emission.
            assert_eq!(all(&m, &rec("192.168.1.1", 30, 1)), vec![t(9000)]);
            assert_eq!(all(&m, &rec("192.168.1.1", 30, 2)), vec![t(9001)]);
            assert_eq!(all(&m, &rec("192.168.1.1", 30, 3)), vec![t(0)]);
            // Another exporter: no rule applies.
            assert_eq!(all(&m, &rec("192.168.1.2", 10, 1)), vec![t(0)]);
        }
    }

    #[test]
    fn jeq_without_return_overwrites() {
        let m = parse_map("id=1 in=10 jeq=x\nid=2 in=10\nid=3 out=1 label=x\n").unwrap();
        assert_eq!(all(&m, &rec("10.0.0.1", 10, 1)), vec![t(3)]);
        // Nothing after the jump matched: the value set before it stays.
        assert_eq!(all(&m, &rec("10.0.0.1", 10, 5)), vec![t(1)]);
    }

    #[test]
    fn stack_sum_and_or_and_labels() {
        let m = parse_map(
            "id=10 in=1 jeq=a\nid=5 label=a stack=sum jeq=b\nset_label=x label=b jeq=c\nset_label=y label=c\n",
        )
        .unwrap();
        let r = all(&m, &rec("10.0.0.1", 1, 0));
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].tag, 15);
        assert_eq!(&*labels().name(r[0].label), "x,y");
        let m = parse_map("id=12 jeq=a\nid=5 stack=or label=a\n").unwrap();
        assert_eq!(m.eval_one(&Record::default()).tag, 13);
    }

    #[test]
    fn filter_and_engine_rules() {
        let m =
            parse_map("id=3000 filter='net 10.0.0.0/8'\nid=1000 ip=192.168.1.1 engine_type=100 engine_id=1\n").unwrap();
        let mut r = rec("192.168.1.1", 0, 0);
        r.src_ip = Addr::V4([10, 1, 2, 3]);
        r.dst_ip = Addr::V4([192, 0, 2, 1]);
        assert_eq!(m.eval_one(&r).tag, 3000);
        r.src_ip = Addr::V4([11, 1, 2, 3]);
        assert_eq!(m.eval_one(&r).tag, 0);
        r.engine_type = 100;
        r.engine_id = 1;
        assert_eq!(m.eval_one(&r).tag, 1000);
        r.engine_id = 2;
        assert_eq!(m.eval_one(&r).tag, 0);
    }

    #[test]
    fn negation_and_precedence() {
        let m = parse_map("id=1 in=-2\nid=2\n").unwrap();
        assert_eq!(m.eval_one(&rec("10.0.0.1", 3, 0)).tag, 1);
        assert_eq!(m.eval_one(&rec("10.0.0.1", 2, 0)).tag, 2);
        // Both tag and tag2 in one rule: the tag is set, tag2 is not (pmacct's if/else chain).
        let m = parse_map("id=7 id2=8\n").unwrap();
        assert_eq!(m.eval_one(&Record::default()), t(7));
        assert!(parse_map("id=1 id2=2 set_label=x\n").is_err());
    }

    #[test]
    fn later_fragments_are_matched_without_ports() {
        let m = parse_map("id=1 filter='udp and dst port 53'\nid=2 dst_port=53\nid=3 filter='udp'\n").unwrap();
        let mut r = Record {
            proto: 17,
            dst_port: 53,
            src_ip: Addr::V4([1, 1, 1, 1]),
            dst_ip: Addr::V4([2, 2, 2, 2]),
            ..Record::default()
        };
        assert_eq!(m.eval_one(&r).tag, 1);
        r.later_fragment = true;
        assert_eq!(m.eval_one(&r).tag, 3);
    }

    #[test]
    fn auto_increment() {
        let m = parse_map("id=100++ in=1\n").unwrap();
        let r = rec("10.0.0.1", 1, 0);
        assert_eq!([m.eval_one(&r).tag, m.eval_one(&r).tag, m.eval_one(&r).tag], [100, 101, 102]);
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse_map_with("! c\nid=1 in=1\nid=2 bogus=3\n", "/m", &MapOptions::default()).unwrap_err();
        assert_eq!(e.to_string(), "/m:3: unknown key 'bogus'");
        let e = parse_map_with("id=1 jeq=nope\n", "/m", &MapOptions::default()).unwrap_err();
        assert_eq!(e.to_string(), "/m:1: jeq=nope: no rule has label=nope");
        let e = parse_map_with("id=1 label=a\nid=2 jeq=a\n", "/m", &MapOptions::default()).unwrap_err();
        assert!(e.to_string().starts_with("/m:2: jeq=a"), "{e}");
        assert!(parse_map("id = 1\n").is_err());
        assert!(parse_map("id=1 in=1 in=2\n").is_err());
        assert!(parse_map("id=x\n").is_err());
        assert!(parse_map("id=1 ip=-10.0.0.1\n").is_err());
        assert!(parse_map("id=1 vlan=4097\n").is_err());
        assert!(parse_map("id=1 filter='net 10.0.0.0/33'\n").is_err());
        let capture =
            MapOptions { fills: Fills { capture: true, netflow: false, sflow: false }, ..MapOptions::default() };
        let e = parse_map_with("id=1\nid=2 ip=10.0.0.1\n", "/m", &capture).unwrap_err();
        assert_eq!(e.to_string(), "/m:2: key 'ip': no source of this daemon fills it");
        let lim = MapOptions { max_entries: Some(1), ..MapOptions::default() };
        assert!(parse_map_with("id=1\nid=2\n", "/m", &lim).unwrap_err().to_string().starts_with("/m:2:"));
        let lim = MapOptions { max_row_len: Some(8), ..MapOptions::default() };
        assert!(parse_map_with("id=1 in=10000\n", "/m", &lim).is_err());
    }

    #[test]
    fn every_key_parses_and_matches() {
        let mut r = rec("192.0.2.1", 1, 2);
        r.engine_type = 3;
        r.engine_id = 4;
        r.agent_id = 5;
        r.nexthop = Addr::V4([10, 0, 0, 254]);
        r.bgp_nexthop = Addr::V4([10, 0, 1, 254]);
        r.src_as = 65001;
        r.dst_as = 65002;
        r.src_mac = [0, 1, 2, 3, 4, 5];
        r.dst_mac = [1, 0, 0x5e, 0, 0, 1];
        r.vlan = 100;
        r.cvlan = 200;
        r.src_ip = Addr::V4([10, 1, 0, 1]);
        r.dst_ip = Addr::V4([10, 2, 0, 1]);
        r.proto = 6;
        r.src_port = 1234;
        r.dst_port = 80;
        r.tcp_flags = 0x02;
        r.sample_type = SampleType::FlowV4.code();
        r.direction = 1;
        let keys = [
            "ip=192.0.2.0/24",
            "in=1",
            "out=2",
            "engine_type=3",
            "engine_id=4",
            "source_id=4",
            "agent_id=5",
            "nexthop=10.0.0.254",
            "bgp_nexthop=10.0.1.254",
            "src_as=65001",
            "dst_as=65002",
            "src_mac=00:01:02:03:04:05",
            "dst_mac=01:00:5e:00:00:01",
            "vlan=100",
            "cvlan=200",
            "src_net=10.1.0.0/16",
            "dst_net=10.2.0.0/16",
            "ip_proto=tcp",
            "src_port=1234",
            "dst_port=80",
            "tcp_flags=0x02",
            "sample_type=flow",
            "sample_type=flow-ipv4",
            "direction=1",
            "is_multicast=true",
            "filter='tcp and dst port 80'",
        ];
        for k in keys {
            for index in [false, true] {
                let o = MapOptions { index, ..MapOptions::default() };
                let m = parse_map_with(&format!("id=1 {k}\nid=2\n"), "m", &o).unwrap();
                assert_eq!(m.eval_one(&r).tag, 1, "{k} index={index}");
                if !k.starts_with("filter") && !k.starts_with("ip=") {
                    let (key, val) = k.split_once('=').unwrap();
                    let m = parse_map_with(&format!("id=1 {key}=-{val}\nid=2\n"), "m", &o).unwrap();
                    assert_eq!(m.eval_one(&r).tag, 2, "-{k}");
                }
            }
        }
        let mut other = r;
        other.src_ip = Addr::V4([10, 9, 0, 1]);
        let m = parse_map("id=1 src_net=10.1.0.0/16\n").unwrap();
        assert_eq!(m.eval_one(&other).tag, 0);
    }

    #[test]
    fn index_equals_scan() {
        // A map mixing indexed groups, filters (with and without guards) and negations; the
        // index must give the same first match as the ordered scan for every record.
        let mut text = String::new();
        for i in 0..300u32 {
            text += &match i % 10 {
                0 => format!("id={} ip=10.0.{}.0/24 in={}\n", i + 1, i % 4, i % 11),
                1 => format!("id={} in={}\n", i + 1, i % 13),
                2 => format!("id={} out=-{}\n", i + 1, i % 3),
                3 => format!("id={} filter='dst port {}'\n", i + 1, i % 12),
                4 => format!("id={} filter='src net 1.1.{}.0/24 or dst host 2.2.2.{}'\n", i + 1, i % 3, i % 5),
                5 => format!("id={} filter='udp and (port {} or portrange 40-{})'\n", i + 1, i % 23, 40 + i % 9),
                6 => format!("id={} filter='not src port {}' in={}\n", i + 1, i % 5, i % 14),
                7 => format!("id={} filter='vlan {} and ether src 00:00:00:00:00:0{}'\n", i + 1, 1 + i % 3, i % 3),
                8 => format!("id={} filter='net 2.2.0.0/16 and udp and src port {}' jeq=next\n", i + 1, i % 20),
                _ => format!("id={} src_port={} ip_proto=17\n", i + 1, i % 19),
            };
        }
        let scan = parse_map_with(&text, "m", &MapOptions { index: false, ..MapOptions::default() }).unwrap();
        let ix = parse_map_with(&text, "m", &MapOptions { index: true, ..MapOptions::default() }).unwrap();
        let mut hit_rules = std::collections::HashSet::new();
        for (a, inp, p, v) in (0..4u8).flat_map(|a| {
            (0..14u32).flat_map(move |inp| (0..48u16).flat_map(move |p| (0..4u16).map(move |v| (a, inp, p, v))))
        }) {
            {
                {
                    let mut r = rec(&format!("10.0.{a}.9"), inp, u32::from(p % 4));
                    r.src_ip = Addr::V4([1, 1, (p % 4) as u8, 1]);
                    r.dst_ip = Addr::V4([2, 2, 2, (p % 6) as u8]);
                    r.proto = if p < 24 { 6 } else { 17 };
                    r.src_port = p % 24;
                    r.dst_port = (p % 24) / 2;
                    r.vlan = v;
                    r.vlan_depth = u8::from(v != 0);
                    r.src_mac = [0, 0, 0, 0, 0, (p % 4) as u8];
                    assert_eq!(all(&scan, &r), all(&ix, &r), "{r:?}");
                    // From every position (what jumps do), so every rule is compared.
                    for from in 0..=scan.len() {
                        let hit = scan.first(&r, from);
                        assert_eq!(hit, ix.first(&r, from), "from {from}: {r:?}");
                        hit_rules.extend(hit.map(|(p, _)| p));
                    }
                }
            }
        }
        // The records reach most rules, so the comparison covers them.
        let missed: Vec<usize> = (0..scan.len()).filter(|p| !hit_rules.contains(p)).collect();
        assert!(hit_rules.len() > 250, "{} rules ever matched; never: {missed:?}", hit_rules.len());
    }

    #[test]
    fn tag_filters() {
        // The range decides inside it; outside, the negated entry decides (and takes).
        let f = TagFilter::parse("10-20,-15").unwrap();
        assert!(f.takes(15) && f.takes(10) && f.takes(20) && f.takes(9) && f.takes(21));
        let f = TagFilter::parse("10-20").unwrap();
        assert!(f.takes(15) && !f.takes(9) && !f.takes(21));
        let f = TagFilter::parse("-15,10-20").unwrap();
        assert!(!f.takes(15) && f.takes(3) && f.takes(12));
        let f = TagFilter::parse("-6,-7").unwrap();
        assert!(!f.takes(6) && f.takes(7));
        let f = TagFilter::parse("0").unwrap();
        assert!(f.takes(0) && !f.takes(1));
        let f = TagFilter::parse("-2-5").unwrap();
        assert!(!f.takes(3) && f.takes(6));
        let f = TagFilter::parse("1, 2 ,3").unwrap();
        assert!(f.takes(2) && !f.takes(4));
        assert!(TagFilter::parse("5-5").is_err());
        assert!(TagFilter::parse("a").is_err());
        assert!(TagFilter::parse("").is_err());
        let x = labels().intern("blue");
        let xy = labels().intern("red,blue");
        let f = LabelFilter::parse("blue").unwrap();
        assert!(f.takes(x) && f.takes(xy) && !f.takes(0));
        let f = LabelFilter::parse("-blue").unwrap();
        assert!(!f.takes(x) && f.takes(0));
        let f = LabelFilter::parse("null").unwrap();
        assert!(f.takes(0) && !f.takes(x));
    }
}
