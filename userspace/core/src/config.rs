//! pmacct-style configuration: `key: value`, `key[plugin]: value`, `!` comments,
//! `plugins: type[name], …`, unscoped keys as defaults for every plugin, command-line overrides.
//!
//! CONTRACT (types below are used by the daemon and plugins; parsing fills them).

use crate::aggregate::{Aggregate, Primitive};
use crate::history::History;
use crate::sqlconf::{Deferred, SqlConfig, TableTemplate, TableType};
use std::path::{Path, PathBuf};

/// Where a directive came from, for error messages ("file:line: key: …").
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Origin {
    /// Config file path, or "command line".
    pub file: String,
    /// 1-based line number (0 for the command line).
    pub line: usize,
    pub key: String,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.key)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.key)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{origin}: unknown configuration key")]
    UnknownKey { origin: Origin },
    #[error("{origin}: not supported yet in xacct ({why})")]
    NotSupportedYet { origin: Origin, why: String },
    #[error("{origin}: bad value '{value}': {why}")]
    BadValue { origin: Origin, value: String, why: String },
    #[error("{origin}: key does not apply to plugin '{plugin}' of type {kind}")]
    WrongPlugin { origin: Origin, plugin: String, kind: String },
    #[error("{origin}: no plugin named '{plugin}' is declared in 'plugins'")]
    NoSuchPlugin { origin: Origin, plugin: String },
    #[error("{file}:{line}: syntax error: {why}")]
    Syntax { file: String, line: usize, why: String },
    #[error("{path}: {why}")]
    Io { path: String, why: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    #[default]
    Formatted,
    Csv,
    Json,
}

/// `capture_method`: how packets are taken off a live interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CaptureMethod {
    /// The fastest method that works here, falling back and saying why.
    #[default]
    Auto,
    /// XDP program with in-kernel pre-aggregation (plus AF_XDP for what needs userspace).
    Xdp,
    /// AF_XDP sockets, one per RX queue, every packet to userspace.
    AfXdp,
    /// libpcap.
    Pcap,
}

/// `xdp_action`: what the XDP program does with a packet once counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XdpAction {
    /// Hand it on to the kernel stack (a host's own interface).
    #[default]
    Pass,
    /// Drop it (a mirror-port probe: nobody else wants the copy).
    Drop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginKind {
    Memory,
    Print,
    Pgsql,
    Mysql,
    Sqlite3,
}

impl PluginKind {
    pub fn name(self) -> &'static str {
        match self {
            PluginKind::Memory => "memory",
            PluginKind::Print => "print",
            PluginKind::Pgsql => "pgsql",
            PluginKind::Mysql => "mysql",
            PluginKind::Sqlite3 => "sqlite3",
        }
    }

    /// One of the SQL plugins.
    pub fn is_sql(self) -> bool {
        matches!(self, PluginKind::Pgsql | PluginKind::Mysql | PluginKind::Sqlite3)
    }
}

/// One plugin instance (`plugins: memory[in]` → name "in", kind Memory; unnamed → "default").
#[derive(Debug, Clone)]
pub struct PluginConfig {
    pub name: String,
    pub kind: PluginKind,
    /// `aggregate` (default `src_host`).
    pub aggregate: Aggregate,
    /// `aggregate_filter`, already validated with `Filter::parse`.
    pub aggregate_filter: Option<String>,
    /// `networks_file` / `ports_file` may be per plugin in pmacct.
    pub networks_file: Option<PathBuf>,
    pub ports_file: Option<PathBuf>,
    /// memory: `imt_path` (default /tmp/collect.pipe).
    pub imt_path: PathBuf,
    /// print: `print_output` (default formatted).
    pub print_output: OutputFormat,
    /// print: `print_output_file` (strftime variables); stdout when None.
    pub print_output_file: Option<String>,
    /// print: `print_output_separator` (default ",").
    pub print_output_separator: String,
    /// print: `print_refresh_time` seconds (default 60).
    pub print_refresh_time: u64,
    /// print: `print_history` and `print_history_roundoff`.
    pub print_history: Option<History>,
    /// SQL plugins: every `sql_*` key.
    pub sql: Option<Box<crate::sqlconf::SqlConfig>>,
    /// Where this plugin was declared (for messages).
    pub origin: Origin,
}

impl PluginConfig {
    /// The plugin's time bins: `print_history` or `sql_history`.
    pub fn history(&self) -> Option<History> {
        self.print_history.or_else(|| self.sql.as_ref().and_then(|s| s.history))
    }
}

/// Daemon-wide settings.
#[derive(Debug, Clone)]
pub struct GlobalConfig {
    /// `interface` / `pcap_interface` (`-i`).
    pub interface: Option<String>,
    /// `pcap_savefile` (`-I`).
    pub pcap_savefile: Option<PathBuf>,
    pub pcap_savefile_wait: bool,
    pub pcap_filter: Option<String>,
    /// `snaplen` (`-L`), default 128 like pmacctd (CONFIG-KEYS).
    pub snaplen: u32,
    /// `promisc`, default true.
    pub promisc: bool,
    /// `daemonize` (`-D`).
    pub daemonize: bool,
    /// `pidfile` (`-F`).
    pub pidfile: Option<PathBuf>,
    pub logfile: Option<PathBuf>,
    /// `sampling_rate` (1 in N), 1 = no sampling.
    pub sampling_rate: u32,
    /// `pmacctd_renormalize` (`-R`).
    pub renormalize: bool,
    /// Worker threads (new key `workers`, default: one per core).
    pub workers: Option<usize>,
    /// `pmacctd_as: file`. pmacctd fills src_as/dst_as from the networks_file only when this
    /// is set; otherwise ASes stay 0 even with a networks_file (checked on pmacctd 1.7.7).
    pub as_from_networks_file: bool,
    /// `debug`: log at debug level.
    pub debug: bool,
    /// `pmacctd_flow_lifetime`: seconds a non-TCP flow may stay idle before a packet starts a
    /// new one (the `flows` counter), default 60.
    pub flow_lifetime: u64,
    /// `pmacctd_flow_tcp_lifetime`: the same for TCP, default 60.
    pub flow_tcp_lifetime: u64,
    /// `capture_method` (new key).
    pub capture_method: CaptureMethod,
    /// `xdp_action` (new key).
    pub xdp_action: XdpAction,
    /// `xdp_flow_entries` (new key): capacity of each kernel flow map; None = the loader's
    /// default. Flows beyond it go to userspace over AF_XDP, counted.
    pub xdp_flow_entries: Option<u32>,
    /// `xdp_classify_packets` (new key): the XDP program hands the first this many packets of
    /// every stream (both directions) to userspace over AF_XDP, so that classifiers see their
    /// payload, and counts the rest in the kernel; 0 (the default) = off.
    pub xdp_classify_packets: u32,
    /// `xdp_harvest_interval` (new key): seconds (fractions allowed, 0.05 to 60) between two
    /// harvests of the kernel flow maps, default 0.5. Longer intervals cost less CPU per packet
    /// (each flow is read once per harvest, however many packets it had) but need flow maps
    /// big enough for the flows of one interval and delay what the memory table shows.
    pub xdp_harvest_interval: std::time::Duration,
    /// NetFlow/IPFIX collector (`nfacctd_port`, default 2100; `nfacctd_ip`, default all
    /// addresses). It runs when either key is set.
    pub nfacctd_port: Option<u16>,
    pub nfacctd_ip: Option<std::net::IpAddr>,
    /// sFlow collector (`sfacctd_port`, default 6343; `sfacctd_ip`).
    pub sfacctd_port: Option<u16>,
    pub sfacctd_ip: Option<std::net::IpAddr>,
    /// `nfacctd_pipe_size` / `sfacctd_pipe_size`: the collector socket's receive buffer in
    /// bytes (SO_RCVBUF); None = the kernel default.
    pub nfacctd_pipe_size: Option<usize>,
    pub sfacctd_pipe_size: Option<usize>,
    /// `nfacctd_renormalize` / `sfacctd_renormalize`: multiply collected counters by the
    /// exporter's sampling rate.
    pub nfacctd_renormalize: bool,
    pub sfacctd_renormalize: bool,
    /// `nfacctd_time_new` / `sfacctd_time_new`: time collected records by their arrival.
    pub nfacctd_time_new: bool,
    pub sfacctd_time_new: bool,
    /// `collector_threads` (new key): SO_REUSEPORT sockets, one thread each, per collector.
    pub collector_threads: usize,
    /// `nfacctd_templates_file`: v9/IPFIX templates kept across restarts (a JSON format of
    /// xacct's own, see xacct-collect's `templates_file`).
    pub nfacctd_templates_file: Option<PathBuf>,
}

impl GlobalConfig {
    /// Where the NetFlow/IPFIX collector listens, when one is configured.
    pub fn netflow_listen(&self) -> Option<(Option<std::net::IpAddr>, u16)> {
        (self.nfacctd_port.is_some() || self.nfacctd_ip.is_some())
            .then(|| (self.nfacctd_ip, self.nfacctd_port.unwrap_or(2100)))
    }

    /// Where the sFlow collector listens, when one is configured.
    pub fn sflow_listen(&self) -> Option<(Option<std::net::IpAddr>, u16)> {
        (self.sfacctd_port.is_some() || self.sfacctd_ip.is_some())
            .then(|| (self.sfacctd_ip, self.sfacctd_port.unwrap_or(6343)))
    }

    /// Whether packets are to be captured: an interface or savefile is named, or no collector
    /// is configured (then the daemon falls back to libpcap's default device, as pmacctd).
    pub fn captures_packets(&self) -> bool {
        self.interface.is_some()
            || self.pcap_savefile.is_some()
            || (self.netflow_listen().is_none() && self.sflow_listen().is_none())
    }
}

impl Default for GlobalConfig {
    /// pmacctd's defaults.
    fn default() -> Self {
        GlobalConfig {
            interface: None,
            pcap_savefile: None,
            pcap_savefile_wait: false,
            pcap_filter: None,
            snaplen: 128,
            promisc: true,
            daemonize: false,
            pidfile: None,
            logfile: None,
            sampling_rate: 1,
            renormalize: false,
            workers: None,
            debug: false,
            flow_lifetime: 60,
            flow_tcp_lifetime: 60,
            capture_method: CaptureMethod::Auto,
            xdp_action: XdpAction::Pass,
            xdp_flow_entries: None,
            xdp_classify_packets: 0,
            xdp_harvest_interval: std::time::Duration::from_millis(500),
            as_from_networks_file: false,
            nfacctd_port: None,
            nfacctd_ip: None,
            sfacctd_port: None,
            sfacctd_ip: None,
            nfacctd_pipe_size: None,
            sfacctd_pipe_size: None,
            nfacctd_renormalize: false,
            sfacctd_renormalize: false,
            nfacctd_time_new: false,
            sfacctd_time_new: false,
            collector_threads: 1,
            nfacctd_templates_file: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub global: GlobalConfig,
    pub plugins: Vec<PluginConfig>,
    /// Keys accepted for compatibility that do nothing in xacct's design (logged once at start).
    pub ignored: Vec<Origin>,
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/// Which plugins a key can be set on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Applies {
    /// Daemon-wide; cannot be scoped to a plugin.
    Global,
    /// Any plugin type.
    AnyPlugin,
    Only(PluginKind),
    /// The three SQL plugins.
    Sql,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Implemented(Applies),
    /// Accepted and recorded in `Config::ignored`.
    Ignored,
    /// A pmacct key that a later xacct issue implements.
    Later,
}

/// Keys this parser implements.
fn implemented(key: &str) -> Option<Applies> {
    use Applies::*;
    Some(match key {
        "interface"
        | "pcap_interface"
        | "pcap_savefile"
        | "pcap_savefile_wait"
        | "pcap_filter"
        | "snaplen"
        | "promisc"
        | "plugins"
        | "daemonize"
        | "pidfile"
        | "logfile"
        | "sampling_rate"
        | "pmacctd_renormalize"
        | "pmacctd_net"
        | "pmacctd_as"
        | "workers"
        | "debug"
        | "pmacctd_flow_lifetime"
        | "pmacctd_flow_tcp_lifetime"
        | "capture_method"
        | "xdp_action"
        | "xdp_flow_entries"
        | "xdp_classify_packets"
        | "xdp_harvest_interval"
        | "nfacctd_port"
        | "nfacctd_ip"
        | "sfacctd_port"
        | "sfacctd_ip"
        | "nfacctd_pipe_size"
        | "sfacctd_pipe_size"
        | "nfacctd_renormalize"
        | "sfacctd_renormalize"
        | "nfacctd_time_new"
        | "sfacctd_time_new"
        | "nfacctd_templates_file"
        | "collector_threads" => Global,
        "aggregate" | "aggregate_filter" | "networks_file" | "ports_file" => AnyPlugin,
        "imt_path" => Only(PluginKind::Memory),
        "print_output"
        | "print_output_file"
        | "print_output_separator"
        | "print_refresh_time"
        | "print_history"
        | "print_history_roundoff" => Only(PluginKind::Print),
        "sql_host"
        | "sql_port"
        | "sql_user"
        | "sql_passwd"
        | "sql_db"
        | "sql_table"
        | "sql_table_version"
        | "sql_table_type"
        | "sql_table_schema"
        | "sql_table_autocreate"
        | "sql_refresh_time"
        | "sql_history"
        | "sql_history_roundoff"
        | "sql_history_since_epoch"
        | "timestamps_since_epoch"
        | "sql_startup_delay"
        | "sql_cache_entries"
        | "sql_dont_try_update"
        | "sql_use_copy"
        | "sql_multi_values"
        | "sql_max_writers"
        | "sql_preprocess"
        | "sql_preprocess_type"
        | "sql_trigger_exec"
        | "sql_trigger_time"
        | "sql_recovery_backup_host"
        | "sql_optimize_clauses"
        | "sql_num_protos"
        | "sql_spool_dir" => Sql,
        _ => return None,
    })
}

/// pmacct buffer/tuning keys: xacct sizes its own queues and tables, so these mean nothing.
const IGNORED: &[&str] = &[
    "imt_buckets",
    "imt_mem_pools_number",
    "imt_mem_pools_size",
    "maps_entries",
    "maps_index",
    "maps_row_len",
    "networks_cache_entries",
    "pcap_buffer_size",
    "plugin_buffer_size",
    "plugin_pipe_backlog",
    "plugin_pipe_size",
    "plugin_pipe_zmq",
    "plugin_pipe_zmq_hwm",
    "plugin_pipe_zmq_profile",
    "plugin_pipe_zmq_retry",
    "pmacctd_conntrack_buffer_size",
    "pmacctd_flow_buffer_buckets",
    "pmacctd_flow_buffer_size",
    "pmacctd_frag_buffer_size",
    "pmacctd_pipe_size",
    "print_cache_entries",
    "print_max_writers",
    "thread_stack",
];

/// Families of pmacct keys (CONFIG-KEYS of pmacct 1.7.7 plus older names) that later xacct
/// issues implement or that belong to daemons/plugins xacct does not have yet.
const LATER_PREFIXES: &[&str] = &[
    "sql_",
    "nfacctd_",
    "sfacctd_",
    "nfprobe_",
    "sfprobe_",
    "tee_",
    "amqp_",
    "kafka_",
    "bgp_",
    "bmp_",
    "telemetry_",
    "isis_",
    "rpki_",
    "uacctd_",
    "classifier_",
    "avro_",
    "redis_",
    "geoip",
    "tmp_",
    "mongo_",
];

/// The remaining pmacct keys (CONFIG-KEYS of pmacct 1.7.7, plus a few older or xacct names).
const LATER: &[&str] = &[
    "aggregate_primitives",
    "classifiers",
    "cluster_id",
    "cluster_name",
    "core_proc_name",
    "debug_internal_msg",
    "dtls_path",
    "files_gid",
    "files_uid",
    "files_umask",
    "flow_to_rd_map",
    "maps_refresh",
    "networks_file_filter",
    "networks_file_no_lpm",
    "networks_mask",
    "networks_no_mask_if_zero",
    "pcap_arista_trailer_flag_value",
    "pcap_arista_trailer_offset",
    "pcap_direction",
    "pcap_ifindex",
    "pcap_interface_wait",
    "pcap_interfaces_map",
    "pcap_protocol",
    "pcap_savefile_delay",
    "pcap_savefile_replay",
    "plugin_exit_any",
    "pmacctd_ext_sampling_rate",
    "pmacctd_force_frag_handling",
    "pmacctd_nonroot",
    "pmacctd_stitching",
    "pmacctd_time_new",
    "post_tag",
    "post_tag2",
    "pre_tag2_filter",
    "pre_tag_filter",
    "pre_tag_label_filter",
    "pre_tag_map",
    "print_history_offset",
    "print_latest_file",
    "print_markers",
    "print_num_protos",
    "print_output_custom_cfg_file",
    "print_output_custom_lib",
    "print_output_file_append",
    "print_output_lock_file",
    "print_preprocess",
    "print_preprocess_type",
    "print_startup_delay",
    "print_trigger_exec",
    "print_write_empty_file",
    "proc_priority",
    "propagate_signals",
    "refresh_maps",
    "sampling_map",
    "syslog",
    "timestamps_rfc3339",
    "timestamps_secs",
    "timestamps_utc",
    "tunnel_0",
    "use_ip_next_hop",
];

fn classify(key: &str) -> Option<Class> {
    if let Some(a) = implemented(key) {
        Some(Class::Implemented(a))
    } else if IGNORED.contains(&key) {
        Some(Class::Ignored)
    } else if LATER.contains(&key) || LATER_PREFIXES.iter().any(|p| key.starts_with(p)) {
        Some(Class::Later)
    } else {
        None
    }
}

/// Plugin types pmacct has and xacct will have.
const LATER_PLUGINS: &[&str] = &["nfprobe", "sfprobe", "tee", "kafka", "amqp", "mongodb"];

/// One `key[scope]: value` line (or command-line override).
#[derive(Debug, Clone)]
struct Directive {
    /// Lower-case key without scope.
    key: String,
    scope: Option<String>,
    value: String,
    origin: Origin,
}

/// Per-plugin state that needs more than one key to resolve.
#[derive(Debug, Default)]
struct Pending {
    aggregate: Option<Origin>,
    networks_file: Option<Origin>,
    ports_file: Option<Origin>,
    history: Option<(String, Origin)>,
    roundoff: Option<(String, Origin)>,
    sql_history: Option<(String, Origin)>,
    sql_roundoff: Option<(String, Origin)>,
    sql_trigger_time: Option<(String, Origin)>,
    sql_use_copy: Option<Origin>,
    sql_multi_values: Option<Origin>,
    sql_table: Option<Origin>,
}

fn bad(d: &Directive, why: impl Into<String>) -> ConfigError {
    ConfigError::BadValue { origin: d.origin.clone(), value: d.value.clone(), why: why.into() }
}

fn not_yet(origin: &Origin, why: impl Into<String>) -> ConfigError {
    ConfigError::NotSupportedYet { origin: origin.clone(), why: why.into() }
}

fn parse_bool(d: &Directive) -> Result<bool, ConfigError> {
    match d.value.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Ok(true),
        "false" | "no" | "0" => Ok(false),
        _ => Err(bad(d, "expected true or false")),
    }
}

/// A positive integer no larger than `max`.
fn parse_count<T: std::str::FromStr + PartialOrd + Default + std::fmt::Display>(
    d: &Directive,
    max: T,
) -> Result<T, ConfigError> {
    match d.value.parse::<T>() {
        Ok(n) if n > T::default() && n <= max => Ok(n),
        _ => Err(bad(d, format!("expected a whole number from 1 to {max}"))),
    }
}

fn parse_ip(d: &Directive) -> Result<std::net::IpAddr, ConfigError> {
    d.value.parse().map_err(|_| bad(d, "expected an IPv4 or IPv6 address"))
}

fn parse_filter(d: &Directive) -> Result<String, ConfigError> {
    crate::filter::Filter::parse(&d.value).map_err(|e| bad(d, e.to_string()))?;
    Ok(d.value.clone())
}

fn parse_aggregate(d: &Directive) -> Result<Aggregate, ConfigError> {
    Aggregate::parse(&d.value).map_err(|e| match e {
        crate::aggregate::AggregateError::NotSupported(_) => not_yet(&d.origin, e.to_string()),
        _ => bad(d, e.to_string()),
    })
}

fn default_aggregate(origin: &Origin) -> Result<Aggregate, ConfigError> {
    Aggregate::parse("src_host").map_err(|e| ConfigError::BadValue {
        origin: origin.clone(),
        value: "src_host".into(),
        why: e.to_string(),
    })
}

/// Splits one config line; `Ok(None)` for blank and comment lines.
fn parse_line(raw: &str, file: &str, line: usize) -> Result<Option<Directive>, ConfigError> {
    let l = raw.trim();
    if l.is_empty() || l.starts_with('!') {
        return Ok(None);
    }
    let syntax = |why: String| ConfigError::Syntax { file: file.to_string(), line, why };
    // The first ':' separates key and value: values (IPv6 addresses, filters) may hold more.
    let (k, v) = l.split_once(':').ok_or_else(|| syntax(format!("expected 'key: value', got '{l}'")))?;
    let k = k.trim();
    let (key, scope) = match k.split_once('[') {
        Some((key, rest)) => {
            let name = rest
                .strip_suffix(']')
                .map(str::trim)
                .filter(|n| !n.is_empty() && !n.contains(['[', ']']))
                .ok_or_else(|| syntax(format!("bad plugin scope in '{k}': expected key[name]")))?;
            (key.trim(), Some(name.to_string()))
        }
        None => (k, None),
    };
    if key.is_empty() || key.contains(|c: char| c.is_whitespace() || c == ']') {
        return Err(syntax(format!("bad key '{k}'")));
    }
    Ok(Some(Directive {
        key: key.to_ascii_lowercase(),
        scope,
        value: v.trim().to_string(),
        origin: Origin { file: file.to_string(), line, key: k.to_string() },
    }))
}

/// `memory[a], print[b], memory` → (name, kind); unnamed → "default".
fn parse_plugins(d: &Directive) -> Result<Vec<(String, PluginKind)>, ConfigError> {
    let mut out: Vec<(String, PluginKind)> = Vec::new();
    for item in d.value.split(',').map(str::trim) {
        if item.is_empty() {
            return Err(bad(d, "empty plugin in the list"));
        }
        let (kind, name) = match item.split_once('[') {
            Some((kind, rest)) => {
                let name = rest
                    .strip_suffix(']')
                    .map(str::trim)
                    .filter(|n| !n.is_empty() && !n.contains(['[', ']']))
                    .ok_or_else(|| bad(d, format!("'{item}' is not type[name]")))?;
                (kind.trim().to_ascii_lowercase(), name.to_string())
            }
            None => (item.to_ascii_lowercase(), "default".to_string()),
        };
        let kind = match kind.as_str() {
            "memory" => PluginKind::Memory,
            "print" => PluginKind::Print,
            "pgsql" => PluginKind::Pgsql,
            "mysql" => PluginKind::Mysql,
            "sqlite3" => PluginKind::Sqlite3,
            k if LATER_PLUGINS.contains(&k) => return Err(not_yet(&d.origin, format!("plugin type '{k}'"))),
            k => return Err(bad(d, format!("unknown plugin type '{k}'"))),
        };
        if out.iter().any(|(n, _)| *n == name) {
            return Err(bad(d, format!("plugin name '{name}' is declared twice")));
        }
        out.push((name, kind));
    }
    Ok(out)
}

fn applies_to(a: Applies, kind: PluginKind) -> bool {
    match a {
        Applies::Global => false,
        Applies::AnyPlugin => true,
        Applies::Only(k) => k == kind,
        Applies::Sql => kind.is_sql(),
    }
}

fn apply_global(g: &mut GlobalConfig, d: &Directive) -> Result<(), ConfigError> {
    match d.key.as_str() {
        "interface" | "pcap_interface" => g.interface = Some(d.value.clone()),
        "pcap_savefile" => g.pcap_savefile = Some(PathBuf::from(&d.value)),
        "pcap_savefile_wait" => g.pcap_savefile_wait = parse_bool(d)?,
        "pcap_filter" => g.pcap_filter = Some(parse_filter(d)?),
        // libpcap's own ceiling (MAXIMUM_SNAPLEN).
        "snaplen" => g.snaplen = parse_count(d, 262_144u32)?,
        "promisc" => g.promisc = parse_bool(d)?,
        "daemonize" => g.daemonize = parse_bool(d)?,
        "pidfile" => g.pidfile = Some(PathBuf::from(&d.value)),
        "logfile" => g.logfile = Some(PathBuf::from(&d.value)),
        "sampling_rate" => g.sampling_rate = parse_count(d, u32::MAX)?,
        "pmacctd_renormalize" => g.renormalize = parse_bool(d)?,
        "workers" => g.workers = Some(parse_count(d, 4096usize)?),
        "debug" => g.debug = parse_bool(d)?,
        "capture_method" => {
            g.capture_method = match d.value.to_ascii_lowercase().as_str() {
                "auto" => CaptureMethod::Auto,
                "xdp" => CaptureMethod::Xdp,
                "afxdp" => CaptureMethod::AfXdp,
                "pcap" => CaptureMethod::Pcap,
                _ => return Err(bad(d, "expected auto, xdp, afxdp or pcap")),
            }
        }
        "xdp_flow_entries" => g.xdp_flow_entries = Some(parse_count(d, 1u32 << 26)?),
        "xdp_classify_packets" => {
            g.xdp_classify_packets = match d.value.parse::<u32>() {
                Ok(n) if n <= 1000 => n,
                _ => return Err(bad(d, "expected a whole number of packets from 0 to 1000")),
            }
        }
        "xdp_harvest_interval" => {
            g.xdp_harvest_interval = match d.value.parse::<f64>() {
                Ok(s) if (0.05..=60.0).contains(&s) => std::time::Duration::from_secs_f64(s),
                _ => return Err(bad(d, "expected seconds from 0.05 to 60 (e.g. 0.5)")),
            }
        }
        "xdp_action" => {
            g.xdp_action = match d.value.to_ascii_lowercase().as_str() {
                "pass" => XdpAction::Pass,
                "drop" => XdpAction::Drop,
                _ => return Err(bad(d, "expected drop or pass")),
            }
        }
        "nfacctd_port" => g.nfacctd_port = Some(parse_count(d, u16::MAX)?),
        "sfacctd_port" => g.sfacctd_port = Some(parse_count(d, u16::MAX)?),
        "nfacctd_ip" => g.nfacctd_ip = Some(parse_ip(d)?),
        "sfacctd_ip" => g.sfacctd_ip = Some(parse_ip(d)?),
        // The kernel caps SO_RCVBUF at net.core.rmem_max (or 2 GiB with privileges).
        "nfacctd_pipe_size" => g.nfacctd_pipe_size = Some(parse_count(d, i32::MAX as usize)?),
        "sfacctd_pipe_size" => g.sfacctd_pipe_size = Some(parse_count(d, i32::MAX as usize)?),
        "nfacctd_renormalize" => g.nfacctd_renormalize = parse_bool(d)?,
        "sfacctd_renormalize" => g.sfacctd_renormalize = parse_bool(d)?,
        "nfacctd_time_new" => g.nfacctd_time_new = parse_bool(d)?,
        "sfacctd_time_new" => g.sfacctd_time_new = parse_bool(d)?,
        "collector_threads" => g.collector_threads = parse_count(d, 1024usize)?,
        "nfacctd_templates_file" => g.nfacctd_templates_file = Some(PathBuf::from(&d.value)),
        "pmacctd_flow_lifetime" => g.flow_lifetime = parse_count(d, u32::MAX as u64)?,
        "pmacctd_flow_tcp_lifetime" => g.flow_tcp_lifetime = parse_count(d, u32::MAX as u64)?,
        "pmacctd_net" | "pmacctd_as" => {
            let v = d.value.to_ascii_lowercase();
            match v.as_str() {
                "file" => {
                    if d.key == "pmacctd_as" {
                        g.as_from_networks_file = true;
                    }
                }
                "mask" | "igp" | "bgp" | "bmp" | "longest" | "netflow" | "sflow" => {
                    return Err(not_yet(&d.origin, format!("'{v}' (only 'file' is supported)")))
                }
                _ => return Err(bad(d, "expected file")),
            }
        }
        // `plugins` is read before anything else.
        _ => {}
    }
    Ok(())
}

fn apply_plugin(p: &mut PluginConfig, pend: &mut Pending, d: &Directive) -> Result<(), ConfigError> {
    match d.key.as_str() {
        "aggregate" => {
            p.aggregate = parse_aggregate(d)?;
            pend.aggregate = Some(d.origin.clone());
        }
        "aggregate_filter" => p.aggregate_filter = Some(parse_filter(d)?),
        "networks_file" => {
            p.networks_file = Some(PathBuf::from(&d.value));
            pend.networks_file = Some(d.origin.clone());
        }
        "ports_file" => {
            p.ports_file = Some(PathBuf::from(&d.value));
            pend.ports_file = Some(d.origin.clone());
        }
        "imt_path" => p.imt_path = PathBuf::from(&d.value),
        "print_output" => {
            p.print_output = match d.value.to_ascii_lowercase().as_str() {
                "formatted" => OutputFormat::Formatted,
                "csv" => OutputFormat::Csv,
                "json" => OutputFormat::Json,
                v @ ("event_formatted" | "event_csv" | "avro" | "avro_json" | "custom") => {
                    return Err(not_yet(&d.origin, format!("print_output '{v}'")))
                }
                _ => return Err(bad(d, "expected formatted, csv or json")),
            }
        }
        "print_output_file" => p.print_output_file = Some(d.value.clone()),
        "print_output_separator" => {
            // Values are trimmed, so tab and space are spelled \t and \s, as in pmacct.
            p.print_output_separator = match d.value.as_str() {
                "\\t" => "\t".to_string(),
                "\\s" => " ".to_string(),
                v if v.chars().count() == 1 => v.to_string(),
                _ => return Err(bad(d, "expected one character, \\t or \\s")),
            }
        }
        "print_refresh_time" => p.print_refresh_time = parse_count(d, u64::from(u32::MAX))?,
        "print_history" => pend.history = Some((d.value.clone(), d.origin.clone())),
        "print_history_roundoff" => pend.roundoff = Some((d.value.clone(), d.origin.clone())),
        k if k.starts_with("sql_") || k == "timestamps_since_epoch" => {
            let kind = p.kind;
            let s = p.sql.get_or_insert_with(|| Box::new(SqlConfig::new(&p.name, kind == PluginKind::Sqlite3)));
            apply_sql(s, pend, d)?;
        }
        _ => {}
    }
    Ok(())
}

fn apply_sql(s: &mut SqlConfig, pend: &mut Pending, d: &Directive) -> Result<(), ConfigError> {
    let v = d.value.as_str();
    match d.key.as_str() {
        "sql_host" => s.host = v.to_string(),
        "sql_port" => s.port = Some(parse_count(d, u16::MAX)?),
        "sql_user" => s.user = v.to_string(),
        "sql_passwd" => s.passwd = v.to_string(),
        "sql_db" => s.db = v.to_string(),
        "sql_table" => {
            s.table = Some(TableTemplate::parse(v).map_err(|e| bad(d, e))?);
            pend.sql_table = Some(d.origin.clone());
        }
        "sql_table_version" => s.table_version = parse_count(d, 9u8)?,
        "sql_table_type" => {
            s.table_type = match v.to_ascii_lowercase().as_str() {
                "original" => TableType::Original,
                "bgp" => return Err(not_yet(&d.origin, "sql_table_type 'bgp' (no BGP primitives yet)")),
                _ => return Err(bad(d, "expected original or bgp")),
            }
        }
        "sql_table_schema" => {
            let text = std::fs::read_to_string(v).map_err(|e| bad(d, format!("cannot read the schema file: {e}")))?;
            if !text.to_ascii_lowercase().contains("create table") {
                return Err(bad(d, "the schema file holds no CREATE TABLE statement"));
            }
            s.table_schema = Some((PathBuf::from(v), text));
        }
        "sql_table_autocreate" => s.table_autocreate = parse_bool(d)?,
        "sql_refresh_time" => s.refresh_time = parse_count(d, u64::from(u32::MAX))?,
        "sql_history" => pend.sql_history = Some((v.to_string(), d.origin.clone())),
        "sql_history_roundoff" => pend.sql_roundoff = Some((v.to_string(), d.origin.clone())),
        "sql_history_since_epoch" | "timestamps_since_epoch" => s.since_epoch = parse_bool(d)?,
        "sql_startup_delay" => {
            s.startup_delay = v
                .parse()
                .ok()
                .filter(|n| *n <= u64::from(u32::MAX))
                .ok_or_else(|| bad(d, "expected a number of seconds"))?
        }
        "sql_cache_entries" => s.cache_entries = parse_count(d, 1usize << 32)?,
        "sql_dont_try_update" => s.dont_try_update = parse_bool(d)?,
        "sql_use_copy" => {
            s.use_copy = parse_bool(d)?;
            pend.sql_use_copy = Some(d.origin.clone());
        }
        "sql_multi_values" => {
            // pmacct: the size in bytes of the multi-row INSERT buffer; 0 turns it off.
            s.multi_values = v
                .parse()
                .ok()
                .filter(|n| *n <= 1usize << 30)
                .ok_or_else(|| bad(d, "expected a buffer size in bytes (0 = off)"))?;
            pend.sql_multi_values = Some(d.origin.clone());
        }
        "sql_max_writers" => s.max_writers = parse_count(d, 1024u32)?,
        "sql_preprocess" => s.preprocess = Some(Deferred { value: v.to_string(), origin: d.origin.clone() }),
        "sql_preprocess_type" => {
            s.preprocess_all = match v.to_ascii_lowercase().as_str() {
                "any" => false,
                "all" => true,
                _ => return Err(bad(d, "expected any or all")),
            }
        }
        "sql_trigger_exec" => s.trigger_exec = Some(PathBuf::from(v)),
        "sql_trigger_time" => pend.sql_trigger_time = Some((v.to_string(), d.origin.clone())),
        "sql_recovery_backup_host" => s.recovery_backup_host = Some(v.to_string()),
        "sql_optimize_clauses" => s.optimize_clauses = parse_bool(d)?,
        "sql_num_protos" => s.num_protos = parse_bool(d)?,
        "sql_spool_dir" => s.spool_dir = PathBuf::from(v),
        _ => {}
    }
    Ok(())
}

fn new_plugin(name: &str, kind: PluginKind, origin: &Origin) -> Result<PluginConfig, ConfigError> {
    Ok(PluginConfig {
        name: name.to_string(),
        kind,
        aggregate: default_aggregate(origin)?,
        aggregate_filter: None,
        networks_file: None,
        ports_file: None,
        imt_path: PathBuf::from("/tmp/collect.pipe"),
        print_output: OutputFormat::Formatted,
        print_output_file: None,
        print_output_separator: ",".to_string(),
        print_refresh_time: 60,
        print_history: None,
        sql: kind.is_sql().then(|| Box::new(SqlConfig::new(name, kind == PluginKind::Sqlite3))),
        origin: origin.clone(),
    })
}

/// Cross-key checks and map loading once every key of a plugin is known.
fn finish_plugin(
    p: &mut PluginConfig,
    pend: Pending,
    loaded: &mut Vec<PathBuf>,
    ignored: &mut Vec<Origin>,
) -> Result<(), ConfigError> {
    let bad_at = |origin: &Origin, value: &str, why: String| ConfigError::BadValue {
        origin: origin.clone(),
        value: value.to_string(),
        why,
    };
    match (&pend.history, &pend.roundoff) {
        (Some((h, ho)), r) => {
            if let Some((rv, ro)) = r {
                // Blame the roundoff line for a roundoff that is wrong on its own.
                History::parse("1h", Some(rv)).map_err(|e| bad_at(ro, rv, e))?;
            }
            p.print_history =
                Some(History::parse(h, r.as_ref().map(|(v, _)| v.as_str())).map_err(|e| bad_at(ho, h, e))?);
        }
        (None, Some((rv, ro))) => {
            History::parse("1h", Some(rv)).map_err(|e| bad_at(ro, rv, e))?;
            // pmacct's print plugin also aligns its refresh to the roundoff; xacct does not.
            ignored.push(ro.clone());
        }
        (None, None) => {}
    }
    if let Some(s) = p.sql.as_deref_mut() {
        finish_sql(s, &pend, &p.aggregate, &p.origin)?;
    }
    if let (Some(path), Some(o)) = (&p.networks_file, &pend.networks_file) {
        if !loaded.contains(path) {
            crate::maps::Networks::load(path).map_err(|e| bad_at(o, &path.display().to_string(), e.to_string()))?;
            loaded.push(path.clone());
        }
    }
    if let (Some(path), Some(o)) = (&p.ports_file, &pend.ports_file) {
        if !loaded.contains(path) {
            crate::maps::Ports::load(path).map_err(|e| bad_at(o, &path.display().to_string(), e.to_string()))?;
            loaded.push(path.clone());
        }
    }
    // pmacctd refuses to start in this case too.
    if p.aggregate.needs_nets() && p.networks_file.is_none() {
        let o = pend.aggregate.unwrap_or_else(|| p.origin.clone());
        return Err(bad_at(&o, &p.aggregate.to_string(), "net, mask and AS primitives need a networks_file".into()));
    }
    Ok(())
}

/// Cross-key checks of one SQL plugin.
fn finish_sql(s: &mut SqlConfig, pend: &Pending, agg: &Aggregate, origin: &Origin) -> Result<(), ConfigError> {
    let bad_at = |origin: &Origin, value: &str, why: String| ConfigError::BadValue {
        origin: origin.clone(),
        value: value.to_string(),
        why,
    };
    if let Some((rv, ro)) = &pend.sql_roundoff {
        History::parse("1h", Some(rv)).map_err(|e| bad_at(ro, rv, e))?;
    }
    if let Some((h, ho)) = &pend.sql_history {
        s.history =
            Some(History::parse(h, pend.sql_roundoff.as_ref().map(|(v, _)| v.as_str())).map_err(|e| bad_at(ho, h, e))?);
        s.history_text = h.clone();
    }
    if let Some((t, to)) = &pend.sql_trigger_time {
        History::parse(t, None).map_err(|e| bad_at(to, t, e))?;
        s.trigger_time = Some(t.clone());
    }
    if s.use_copy && !s.dont_try_update {
        // pmacct quietly turns COPY off in this case; a silent surprise is worse than an error.
        let o = pend.sql_use_copy.clone().unwrap_or_else(|| origin.clone());
        return Err(bad_at(
            &o,
            "true",
            "sql_use_copy needs sql_dont_try_update: true (COPY cannot update rows)".into(),
        ));
    }
    if let Some(t) = &s.table {
        let o = pend.sql_table.clone().unwrap_or_else(|| origin.clone());
        if t.uses_time() && s.history.is_none() {
            tracing::debug!("{o}: time variables without sql_history expand with the write time");
        }
        if t.uses_tags() && !(agg.has(Primitive::Tag) || agg.has(Primitive::Tag2)) {
            return Err(bad_at(
                &o,
                &t.to_string(),
                "$tag/$tag2 in sql_table need tag/tag2 in the aggregate (they would always be 0)".into(),
            ));
        }
    }
    Ok(())
}

impl Config {
    /// Reads a pmacct-style configuration file; `overrides` come from command-line flags.
    pub fn load(path: &Path, overrides: &[(String, String)]) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::Io { path: path.display().to_string(), why: e.to_string() })?;
        Config::parse_str(&text, &path.display().to_string(), overrides)
    }

    /// A daemon started with flags only (no `-f`).
    pub fn from_overrides(overrides: &[(String, String)]) -> Result<Config, ConfigError> {
        Config::parse_str("", "command line", overrides)
    }

    /// Parses configuration text. `file_name` is used in messages; `overrides` are
    /// `(key, value)` pairs from command-line flags, which beat the file and apply unscoped.
    ///
    /// Precedence for a plugin key: override > `key[plugin]` > `key` > default, whatever the
    /// order of the lines; among equals, the later line wins.
    pub fn parse_str(text: &str, file_name: &str, overrides: &[(String, String)]) -> Result<Config, ConfigError> {
        let mut file = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            if let Some(d) = parse_line(raw, file_name, i + 1)? {
                file.push(d);
            }
        }
        let cli: Vec<Directive> = overrides
            .iter()
            .map(|(k, v)| Directive {
                key: k.trim().to_ascii_lowercase(),
                scope: None,
                value: v.trim().to_string(),
                origin: Origin { file: "command line".to_string(), line: 0, key: k.trim().to_string() },
            })
            .collect();

        // Classify every key first, so that the first bad key in the file is the one reported.
        let mut ignored = Vec::new();
        let mut classes = Vec::with_capacity(file.len() + cli.len());
        for d in file.iter().chain(&cli) {
            let class = classify(&d.key).ok_or_else(|| ConfigError::UnknownKey { origin: d.origin.clone() })?;
            match class {
                Class::Later => return Err(not_yet(&d.origin, format!("pmacct key '{}'", d.key))),
                Class::Ignored => ignored.push(d.origin.clone()),
                // An empty password is a password (pmacct cannot say it; xacct can).
                Class::Implemented(_) if d.value.is_empty() && d.key != "sql_passwd" => {
                    return Err(bad(d, "empty value"))
                }
                Class::Implemented(Applies::Global) if d.scope.is_some() => {
                    return Err(ConfigError::Syntax {
                        file: d.origin.file.clone(),
                        line: d.origin.line,
                        why: format!("'{}' is daemon-wide and cannot be set for one plugin", d.key),
                    })
                }
                Class::Implemented(_) => {}
            }
            classes.push(class);
        }
        let applies = |i: usize| match classes.get(i) {
            Some(Class::Implemented(a)) => Some(*a),
            _ => None,
        };
        let (file_classes, cli_start) = (0..file.len(), file.len());

        // Plugins: the last `plugins` on the command line, else in the file, else pmacctd's
        // default of one memory plugin.
        let decl = cli.iter().rev().chain(file.iter().rev()).find(|d| d.key == "plugins");
        let mut plugins = Vec::new();
        match decl {
            Some(d) => {
                for (name, kind) in parse_plugins(d)? {
                    plugins.push(new_plugin(&name, kind, &d.origin)?);
                }
            }
            None => {
                let origin = Origin { file: file_name.to_string(), line: 0, key: "plugins".to_string() };
                plugins.push(new_plugin("default", PluginKind::Memory, &origin)?);
            }
        }

        // Scoped keys must name a declared plugin of a type they apply to.
        for (i, d) in file.iter().enumerate() {
            let Some(scope) = &d.scope else { continue };
            let p = plugins
                .iter()
                .find(|p| &p.name == scope)
                .ok_or_else(|| ConfigError::NoSuchPlugin { origin: d.origin.clone(), plugin: scope.clone() })?;
            if let Some(a) = applies(i) {
                if !applies_to(a, p.kind) {
                    return Err(ConfigError::WrongPlugin {
                        origin: d.origin.clone(),
                        plugin: p.name.clone(),
                        kind: p.kind.name().to_string(),
                    });
                }
            }
        }

        let mut global = GlobalConfig::default();
        for (i, d) in file.iter().chain(&cli).enumerate() {
            if applies(i) == Some(Applies::Global) {
                apply_global(&mut global, d)?;
            }
        }

        let mut used = vec![false; file.len() + cli.len()];
        let mut loaded = Vec::new();
        for p in plugins.iter_mut() {
            let mut pend = Pending::default();
            let unscoped = file_classes.clone().filter(|&i| file.get(i).is_some_and(|d| d.scope.is_none()));
            let name = p.name.clone();
            let scoped = file_classes.clone().filter(|&i| file.get(i).and_then(|d| d.scope.as_ref()) == Some(&name));
            let order: Vec<usize> = unscoped.chain(scoped).chain(cli_start..cli_start + cli.len()).collect();
            for i in order {
                let (Some(a), Some(d)) = (applies(i), file.get(i).or_else(|| cli.get(i - cli_start))) else {
                    continue;
                };
                if applies_to(a, p.kind) {
                    apply_plugin(p, &mut pend, d)?;
                    if let Some(u) = used.get_mut(i) {
                        *u = true;
                    }
                }
            }
            finish_plugin(p, pend, &mut loaded, &mut ignored)?;
        }

        // Unscoped keys for a plugin type that is not configured still get their values
        // checked, so that a typo does not wait for the day that plugin is added.
        for (i, d) in file.iter().chain(&cli).enumerate() {
            let kind = match applies(i) {
                Some(Applies::Only(kind)) => kind,
                Some(Applies::Sql) => PluginKind::Pgsql,
                _ => continue,
            };
            if !used.get(i).copied().unwrap_or(true) {
                let mut scratch = new_plugin("scratch", kind, &d.origin)?;
                apply_plugin(&mut scratch, &mut Pending::default(), d)?;
            }
        }

        Ok(Config { global, plugins, ignored })
    }

    /// The plugin called `name`.
    pub fn plugin(&self, name: &str) -> Option<&PluginConfig> {
        self.plugins.iter().find(|p| p.name == name)
    }
}
