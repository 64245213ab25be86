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

use crate::filter::Filter;
use crate::record::{Addr, Mac, Record};
use std::hash::{BuildHasher, Hash, Hasher};
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

    /// The prefix length an index must mask the record's address with, for address keys.
    fn mask_len(&self) -> u8 {
        match self {
            Test::Ip(_, l) | Test::Nexthop(_, l) | Test::BgpNexthop(_, l) | Test::SrcNet(_, l) | Test::DstNet(_, l) => {
                *l
            }
            _ => 0,
        }
    }

    /// Hashes the rule's value the way [`hash_record_field`] hashes a record's.
    fn hash_value<H: Hasher>(&self, h: &mut H) {
        match self {
            Test::Ip(a, _) | Test::Nexthop(a, _) | Test::BgpNexthop(a, _) | Test::SrcNet(a, _) | Test::DstNet(a, _) => {
                a.hash(h)
            }
            Test::In(v) | Test::Out(v) | Test::EngineId(v) | Test::AgentId(v) | Test::SrcAs(v) | Test::DstAs(v) => {
                v.hash(h)
            }
            Test::EngineType(v) | Test::IpProto(v) | Test::TcpFlags(v) | Test::Direction(v) => v.hash(h),
            Test::SrcMac(m) | Test::DstMac(m) => m.hash(h),
            Test::Vlan(v) | Test::Cvlan(v) | Test::SrcPort(v) | Test::DstPort(v) => v.hash(h),
            Test::SampleType(t) => t.code().hash(h),
            Test::IsMulticast(b) => b.hash(h),
            Test::Filter(_) => {}
        }
    }

    fn indexable(&self) -> bool {
        // `sample_type=flow` matches several record codes, and filters are programs.
        !matches!(self, Test::Filter(_) | Test::SampleType(SampleType::Flow))
    }
}

#[inline]
fn hash_record_field<H: Hasher>(r: &Record, f: Field, len: u8, h: &mut H) {
    match f {
        Field::Ip => r.exporter.masked(len).hash(h),
        Field::Nexthop => r.nexthop.masked(len).hash(h),
        Field::BgpNexthop => r.bgp_nexthop.masked(len).hash(h),
        Field::SrcNet => r.src_ip.masked(len).hash(h),
        Field::DstNet => r.dst_ip.masked(len).hash(h),
        Field::In => r.in_iface.hash(h),
        Field::Out => r.out_iface.hash(h),
        Field::EngineId => r.engine_id.hash(h),
        Field::AgentId => r.agent_id.hash(h),
        Field::SrcAs => r.src_as.hash(h),
        Field::DstAs => r.dst_as.hash(h),
        Field::EngineType => r.engine_type.hash(h),
        Field::IpProto => r.proto.hash(h),
        Field::TcpFlags => r.tcp_flags.hash(h),
        Field::Direction => r.direction.hash(h),
        Field::SrcMac => r.src_mac.hash(h),
        Field::DstMac => r.dst_mac.hash(h),
        Field::Vlan => r.vlan.hash(h),
        Field::Cvlan => r.cvlan.hash(h),
        Field::SrcPort => r.src_port.hash(h),
        Field::DstPort => r.dst_port.hash(h),
        Field::SampleType => r.sample_type.hash(h),
        Field::IsMulticast => (r.dst_mac[0] & 1 == 1).hash(h),
        Field::Filter => {}
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

/// A SET value: a constant, or `N++` (every match takes the counter, then it grows by one).
#[derive(Debug)]
enum SetVal {
    Const(u64),
    Incr(AtomicU64),
}

impl SetVal {
    fn take(&self) -> u64 {
        match self {
            SetVal::Const(v) => *v,
            SetVal::Incr(c) => c.fetch_add(1, Relaxed),
        }
    }
}

#[derive(Debug)]
enum Set {
    None,
    Tag(SetVal),
    Tag2(SetVal),
    Label(u32),
}

#[derive(Debug)]
struct Rule {
    line: usize,
    matches: Vec<Match>,
    set: Set,
    /// `label=`: this rule's name, a jump target.
    name: Option<String>,
    /// Resolved `jeq=`: the index of the rule to continue at.
    jeq: Option<usize>,
    ret: bool,
    stack: Stack,
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
        MapOptions { max_entries: None, max_row_len: None, index: false, fills: Fills::ALL }
    }
}

/// Hash index over the rules whose every key is an exact (or fixed-prefix) match: one hash
/// table per combination of keys, each mapping the rule's values to its rule positions
/// (ascending). Other rules are scanned in order. The first match from position `p` is the
/// lowest position among the candidates the tables give and the scanned rules.
#[derive(Debug, Default)]
struct Index {
    groups: Vec<Group>,
    /// Positions of the rules not in any group, ascending.
    scan: Vec<u32>,
    hasher: foldhash::fast::FixedState,
}

#[derive(Debug)]
struct Group {
    /// (field, mask length) in a fixed order.
    sig: Vec<(Field, u8)>,
    rules: hashbrown::HashMap<u64, Vec<u32>>,
}

impl Index {
    fn build(rules: &[Rule]) -> Index {
        let mut ix = Index::default();
        for (i, rule) in rules.iter().enumerate() {
            let pos = i as u32;
            if rule.matches.is_empty() || rule.matches.iter().any(|m| m.neg || !m.test.indexable()) {
                ix.scan.push(pos);
                continue;
            }
            let mut ms: Vec<&Match> = rule.matches.iter().collect();
            ms.sort_by_key(|m| (m.test.field(), m.test.mask_len()));
            let sig: Vec<(Field, u8)> = ms.iter().map(|m| (m.test.field(), m.test.mask_len())).collect();
            let mut h = ix.hasher.build_hasher();
            for m in &ms {
                m.test.hash_value(&mut h);
            }
            let key = h.finish();
            let g = match ix.groups.iter().position(|g| g.sig == sig) {
                Some(g) => g,
                None => {
                    ix.groups.push(Group { sig, rules: hashbrown::HashMap::new() });
                    ix.groups.len() - 1
                }
            };
            if let Some(g) = ix.groups.get_mut(g) {
                g.rules.entry(key).or_default().push(pos);
            }
        }
        ix
    }

    /// The first rule at or after `from` that matches `r`.
    #[inline]
    fn first(&self, rules: &[Rule], r: &Record, from: usize) -> Option<usize> {
        let mut best = usize::MAX;
        for g in &self.groups {
            let mut h = self.hasher.build_hasher();
            for (f, len) in &g.sig {
                hash_record_field(r, *f, *len, &mut h);
            }
            if let Some(c) = g.rules.get(&h.finish()) {
                let start = c.partition_point(|p| (*p as usize) < from);
                // A hash collision can list a rule that does not match: check each.
                for p in c.iter().skip(start).map(|p| *p as usize) {
                    if p >= best {
                        break;
                    }
                    if rules.get(p).is_some_and(|x| x.matches(r)) {
                        best = p;
                        break;
                    }
                }
            }
        }
        let start = self.scan.partition_point(|p| (*p as usize) < from);
        for p in self.scan.iter().skip(start).map(|p| *p as usize) {
            if p >= best {
                break;
            }
            if rules.get(p).is_some_and(|x| x.matches(r)) {
                best = p;
                break;
            }
        }
        (best != usize::MAX).then_some(best)
    }
}

/// A loaded `pre_tag_map`.
#[derive(Debug)]
pub struct TagMap {
    file: String,
    rules: Vec<Rule>,
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

    /// Source line of each rule, in map order (for diagnostics and tests).
    pub fn lines(&self) -> Vec<usize> {
        self.rules.iter().map(|r| r.line).collect()
    }

    #[inline]
    fn first(&self, r: &Record, from: usize) -> Option<usize> {
        match &self.index {
            Some(ix) => ix.first(&self.rules, r, from),
            None => self.rules.iter().skip(from).position(|x| x.matches(r)).map(|p| p + from),
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
        while let Some(i) = self.first(r, from) {
            let Some(rule) = self.rules.get(i) else { break };
            match &rule.set {
                Set::Tag(v) => t.tag = stack(rule.stack, v.take(), t.tag),
                Set::Tag2(v) => t.tag2 = stack(rule.stack, v.take(), t.tag2),
                Set::Label(l) => t.label = labels().join(t.label, *l),
                Set::None => {}
            }
            match rule.jeq {
                Some(j) => {
                    if rule.ret {
                        emit(t);
                        t = Tags::default();
                    }
                    from = j;
                }
                None => break,
            }
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
    Ok(if incr { SetVal::Incr(AtomicU64::new(n)) } else { SetVal::Const(n) })
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
    jeq: Option<String>,
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
    for (i, rr) in raw.into_iter().enumerate() {
        let RawRule { mut rule, jeq } = rr;
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
            if j < count {
                rule.jeq = Some(j);
            } else if rule.ret {
                // `jeq=next` on the last rule: nothing to continue at; return still emits.
                rule.jeq = Some(j);
            }
        }
        rules.push(rule);
    }
    let mut fields: Vec<Field> = rules.iter().flat_map(|r| r.matches.iter().map(|m| m.test.field())).collect();
    fields.sort();
    fields.dedup();
    let index = opts.index.then(|| Index::build(&rules));
    Ok(TagMap { file: file.to_string(), rules, index, fields })
}

fn parse_rule(line: &str, lineno: usize, opts: &MapOptions) -> Result<RawRule, String> {
    if line.contains('|') {
        return Err("'|' is not allowed in a map line".into());
    }
    let mut rule = Rule {
        line: lineno,
        matches: Vec::new(),
        set: Set::None,
        name: None,
        jeq: None,
        ret: false,
        stack: Stack::None,
    };
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
                rule.ret = parse_bool(v)?;
                continue;
            }
            "stack" => {
                rule.stack = match v {
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
    rule.set = match (tag, tag2, label) {
        (Some(t), _, _) => Set::Tag(t),
        (None, Some(t), _) => Set::Tag2(t),
        (None, None, Some(l)) => Set::Label(l),
        (None, None, None) => Set::None,
    };
    if rule.ret && jeq.is_none() {
        // Without a jump the scan stops anyway: nothing to return from.
        rule.ret = false;
    }
    Ok(RawRule { rule, jeq })
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
        // A map mixing indexed groups, filters and negations; the index must give the same
        // first match as the ordered scan for every record.
        let mut text = String::new();
        for i in 0..200u32 {
            match i % 5 {
                0 => text += &format!("id={} ip=10.0.{}.0/24 in={}\n", i + 1, i % 7, i % 11),
                1 => text += &format!("id={} in={}\n", i + 1, i % 13),
                2 => text += &format!("id={} out=-{}\n", i + 1, i % 3),
                3 => text += &format!("id={} filter='dst port {}'\n", i + 1, i % 17),
                _ => text += &format!("id={} src_port={} ip_proto=17\n", i + 1, i % 19),
            }
        }
        let scan = parse_map(&text).unwrap();
        let ix = parse_map_with(&text, "m", &MapOptions { index: true, ..MapOptions::default() }).unwrap();
        for a in 0..8u8 {
            for inp in 0..14u32 {
                for p in 0..20u16 {
                    let mut r = rec(&format!("10.0.{a}.9"), inp, u32::from(p % 4));
                    r.src_ip = Addr::V4([1, 1, 1, 1]);
                    r.dst_ip = Addr::V4([2, 2, 2, 2]);
                    r.proto = 17;
                    r.src_port = p;
                    r.dst_port = p;
                    assert_eq!(scan.eval_one(&r), ix.eval_one(&r));
                }
            }
        }
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
