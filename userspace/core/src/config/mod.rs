//! pmacct-style configuration: `key: value`, `key[plugin]: value`, `!` comments,
//! `plugins: type[name], …`, unscoped keys as defaults for every plugin, command-line overrides.
//!
//! Modules, one per family of keys:
//! - [`inventory`]: every key xacct knows (pmacct 1.7.7's CONFIG-KEYS, older names, xacct's
//!   own) with its state: implemented, accepted with no effect (reason logged), or refused
//!   with a reason. Nothing falls through to "unknown" or a catch-all.
//! - `parse`: lines, scopes, precedence, value parsers; the driver of [`Config::parse_with`].
//! - `capture`: pmacctd's keys (packet capture) and the daemon-wide ones.
//! - `collect`: nfacctd's and sfacctd's keys, the `*_net`/`*_as` methods, and [`Modes`]: which
//!   daemon(s) a configuration runs as.
//! - `plugin`: keys of the memory and print plugins and the per-plugin maps.
//! - [`sql`]: the SQL plugins' keys and `sql_table` templates.
//!
//! The types below are what the daemon and plugins use; parsing fills them.

mod capture;
mod collect;
pub mod export;
pub mod inventory;
mod parse;
mod plugin;
pub mod sql;

use crate::aggregate::Aggregate;
use crate::history::History;
use std::path::PathBuf;

pub use crate::maps::{AsMethod, Methods, NetMethod};
pub use collect::{Daemon, Launch, Modes, Why};

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
    /// A value or feature a later xacct issue brings (an aggregation primitive, …).
    #[error("{origin}: not supported yet in xacct ({why})")]
    NotSupportedYet { origin: Origin, why: String },
    /// A pmacct key xacct refuses, with the inventory's reason.
    #[error("{origin}: refused: {why}")]
    Refused { origin: Origin, why: String },
    /// A key of a daemon the configuration does not run as (see [`Modes`]).
    #[error("{origin}: {why}")]
    Mode { origin: Origin, why: String },
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

/// `pcap_direction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    In,
    Out,
}

/// `pcap_ifindex`: where the capturing interface's index (for in_iface/out_iface) comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IfIndexFrom {
    #[default]
    None,
    /// if_nametoindex().
    Sys,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginKind {
    Memory,
    Print,
    Pgsql,
    Mysql,
    Sqlite3,
    Nfprobe,
    Tee,
    Sfprobe,
}

impl PluginKind {
    pub fn name(self) -> &'static str {
        match self {
            PluginKind::Memory => "memory",
            PluginKind::Print => "print",
            PluginKind::Pgsql => "pgsql",
            PluginKind::Mysql => "mysql",
            PluginKind::Sqlite3 => "sqlite3",
            PluginKind::Nfprobe => "nfprobe",
            PluginKind::Tee => "tee",
            PluginKind::Sfprobe => "sfprobe",
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
    /// `networks_mask`: the mask of `*_net: mask` (and of pmacctd's default without a file).
    pub networks_mask: Option<u8>,
    /// `networks_file_no_lpm`, `networks_no_mask_if_zero`, `networks_file_filter`.
    pub networks_file_no_lpm: bool,
    pub networks_no_mask_if_zero: bool,
    pub networks_file_filter: bool,
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
    /// print: `print_markers`: start and end markers around each refresh (CSV and JSON).
    pub print_markers: bool,
    /// print: `print_output_file_append`: append to the file, the header only when it is new.
    pub print_output_file_append: bool,
    /// print: `print_latest_file`: a symlink to the latest output file.
    pub print_latest_file: Option<String>,
    /// print: `print_write_empty_file`: write a zero-length file when a refresh has no entry.
    pub print_write_empty_file: bool,
    /// print: `print_startup_delay` seconds before the first refresh.
    pub print_startup_delay: u64,
    /// print: `print_num_protos`: protocols as numbers.
    pub print_num_protos: bool,
    /// `timestamps_utc` and `timestamps_since_epoch` for the print plugin's times.
    pub timestamps_utc: bool,
    pub timestamps_since_epoch: bool,
    /// `proc_priority[name]`: this plugin's thread's nice value.
    pub proc_priority: Option<i32>,
    /// `files_uid` / `files_gid` (daemon-wide, copied here for the plugin threads).
    pub files_uid: Option<u32>,
    pub files_gid: Option<u32>,
    /// `max_entries`, `memory_budget` (bytes), and the memory plugin's
    /// `imt_mem_pools_number` x `imt_mem_pools_size`: the plugin's memory budget (see
    /// [`crate::budget`]); none given: the default.
    pub max_entries: Option<usize>,
    pub memory_budget: Option<u64>,
    pub imt_mem_pools_number: Option<u64>,
    pub imt_mem_pools_size: Option<u64>,
    /// `pre_tag_map[name]`: this plugin's own map (evaluated after the global one, whose
    /// tags it replaces).
    pub pre_tag_map: Option<PathBuf>,
    /// `pre_tag_filter`, `pre_tag2_filter`, `pre_tag_label_filter`.
    pub tag_filters: crate::tag::TagFilters,
    /// `post_tag`, `post_tag2`: constants over whatever the maps set.
    pub post_tag: Option<u64>,
    pub post_tag2: Option<u64>,
    /// SQL plugins: every `sql_*` key.
    pub sql: Option<Box<sql::SqlConfig>>,
    /// The nfprobe plugin's keys (None for other kinds).
    pub nfprobe: Option<Box<export::NfprobeConfig>>,
    /// The tee plugin's keys (None for other kinds).
    pub tee: Option<Box<export::TeeConfig>>,
    /// The sfprobe plugin's keys (None for other kinds).
    pub sfprobe: Option<Box<export::SfprobeConfig>>,
    /// Where this plugin was declared (for messages).
    pub origin: Origin,
}

impl PluginConfig {
    /// A plugin with pmacct's defaults for every key (aggregate `src_host`), declared nowhere.
    pub fn new(name: &str, kind: PluginKind) -> PluginConfig {
        let origin = Origin::default();
        let aggregate = Aggregate::parse("src_host").expect("src_host is a primitive");
        parse::plugin_defaults(name, kind, &origin, aggregate)
    }

    /// The plugin's budget for a table of `words`-word keys filled by `workers` workers, with
    /// `default_bytes` where no key sets one.
    pub fn budget(&self, words: usize, workers: usize, default: crate::budget::BudgetSource) -> crate::budget::Budget {
        use crate::budget::{Budget, BudgetSource};
        if let Some(n) = self.max_entries {
            return Budget::entries(n);
        }
        if let Some(b) = self.memory_budget {
            return Budget::bytes(b, words, workers, BudgetSource::MemoryBudget);
        }
        if let Some(n) = self.imt_mem_pools_number.filter(|n| *n > 0) {
            // pmacct's default pool size.
            let size = self.imt_mem_pools_size.unwrap_or(8192);
            return Budget::bytes(n.saturating_mul(size), words, workers, BudgetSource::ImtMemPools);
        }
        let bytes = match &default {
            BudgetSource::Default { total, plugins } => crate::budget::default_bytes(*total, *plugins),
            _ => u64::MAX,
        };
        Budget::bytes(bytes, words, workers, default)
    }

    /// The plugin's time bins: `print_history` or `sql_history`.
    pub fn history(&self) -> Option<History> {
        if let Some(n) = &self.nfprobe {
            // Windows of `expint`: the exporter scans for expired flows at their starts.
            return History::parse(&format!("{}s", n.timeouts.expint.max(1)), None).ok();
        }
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
    /// `pcap_savefile_delay` seconds before the file is read.
    pub pcap_savefile_delay: u64,
    pub pcap_filter: Option<String>,
    /// `snaplen` (`-L`), default 128 like pmacctd (CONFIG-KEYS).
    pub snaplen: u32,
    /// `promisc`, default true.
    pub promisc: bool,
    /// `pcap_interface_wait`: wait for the interface to appear instead of failing.
    pub pcap_interface_wait: bool,
    /// `pcap_direction`.
    pub pcap_direction: Option<Direction>,
    /// `pcap_ifindex`.
    pub pcap_ifindex: IfIndexFrom,
    /// `pmacctd_time_new`: packets are timed by their arrival, not their pcap timestamp.
    pub pmacctd_time_new: bool,
    /// `daemonize` (`-D`).
    pub daemonize: bool,
    /// `pidfile` (`-F`).
    pub pidfile: Option<PathBuf>,
    pub logfile: Option<PathBuf>,
    /// `syslog` (`-S`): the facility's name.
    pub syslog: Option<String>,
    /// `files_umask`, `files_uid`, `files_gid`.
    pub files_umask: Option<u32>,
    pub files_uid: Option<u32>,
    pub files_gid: Option<u32>,
    /// Unscoped `proc_priority`: the daemon's nice value.
    pub proc_priority: Option<i32>,
    /// `core_proc_name` (default "default").
    pub core_proc_name: String,
    /// `plugin_exit_any`: stop the daemon when any plugin stops (default: when all have).
    pub plugin_exit_any: bool,
    /// `maps_refresh` (default true): SIGUSR2 reloads pre_tag_map, networks_file and ports_file.
    pub maps_refresh: bool,
    /// `maps_index`, `maps_entries`, `maps_row_len`: see [`GlobalConfig::tag_map_options`].
    pub maps_index: bool,
    pub maps_entries: Option<usize>,
    pub maps_row_len: Option<usize>,
    /// The unscoped `pre_tag_map`, evaluated once per record for every plugin.
    pub pre_tag_map: Option<(PathBuf, Origin)>,
    /// `sampling_rate` (1 in N), 1 = no sampling.
    pub sampling_rate: u32,
    /// `pmacctd_renormalize` (`-R`).
    pub renormalize: bool,
    /// Worker threads (new key `workers`, default: one per core).
    pub workers: Option<usize>,
    /// `pmacctd_net` / `pmacctd_as`: how captured packets get nets and ASes. By default nets
    /// come from the networks_file (or networks_mask) and ASes stay 0, as in pmacctd 1.7.7
    /// (`pmacctd_as: file` is needed for ASes from the file).
    pub capture_methods: Methods,
    /// `nfacctd_net` / `nfacctd_as` (default netflow: what the records carry).
    pub netflow_methods: Methods,
    /// `sfacctd_net` / `sfacctd_as` (default sflow: what the samples carry).
    pub sflow_methods: Methods,
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
    /// addresses). It runs when [`Modes::netflow`] says so.
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
    /// `nfacctd_ipv6_only` / `sfacctd_ipv6_only`: the all-addresses socket takes IPv6 only.
    pub nfacctd_ipv6_only: bool,
    pub sfacctd_ipv6_only: bool,
    /// `nfacctd_mcast_groups` / `sfacctd_mcast_groups`: multicast groups the socket joins.
    pub nfacctd_mcast_groups: Vec<std::net::IpAddr>,
    pub sfacctd_mcast_groups: Vec<std::net::IpAddr>,
    /// `nfacctd_allow_file` / `sfacctd_allow_file`: the exporters a collector takes datagrams
    /// from (checked at load; reloaded on SIGUSR2).
    pub nfacctd_allow_file: Option<PathBuf>,
    pub sfacctd_allow_file: Option<PathBuf>,
    /// `collector_threads` (new key): SO_REUSEPORT sockets, one thread each, per collector.
    pub collector_threads: usize,
    /// `nfacctd_templates_file`: v9/IPFIX templates kept across restarts (a JSON format of
    /// xacct's own, see xacct-collect's `templates_file`).
    pub nfacctd_templates_file: Option<PathBuf>,
    /// Which daemon(s) the configuration runs as, and why.
    pub modes: Modes,
}

impl GlobalConfig {
    /// Where the NetFlow/IPFIX collector listens, when one runs.
    pub fn netflow_listen(&self) -> Option<(Option<std::net::IpAddr>, u16)> {
        self.modes.netflow.as_ref().map(|_| (self.nfacctd_ip, self.nfacctd_port.unwrap_or(2100)))
    }

    /// Where the sFlow collector listens, when one runs.
    pub fn sflow_listen(&self) -> Option<(Option<std::net::IpAddr>, u16)> {
        self.modes.sflow.as_ref().map(|_| (self.sfacctd_ip, self.sfacctd_port.unwrap_or(6343)))
    }

    /// How pre_tag_maps load: limits, index, and the keys this daemon's sources can fill.
    pub fn tag_map_options(&self) -> crate::tag::MapOptions {
        crate::tag::MapOptions {
            max_entries: self.maps_entries,
            max_row_len: self.maps_row_len,
            index: self.maps_index,
            fills: crate::tag::Fills {
                capture: self.modes.capture.is_some(),
                netflow: self.modes.netflow.is_some(),
                sflow: self.modes.sflow.is_some(),
            },
        }
    }

    /// Whether packets are captured: see [`Modes`].
    pub fn captures_packets(&self) -> bool {
        self.modes.capture.is_some()
    }
}

impl Default for GlobalConfig {
    /// pmacctd's defaults.
    fn default() -> Self {
        GlobalConfig {
            interface: None,
            pcap_savefile: None,
            pcap_savefile_wait: false,
            pcap_savefile_delay: 0,
            pcap_filter: None,
            snaplen: 128,
            promisc: true,
            pcap_interface_wait: false,
            pcap_direction: None,
            pcap_ifindex: IfIndexFrom::None,
            pmacctd_time_new: false,
            daemonize: false,
            pidfile: None,
            logfile: None,
            syslog: None,
            files_umask: None,
            files_uid: None,
            files_gid: None,
            proc_priority: None,
            core_proc_name: "default".to_string(),
            plugin_exit_any: false,
            maps_refresh: true,
            maps_index: true,
            maps_entries: None,
            maps_row_len: None,
            pre_tag_map: None,
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
            capture_methods: Methods::PMACCTD,
            netflow_methods: Methods::COLLECTOR,
            sflow_methods: Methods::COLLECTOR,
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
            nfacctd_ipv6_only: false,
            sfacctd_ipv6_only: false,
            nfacctd_mcast_groups: Vec::new(),
            sfacctd_mcast_groups: Vec::new(),
            nfacctd_allow_file: None,
            sfacctd_allow_file: None,
            collector_threads: 1,
            nfacctd_templates_file: None,
            modes: Modes::default(),
        }
    }
}

/// A key accepted with no effect, and why (logged when the daemon starts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    pub origin: Origin,
    pub why: String,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub global: GlobalConfig,
    pub plugins: Vec<PluginConfig>,
    /// Keys accepted that do nothing in this configuration (logged once at start).
    pub ignored: Vec<Ignored>,
    /// Other things worth saying at start (a networks_file no method uses, …).
    pub notes: Vec<String>,
}

/// Which plugins a key can be set on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applies {
    /// Daemon-wide; cannot be scoped to a plugin.
    Global,
    /// Daemon-wide when unscoped, and a default every plugin may override (`proc_priority`).
    Both,
    /// Any plugin type.
    AnyPlugin,
    Only(PluginKind),
    /// The three SQL plugins.
    Sql,
}

impl Config {
    /// Reads a pmacct-style configuration file; `overrides` come from command-line flags.
    pub fn load(path: &std::path::Path, overrides: &[(String, String)]) -> Result<Config, ConfigError> {
        Config::load_with(path, overrides, &Launch::default())
    }

    /// [`Config::load`] for a daemon started as `launch` says (argv[0], `--mode`).
    pub fn load_with(
        path: &std::path::Path,
        overrides: &[(String, String)],
        launch: &Launch,
    ) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::Io { path: path.display().to_string(), why: e.to_string() })?;
        Config::parse_with(&text, &path.display().to_string(), overrides, launch)
    }

    /// A daemon started with flags only (no `-f`).
    pub fn from_overrides(overrides: &[(String, String)]) -> Result<Config, ConfigError> {
        Config::parse_with("", "command line", overrides, &Launch::default())
    }

    /// [`Config::from_overrides`] for a daemon started as `launch` says.
    pub fn from_overrides_with(overrides: &[(String, String)], launch: &Launch) -> Result<Config, ConfigError> {
        Config::parse_with("", "command line", overrides, launch)
    }

    /// Parses configuration text as xacctd started under its own name. `file_name` is used in
    /// messages; `overrides` are `(key, value)` pairs from command-line flags, which beat the
    /// file and apply unscoped.
    ///
    /// Precedence for a plugin key: override > `key[plugin]` > `key` > default, whatever the
    /// order of the lines; among equals, the later line wins.
    pub fn parse_str(text: &str, file_name: &str, overrides: &[(String, String)]) -> Result<Config, ConfigError> {
        Config::parse_with(text, file_name, overrides, &Launch::default())
    }

    /// [`Config::parse_str`] for a daemon started as `launch` says.
    pub fn parse_with(
        text: &str,
        file_name: &str,
        overrides: &[(String, String)],
        launch: &Launch,
    ) -> Result<Config, ConfigError> {
        parse::parse(text, file_name, overrides, launch)
    }

    /// The plugin called `name`.
    pub fn plugin(&self, name: &str) -> Option<&PluginConfig> {
        self.plugins.iter().find(|p| p.name == name)
    }
}
