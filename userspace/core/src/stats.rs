//! Counters every part of the daemon updates and the CLI (`xacct -t`) and SIGUSR1 report.
//! Relaxed atomics: each counter is monotonic and read only for reporting.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use xacct_wire::DecodeError;

/// Per-source (capture handle / collector socket) counters.
#[derive(Debug, Default)]
pub struct SourceStats {
    /// Frames or datagrams handed to us by the kernel/libpcap.
    pub received: AtomicU64,
    /// Dropped by the kernel or libpcap before we saw them (pcap_stats ps_drop + ps_ifdrop).
    pub kernel_dropped: AtomicU64,
    /// Frames that failed to decode, by reason (index = `DecodeError as usize` order of ALL).
    pub malformed: [AtomicU64; DecodeError::ALL.len()],
    /// Non-IP frames that no plugin accounts (pmacctd ignores them too).
    pub non_ip: AtomicU64,
    /// Dropped because a worker queue was full (never silent).
    pub queue_dropped: AtomicU64,
    /// Later IP fragments whose first fragment never came (accounted with ports 0).
    pub fragment_orphans: AtomicU64,
    /// Fragments not followed and flows not tracked because their bounded tables were full
    /// (the fragment is accounted without ports at once; the flow's packets count as starts).
    pub fragments_untracked: AtomicU64,
    pub flows_untracked: AtomicU64,
    /// Records that reached the workers.
    pub processed: AtomicU64,
    /// AF_XDP: frames the kernel could not put on the socket's rx ring because it was full
    /// (we drained too slowly). Also counted in `kernel_dropped`.
    pub xsk_rx_ring_full: AtomicU64,
    /// AF_XDP: times the kernel found the fill ring empty (no free UMEM frame to receive into);
    /// the frames lost this way are in `xsk_rx_dropped`.
    pub xsk_fill_ring_empty: AtomicU64,
    /// AF_XDP: frames dropped for other reasons (no free frame, frame larger than a UMEM
    /// frame). Also counted in `kernel_dropped`.
    pub xsk_rx_dropped: AtomicU64,
    /// AF_XDP: invalid descriptors on the rx ring (a bug on one side if ever non-zero).
    pub xsk_rx_invalid_descs: AtomicU64,
    /// Counters a source kind keeps on its own (the XDP program's), as last read.
    pub extra: std::sync::Mutex<Vec<(&'static str, u64)>>,
    /// Set once a finite source (pcap file) has been read to its end and drained.
    pub finished: std::sync::atomic::AtomicBool,
    /// Collectors: per-exporter counters, as last published by the collector thread.
    pub exporters: std::sync::Mutex<Vec<ExporterStats>>,
}

/// Counters of one NetFlow/IPFIX exporter domain (address + engine or source id /
/// observation domain) or one sFlow agent + sub-agent, as seen by one collector socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExporterStats {
    /// "netflow" or "sflow".
    pub protocol: &'static str,
    pub exporter: std::net::IpAddr,
    /// NetFlow v9 source id / IPFIX observation domain / v5-v8 `engine_type << 8 | engine_id`
    /// / sFlow sub-agent id.
    pub domain: u32,
    pub datagrams: u64,
    /// Flow records (NetFlow) or flow samples (sFlow) turned into records.
    pub records: u64,
    /// Malformed datagrams by reason (the decoders' stable labels).
    pub malformed: Vec<(&'static str, u64)>,
    /// v9/IPFIX data sets whose template was unknown when they arrived.
    pub unknown_template_sets: u64,
    /// Sequence numbers that jumped ahead (datagrams or flows lost on the way) or back
    /// (reordering, or an exporter restart).
    pub seq_gaps_forward: u64,
    pub seq_gaps_backward: u64,
}

impl ExporterStats {
    /// `(name, value)` lines for `xacct -t`, prefixed with the exporter.
    pub fn counters(&self) -> Vec<(String, u64)> {
        let who = format!("{} exporter {}/{}", self.protocol, self.exporter, self.domain);
        let mut v = vec![
            (format!("{who} datagrams"), self.datagrams),
            (format!("{who} records"), self.records),
            (format!("{who} unknown_template_sets"), self.unknown_template_sets),
            (format!("{who} seq_gaps_forward"), self.seq_gaps_forward),
            (format!("{who} seq_gaps_backward"), self.seq_gaps_backward),
        ];
        v.extend(self.malformed.iter().map(|(why, n)| (format!("{who} malformed {why}"), *n)));
        v
    }
}

impl SourceStats {
    pub fn count_malformed(&self, e: DecodeError) {
        let i = DecodeError::ALL.iter().position(|x| *x == e).unwrap_or(0);
        self.malformed[i].fetch_add(1, Relaxed);
    }

    /// A copy of [`Self::extra`].
    pub fn extra_counters(&self) -> Vec<(&'static str, u64)> {
        self.extra.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Every exporter's counters as `(name, value)` lines (empty for packet sources).
    pub fn exporter_counters(&self) -> Vec<(String, u64)> {
        self.exporters.lock().map(|v| v.iter().flat_map(ExporterStats::counters).collect()).unwrap_or_default()
    }

    pub fn malformed_total(&self) -> u64 {
        self.malformed.iter().map(|c| c.load(Relaxed)).sum()
    }

    /// `(reason, count)` pairs for reasons with a non-zero count.
    pub fn malformed_by_reason(&self) -> Vec<(&'static str, u64)> {
        DecodeError::ALL
            .iter()
            .zip(&self.malformed)
            .map(|(e, c)| (e.name(), c.load(Relaxed)))
            .filter(|(_, c)| *c > 0)
            .collect()
    }
}

/// Per-plugin counters.
#[derive(Debug, Default)]
pub struct PluginStats {
    /// Records that passed the plugin's filter and were folded into its table.
    pub accounted: AtomicU64,
    /// Records rejected by the plugin's `aggregate_filter`.
    pub filtered: AtomicU64,
    /// SIGUSR2 reloads of this plugin's maps (pre_tag_map, networks_file, ports_file) that
    /// took effect, and those refused (a map failed to load: the old ones stayed).
    pub maps_reloaded: AtomicU64,
    pub maps_reload_failed: AtomicU64,
    /// Entries written out (print) or currently held (memory).
    pub entries_written: AtomicU64,
    /// Refreshes (shard swaps) completed.
    pub refreshes: AtomicU64,
    /// Write errors (print file could not be written, …).
    pub write_errors: AtomicU64,
    /// SQL plugins: rows committed to the database (an UPDATE or INSERT each).
    pub rows_written: AtomicU64,
    /// SQL plugins: rows of batches that could not be written at once and waited in the spool.
    pub rows_spooled: AtomicU64,
    /// SQL plugins: batches written after waiting (database down or slow, or left by a
    /// previous run).
    pub batches_replayed: AtomicU64,
    /// SQL plugins: batches found already committed (their marker existed) and not written again.
    pub batches_duplicate: AtomicU64,
    /// SQL plugins: statements or transactions that failed (each failed attempt counts).
    pub failed_statements: AtomicU64,
    /// SQL plugins: batches and rows in the spool now.
    pub spool_batches: AtomicU64,
    pub spool_rows: AtomicU64,
    /// SQL plugins: batches and rows in `sql_spool_dir` made for another target than the
    /// plugin's (another database, table, server or backend): found at start or met in the
    /// spool, not written, left on disk.
    pub spool_orphaned_batches: AtomicU64,
    pub spool_orphaned_rows: AtomicU64,
    /// SQL plugins: entries dropped by `sql_preprocess`.
    pub preprocess_dropped: AtomicU64,
    /// SQL plugins: batches written to `sql_recovery_backup_host`.
    pub batches_to_backup: AtomicU64,
    /// SQL plugins: microseconds per batch write (transaction), as a histogram.
    pub write_latency_us: std::sync::Mutex<Option<hdrhistogram::Histogram<u64>>>,
    /// The budget: entries the merged table and each worker shard admit, and the bytes they
    /// came from (0 when given as `max_entries`).
    pub budget_entries: AtomicU64,
    pub budget_shard_entries: AtomicU64,
    pub budget_bytes: AtomicU64,
    /// Entries and allocated bytes of the merged table at the last harvest.
    pub table_entries: AtomicU64,
    pub table_bytes: AtomicU64,
    /// New keys refused by a full table or shard (each refusal counts, repeats included);
    /// those refused by a worker's shard are also in `overflow_keys_at_workers`.
    pub overflow_keys: AtomicU64,
    pub overflow_keys_at_workers: AtomicU64,
    /// Packets, bytes and flows folded into overflow entries.
    pub overflow_packets: AtomicU64,
    pub overflow_bytes: AtomicU64,
    pub overflow_flows: AtomicU64,
    /// Unix time of the first and the latest refusal (0: never).
    pub overflow_first: AtomicU64,
    pub overflow_last: AtomicU64,
    /// Distinct keys refused, estimated.
    pub overflow_distinct: std::sync::Mutex<crate::hll::HyperLogLog>,
    /// Whether the plugin is refusing keys now (from the first refusal until the table has
    /// room again and a minute passed without one).
    pub degraded: std::sync::atomic::AtomicBool,
    /// Set by a worker whose shard of this plugin is half full: the plugin harvests early.
    pub harvest_wanted: std::sync::atomic::AtomicBool,
    /// Export plugins (nfprobe).
    pub export: ExportStats,
}

/// What an export plugin (nfprobe) sent and why flows left its cache.
#[derive(Debug, Default)]
pub struct ExportStats {
    /// Flow records sent, and datagrams carrying them (templates included).
    pub flows_exported: AtomicU64,
    pub datagrams_sent: AtomicU64,
    /// Datagrams the socket refused (the flows in them are counted lost here, not exported).
    pub send_errors: AtomicU64,
    pub flows_lost: AtomicU64,
    /// Flows the version cannot carry (IPv6 in NetFlow v5), counted and not sent.
    pub flows_unexportable: AtomicU64,
    /// Flows in the cache now.
    pub flows_cached: AtomicU64,
    /// Flows leaving the cache: idle (the protocol's timeout), active (maxlife), the cache
    /// full (nfprobe_maxflows: oldest first), the daemon stopping, nfprobe_dont_cache.
    pub expired_idle: AtomicU64,
    pub expired_active: AtomicU64,
    pub expired_maxflows: AtomicU64,
    pub expired_shutdown: AtomicU64,
    pub expired_uncached: AtomicU64,
    /// tee: datagrams the collectors handed over, and those its full queue dropped.
    pub tee_received: AtomicU64,
    pub tee_queue_dropped: AtomicU64,
    /// tee: datagrams no pool took (their tag matched no pool's filter).
    pub tee_unmatched: AtomicU64,
    /// tee: bumped by SIGUSR2; the plugin re-reads tee_receivers and its pre_tag_map.
    pub tee_reload: AtomicU64,
    /// sfprobe: packets the sampler saw (the sample pool), their bytes by kind of destination,
    /// samples taken and samples a full queue dropped.
    pub sf_pool: AtomicU64,
    pub sf_octets: AtomicU64,
    pub sf_ucast: AtomicU64,
    pub sf_mcast: AtomicU64,
    pub sf_bcast: AtomicU64,
    pub sf_samples: AtomicU64,
    pub sf_dropped: AtomicU64,
    /// tee: per receiver (`<pool id>/<address>`), copies sent and send errors.
    pub tee_receivers: std::sync::Mutex<Vec<(String, u64, u64)>>,
}

impl ExportStats {
    fn tee_counters(&self) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = [
            ("tee_received", &self.tee_received),
            ("tee_queue_dropped", &self.tee_queue_dropped),
            ("tee_unmatched", &self.tee_unmatched),
        ]
        .into_iter()
        .map(|(k, c)| (k.to_string(), c.load(Relaxed)))
        .collect();
        if let Ok(r) = self.tee_receivers.lock() {
            for (name, sent, errors) in r.iter() {
                v.push((format!("tee_sent[{name}]"), *sent));
                v.push((format!("tee_send_errors[{name}]"), *errors));
            }
        }
        v
    }

    fn counters(&self) -> Vec<(String, u64)> {
        [
            ("flows_exported", &self.flows_exported),
            ("datagrams_sent", &self.datagrams_sent),
            ("send_errors", &self.send_errors),
            ("flows_lost", &self.flows_lost),
            ("flows_unexportable", &self.flows_unexportable),
            ("flows_cached", &self.flows_cached),
            ("expired_idle", &self.expired_idle),
            ("expired_active", &self.expired_active),
            ("expired_maxflows", &self.expired_maxflows),
            ("expired_shutdown", &self.expired_shutdown),
            ("expired_uncached", &self.expired_uncached),
        ]
        .into_iter()
        .map(|(k, c)| (k.to_string(), c.load(Relaxed)))
        .collect()
    }
}

impl PluginStats {
    /// Records one batch write's duration.
    pub fn record_write_latency(&self, d: std::time::Duration) {
        if let Ok(mut h) = self.write_latency_us.lock() {
            // 3 significant digits up to an hour: a few tens of KiB.
            let h = h.get_or_insert_with(|| {
                hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static bounds are valid")
            });
            h.saturating_record(d.as_micros().min(u128::from(u64::MAX)) as u64);
        }
    }

    /// Folds what a table or shard refused into the counters. `at_worker`: refused by a
    /// worker's shard (between harvests) rather than by the merged table.
    pub fn note_refused(&self, r: &crate::aggregate::Refused, at_worker: bool, now: u64) {
        if r.is_empty() {
            return;
        }
        self.overflow_keys.fetch_add(r.keys, Relaxed);
        if at_worker {
            self.overflow_keys_at_workers.fetch_add(r.keys, Relaxed);
        }
        self.overflow_packets.fetch_add(r.counters.packets, Relaxed);
        self.overflow_bytes.fetch_add(r.counters.bytes, Relaxed);
        self.overflow_flows.fetch_add(r.counters.flows, Relaxed);
        let _ = self.overflow_first.compare_exchange(0, now, Relaxed, Relaxed);
        self.overflow_last.fetch_max(now, Relaxed);
        if let Ok(mut h) = self.overflow_distinct.lock() {
            h.merge(&r.distinct);
        }
    }

    /// Estimated distinct keys refused so far.
    pub fn overflow_distinct_keys(&self) -> u64 {
        self.overflow_distinct.lock().map_or(0, |h| h.estimate())
    }

    /// `(name, value)` lines for `xacct -t` and the SIGUSR1 log; SQL and export counters
    /// only for plugins of those kinds.
    pub fn counters(&self, kind: crate::config::PluginKind) -> Vec<(String, u64)> {
        let sql = kind.is_sql();
        let mut v = vec![
            ("accounted".to_string(), self.accounted.load(Relaxed)),
            ("filtered".to_string(), self.filtered.load(Relaxed)),
            ("refreshes".to_string(), self.refreshes.load(Relaxed)),
            ("entries_written".to_string(), self.entries_written.load(Relaxed)),
            ("write_errors".to_string(), self.write_errors.load(Relaxed)),
            ("budget_entries".to_string(), self.budget_entries.load(Relaxed)),
            ("budget_shard_entries".to_string(), self.budget_shard_entries.load(Relaxed)),
            ("budget_bytes".to_string(), self.budget_bytes.load(Relaxed)),
            ("table_entries".to_string(), self.table_entries.load(Relaxed)),
            ("table_bytes".to_string(), self.table_bytes.load(Relaxed)),
            ("degraded".to_string(), u64::from(self.degraded.load(Relaxed))),
            ("overflow_keys".to_string(), self.overflow_keys.load(Relaxed)),
            ("overflow_keys_at_workers".to_string(), self.overflow_keys_at_workers.load(Relaxed)),
            ("overflow_distinct_keys".to_string(), self.overflow_distinct_keys()),
            ("overflow_packets".to_string(), self.overflow_packets.load(Relaxed)),
            ("overflow_bytes".to_string(), self.overflow_bytes.load(Relaxed)),
            ("overflow_flows".to_string(), self.overflow_flows.load(Relaxed)),
            ("overflow_first".to_string(), self.overflow_first.load(Relaxed)),
            ("overflow_last".to_string(), self.overflow_last.load(Relaxed)),
            ("maps_reloaded".to_string(), self.maps_reloaded.load(Relaxed)),
            ("maps_reload_failed".to_string(), self.maps_reload_failed.load(Relaxed)),
        ];
        if sql {
            for (k, c) in [
                ("rows_written", &self.rows_written),
                ("rows_spooled", &self.rows_spooled),
                ("batches_replayed", &self.batches_replayed),
                ("batches_duplicate", &self.batches_duplicate),
                ("failed_statements", &self.failed_statements),
                ("spool_batches", &self.spool_batches),
                ("spool_rows", &self.spool_rows),
                ("spool_orphaned_batches", &self.spool_orphaned_batches),
                ("spool_orphaned_rows", &self.spool_orphaned_rows),
                ("preprocess_dropped", &self.preprocess_dropped),
                ("batches_to_backup", &self.batches_to_backup),
            ] {
                v.push((k.to_string(), c.load(Relaxed)));
            }
            if let Ok(h) = self.write_latency_us.lock() {
                let h = h.as_ref();
                v.push(("write_batches".to_string(), h.map_or(0, |h| h.len())));
                for (name, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0)] {
                    v.push((format!("write_latency_{name}_us"), h.map_or(0, |h| h.value_at_quantile(q))));
                }
            }
        }
        if kind == crate::config::PluginKind::Nfprobe {
            v.extend(self.export.counters());
        }
        if kind == crate::config::PluginKind::Tee {
            v.extend(self.export.tee_counters());
        }
        if kind == crate::config::PluginKind::Sfprobe {
            let e = &self.export;
            for (k, c) in [
                ("sample_pool", &e.sf_pool),
                ("samples_taken", &e.sf_samples),
                ("samples_dropped", &e.sf_dropped),
                ("datagrams_sent", &e.datagrams_sent),
                ("send_errors", &e.send_errors),
            ] {
                v.push((k.to_string(), c.load(Relaxed)));
            }
        }
        v
    }
}
