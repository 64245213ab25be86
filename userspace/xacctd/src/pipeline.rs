//! Workers and shards.
//!
//! Every worker owns one shard (a [`Table`]) of every plugin, so the per-packet path takes no
//! lock and shares no cache line with another core. A plugin's refresh sends each worker a
//! [`Ctl::Harvest`] carrying an empty spare table; the worker handles control messages only
//! between batches, swaps the spare in and sends the full shard back. A record is therefore in
//! exactly one shard or one harvested table at any time: none lost, none counted twice.

use crate::flows::FlowTracker;
use crate::frag::{FragKey, FragTable};
use crossbeam_channel::{bounded, select, Receiver, Sender};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use xacct_capture::Batch;
use xacct_core::aggregate::{Counters, KeyBuf, Projector, Refused, Table, MAX_KEY_WORDS};
use xacct_core::budget::Budget;
use xacct_core::filter::Filter;
use xacct_core::history::History;
use xacct_core::maps::{Methods, NetResolver, Ports};
use xacct_core::record::Record;
use xacct_core::shard::ShardTable;
use xacct_core::stats::{PluginStats, SourceStats};
use xacct_core::tag::{TagFilters, TagMap, Tags};

/// What a worker needs to account records for one plugin.
#[derive(Clone)]
pub struct PluginSpec {
    pub name: String,
    pub projector: Projector,
    pub filter: Option<Filter>,
    pub history: Option<History>,
    /// The plugin's networks_file and networks_* keys, when its aggregate has net, mask or AS
    /// primitives (None otherwise: nothing to resolve).
    pub nets: Option<NetResolver>,
    /// `pmacctd_net`/`pmacctd_as`: how records of packet capture (stamped with no methods) get
    /// their nets and ASes; collectors stamp their own.
    pub capture_methods: Methods,
    pub ports: Option<Arc<Ports>>,
    /// The pre_tag_map that tags this plugin's records: its own, else the global one (the
    /// same `Arc` for every plugin, so it is evaluated once per record).
    pub tag_map: Option<Arc<TagMap>>,
    /// `pre_tag_filter`, `pre_tag2_filter`, `pre_tag_label_filter`.
    pub tag_filters: TagFilters,
    /// `post_tag`, `post_tag2`.
    pub post_tag: Option<u64>,
    pub post_tag2: Option<u64>,
    pub stats: Arc<PluginStats>,
    /// New keys a worker's shard of this plugin admits between two harvests (the budget's
    /// share); the rest go to the overflow entry.
    pub shard_limit: usize,
    /// Whether the workers account records for this plugin (a tee plugin takes datagrams
    /// from the collectors instead, an sfprobe plugin sampled packets).
    pub accounts: bool,
    /// sfprobe: where sampled packets go.
    pub sflow: Option<SflowTap>,
}

/// An sfprobe plugin's sampler, run by every worker on the packets that pass the plugin's
/// filters: random 1-in-`rate`, samples of the frame's first `header_len` bytes.
#[derive(Clone)]
pub struct SflowTap {
    pub tx: crossbeam_channel::Sender<xacct_core::record::PacketSample>,
    pub rate: u32,
    pub header_len: usize,
}

impl PluginSpec {
    fn tags_record(&self) -> bool {
        self.tag_map.is_some() || !self.tag_filters.is_empty() || self.post_tag.is_some() || self.post_tag2.is_some()
    }
}

/// Packet sampling: keep one packet in `rate`, optionally scaling counters back up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sampling {
    pub rate: u32,
    pub renormalize: bool,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling { rate: 1, renormalize: false }
    }
}

/// What packet capture adds to the records it makes (`pmacctd_time_new`, `pcap_ifindex`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaptureStamp {
    /// Time packets by their processing rather than their pcap timestamp.
    pub time_new: bool,
    /// The capturing interface's index for in_iface / out_iface (0: leave the record's).
    pub in_iface: u32,
    pub out_iface: u32,
}

impl CaptureStamp {
    #[inline]
    fn apply(&self, r: &mut Record, now: i64) {
        if self.time_new {
            r.ts = now;
        }
        if self.in_iface != 0 {
            r.in_iface = self.in_iface;
        }
        if self.out_iface != 0 {
            r.out_iface = self.out_iface;
        }
    }
}

/// Control messages a worker handles between batches.
pub enum Ctl {
    /// Swap plugin `plugin`'s shard for `spare` and send the full one to `reply`.
    Harvest { plugin: usize, spare: ShardTable, reply: Sender<ShardTable> },
    /// New plugin specs after the maps were reloaded (SIGUSR2): same plugins and projections,
    /// new networks/ports maps. Records of earlier batches stay as they were accounted.
    Specs(Arc<Vec<PluginSpec>>),
}

/// One worker: its shards and what it needs to fill them.
pub struct Worker {
    specs: Arc<Vec<PluginSpec>>,
    shards: Vec<ShardTable>,
    /// Per plugin: keys and counters of the current batch, applied to the shard in one
    /// `add_batch` so the shard's cache misses overlap.
    pending: Vec<Pending>,
    hashes: Vec<u64>,
    /// Scratch: indexes of a batch's updates its shard refused.
    refused_idx: Vec<u32>,
    /// Per plugin: what its shard refused since the last publish.
    refused: Vec<Refused>,
    sources: Arc<Vec<Arc<SourceStats>>>,
    sampling: Sampling,
    stamp: CaptureStamp,
    skip: u32,
    /// xorshift state for the sfprobe samplers.
    rng: u64,
    /// Whether any plugin samples packets (sfprobe).
    sflow: bool,
    frags: Arc<Shared>,
    orphans: Vec<Record>,
    /// Per-plugin (accounted, filtered) since the last batch: folded into the shared atomics
    /// once per batch, so workers do not bounce a counter's cache line per packet.
    local: Vec<(u64, u64)>,
    /// The emissions of the last map evaluated for the current record (see `account`).
    tags: Vec<Tags>,
}

/// State the workers of one daemon share (off the common per-packet path).
#[derive(Default)]
pub struct Shared {
    frags: Mutex<FragTable>,
    /// Workers whose data channel is still open; the last to see it close drains the
    /// fragment table so held fragments are accounted before the final flush.
    open_inputs: AtomicUsize,
    /// Flow starts, for the `flows` counter (only when a plugin aggregates `flows`).
    flows: Option<FlowTracker>,
}

impl Shared {
    pub fn new(workers: usize) -> Arc<Shared> {
        Shared::with_flows(workers, None)
    }

    pub fn with_flows(workers: usize, flows: Option<FlowTracker>) -> Arc<Shared> {
        Arc::new(Shared { frags: Mutex::default(), open_inputs: AtomicUsize::new(workers), flows })
    }
}

impl Worker {
    pub fn new(specs: Arc<Vec<PluginSpec>>, sources: Arc<Vec<Arc<SourceStats>>>, sampling: Sampling) -> Worker {
        Worker::with_shared(specs, sources, sampling, Shared::new(1))
    }

    pub fn with_shared(
        specs: Arc<Vec<PluginSpec>>,
        sources: Arc<Vec<Arc<SourceStats>>>,
        sampling: Sampling,
        frags: Arc<Shared>,
    ) -> Worker {
        let shards: Vec<ShardTable> = specs
            .iter()
            .map(|s| {
                let mut t = ShardTable::with_words(s.projector.words());
                t.set_limit(s.shard_limit);
                t
            })
            .collect();
        let refused = specs.iter().map(|_| Refused::default()).collect();
        let pending =
            shards.iter().map(|s| Pending { stride: s.stride(), keys: Vec::new(), counters: Vec::new() }).collect();
        let local = vec![(0, 0); specs.len()];
        let sflow = specs.iter().any(|s| s.sflow.is_some());
        Worker {
            specs,
            shards,
            pending,
            hashes: Vec::new(),
            refused_idx: Vec::new(),
            refused,
            sources,
            sampling,
            stamp: CaptureStamp::default(),
            skip: 0,
            rng: seed(),
            sflow,
            frags,
            orphans: Vec::new(),
            local,
            tags: Vec::new(),
        }
    }

    /// Sets what packet capture adds to its records.
    pub fn set_capture_stamp(&mut self, stamp: CaptureStamp) {
        self.stamp = stamp;
    }

    /// Offers an IP packet to every sfprobe plugin: each counts it in its sample pool and its
    /// interface counters if its filters take it, and samples one in its rate.
    fn sample_packet(&mut self, r: &Record, frame: &[u8], wire_len: u32) {
        for spec in self.specs.iter() {
            let Some(tap) = &spec.sflow else { continue };
            if spec.filter.as_ref().is_some_and(|f| !f.matches(r)) {
                continue;
            }
            let mut q = *r;
            if let Some(m) = &spec.tag_map {
                m.eval_one(r).apply(&mut q);
            }
            if !spec.tag_filters.takes(&q) {
                continue;
            }
            let e = &spec.stats.export;
            let pool = e.sf_pool.fetch_add(1, Relaxed) + 1;
            e.sf_octets.fetch_add(u64::from(wire_len), Relaxed);
            let kind = if r.dst_mac == [0xff; 6] {
                &e.sf_bcast
            } else if r.dst_mac[0] & 1 != 0 {
                &e.sf_mcast
            } else {
                &e.sf_ucast
            };
            kind.fetch_add(1, Relaxed);
            // xorshift64: a random 1-in-N choice, as sFlow wants (a systematic one would beat
            // with periodic traffic).
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            if tap.rate > 1 && self.rng % u64::from(tap.rate) != 0 {
                continue;
            }
            let sample = xacct_core::record::PacketSample {
                header: frame.get(..frame.len().min(tap.header_len)).unwrap_or(frame).to_vec(),
                frame_len: wire_len,
                in_iface: q.in_iface,
                out_iface: q.out_iface,
                tag: q.tag,
                tag2: q.tag2,
                pool,
                drops: e.sf_dropped.load(Relaxed),
                rate: tap.rate,
            };
            match tap.tx.try_send(sample) {
                Ok(()) => e.sf_samples.fetch_add(1, Relaxed),
                Err(_) => e.sf_dropped.fetch_add(1, Relaxed),
            };
        }
    }

    /// Decodes and accounts every frame of `batch`.
    pub fn process_batch(&mut self, batch: &Batch) {
        let Some(src) = self.sources.get(batch.source).cloned() else { return };
        let stamp = self.stamp;
        let stamping = stamp != CaptureStamp::default();
        let now = if stamp.time_new { chrono_now() } else { 0 };
        for m in &batch.frames {
            let data = batch.data(m);
            let p = match xacct_wire::decode(batch.link, data, m.wire_len) {
                Ok(p) => p,
                Err(e) => {
                    src.count_malformed(e);
                    continue;
                }
            };
            if self.sflow && !matches!(p.l3, xacct_wire::L3::None) {
                // sfprobe samples before the daemon's own sampling: its rate is its own.
                let mut r = Record::from_packet(&p, m.ts);
                if stamping {
                    stamp.apply(&mut r, now);
                }
                self.sample_packet(&r, data, m.wire_len);
            }
            if self.sampling.rate > 1 {
                // Systematic 1-in-N sampling per worker: deterministic, so tests and replays
                // give repeatable numbers.
                self.skip += 1;
                if self.skip < self.sampling.rate {
                    continue;
                }
                self.skip = 0;
            }
            if matches!(p.l3, xacct_wire::L3::None) {
                // pmacctd accounts no non-IP frame, whatever the aggregate; we count them.
                src.non_ip.fetch_add(1, Relaxed);
                continue;
            }
            let mut r = Record::from_packet(&p, m.ts);
            if stamping {
                stamp.apply(&mut r, now);
            }
            if self.sampling.rate > 1 && self.sampling.renormalize {
                r.packets *= self.sampling.rate as u64;
                r.bytes *= self.sampling.rate as u64;
            }
            if p.is_fragment {
                self.fragment(&p, r, &src);
            } else {
                if let Some(f) = &self.frags.flows {
                    if !f.track(&mut r) {
                        src.flows_untracked.fetch_add(1, Relaxed);
                    }
                }
                self.account(&r);
            }
        }
        // Pre-aggregated records (XDP flow maps) are filtered and projected like packets;
        // those of packet capture carry no methods (collectors stamp theirs).
        for r in &batch.records {
            if stamping && r.methods.is_none() {
                let mut q = *r;
                stamp.apply(&mut q, now);
                self.account(&q);
            } else {
                self.account(r);
            }
        }
        self.apply_pending();
        self.publish_counts();
        src.processed.fetch_add(batch.len() as u64, Relaxed);
    }

    /// Folds the batch's pending updates into the shards. Updates a full shard refused go
    /// to their overflow entry at once: the record is counted now, in its plugin's totals,
    /// only its key's detail is lost.
    fn apply_pending(&mut self) {
        for (i, (shard, p)) in self.shards.iter_mut().zip(self.pending.iter_mut()).enumerate() {
            if !p.counters.is_empty() {
                self.refused_idx.clear();
                shard.add_batch(&p.keys, &p.counters, &mut self.hashes, &mut self.refused_idx);
                if !self.refused_idx.is_empty() {
                    let proj = &self.specs[i].projector;
                    for &j in &self.refused_idx {
                        let j = j as usize;
                        let key = &p.keys[j * p.stride..(j + 1) * p.stride];
                        let c = &p.counters[j];
                        self.refused[i].note(self.hashes[j], c);
                        shard.add(&proj.overflow_of(key), c);
                    }
                }
                p.keys.clear();
                p.counters.clear();
                if shard.len() >= shard.limit() / 2 {
                    let want = &self.specs[i].stats.harvest_wanted;
                    // Read first: the flag's cache line is shared with the plugin's thread.
                    if !want.load(Relaxed) {
                        want.store(true, Relaxed);
                    }
                }
            }
        }
    }

    fn publish_counts(&mut self) {
        for (spec, r) in self.specs.iter().zip(self.refused.iter_mut()) {
            if !r.is_empty() {
                spec.stats.note_refused(r, true, unix_now());
                r.clear();
            }
        }
        for (spec, (acc, filt)) in self.specs.iter().zip(self.local.iter_mut()) {
            if *acc > 0 {
                spec.stats.accounted.fetch_add(std::mem::take(acc), Relaxed);
            }
            if *filt > 0 {
                spec.stats.filtered.fetch_add(std::mem::take(filt), Relaxed);
            }
        }
    }

    /// Gives later fragments their datagram's ports (see [`crate::frag`]).
    fn fragment(&mut self, p: &xacct_wire::PacketSummary, mut r: Record, src: &SourceStats) {
        let key = FragKey { src: r.src_ip, dst: r.dst_ip, proto: r.proto, id: p.frag_id };
        let mut orphans = std::mem::take(&mut self.orphans);
        let released = {
            let mut t = self.frags.frags.lock().unwrap_or_else(|e| e.into_inner());
            let released = if p.is_later_fragment {
                match t.later(key, &r, &mut orphans) {
                    Some((sp, dp)) => {
                        r.src_port = sp;
                        r.dst_port = dp;
                        vec![r]
                    }
                    None => Vec::new(),
                }
            } else {
                // A datagram's first fragment is the packet that can start a flow.
                if let Some(f) = &self.frags.flows {
                    if !f.track(&mut r) {
                        src.flows_untracked.fetch_add(1, Relaxed);
                    }
                }
                let mut v = t.first(key, &r, &mut orphans);
                v.push(r);
                v
            };
            let untracked = t.take_untracked();
            if untracked > 0 {
                src.fragments_untracked.fetch_add(untracked, Relaxed);
            }
            released
        };
        for q in &released {
            self.account(q);
        }
        self.account_orphans(&mut orphans, src);
        self.orphans = orphans;
    }

    fn account_orphans(&mut self, orphans: &mut Vec<Record>, src: &SourceStats) {
        src.fragment_orphans.fetch_add(orphans.len() as u64, Relaxed);
        for o in orphans.drain(..) {
            self.account(&o);
        }
    }

    /// Called when this worker's input closed: the last worker accounts held fragments.
    fn input_closed(&mut self) {
        if self.frags.open_inputs.fetch_sub(1, Relaxed) == 1 {
            let mut orphans = Vec::new();
            self.frags.frags.lock().unwrap_or_else(|e| e.into_inner()).drain(&mut orphans);
            if let Some(src) = self.sources.first().cloned() {
                self.account_orphans(&mut orphans, &src);
            }
            self.apply_pending();
            self.publish_counts();
        }
    }

    /// Folds `r` into every plugin shard whose filters take it. Returns whether any did.
    ///
    /// With a pre_tag_map, a record is accounted once per emission of the map (more than one
    /// only with `return=true`), with the tags of that emission, in each plugin whose tag
    /// filters take them (pmacct's redirection).
    #[inline]
    pub fn account(&mut self, r: &Record) -> bool {
        let mut k1: KeyBuf = [0; MAX_KEY_WORDS];
        let mut k2: KeyBuf = [0; MAX_KEY_WORDS];
        let mut taken = false;
        // Which map `self.tags` holds the emissions of, for this record.
        let mut cached: Option<*const TagMap> = None;
        for ((spec, pend), counts) in self.specs.iter().zip(self.pending.iter_mut()).zip(self.local.iter_mut()) {
            if !spec.accounts {
                continue;
            }
            if !spec.tags_record() {
                taken |= account_one(spec, pend, counts, r, &mut k1, &mut k2);
                continue;
            }
            // A copy only when this plugin's nets must be resolved before the map reads ASes.
            let mut resolved;
            let mut base = r;
            if let Some(m) = &spec.tag_map {
                // AS keys read what this plugin's networks_file says, so the result is the
                // plugin's own; any other map's result is shared by the plugins using it.
                let per_plugin = m.reads_as();
                if per_plugin {
                    if let Some(n) = &spec.nets {
                        resolved = *r;
                        n.resolve(&mut resolved, r.methods.unwrap_or(spec.capture_methods));
                        base = &resolved;
                    }
                }
                let ptr = Arc::as_ptr(m);
                if per_plugin || cached != Some(ptr) {
                    self.tags.clear();
                    let tags = &mut self.tags;
                    m.eval(base, |t| tags.push(t));
                    cached = (!per_plugin).then_some(ptr);
                }
            } else {
                self.tags.clear();
                self.tags.push(Tags { tag: r.tag, tag2: r.tag2, label: r.label });
            }
            for t in &self.tags {
                let mut q = *base;
                t.apply(&mut q);
                if !spec.tag_filters.takes(&q) {
                    counts.1 += 1;
                    continue;
                }
                if let Some(v) = spec.post_tag {
                    q.tag = v;
                }
                if let Some(v) = spec.post_tag2 {
                    q.tag2 = v;
                }
                taken |= account_one(spec, pend, counts, &q, &mut k1, &mut k2);
            }
        }
        taken
    }

    fn handle(&mut self, c: Ctl) {
        match c {
            Ctl::Harvest { plugin, mut spare, reply } => {
                if let Some(shard) = self.shards.get_mut(plugin) {
                    spare.clear();
                    std::mem::swap(shard, &mut spare);
                }
                let _ = reply.send(spare);
            }
            Ctl::Specs(specs) => {
                if specs.len() == self.specs.len() {
                    self.specs = specs;
                }
            }
        }
    }

    /// Runs until the control channel closes. Control messages are served between batches;
    /// after the data channel closes (sources done) the worker keeps serving harvests.
    pub fn run(mut self, data: Receiver<Batch>, ctl: Receiver<Ctl>, recycle: Sender<Batch>) {
        let mut data_open = true;
        loop {
            while let Ok(c) = ctl.try_recv() {
                self.handle(c);
            }
            if data_open {
                select! {
                    recv(ctl) -> c => match c {
                        Ok(c) => self.handle(c),
                        Err(_) => return,
                    },
                    recv(data) -> b => match b {
                        Ok(b) => {
                            self.process_batch(&b);
                            let _ = recycle.try_send(b);
                        }
                        Err(_) => {
                            data_open = false;
                            self.input_closed();
                        }
                    },
                }
            } else {
                match ctl.recv() {
                    Ok(c) => self.handle(c),
                    Err(_) => return,
                }
            }
        }
    }
}

/// Filters, resolves and packs `r` for one plugin; whether its filter took it.
#[inline]
fn account_one(
    spec: &PluginSpec,
    pend: &mut Pending,
    counts: &mut (u64, u64),
    r: &Record,
    k1: &mut KeyBuf,
    k2: &mut KeyBuf,
) -> bool {
    if let Some(f) = &spec.filter {
        if !f.matches(r) {
            counts.1 += 1;
            return false;
        }
    }
    // Maps edit a per-plugin copy: plugins may use different networks/ports files.
    let mut local;
    let rec = if spec.nets.is_some() || spec.ports.is_some() {
        local = *r;
        // Already done when this plugin's pre_tag_map read AS keys (see `account`).
        if let (Some(n), false) = (&spec.nets, local.nets_resolved) {
            n.resolve(&mut local, r.methods.unwrap_or(spec.capture_methods));
        }
        if let Some(p) = &spec.ports {
            p.apply(&mut local);
        }
        &local
    } else {
        r
    };
    let bin = spec.history.as_ref().map_or(0, |h| h.bin_start(rec.ts));
    let c = spec.projector.counters(rec);
    let n = spec.projector.pack(rec, bin, k1, k2);
    pend.push(k1, c);
    if n == 2 {
        pend.push(k2, c);
    }
    counts.0 += 1;
    true
}

/// Updates of one plugin's shard collected during a batch.
struct Pending {
    stride: usize,
    keys: Vec<u64>,
    counters: Vec<Counters>,
}

impl Pending {
    #[inline]
    fn push(&mut self, key: &KeyBuf, c: Counters) {
        self.keys.extend_from_slice(&key[..self.stride]);
        self.counters.push(c);
    }
}

/// A plugin's view of the workers: swaps out and merges their shards for that plugin, within
/// the plugin's budget.
pub struct ShardHarvest {
    plugin: usize,
    workers: Vec<Sender<Ctl>>,
    spares: Vec<ShardTable>,
    /// Entries of the fullest shard at the last harvest: a new spare is made that large, so
    /// that a worker does not grow it again from the smallest size (every doubling copies the
    /// shard into freshly zeroed pages, a visible share of a worker's CPU at 100k flows).
    last_len: usize,
    projector: Projector,
    budget: Budget,
    stats: Arc<PluginStats>,
    name: String,
    refused: Refused,
    /// When the plugin last refused a key (for the log's "recovered" line).
    last_refusal: Option<Instant>,
    seen_refusals: u64,
}

/// How long a plugin must go without refusing a key, its table having room again, before the
/// log says it recovered: one line each way, not one per refresh of a long flood.
const RECOVERY_QUIET: Duration = Duration::from_secs(60);

impl ShardHarvest {
    pub fn new(plugin: usize, spec: &PluginSpec, budget: Budget, workers: Vec<Sender<Ctl>>) -> ShardHarvest {
        let stats = spec.stats.clone();
        stats.budget_entries.store(budget.table_entries as u64, Relaxed);
        stats.budget_shard_entries.store(budget.shard_entries as u64, Relaxed);
        stats.budget_bytes.store(budget.bytes.unwrap_or(0), Relaxed);
        ShardHarvest {
            plugin,
            workers,
            spares: Vec::new(),
            last_len: 0,
            projector: spec.projector.clone(),
            budget,
            stats,
            name: spec.name.clone(),
            refused: Refused::default(),
            last_refusal: None,
            seen_refusals: 0,
        }
    }

    /// Logs once when the plugin starts refusing keys and once when it has recovered.
    fn watch(&mut self, table: &Table) {
        // Refusals the workers published since the last harvest count as this harvest's.
        let refusals = self.stats.overflow_keys.load(Relaxed);
        let new = refusals > std::mem::replace(&mut self.seen_refusals, refusals);
        let degraded = self.stats.degraded.load(Relaxed);
        if new {
            self.last_refusal = Some(Instant::now());
            if !degraded {
                self.stats.degraded.store(true, Relaxed);
                tracing::warn!(
                    "plugin {}: memory budget reached ({}): new keys are counted in the overflow entry, totals stay exact",
                    self.name,
                    self.budget.describe()
                );
            }
        } else if degraded
            && table.len() < self.budget.table_entries
            && self.last_refusal.is_none_or(|t| t.elapsed() >= RECOVERY_QUIET)
        {
            self.stats.degraded.store(false, Relaxed);
            tracing::info!(
                "plugin {}: recovered: no key refused for {} s; {} keys refused ({} distinct, estimated), {} packets and {} bytes in overflow entries since the first",
                self.name,
                RECOVERY_QUIET.as_secs(),
                refusals,
                self.stats.overflow_distinct_keys(),
                self.stats.overflow_packets.load(Relaxed),
                self.stats.overflow_bytes.load(Relaxed),
            );
        }
    }
}

impl xacct_plugins::Harvest for ShardHarvest {
    fn wanted(&self) -> bool {
        self.stats.harvest_wanted.load(Relaxed)
    }

    fn harvest_into(&mut self, into: &mut Table) {
        self.stats.harvest_wanted.store(false, Relaxed);
        let (tx, rx) = bounded(self.workers.len());
        let mut asked = 0;
        for w in &self.workers {
            let spare = self.spares.pop().unwrap_or_else(|| {
                ShardTable::with_words_for(self.projector.words(), self.last_len, self.budget.shard_entries)
            });
            if w.send(Ctl::Harvest { plugin: self.plugin, spare, reply: tx.clone() }).is_ok() {
                asked += 1;
            }
        }
        drop(tx);
        let mut longest = 0;
        for mut t in rx.iter().take(asked) {
            into.merge_shard_bounded(&t, self.budget.table_entries, &self.projector, &mut self.refused);
            longest = longest.max(t.len());
            // A shard that grew for a burst (a pcap file read at full speed) is not recycled
            // when it ran mostly empty: a fresh small one replaces it, so worker memory follows
            // the traffic of one refresh interval rather than its peak.
            if t.capacity() > 8 * t.len().max(8192) {
                continue;
            }
            t.clear();
            self.spares.push(t);
        }
        self.last_len = longest;
        if !self.refused.is_empty() {
            self.stats.note_refused(&self.refused, false, unix_now());
            self.refused.clear();
        }
        self.stats.table_entries.store(into.len() as u64, Relaxed);
        self.stats.table_bytes.store(into.allocated_bytes() as u64, Relaxed);
        self.watch(into);
    }
}

impl Worker {
    /// Folds plugin `plugin`'s shard into `into` and empties it (for harnesses that drive a
    /// worker directly).
    pub fn drain_shard(&mut self, plugin: usize, into: &mut Table) {
        if let Some(s) = self.shards.get_mut(plugin) {
            into.merge_shard(s);
            s.clear();
        }
    }

    /// Bytes the worker's shard for `plugin` occupies.
    pub fn shard_bytes(&self, plugin: usize) -> usize {
        self.shards.get(plugin).map_or(0, |s| s.allocated_bytes())
    }
}

/// A seed for a worker's sampler: the clock's nanoseconds mixed with the thread.
fn seed() -> u64 {
    use std::hash::{BuildHasher, Hash, Hasher};
    let mut h = foldhash::fast::RandomState::default().build_hasher();
    std::thread::current().id().hash(&mut h);
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()).hash(&mut h);
    h.finish() | 1
}

fn unix_now() -> u64 {
    chrono_now().max(0) as u64
}

/// Seconds since the epoch, for records timed by their arrival.
fn chrono_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}
