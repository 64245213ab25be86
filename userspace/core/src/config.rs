//! pmacct-style configuration: `key: value`, `key[plugin]: value`, `!` comments,
//! `plugins: type[name], …`, unscoped keys as defaults for every plugin, command-line overrides.
//!
//! CONTRACT (types below are used by the daemon and plugins; parsing fills them).

use crate::aggregate::Aggregate;
use crate::history::History;
use std::path::PathBuf;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginKind {
    Memory,
    Print,
}

impl PluginKind {
    pub fn name(self) -> &'static str {
        match self {
            PluginKind::Memory => "memory",
            PluginKind::Print => "print",
        }
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
    /// Where this plugin was declared (for messages).
    pub origin: Origin,
}

/// Daemon-wide settings.
#[derive(Debug, Clone, Default)]
pub struct GlobalConfig {
    /// `interface` / `pcap_interface` (`-i`).
    pub interface: Option<String>,
    /// `pcap_savefile` (`-I`).
    pub pcap_savefile: Option<PathBuf>,
    pub pcap_savefile_wait: bool,
    pub pcap_filter: Option<String>,
    /// `snaplen` (`-L`), default 128 like pmacctd... see parsing for the actual default.
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
}

#[derive(Debug, Clone)]
pub struct Config {
    pub global: GlobalConfig,
    pub plugins: Vec<PluginConfig>,
    /// Keys accepted for compatibility that do nothing in xacct's design (logged once at start).
    pub ignored: Vec<Origin>,
}
