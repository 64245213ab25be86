//! v9/IPFIX templates and the per-exporter cache that holds them (plus held data sets and the
//! sampling parameters each exporter announced).

use std::collections::VecDeque;

// foldhash: these maps are looked up for every set of every datagram, and SipHash was 2-3 % of
// a collector's CPU (perf). Their size is bounded by `Limits`, and foldhash is seeded per
// process, so an exporter cannot aim at collisions it cannot see.
use foldhash::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use super::{NetflowError, NetflowHeader, SamplingInfo};

/// IPFIX variable-length marker (RFC 7011 §7).
pub(crate) const VARLEN: u16 = 0xffff;

/// One field of a template as it travels on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemplateField {
    /// Information element id (v9 field type), without the enterprise bit.
    pub ie: u16,
    /// Length in bytes, or 65535 for an IPFIX variable-length field.
    pub len: u16,
    /// IPFIX enterprise number (`None` for IANA elements and for v9).
    pub enterprise: Option<u32>,
}

impl TemplateField {
    pub const fn iana(ie: u16, len: u16) -> Self {
        TemplateField { ie, len, enterprise: None }
    }
}

/// What a field means to us, resolved once when the template arrives so that data records are
/// decoded with a jump table instead of IE lookups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Skip,
    Bytes,
    Packets,
    Flows,
    BytesTotal,
    PacketsTotal,
    Proto,
    Tos,
    TcpFlags,
    SrcPort,
    DstPort,
    SrcV4,
    DstV4,
    SrcV6,
    DstV6,
    SrcMask,
    DstMask,
    Input,
    Output,
    NextHopV4,
    NextHopV6,
    BgpNextHopV4,
    BgpNextHopV6,
    Cvlan,
    SrcAs,
    DstAs,
    LastUptime,
    FirstUptime,
    SrcMac,
    DstMac,
    PostSrcMac,
    PostDstMac,
    Vlan,
    Dot1qVlan,
    Direction,
    SamplingInterval,
    SamplingAlgorithm,
    SamplerId,
    StartSecs,
    EndSecs,
    StartMs,
    EndMs,
    StartUs,
    EndUs,
    StartNs,
    EndNs,
    StartDeltaUs,
    EndDeltaUs,
    SystemInitMs,
    EngineType,
    EngineId,
    Tag,
    Tag2,
}

/// pmacct's IPFIX private enterprise number (tag, tag2, label, …).
pub const PMACCT_PEN: u32 = 43874;

fn kind_of(ie: u16, enterprise: Option<u32>) -> Kind {
    match enterprise {
        Some(PMACCT_PEN) => {
            return match ie {
                1 => Kind::Tag,
                2 => Kind::Tag2,
                _ => Kind::Skip,
            }
        }
        Some(_) => return Kind::Skip,
        None => {}
    }
    match ie {
        1 => Kind::Bytes,
        2 => Kind::Packets,
        3 => Kind::Flows,
        4 => Kind::Proto,
        5 => Kind::Tos,
        6 => Kind::TcpFlags,
        7 => Kind::SrcPort,
        8 => Kind::SrcV4,
        9 | 29 => Kind::SrcMask,
        10 => Kind::Input,
        11 => Kind::DstPort,
        12 => Kind::DstV4,
        13 | 30 => Kind::DstMask,
        14 => Kind::Output,
        15 => Kind::NextHopV4,
        16 => Kind::SrcAs,
        17 => Kind::DstAs,
        18 => Kind::BgpNextHopV4,
        21 => Kind::LastUptime,
        22 => Kind::FirstUptime,
        27 => Kind::SrcV6,
        28 => Kind::DstV6,
        34 | 305 => Kind::SamplingInterval,
        35 | 304 => Kind::SamplingAlgorithm,
        38 => Kind::EngineType,
        39 => Kind::EngineId,
        48 | 302 => Kind::SamplerId,
        // v9/IPFIX flowSamplerMode and flowSamplerRandomInterval (sampler options data).
        49 => Kind::SamplingAlgorithm,
        50 => Kind::SamplingInterval,
        56 => Kind::SrcMac,
        57 => Kind::PostDstMac,
        58 => Kind::Vlan,
        61 => Kind::Direction,
        62 => Kind::NextHopV6,
        63 => Kind::BgpNextHopV6,
        245 => Kind::Cvlan,
        80 => Kind::DstMac,
        81 => Kind::PostSrcMac,
        85 => Kind::BytesTotal,
        86 => Kind::PacketsTotal,
        150 => Kind::StartSecs,
        151 => Kind::EndSecs,
        152 => Kind::StartMs,
        153 => Kind::EndMs,
        154 => Kind::StartUs,
        155 => Kind::EndUs,
        156 => Kind::StartNs,
        157 => Kind::EndNs,
        158 => Kind::StartDeltaUs,
        159 => Kind::EndDeltaUs,
        160 => Kind::SystemInitMs,
        243 => Kind::Dot1qVlan,
        _ => Kind::Skip,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Field {
    pub kind: Kind,
    pub len: u16,
}

/// A parsed template, ready to decode data records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub id: u16,
    /// Options template: its data records describe the exporter (sampling …), not flows.
    pub options: bool,
    /// Leading scope fields of an options template (0 for a data template).
    pub scope: u16,
    pub(crate) fields: Vec<Field>,
    /// The wire fields, kept so that templates can be persisted and re-sent.
    pub wire: Vec<TemplateField>,
    /// Bytes of a record with every variable-length field empty (>= 1).
    pub(crate) min_len: usize,
    /// `Some(len)` when no field is variable-length.
    pub(crate) fixed_len: Option<usize>,
}

impl Template {
    /// Checks a template the way it arrived (or was restored) and resolves its fields. For a v9
    /// options template the scope fields carry scope types (system, interface, …), not field
    /// types, so they are skipped; IPFIX scope fields are ordinary information elements.
    pub(crate) fn new(
        id: u16,
        options: bool,
        scope: usize,
        wire: Vec<TemplateField>,
        ipfix: bool,
        max_fields: usize,
    ) -> Result<Template, NetflowError> {
        if id < 256 {
            return Err(NetflowError::BadTemplateId(id));
        }
        if wire.len() > max_fields {
            return Err(NetflowError::TooManyFields { template_id: id, fields: wire.len(), max: max_fields });
        }
        if options && (scope == 0 || scope > wire.len()) || !options && scope != 0 {
            return Err(NetflowError::BadOptionsTemplate { template_id: id });
        }
        let mut min_len = 0usize;
        let mut var = false;
        let mut fields = Vec::with_capacity(wire.len());
        for (i, f) in wire.iter().enumerate() {
            if f.len == 0 {
                return Err(NetflowError::ZeroLengthField { template_id: id, ie: f.ie });
            }
            if f.len == VARLEN {
                var = true;
                min_len += 1;
            } else {
                min_len += usize::from(f.len);
            }
            let kind = if options && !ipfix && i < scope { Kind::Skip } else { kind_of(f.ie, f.enterprise) };
            fields.push(Field { kind, len: f.len });
        }
        if min_len == 0 {
            return Err(NetflowError::TemplateTooShort { template_id: id });
        }
        if min_len > usize::from(u16::MAX) {
            return Err(NetflowError::TemplateTooLong { template_id: id });
        }
        // `scope <= wire.len() <= max_fields`, and a wire template has at most 65535/4 fields.
        let scope = u16::try_from(scope).map_err(|_| NetflowError::BadOptionsTemplate { template_id: id })?;
        Ok(Template { id, options, scope, fields, wire, min_len, fixed_len: (!var).then_some(min_len) })
    }
}

/// Bounds on what one exporter can make the cache hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Templates per (exporter, source id / observation domain).
    pub max_templates: usize,
    /// Fields per template.
    pub max_fields: usize,
    /// Data sets held while their template is unknown, per (exporter, domain).
    pub max_pending_sets: usize,
    /// Bytes of held data sets per (exporter, domain).
    pub max_pending_bytes: usize,
    /// (exporter, domain) pairs across the whole cache: the domain id is exporter-chosen, so
    /// without this bound one exporter could make the cache grow without limit.
    pub max_domains: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_templates: 1024,
            max_fields: 256,
            max_pending_sets: 32,
            max_pending_bytes: 64 * 1024,
            max_domains: 4096,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct PendingSet {
    pub header: NetflowHeader,
    pub template_id: u16,
    pub data: Vec<u8>,
}

/// State kept per exporter address + protocol (v9 or IPFIX) + source id / observation domain.
#[derive(Debug, Default)]
pub(crate) struct Domain {
    pub templates: HashMap<u16, Arc<Template>>,
    pub pending: VecDeque<PendingSet>,
    pub pending_bytes: usize,
    /// Latest sampling parameters per sampler id (0 = domain-wide).
    pub sampling: Vec<SamplingInfo>,
    /// IPFIX systemInitTimeMilliseconds from options data, to resolve uptime-based times.
    pub system_init_ms: Option<u64>,
}

impl Domain {
    /// The sampling that applies to a record of `sampler_id` (falling back to domain-wide).
    pub fn sampling_for(&self, sampler_id: u32) -> Option<&SamplingInfo> {
        self.sampling
            .iter()
            .find(|s| s.sampler_id == sampler_id)
            .or_else(|| self.sampling.iter().find(|s| s.sampler_id == 0))
    }

    /// Records an announcement; whether it changed what the domain knew.
    pub fn set_sampling(&mut self, info: SamplingInfo) -> bool {
        // Bounded like everything else an exporter controls: a handful of samplers is normal.
        const MAX_SAMPLERS: usize = 64;
        if let Some(s) = self.sampling.iter_mut().find(|s| s.sampler_id == info.sampler_id) {
            let changed = *s != info;
            *s = info;
            changed
        } else if self.sampling.len() < MAX_SAMPLERS {
            self.sampling.push(info);
            true
        } else {
            false
        }
    }

    fn state(&self, key: DomainKey) -> DomainState {
        let mut templates: Vec<TemplateState> = self
            .templates
            .values()
            .map(|t| TemplateState { id: t.id, options: t.options, scope: t.scope, fields: t.wire.clone() })
            .collect();
        templates.sort_by_key(|t| t.id);
        let mut sampling = self.sampling.clone();
        sampling.sort_by_key(|s| s.sampler_id);
        DomainState {
            exporter: key.0,
            version: key.1,
            source_id: key.2,
            templates,
            sampling,
            system_init_ms: self.system_init_ms,
        }
    }
}

/// Key: exporter address, NetFlow version (9 or 10), source id / observation domain id.
pub(crate) type DomainKey = (IpAddr, u16, u32);

/// A template as it can be kept outside the cache (e.g. in `nfacctd_templates_file`): what
/// arrived on the wire, from which the cache rebuilds it exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateState {
    pub id: u16,
    pub options: bool,
    /// Leading scope fields of an options template (0 for a data template).
    pub scope: u16,
    pub fields: Vec<TemplateField>,
}

/// What the cache knows about one exporter domain that outlives a restart: its templates and
/// the sampling state its options data announced. Held data sets are not part of it: they are
/// raw bytes waiting seconds for a template, not state worth restoring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainState {
    pub exporter: IpAddr,
    /// 9 or 10 (IPFIX).
    pub version: u16,
    /// v9 source id / IPFIX observation domain id.
    pub source_id: u32,
    /// Sorted by id.
    pub templates: Vec<TemplateState>,
    /// Sorted by sampler id.
    pub sampling: Vec<SamplingInfo>,
    /// IPFIX systemInitTimeMilliseconds, when announced.
    pub system_init_ms: Option<u64>,
}

impl DomainState {
    /// A domain with nothing in it: in [`TemplateCache::take_changed`] it means "forget this one".
    pub fn is_empty(&self) -> bool {
        self.templates.is_empty() && self.sampling.is_empty() && self.system_init_ms.is_none()
    }
}

/// Templates per (exporter address, source id / observation domain, template id).
///
/// v9 and IPFIX from the same exporter and domain id are kept apart: their field semantics
/// differ (enterprise bit, withdrawal), and one exporter speaking both is rare.
#[derive(Debug, Default)]
pub struct TemplateCache {
    pub limits: Limits,
    pub(crate) domains: HashMap<DomainKey, Domain>,
    /// Domains whose templates or sampling state changed since the last
    /// [`Self::take_changed`]. A refresh that repeats a known template is not a change, so an
    /// exporter re-sending its templates every few seconds does not make its owner rewrite
    /// anything.
    pub(crate) changed: HashSet<DomainKey>,
}

impl TemplateCache {
    pub fn new(limits: Limits) -> Self {
        TemplateCache { limits, domains: HashMap::default(), changed: HashSet::default() }
    }

    /// Whether anything persistable changed since the last [`Self::take_changed`].
    pub fn has_changes(&self) -> bool {
        !self.changed.is_empty()
    }

    /// The states of the domains that changed since the last call (an empty
    /// [`DomainState`] for a domain whose templates were all withdrawn or that was removed),
    /// sorted, and forgets that they changed.
    pub fn take_changed(&mut self) -> Vec<DomainState> {
        let mut out: Vec<DomainState> = self
            .changed
            .drain()
            .map(|key| match self.domains.get(&key) {
                Some(d) => d.state(key),
                None => DomainState {
                    exporter: key.0,
                    version: key.1,
                    source_id: key.2,
                    templates: Vec::new(),
                    sampling: Vec::new(),
                    system_init_ms: None,
                },
            })
            .collect();
        out.sort_by_key(|d| (d.exporter, d.version, d.source_id));
        out
    }

    /// Every domain that holds templates or sampling state, sorted.
    pub fn export(&self) -> Vec<DomainState> {
        let mut out: Vec<DomainState> =
            self.domains.iter().map(|(k, d)| d.state(*k)).filter(|d| !d.is_empty()).collect();
        out.sort_by_key(|d| (d.exporter, d.version, d.source_id));
        out
    }

    /// Loads domains saved by [`Self::export`] / [`Self::take_changed`], replacing what the
    /// cache held for them (not marked as changed). Every template is checked as if it had
    /// arrived on the wire, against this cache's limits. At the first bad domain the load stops
    /// with the reason (domains before it stay loaded; callers that want all or nothing
    /// restore into a scratch cache first). Returns the number of templates loaded.
    pub fn restore(&mut self, states: &[DomainState]) -> Result<usize, NetflowError> {
        let mut loaded = 0;
        for st in states {
            if !matches!(st.version, 9 | super::VERSION_IPFIX) {
                return Err(NetflowError::BadVersion(st.version));
            }
            let ipfix = st.version == super::VERSION_IPFIX;
            if st.templates.len() > self.limits.max_templates {
                return Err(NetflowError::TooManyTemplates { max: self.limits.max_templates });
            }
            let mut templates = HashMap::with_capacity_and_hasher(st.templates.len(), Default::default());
            for t in &st.templates {
                let built = Template::new(
                    t.id,
                    t.options,
                    usize::from(t.scope),
                    t.fields.clone(),
                    ipfix,
                    self.limits.max_fields,
                )?;
                templates.insert(t.id, Arc::new(built));
            }
            let key = (st.exporter, st.version, st.source_id);
            let d = self.domain_mut(key)?;
            loaded += templates.len();
            d.templates = templates;
            d.sampling.clear();
            for s in &st.sampling {
                d.set_sampling(SamplingInfo { exporter: Some(st.exporter), source_id: st.source_id, ..*s });
            }
            d.system_init_ms = st.system_init_ms;
        }
        Ok(loaded)
    }

    /// The template `id` of an exporter/domain for NetFlow `version` (9 or 10), if known.
    pub fn get(&self, exporter: IpAddr, version: u16, source_id: u32, id: u16) -> Option<&Template> {
        self.domains.get(&(exporter, version, source_id))?.templates.get(&id).map(|t| &**t)
    }

    /// Number of templates held across all exporters.
    pub fn len(&self) -> usize {
        self.domains.values().map(|d| d.templates.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Data sets currently held waiting for a template.
    pub fn pending_sets(&self) -> usize {
        self.domains.values().map(|d| d.pending.len()).sum()
    }

    /// Latest sampling parameters announced by an exporter/domain (sampler 0 = domain-wide).
    pub fn sampling(&self, exporter: IpAddr, version: u16, source_id: u32, sampler_id: u32) -> Option<SamplingInfo> {
        self.domains.get(&(exporter, version, source_id))?.sampling_for(sampler_id).copied()
    }

    /// Forgets everything about an exporter (e.g. after it restarted: its sequence reset).
    pub fn remove_exporter(&mut self, exporter: IpAddr) {
        let changed = &mut self.changed;
        self.domains.retain(|k, _| {
            if k.0 == exporter {
                changed.insert(*k);
            }
            k.0 != exporter
        });
    }

    /// Adds or refreshes a template. Fails when the domain is at `max_templates` (refreshing
    /// an existing id always succeeds).
    pub(crate) fn insert(&mut self, key: DomainKey, t: Template) -> Result<(), NetflowError> {
        let max = self.limits.max_templates;
        let d = self.domain_mut(key)?;
        match d.templates.get(&t.id) {
            Some(old) if **old == t => return Ok(()),
            Some(_) => {}
            None if d.templates.len() >= max => return Err(NetflowError::TooManyTemplates { max }),
            None => {}
        }
        d.templates.insert(t.id, Arc::new(t));
        self.changed.insert(key);
        Ok(())
    }

    /// Notes that a domain's persistable state changed (withdrawals, options data).
    pub(crate) fn mark_changed(&mut self, key: DomainKey) {
        self.changed.insert(key);
    }

    /// The state of a domain, created if the cache has room for another.
    pub(crate) fn domain_mut(&mut self, key: DomainKey) -> Result<&mut Domain, NetflowError> {
        let max = self.limits.max_domains;
        if !self.domains.contains_key(&key) && self.domains.len() >= max {
            return Err(NetflowError::TooManyDomains { max });
        }
        Ok(self.domains.entry(key).or_default())
    }

    /// Holds a data set whose template is unknown; returns how many older sets were dropped to
    /// make room (a set larger than the whole buffer is dropped itself and counts as 1).
    pub(crate) fn hold(&mut self, key: DomainKey, set: PendingSet) -> u32 {
        let (max_sets, max_bytes) = (self.limits.max_pending_sets, self.limits.max_pending_bytes);
        if max_sets == 0 || set.data.len() > max_bytes {
            return 1;
        }
        let Ok(d) = self.domain_mut(key) else { return 1 };
        let mut dropped = 0;
        while d.pending.len() >= max_sets || d.pending_bytes + set.data.len() > max_bytes {
            match d.pending.pop_front() {
                Some(old) => {
                    d.pending_bytes -= old.data.len();
                    dropped += 1;
                }
                None => break,
            }
        }
        d.pending_bytes += set.data.len();
        d.pending.push_back(set);
        dropped
    }

    /// Takes the held sets that template `id` can now decode, oldest first.
    pub(crate) fn take_pending(&mut self, key: DomainKey, id: u16) -> Vec<PendingSet> {
        let Some(d) = self.domains.get_mut(&key) else { return Vec::new() };
        if !d.pending.iter().any(|p| p.template_id == id) {
            return Vec::new();
        }
        let (take, keep): (VecDeque<_>, VecDeque<_>) = d.pending.drain(..).partition(|p| p.template_id == id);
        d.pending = keep;
        d.pending_bytes = d.pending.iter().map(|p| p.data.len()).sum();
        take.into()
    }
}
