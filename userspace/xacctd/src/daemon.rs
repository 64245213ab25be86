//! Lifecycle: configuration → workers, plugins, sources; signals; shutdown with a final flush.
//!
//! Shutdown order is what makes the final flush exact: sources stop and drop their batch
//! senders → workers drain every queued batch → plugins are told to stop and do their last
//! harvest → workers exit when the last harvest handle is dropped.

use crate::pipeline::{CaptureStamp, Ctl, PluginSpec, Sampling, SflowTap, ShardHarvest, Worker};
use anyhow::{bail, Context, Result};
use crossbeam_channel::{bounded, Sender};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use xacct_capture::{
    AfXdpConfig, AfXdpSource, BatchSink, PcapSource, SinkMode, Source, SourceEnd, Steering, XdpHarvester,
};
use xacct_core::aggregate::Projector;
use xacct_core::budget::{Budget, BudgetSource};
use xacct_core::config::{CaptureMethod, Config, Direction, PluginConfig, PluginKind};
use xacct_core::filter::Filter;
use xacct_core::maps::{NetResolver, Networks, Ports};
use xacct_core::stats::{PluginStats, SourceStats};
use xacct_core::tag::{Field as TagField, TagMap};
use xacct_plugins::PluginContext;

/// Batches a worker may have queued: bounds memory and latency; a full queue blocks a file
/// reader and is counted as `queue_dropped` for a live interface.
const WORKER_QUEUE_BATCHES: usize = 64;

enum Event {
    Signal(i32),
    SourceDone { name: String, end: Result<SourceEnd, String> },
    PluginDone { name: String, failed: bool },
}

fn init_logging(config: &Config) -> Result<()> {
    use tracing_subscriber::fmt::writer::{BoxMakeWriter, MakeWriterExt};
    use tracing_subscriber::EnvFilter;
    let g = &config.global;
    let level = if g.debug { "debug" } else { "info" };
    let filter = EnvFilter::try_from_env("XACCT_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    let logfile = match &g.logfile {
        Some(path) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open logfile {}", path.display()))?;
            crate::files::chown(path, g.files_uid, g.files_gid)?;
            Some(std::sync::Mutex::new(f))
        }
        None => None,
    };
    let syslog = g.syslog.as_deref().map(crate::syslog::Syslog::new).transpose()?;
    match (logfile, syslog) {
        (None, None) => {
            use std::io::IsTerminal;
            builder.with_ansi(std::io::stderr().is_terminal()).with_writer(std::io::stderr).try_init().ok();
        }
        (Some(f), None) => {
            builder.with_ansi(false).with_writer(f).try_init().ok();
        }
        (f, Some(sys)) => {
            // syslog stamps messages itself.
            let w = match f {
                Some(f) => BoxMakeWriter::new(sys.and(f)),
                None => BoxMakeWriter::new(sys),
            };
            builder.with_ansi(false).without_time().with_writer(w).try_init().ok();
        }
    }
    Ok(())
}

struct PidFile(Option<PathBuf>);

impl Drop for PidFile {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Datagrams a tee plugin's queue holds; beyond, the collectors drop copies and count them.
const TEE_QUEUE: usize = 65_536;
/// Packet samples an sfprobe plugin's queue holds; beyond, they are dropped and counted (the
/// `drops` of the next flow sample).
const SFPROBE_QUEUE: usize = 65_536;

/// Map files loaded once each, however many plugins name them.
type Maps<T> = HashMap<PathBuf, Arc<T>>;

/// The worker-side specs of every plugin (filters, projections, maps).
fn plugin_specs(
    config: &Config,
    stats: &[Arc<PluginStats>],
    budgets: &[Budget],
    taps: &[Option<SflowTap>],
) -> Result<Vec<PluginSpec>> {
    let (nets, ports) = load_maps(config)?;
    let opts = config.global.tag_map_options();
    let load_tags = |path: &std::path::Path| -> Result<Arc<TagMap>> {
        let m = TagMap::load(path, &opts)?;
        tracing::info!("[{}] map successfully (re)loaded with {} entries", path.display(), m.len());
        Ok(Arc::new(m))
    };
    let global_map = config.global.pre_tag_map.as_ref().map(|(path, _)| load_tags(path)).transpose()?;
    let mut specs = Vec::new();
    for (((p, stats), budget), tap) in config.plugins.iter().zip(stats).zip(budgets).zip(taps) {
        let tag_map = match &p.pre_tag_map {
            Some(path) => Some(load_tags(path).with_context(|| format!("plugin {}", p.name))?),
            None => global_map.clone(),
        };
        // AS keys in the map need the plugin's networks_file even if its aggregate does not.
        let map_needs_nets = tag_map.as_ref().is_some_and(|m| m.uses(TagField::SrcAs) || m.uses(TagField::DstAs));
        let mut projector = Projector::new(&p.aggregate, p.history().is_some());
        if p.kind == PluginKind::Nfprobe {
            // The exporter's entries keep their first and last second.
            projector = projector.with_times();
        }
        let filter = match &p.aggregate_filter {
            Some(f) => Some(Filter::parse(f).map_err(|e| anyhow::anyhow!("plugin {}: aggregate_filter: {e}", p.name))?),
            None => None,
        };
        specs.push(PluginSpec {
            name: p.name.clone(),
            projector,
            filter,
            history: p.history(),
            nets: (p.aggregate.needs_nets() || map_needs_nets).then(|| net_resolver(p, &nets)),
            capture_methods: config.global.capture_methods,
            ports: p.ports_file.as_ref().and_then(|f| ports.get(f).cloned()),
            tag_map,
            tag_filters: p.tag_filters.clone(),
            post_tag: p.post_tag,
            post_tag2: p.post_tag2,
            stats: stats.clone(),
            shard_limit: budget.shard_entries,
            accounts: !matches!(p.kind, PluginKind::Tee | PluginKind::Sfprobe),
            sflow: tap.clone(),
        });
    }
    Ok(specs)
}

/// Every plugin's memory budget (see [`xacct_core::budget`]); plugins without a key of their own
/// share a quarter of the machine's memory.
fn plugin_budgets(config: &Config, workers: usize) -> Vec<Budget> {
    let total = xacct_core::budget::machine_memory().unwrap_or(4 << 30);
    let plugins = config.plugins.len().max(1);
    config
        .plugins
        .iter()
        .map(|p| {
            let words = Projector::new(&p.aggregate, p.history().is_some()).words();
            p.budget(words, workers, BudgetSource::Default { total, plugins })
        })
        .collect()
}

fn net_resolver(p: &PluginConfig, nets: &Maps<Networks>) -> NetResolver {
    NetResolver {
        networks: p.networks_file.as_ref().and_then(|f| nets.get(f).cloned()),
        mask: p.networks_mask,
        no_lpm: p.networks_file_no_lpm,
        no_mask_if_zero: p.networks_no_mask_if_zero,
        filter: p.networks_file_filter,
    }
}

fn load_maps(config: &Config) -> Result<(Maps<Networks>, Maps<Ports>)> {
    let mut nets = HashMap::new();
    let mut ports = HashMap::new();
    for p in &config.plugins {
        if let Some(path) = &p.networks_file {
            if !nets.contains_key(path) {
                let n = Networks::load(path).with_context(|| format!("plugin {}", p.name))?;
                nets.insert(path.clone(), Arc::new(n));
            }
        }
        if let Some(path) = &p.ports_file {
            if !ports.contains_key(path) {
                let n = Ports::load(path).with_context(|| format!("plugin {}", p.name))?;
                ports.insert(path.clone(), Arc::new(n));
            }
        }
    }
    Ok((nets, ports))
}

/// RX queues of a network interface, from sysfs (`queues/rx-N`); at least 1.
fn rx_queues(iface: &str) -> u32 {
    std::fs::read_dir(format!("/sys/class/net/{iface}/queues"))
        .map(|d| d.filter_map(|e| e.ok()).filter(|e| e.file_name().to_string_lossy().starts_with("rx-")).count() as u32)
        .unwrap_or(1)
        .max(1)
}

/// The kernel flow-key fields the plugins need: what their aggregates project, and every field
/// when any plugin filters (a filter may read any field).
fn xdp_key_fields(config: &Config) -> u32 {
    use xacct_core::Primitive as P;
    use xacct_xdp::*;
    // A filter or a pre_tag_map may read any field; records tagged at harvest must carry
    // what per-packet tagging would have seen.
    if config.plugins.iter().any(|p| p.aggregate_filter.is_some() || p.pre_tag_map.is_some())
        || config.global.pre_tag_map.is_some()
    {
        return KEEP_ALL;
    }
    let mut k = 0;
    for p in config.plugins.iter().flat_map(|p| p.aggregate.primitives()) {
        k |= match p {
            P::SrcHost | P::SrcNet | P::SrcMask | P::SrcAs => KEEP_SRC_ADDR,
            P::DstHost | P::DstNet | P::DstMask | P::DstAs => KEEP_DST_ADDR,
            P::SumHost | P::SumNet | P::SumAs => KEEP_SRC_ADDR | KEEP_DST_ADDR,
            P::SrcPort => KEEP_SRC_PORT,
            P::DstPort => KEEP_DST_PORT,
            P::SumPort => KEEP_SRC_PORT | KEEP_DST_PORT,
            P::Proto => KEEP_PROTO,
            P::Tos => KEEP_TOS,
            P::Vlan => KEEP_VLAN,
            P::SrcMac => KEEP_SRC_MAC,
            P::DstMac => KEEP_DST_MAC,
            P::SumMac => KEEP_SRC_MAC | KEEP_DST_MAC,
            P::Etype => KEEP_ETHERTYPE,
            P::TcpFlags => KEEP_TCP_FLAGS,
            P::Tag | P::Tag2 | P::Label | P::InIface | P::OutIface | P::Flows | P::None => 0,
            P::MplsLabelTop => KEEP_MPLS_TOP,
            P::MplsLabelBottom => KEEP_MPLS_BOTTOM,
            P::MplsStackDepth => KEEP_MPLS_DEPTH,
        };
    }
    k
}

/// XDP pre-aggregation on `iface`: the program counts flows in the kernel (harvested by an
/// `XdpHarvester` source) and sends what needs userspace (IP fragments, a full flow map) to
/// one AF_XDP socket per RX queue.
fn open_xdp(config: &Config, iface: &str) -> Result<Vec<Source>> {
    let g = &config.global;
    // Plugins that need each packet in userspace get every admitted packet over AF_XDP: the
    // program still pre-filters and counts, but aggregates nothing in the kernel.
    let per_packet = if config.plugins.iter().any(|p| p.aggregate.has(xacct_core::Primitive::Flows)) {
        Some("the flows counter needs every packet (flow starts)")
    } else if g.sampling_rate > 1 {
        Some("sampling_rate picks individual packets")
    } else {
        None
    };
    if g.pcap_filter.is_some() {
        bail!("pcap_filter needs libpcap; use aggregate_filter (every plugin filters in userspace)");
    }
    if g.pcap_direction == Some(Direction::Out) {
        bail!("pcap_direction out needs libpcap: XDP sees received packets only");
    }
    let action = match g.xdp_action {
        xacct_core::config::XdpAction::Pass => xacct_xdp::Action::Pass,
        xacct_core::config::XdpAction::Drop => xacct_xdp::Action::Drop,
    };
    let mut opts = xacct_xdp::Options { key_fields: xdp_key_fields(config), action, ..xacct_xdp::Options::default() };
    if let Some(n) = g.xdp_flow_entries {
        opts.flow_entries = n;
    }
    if let Some(why) = per_packet {
        tracing::info!("XDP on {iface}: every admitted packet goes to userspace over AF_XDP ({why})");
        opts.redirect_all = true;
    } else if g.xdp_classify_packets > 0 {
        opts.classify_packets = g.xdp_classify_packets;
        tracing::info!(
            "XDP on {iface}: the first {} packets of every stream go to userspace over AF_XDP for classification",
            g.xdp_classify_packets
        );
    }
    let mut prog = xacct_xdp::XdpProgram::load(opts).context("loading the XDP program")?;
    let att = prog.attach(iface).context("attaching the XDP program")?;
    match &att.native_error {
        Some(why) => tracing::info!("XDP on {iface}: generic mode (native attach failed: {why})"),
        None => tracing::info!("XDP on {iface}: native mode"),
    }
    // Kernel pre-filter: the union of supersets of the plugins' aggregate_filters (each plugin
    // still applies its own filter in userspace). A plugin without a filter, or with one the
    // kernel rules cannot narrow, wants everything: the pre-filter is then off.
    let mut union = Some(xacct_core::filter::PrefilterRules::default());
    for p in &config.plugins {
        let sup = p.aggregate_filter.as_deref().and_then(|f| Filter::parse(f).ok()).and_then(|f| f.kernel_superset());
        if sup.is_none() && union.is_some() {
            let why = match p.aggregate_filter {
                Some(_) => "its aggregate_filter has no kernel form",
                None => "it has no aggregate_filter",
            };
            tracing::info!("XDP pre-filter off: plugin {} takes every packet ({why})", p.name);
        }
        union = match (union, sup) {
            (Some(u), Some(s)) => {
                let merged = u.union(s);
                if merged.is_none() {
                    tracing::info!("XDP pre-filter off: the plugins' filters need more nets than the kernel holds");
                }
                merged
            }
            _ => None,
        };
    }
    let rules = match union {
        Some(r) => {
            tracing::info!("XDP pre-filter on {iface}: admits non-IP frames and IP packets matching {r}");
            xacct_xdp::Rules {
                pass_all: false,
                v4_src: r.v4_src,
                v4_dst: r.v4_dst,
                v6_src: r.v6_src,
                v6_dst: r.v6_dst,
                protos: r.protos,
                src_ports: r.src_ports,
                dst_ports: r.dst_ports,
                vlans: r.vlans,
                ipv4: r.ipv4,
                ipv6: r.ipv6,
            }
        }
        None => xacct_xdp::Rules::pass_all(),
    };
    prog.set_rules(&rules).context("setting XDP rules")?;
    let queues = rx_queues(iface);
    let cfg = AfXdpConfig { steering: Steering::External, ..AfXdpConfig::default() };
    let mut sources = Vec::new();
    for q in 0..queues {
        let s = AfXdpSource::open(iface, q, &cfg).with_context(|| format!("AF_XDP socket for queue {q}"))?;
        prog.insert_xsk(q, s.fd()).with_context(|| format!("XSKMAP slot {q}"))?;
        sources.push(Source::AfXdp(Box::new(s)));
    }
    let what = format!("XDP {iface} ({} mode)", if att.native_error.is_some() { "generic" } else { "native" });
    sources.insert(0, Source::Xdp(Box::new(XdpHarvester::new(prog, what).with_interval(g.xdp_harvest_interval))));
    Ok(sources)
}

/// Opens the configured packet sources, choosing the capture method for a live interface;
/// also the interface's name.
fn open_sources(config: &Config) -> Result<(Vec<Source>, Option<String>)> {
    let g = &config.global;
    if let Some(file) = &g.pcap_savefile {
        return Ok((vec![Source::Pcap(PcapSource::open_file(file, g.pcap_filter.as_deref())?)], None));
    }
    let iface = match &g.interface {
        Some(i) => i.clone(),
        None => {
            let d = pcap::Device::lookup()
                .ok()
                .flatten()
                .context("no interface or pcap_savefile configured, and libpcap found no default device")?;
            tracing::info!("no interface configured: using libpcap's default device {}", d.name);
            d.name
        }
    };
    let pcap = || -> Result<Vec<Source>> {
        let mut src = PcapSource::open_live(&iface, g.snaplen, g.promisc, g.pcap_filter.as_deref())?;
        if let Some(d) = g.pcap_direction {
            src.set_direction(d == Direction::In)?;
        }
        Ok(vec![Source::Pcap(src)])
    };
    let sources = match g.capture_method {
        CaptureMethod::Pcap => pcap(),
        CaptureMethod::AfXdp => {
            if g.pcap_filter.is_some() {
                bail!("pcap_filter needs libpcap: with capture_method afxdp use aggregate_filter (every plugin filters in userspace)");
            }
            if g.pcap_direction == Some(Direction::Out) {
                bail!("pcap_direction out needs libpcap: AF_XDP sees received packets only");
            }
            let queues = rx_queues(&iface);
            let cfg = AfXdpConfig { steering: Steering::Standalone, ..AfXdpConfig::default() };
            let socks = (0..queues)
                .map(|q| AfXdpSource::open(&iface, q, &cfg).map(|s| Source::AfXdp(Box::new(s))))
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("capture_method afxdp on {iface}"))?;
            tracing::info!("AF_XDP on {iface}: {queues} RX queue(s), one socket and one source thread each");
            Ok(socks)
        }
        CaptureMethod::Xdp => open_xdp(config, &iface).with_context(|| format!("capture_method xdp on {iface}")),
        CaptureMethod::Auto => match open_xdp(config, &iface) {
            Ok(s) => Ok(s),
            Err(e) => {
                // AF_XDP alone would take every packet of the interface away from the kernel
                // stack, so auto falls back to libpcap, never to AF_XDP by itself.
                tracing::info!("capture_method auto: XDP not used on {iface} ({e:#}); falling back to libpcap");
                pcap()
            }
        },
    }?;
    Ok((sources, Some(iface)))
}

/// A packet source or a NetFlow/sFlow collector socket: each runs on a thread of its own.
enum AnySource {
    Capture(Source),
    Collect(Box<xacct_collect::Collector>),
}

impl AnySource {
    fn describe(&self) -> String {
        match self {
            AnySource::Capture(s) => s.describe(),
            AnySource::Collect(c) => c.describe().to_string(),
        }
    }

    fn is_file(&self) -> bool {
        matches!(self, AnySource::Capture(s) if s.is_file())
    }

    /// Whether the source waits for the workers when their queues are full. Files do (reading
    /// slower loses nothing). So do collectors: their socket buffer is the queue then, and
    /// what overflows it is dropped by the kernel and counted (SO_RXQ_OVFL), whereas dropping
    /// decoded batches would waste the decoding and lose a burst the buffer could have held.
    /// Live capture drops and counts instead, to keep the kernel's ring draining.
    fn waits_for_workers(&self) -> bool {
        self.is_file() || matches!(self, AnySource::Collect(_))
    }

    fn run(
        &mut self,
        id: usize,
        sink: &mut BatchSink,
        stop: &AtomicBool,
        stats: &SourceStats,
    ) -> Result<SourceEnd, String> {
        match self {
            AnySource::Capture(s) => s.run(id, sink, stop, stats).map_err(|e| e.to_string()),
            AnySource::Collect(c) => c.run(id, sink, stop, stats).map_err(|e| e.to_string()),
        }
    }

    fn update_stats(&mut self, stats: &SourceStats) {
        if let AnySource::Capture(s) = self {
            s.update_stats(stats)
        }
    }
}

/// The configured collectors: `collector_threads` SO_REUSEPORT sockets per protocol; and their
/// allow lists (for SIGUSR2).
fn open_collectors(config: &Config) -> Result<(Vec<AnySource>, Vec<Arc<xacct_collect::Allow>>)> {
    use xacct_collect::{Collector, CollectorConfig, Protocol};
    let g = &config.global;
    let mut out = Vec::new();
    let mut allows = Vec::new();
    let wanted = [
        (Protocol::Netflow, g.netflow_listen(), g.nfacctd_pipe_size, g.nfacctd_renormalize, g.nfacctd_time_new),
        (Protocol::Sflow, g.sflow_listen(), g.sfacctd_pipe_size, g.sfacctd_renormalize, g.sfacctd_time_new),
    ];
    for (protocol, listen, recv_buffer, renormalize, time_new) in wanted {
        let Some((ip, port)) = listen else { continue };
        let (methods, ipv6_only, mcast_groups) = match protocol {
            Protocol::Netflow => (g.netflow_methods, g.nfacctd_ipv6_only, g.nfacctd_mcast_groups.clone()),
            Protocol::Sflow => (g.sflow_methods, g.sfacctd_ipv6_only, g.sfacctd_mcast_groups.clone()),
        };
        let cfg = CollectorConfig {
            protocol,
            ip,
            port,
            recv_buffer,
            renormalize,
            time_new,
            methods,
            ipv6_only,
            mcast_groups,
        };
        let allow_file = match protocol {
            Protocol::Netflow => &g.nfacctd_allow_file,
            Protocol::Sflow => &g.sfacctd_allow_file,
        };
        let allow = match allow_file {
            Some(path) => {
                let a = Arc::new(
                    xacct_collect::Allow::load(path).with_context(|| format!("allow file {}", path.display()))?,
                );
                allows.push(a.clone());
                Some(a)
            }
            None => None,
        };
        let templates = match (&g.nfacctd_templates_file, protocol) {
            (Some(path), Protocol::Netflow) => {
                Some(Arc::new(xacct_collect::TemplatesFile::open(path, xacct_collect::template_limits())))
            }
            _ => None,
        };
        for i in 0..g.collector_threads.max(1) {
            let mut c = Collector::open(&cfg)?;
            if let Some(t) = &templates {
                c.use_templates_file(t.clone(), i == 0);
            }
            if let Some(a) = &allow {
                c.set_allow(a.clone());
            }
            out.push(AnySource::Collect(Box::new(c)));
        }
    }
    Ok((out, allows))
}

/// Runs the daemon until a signal or (without `pcap_savefile_wait`) the end of the pcap file.
pub fn run(config: Config) -> Result<()> {
    let g = &config.global;
    if let Some(mask) = g.files_umask {
        // Before any file or socket exists: the logfile, pidfile, plugins' files.
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
    }
    if g.daemonize {
        // Before any thread exists: fork() keeps only the calling thread.
        nix::unistd::daemon(true, false).context("daemonize")?;
    }
    init_logging(&config)?;
    crate::files::set_process_name(&g.core_proc_name);
    if let Some(n) = g.proc_priority {
        // Threads inherit their creator's nice value: every thread started below gets it.
        crate::files::set_thread_priority(n).context("proc_priority")?;
    }
    tracing::info!("xacctd {} starting (core_proc_name {})", env!("CARGO_PKG_VERSION"), g.core_proc_name);
    for line in g.modes.describe() {
        tracing::info!("{line}");
    }
    for i in &config.ignored {
        tracing::info!("{}: accepted, no effect: {}", i.origin, i.why);
    }
    for n in &config.notes {
        tracing::info!("{n}");
    }
    // SQL plugins' settings (pre-processing, table layout, schema file) are checked before
    // anything starts.
    for p in config.plugins.iter().filter(|p| p.kind.is_sql()) {
        xacct_sql::plugin::check(p).map_err(|e| anyhow::anyhow!(e))?;
    }
    let _pidfile = match &g.pidfile {
        Some(p) => {
            std::fs::write(p, format!("{}\n", std::process::id()))
                .with_context(|| format!("cannot write pidfile {}", p.display()))?;
            crate::files::chown(p, g.files_uid, g.files_gid)?;
            PidFile(Some(p.clone()))
        }
        None => PidFile(None),
    };

    // Signals first, so a TERM during start-up is not lost.
    // Signals, sources and plugins ending: a few events a second at most; a sender that finds
    // it full waits for the control loop.
    let (ev_tx, ev_rx) = bounded::<Event>(256);
    {
        use signal_hook::consts::*;
        let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGUSR1, SIGUSR2, SIGHUP])
            .context("installing signal handlers")?;
        let tx = ev_tx.clone();
        std::thread::Builder::new().name("signals".into()).spawn(move || {
            for s in signals.forever() {
                if tx.send(Event::Signal(s)).is_err() {
                    break;
                }
            }
        })?;
    }

    // Sources: packet capture and collectors, as the configuration's modes say.
    let mut sources: Vec<AnySource> = Vec::new();
    let mut capture_iface = None;
    if g.captures_packets() {
        let mut announced = false;
        let (capture, iface) = loop {
            match open_sources(&config) {
                Ok(c) => break c,
                Err(e) if g.pcap_interface_wait && g.pcap_savefile.is_none() => {
                    if !announced {
                        tracing::info!("pcap_interface_wait: {e:#}; trying again every 2 s");
                        announced = true;
                    }
                    if let Ok(Event::Signal(s)) = ev_rx.recv_timeout(Duration::from_secs(2)) {
                        if s == signal_hook::consts::SIGTERM || s == signal_hook::consts::SIGINT {
                            tracing::info!("signal {s} while waiting for the interface: shutting down");
                            return Ok(());
                        }
                    }
                }
                Err(e) => return Err(e),
            }
        };
        capture_iface = iface;
        sources.extend(capture.into_iter().map(AnySource::Capture));
    }
    let (collectors, allows) = open_collectors(&config)?;
    sources.extend(collectors);
    let source_stats: Vec<Arc<SourceStats>> = sources.iter().map(|_| Arc::new(SourceStats::default())).collect();
    let source_names: Vec<String> = sources.iter().map(|s| s.describe()).collect();
    for s in &sources {
        match s {
            AnySource::Capture(c) => tracing::info!("capturing from {} (link type {:?})", c.describe(), c.link()),
            AnySource::Collect(c) => tracing::info!("listening: {}", c.describe()),
        }
    }

    // Plugins' worker-side specs.
    let plugin_stats: Vec<Arc<PluginStats>> = config.plugins.iter().map(|_| Arc::new(PluginStats::default())).collect();
    // Workers, pinned one per core.
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    // Each libpcap source thread needs a core of its own (it reads and copies every frame),
    // so by default the workers take the rest: on 2 cores one source + one worker beat one
    // source + two workers that keep preempting it (measured with perf/capacity.sh).
    let nworkers = g.workers.unwrap_or(cores.len().saturating_sub(sources.len()).max(1));
    let budgets = plugin_budgets(&config, nworkers);
    // sfprobe plugins: a queue from the workers' samplers (the taps survive map reloads).
    let mut sample_rxs: Vec<Option<crossbeam_channel::Receiver<xacct_core::record::PacketSample>>> = Vec::new();
    let taps: Vec<Option<SflowTap>> = config
        .plugins
        .iter()
        .map(|p| {
            if p.kind != PluginKind::Sfprobe {
                sample_rxs.push(None);
                return None;
            }
            let (tx, rx) = bounded(SFPROBE_QUEUE);
            sample_rxs.push(Some(rx));
            Some(SflowTap { tx, rate: g.sampling_rate.max(1) as u32, header_len: g.snaplen.min(256) as usize })
        })
        .collect();
    let specs = Arc::new(plugin_specs(&config, &plugin_stats, &budgets, &taps)?);
    for (p, b) in config.plugins.iter().zip(&budgets) {
        tracing::info!(
            "plugin {}/{}: aggregate {}; memory budget: {}",
            p.name,
            p.kind.name(),
            p.aggregate,
            b.describe()
        );
    }
    let sampling = Sampling { rate: g.sampling_rate.max(1), renormalize: g.renormalize };
    let stamp = capture_stamp(&config, capture_iface.as_deref());

    let shared_sources = Arc::new(source_stats.clone());
    let (recycle_tx, recycle_rx) = bounded(WORKER_QUEUE_BATCHES * nworkers * 2);
    let mut data_txs = Vec::new();
    let mut ctl_txs: Vec<Sender<Ctl>> = Vec::new();
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    let wants_flows = config.plugins.iter().any(|p| p.aggregate.has(xacct_core::Primitive::Flows));
    let tracker = wants_flows.then(|| crate::flows::FlowTracker::new(g.flow_lifetime, g.flow_tcp_lifetime));
    let shared = crate::pipeline::Shared::with_flows(nworkers, tracker);
    for i in 0..nworkers {
        let (dtx, drx) = bounded(WORKER_QUEUE_BATCHES);
        // At most one harvest per plugin is outstanding (each waits for its answers) and one
        // map reload: the queue never holds more.
        let (ctx, crx) = bounded(config.plugins.len() + 2);
        data_txs.push(dtx);
        ctl_txs.push(ctx);
        let mut w = Worker::with_shared(specs.clone(), shared_sources.clone(), sampling, shared.clone());
        w.set_capture_stamp(stamp);
        let core = cores.get(i % cores.len().max(1)).copied();
        let recycle = recycle_tx.clone();
        workers.push(std::thread::Builder::new().name(format!("worker{i}")).spawn(move || {
            if let Some(c) = core {
                core_affinity::set_for_current(c);
            }
            w.run(drx, crx, recycle);
        })?);
    }
    drop(recycle_tx);
    tracing::info!("{nworkers} worker(s) started");

    // Plugin threads.
    let (shutdown_tx, shutdown_rx) = bounded::<()>(0);
    let mut plugins: Vec<(String, JoinHandle<Result<(), xacct_plugins::PluginError>>)> = Vec::new();
    let named_sources: Vec<(String, Arc<SourceStats>)> =
        source_names.iter().cloned().zip(source_stats.iter().cloned()).collect();
    let peers: Vec<(String, PluginKind, Arc<PluginStats>)> =
        config.plugins.iter().zip(&plugin_stats).map(|(p, s)| (p.name.clone(), p.kind, s.clone())).collect();
    let mut sources = sources;
    for (i, p) in config.plugins.iter().enumerate() {
        // A tee plugin gets the collectors' datagrams, not the workers' records.
        let datagrams = (p.kind == PluginKind::Tee).then(|| {
            let (tx, rx) = bounded(TEE_QUEUE);
            for s in sources.iter_mut() {
                if let AnySource::Collect(c) = s {
                    c.add_tap(xacct_collect::Tap { tx: tx.clone(), stats: plugin_stats[i].clone() });
                }
            }
            rx
        });
        let ctx = PluginContext {
            config: p.clone(),
            projector: specs[i].projector.clone(),
            harvest: Box::new(ShardHarvest::new(i, &specs[i], budgets[i].clone(), ctl_txs.clone())),
            stats: plugin_stats[i].clone(),
            sources: named_sources.clone(),
            peers: peers.clone(),
            shutdown: shutdown_rx.clone(),
            tag_map: specs[i].tag_map.clone(),
            datagrams,
            samples: sample_rxs.get_mut(i).and_then(Option::take),
        };
        let kind = p.kind;
        let name = format!("{}/{}", p.name, kind.name());
        let (tx, thread_name, priority) = (ev_tx.clone(), name.clone(), p.proc_priority);
        let h = std::thread::Builder::new().name(name.clone()).spawn(move || {
            if let Some(n) = priority {
                if let Err(e) = crate::files::set_thread_priority(n) {
                    tracing::warn!("plugin {thread_name}: proc_priority {n}: {e}");
                }
            }
            let res = match kind {
                PluginKind::Memory => xacct_plugins::memory::run_memory(ctx),
                PluginKind::Print => xacct_plugins::print::run_print(ctx),
                PluginKind::Nfprobe => xacct_plugins::nfprobe::run_nfprobe(ctx),
                PluginKind::Tee => xacct_plugins::tee::run_tee(ctx),
                PluginKind::Sfprobe => xacct_plugins::sfprobe::run_sfprobe(ctx),
                PluginKind::Pgsql | PluginKind::Mysql | PluginKind::Sqlite3 => xacct_sql::plugin::run_sql(ctx),
            };
            let _ = tx.send(Event::PluginDone { name: thread_name, failed: res.is_err() });
            res
        })?;
        plugins.push((name, h));
    }
    drop(shutdown_rx);

    // Source threads.
    let stop = Arc::new(AtomicBool::new(false));
    let mut source_threads = Vec::new();
    let file_mode = sources.iter().all(|s| s.is_file());
    for (id, mut src) in sources.into_iter().enumerate() {
        let mode = if src.waits_for_workers() { SinkMode::Block } else { SinkMode::DropAndCount };
        let stats = source_stats[id].clone();
        let mut sink = BatchSink::new(data_txs.clone(), recycle_rx.clone(), mode, stats.clone());
        let stop = stop.clone();
        let tx = ev_tx.clone();
        let name = source_names[id].clone();
        let delay = if src.is_file() { Duration::from_secs(config.global.pcap_savefile_delay) } else { Duration::ZERO };
        source_threads.push(std::thread::Builder::new().name(format!("source{id}")).spawn(move || {
            if !delay.is_zero() {
                tracing::info!("{name}: pcap_savefile_delay: reading in {} s", delay.as_secs());
                let t = std::time::Instant::now();
                while t.elapsed() < delay && !stop.load(Relaxed) {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            let end = src.run(id, &mut sink, &stop, &stats);
            src.update_stats(&stats);
            drop(sink); // closes this source's share of the worker queues
                        // "finished" means every frame read has been accounted by a worker.
            while stats.processed.load(Relaxed) + stats.queue_dropped.load(Relaxed) < stats.received.load(Relaxed) {
                std::thread::sleep(Duration::from_millis(1));
            }
            stats.finished.store(true, Relaxed);
            let _ = tx.send(Event::SourceDone { name, end });
        })?);
    }
    drop(data_txs);
    drop(recycle_rx);
    drop(ev_tx);

    // Control loop.
    let mut live_sources = source_threads.len();
    let mut live_plugins = plugins.len();
    let mut failed = None;
    let mut plugin_failed = None;
    for ev in ev_rx.iter() {
        match ev {
            Event::Signal(s) if s == signal_hook::consts::SIGTERM || s == signal_hook::consts::SIGINT => {
                tracing::info!("signal {s}: flushing and shutting down");
                break;
            }
            Event::Signal(s) if s == signal_hook::consts::SIGUSR1 => log_stats(&named_sources, &peers),
            Event::Signal(s) if s == signal_hook::consts::SIGUSR2 => {
                reload_maps(&config, &plugin_stats, &budgets, &taps, &ctl_txs, &allows)
            }
            Event::PluginDone { name, failed } => {
                live_plugins -= 1;
                // The daemon fails when a failed plugin is why it stops; one it outlives is
                // logged when it happens (the plugin's error at the end).
                let stop = config.global.plugin_exit_any || live_plugins == 0;
                if failed && stop {
                    plugin_failed = Some(name.clone());
                }
                if config.global.plugin_exit_any {
                    tracing::info!("plugin {name} stopped: plugin_exit_any: flushing and shutting down");
                    break;
                }
                if live_plugins == 0 {
                    tracing::info!("plugin {name} stopped, the last one: shutting down");
                    break;
                }
                tracing::warn!("plugin {name} stopped; {live_plugins} plugin(s) go on (plugin_exit_any is false)");
            }
            Event::Signal(_) => {} // SIGHUP: log files are reopened per write (append mode)
            Event::SourceDone { name, end } => {
                live_sources -= 1;
                match end {
                    Ok(SourceEnd::EndOfFile) => tracing::info!("{name}: finished reading"),
                    Ok(SourceEnd::Truncated) => tracing::info!("{name}: finished reading (the file is truncated)"),
                    Ok(e) => tracing::info!("{name}: stopped ({e:?})"),
                    Err(e) => {
                        tracing::error!("{name}: {e}");
                        failed = Some(e);
                    }
                }
                if live_sources == 0 {
                    if failed.is_some() {
                        break;
                    }
                    if !(file_mode && config.global.pcap_savefile_wait) {
                        tracing::info!("all sources finished: flushing and shutting down");
                        break;
                    }
                    tracing::info!("pcap_savefile_wait: keeping tables until a signal arrives");
                }
            }
        }
    }

    stop.store(true, Relaxed);
    for t in source_threads {
        let _ = t.join();
    }
    drop(shutdown_tx);
    for (name, h) in plugins {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!("plugin {name}: {e}"),
            Err(_) => tracing::error!("plugin {name} panicked"),
        }
    }
    drop(ctl_txs);
    for w in workers {
        let _ = w.join();
    }
    log_stats(&named_sources, &peers);
    tracing::info!("shutdown complete");
    if let Some(e) = failed {
        bail!("capture failed: {e}");
    }
    if let Some(name) = plugin_failed {
        bail!("plugin {name} failed");
    }
    Ok(())
}

/// SIGUSR2: loads every plugin's networks_file and ports_file again and hands the workers
/// specs with the new maps, and the collectors' allow files (`maps_refresh`). A map that fails
/// to load keeps the old one.
fn reload_maps(
    config: &Config,
    stats: &[Arc<PluginStats>],
    budgets: &[Budget],
    taps: &[Option<SflowTap>],
    workers: &[Sender<Ctl>],
    allows: &[Arc<xacct_collect::Allow>],
) {
    let maps = config.global.pre_tag_map.is_some()
        || config
            .plugins
            .iter()
            .any(|p| p.networks_file.is_some() || p.ports_file.is_some() || p.pre_tag_map.is_some() || p.tee.is_some());
    if !maps && allows.is_empty() {
        tracing::info!("SIGUSR2: no maps configured");
        return;
    }
    if !config.global.maps_refresh {
        tracing::info!("SIGUSR2: maps_refresh is false: maps not reloaded");
        return;
    }
    for a in allows {
        match a.reload() {
            Ok(()) => tracing::info!("SIGUSR2: allow file {} reloaded", a.path().display()),
            Err(e) => tracing::error!("SIGUSR2: allow file not reloaded, keeping the old list: {e}"),
        }
    }
    if !maps {
        return;
    }
    // tee plugins re-read their receivers (and map) on their own thread.
    for (p, s) in config.plugins.iter().zip(stats) {
        if p.kind == PluginKind::Tee {
            s.export.tee_reload.fetch_add(1, Relaxed);
        }
    }
    match plugin_specs(config, stats, budgets, taps) {
        Ok(specs) => {
            let specs = Arc::new(specs);
            for w in workers {
                let _ = w.send(Ctl::Specs(specs.clone()));
            }
            for s in stats {
                s.maps_reloaded.fetch_add(1, Relaxed);
            }
            tracing::info!("SIGUSR2: maps reloaded");
        }
        Err(e) => {
            for s in stats {
                s.maps_reload_failed.fetch_add(1, Relaxed);
            }
            tracing::error!("SIGUSR2: maps not reloaded, keeping the old ones: {e:#}")
        }
    }
}

/// What packet capture stamps on its records: `pmacctd_time_new`, and with `pcap_ifindex` the
/// interface's index as in_iface (`pcap_direction: in`) or out_iface (`out`), as pmacctd.
fn capture_stamp(config: &Config, iface: Option<&str>) -> CaptureStamp {
    let g = &config.global;
    let index = match (g.pcap_ifindex, iface) {
        (xacct_core::config::IfIndexFrom::Sys, Some(i)) => crate::files::if_index(i),
        _ => 0,
    };
    CaptureStamp {
        time_new: g.pmacctd_time_new,
        in_iface: if g.pcap_direction == Some(Direction::In) { index } else { 0 },
        out_iface: if g.pcap_direction == Some(Direction::Out) { index } else { 0 },
    }
}

fn log_stats(sources: &[(String, Arc<SourceStats>)], plugins: &[(String, PluginKind, Arc<PluginStats>)]) {
    for (name, s) in sources {
        tracing::info!(
            "source {name}: received {} processed {} kernel_dropped {} queue_dropped {} malformed {} {:?} non_ip {} fragment_orphans {} fragments_untracked {} flows_untracked {} xsk_rx_ring_full {} xsk_fill_ring_empty {} xsk_rx_dropped {} xsk_rx_invalid_descs {}{}",
            s.received.load(Relaxed),
            s.processed.load(Relaxed),
            s.kernel_dropped.load(Relaxed),
            s.queue_dropped.load(Relaxed),
            s.malformed_total(),
            s.malformed_by_reason(),
            s.non_ip.load(Relaxed),
            s.fragment_orphans.load(Relaxed),
            s.fragments_untracked.load(Relaxed),
            s.flows_untracked.load(Relaxed),
            s.xsk_rx_ring_full.load(Relaxed),
            s.xsk_fill_ring_empty.load(Relaxed),
            s.xsk_rx_dropped.load(Relaxed),
            s.xsk_rx_invalid_descs.load(Relaxed),
            s.extra_counters().iter().map(|(k, v)| format!(" {k} {v}")).collect::<String>(),
        );
        for e in s.exporters.lock().map(|v| v.clone()).unwrap_or_default() {
            tracing::info!(
                "source {name}: {} exporter {}/{}: datagrams {} records {} malformed {:?} unknown_template_sets {} seq_gaps_forward {} seq_gaps_backward {}",
                e.protocol,
                e.exporter,
                e.domain,
                e.datagrams,
                e.records,
                e.malformed,
                e.unknown_template_sets,
                e.seq_gaps_forward,
                e.seq_gaps_backward,
            );
        }
    }
    for (name, kind, st) in plugins {
        let counters: String = st.counters(*kind).iter().map(|(k, v)| format!(" {k} {v}")).collect();
        tracing::info!("plugin {name}/{}:{counters}", kind.name());
    }
}
