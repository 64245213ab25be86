//! nfacctd's and sfacctd's keys, the `*_net`/`*_as` methods, and which daemon(s) a
//! configuration runs as.
//!
//! # Modes
//! One xacctd can capture packets (pmacctd), collect NetFlow/IPFIX (nfacctd) and collect sFlow
//! (sfacctd) at once. Which of them run:
//! 1. `--mode nfacctd|sfacctd|pmacctd` (repeatable, or comma-separated): exactly those.
//! 2. Else the name it was started under (argv[0], e.g. a `nfacctd` symlink): that one.
//! 3. Else (started as `xacctd`) from the keys: a collector runs when any of its keys is set
//!    (`nfacctd_time_new` alone is enough), on pmacct's default port (2100, 6343) and all
//!    addresses unless `*_port`/`*_ip` say otherwise; packets are captured when `interface`,
//!    `pcap_interface` or `pcap_savefile` is set, or when no collector runs (then, as pmacctd,
//!    on libpcap's default device). A collector's configuration never captures on a default
//!    device.
//!
//! Keys of a daemon that does not run have no effect and are logged as such, except the keys
//! that would open a source (`pcap_interface`, `interface`, `pcap_savefile`, `*_port`, `*_ip`):
//! with 1 or 2 those are an error naming file, line and key, since the operator asked for one
//! daemon and named another's input.

use super::inventory::{self, Family, State};
use super::parse::{bad, parse_bool, parse_count, parse_ip, refused, Directive};
use super::{AsMethod, ConfigError, GlobalConfig, Ignored, NetMethod, Origin};
use std::path::PathBuf;

/// The pmacct daemons xacctd stands in for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Daemon {
    Pmacctd,
    Nfacctd,
    Sfacctd,
}

impl Daemon {
    pub fn name(self) -> &'static str {
        match self {
            Daemon::Pmacctd => "pmacctd",
            Daemon::Nfacctd => "nfacctd",
            Daemon::Sfacctd => "sfacctd",
        }
    }

    pub fn from_name(name: &str) -> Option<Daemon> {
        match name {
            "pmacctd" => Some(Daemon::Pmacctd),
            "nfacctd" => Some(Daemon::Nfacctd),
            "sfacctd" => Some(Daemon::Sfacctd),
            _ => None,
        }
    }

    /// The daemon a program path names (`/usr/sbin/nfacctd` → nfacctd); None for xacctd or
    /// anything else.
    pub fn from_argv0(argv0: &str) -> Option<Daemon> {
        let base = std::path::Path::new(argv0).file_name()?.to_str()?;
        Daemon::from_name(base)
    }

    fn family(self) -> Family {
        match self {
            Daemon::Pmacctd => Family::Capture,
            Daemon::Nfacctd => Family::Netflow,
            Daemon::Sfacctd => Family::Sflow,
        }
    }
}

impl std::fmt::Display for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How the daemon was started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Launch {
    /// argv[0]'s name, when it is one of pmacct's daemons.
    pub argv0: Option<Daemon>,
    /// `--mode` flags, in order.
    pub flags: Vec<Daemon>,
}

/// Why a mode runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    Flag,
    Argv0,
    /// The first key that selects it.
    Key(Origin),
    /// No collector: pmacctd's behaviour, capture.
    Default,
}

/// Which daemon(s) run, each with why; see the module's documentation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Modes {
    pub capture: Option<Why>,
    pub netflow: Option<Why>,
    pub sflow: Option<Why>,
}

impl Modes {
    /// One line per mode that runs: "mode nfacctd: the config sets nfacctd_time_new (line 15)".
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (d, why) in
            [(Daemon::Pmacctd, &self.capture), (Daemon::Nfacctd, &self.netflow), (Daemon::Sfacctd, &self.sflow)]
        {
            let Some(why) = why else { continue };
            let text = match why {
                Why::Flag => format!("--mode {d}"),
                Why::Argv0 => format!("started as {d}"),
                Why::Key(o) if o.line == 0 => format!("the command line sets {}", o.key),
                Why::Key(o) => format!("the config sets {} ({}:{})", o.key, o.file, o.line),
                Why::Default => "no collector key and no --mode: pmacctd's default, capture".to_string(),
            };
            out.push(format!("mode {d}: {text}"));
        }
        out
    }

    fn get(&self, d: Daemon) -> &Option<Why> {
        match d {
            Daemon::Pmacctd => &self.capture,
            Daemon::Nfacctd => &self.netflow,
            Daemon::Sfacctd => &self.sflow,
        }
    }

    fn set(&mut self, d: Daemon, why: Why) {
        let slot = match d {
            Daemon::Pmacctd => &mut self.capture,
            Daemon::Nfacctd => &mut self.netflow,
            Daemon::Sfacctd => &mut self.sflow,
        };
        if slot.is_none() {
            *slot = Some(why);
        }
    }
}

/// Keys that open a source of their daemon.
fn opens_source(key: &str) -> bool {
    matches!(
        key,
        "interface"
            | "pcap_interface"
            | "pcap_savefile"
            | "nfacctd_port"
            | "nfacctd_ip"
            | "sfacctd_port"
            | "sfacctd_ip"
    )
}

/// The daemon whose keys `key` is (of the accepted keys).
fn daemon_of(key: &str) -> Option<Daemon> {
    let info = inventory::lookup(key)?;
    if matches!(info.state, State::Refused(_)) {
        return None;
    }
    [Daemon::Pmacctd, Daemon::Nfacctd, Daemon::Sfacctd].into_iter().find(|d| d.family() == info.family)
}

pub(super) fn decide_modes(
    all: &[&Directive],
    launch: &Launch,
    ignored: &mut Vec<Ignored>,
) -> Result<Modes, ConfigError> {
    let mut modes = Modes::default();
    let explicit = if !launch.flags.is_empty() {
        for d in &launch.flags {
            modes.set(*d, Why::Flag);
        }
        true
    } else if let Some(d) = launch.argv0 {
        modes.set(d, Why::Argv0);
        true
    } else {
        for d in all {
            match daemon_of(&d.key) {
                Some(Daemon::Pmacctd) if opens_source(&d.key) => modes.set(Daemon::Pmacctd, Why::Key(d.origin.clone())),
                Some(n @ (Daemon::Nfacctd | Daemon::Sfacctd)) => modes.set(n, Why::Key(d.origin.clone())),
                _ => {}
            }
        }
        if modes.netflow.is_none() && modes.sflow.is_none() {
            modes.set(Daemon::Pmacctd, Why::Default);
        }
        false
    };
    let running: Vec<&str> = [Daemon::Pmacctd, Daemon::Nfacctd, Daemon::Sfacctd]
        .into_iter()
        .filter(|d| modes.get(*d).is_some())
        .map(Daemon::name)
        .collect();
    let running = running.join(" and ");
    for d in all {
        let Some(daemon) = daemon_of(&d.key) else { continue };
        // Keys with no effect anywhere are logged once, with their own reason.
        let no_effect = inventory::lookup(&d.key).is_some_and(|k| matches!(k.state, State::NoEffect(_)));
        if modes.get(daemon).is_some() || no_effect {
            continue;
        }
        if explicit && opens_source(&d.key) {
            return Err(ConfigError::Mode {
                origin: d.origin.clone(),
                why: format!(
                    "xacctd runs as {running} here, and this {daemon} key would open a source; start xacctd under its own name (or add --mode {daemon}) to run both"
                ),
            });
        }
        ignored.push(Ignored {
            origin: d.origin.clone(),
            why: format!("a {daemon} key, and xacctd runs as {running} here (no {daemon} source)"),
        });
    }
    Ok(modes)
}

/// `*_net`; `collector`: the key is nfacctd's or sfacctd's (whose records carry masks).
pub(super) fn parse_net(d: &Directive, collector: bool) -> Result<NetMethod, ConfigError> {
    Ok(match d.value.to_ascii_lowercase().as_str() {
        "netflow" | "sflow" if collector => NetMethod::Record,
        "netflow" | "sflow" => return Err(bad(d, "captured packets carry no masks: use file, mask or longest")),
        "file" => NetMethod::File,
        "mask" => NetMethod::Mask,
        "longest" | "fallback" => NetMethod::Longest,
        v @ ("bgp" | "bmp" | "igp") => return Err(feed_not_built(d, v)),
        _ if collector => return Err(bad(d, "expected netflow, sflow, file, mask or longest")),
        _ => return Err(bad(d, "expected file, mask or longest")),
    })
}

/// `*_as`; pmacct's older `true`/`false` mean `file` and the record's (pmacctd: none).
pub(super) fn parse_as(d: &Directive, collector: bool) -> Result<AsMethod, ConfigError> {
    Ok(match d.value.to_ascii_lowercase().as_str() {
        "netflow" | "sflow" | "false" if collector => AsMethod::Record,
        "false" => AsMethod::None,
        "netflow" | "sflow" => return Err(bad(d, "captured packets carry no ASes: use file or longest")),
        "file" | "true" => AsMethod::File,
        "longest" | "fallback" => AsMethod::Longest,
        v @ ("bgp" | "bmp") => return Err(feed_not_built(d, v)),
        _ if collector => return Err(bad(d, "expected netflow, sflow, file or longest")),
        _ => return Err(bad(d, "expected file or longest")),
    })
}

fn feed_not_built(d: &Directive, v: &str) -> ConfigError {
    let feed = match v {
        "bgp" => "a BGP feed (bgp_daemon)",
        "bmp" => "a BMP feed (bmp_daemon)",
        _ => "an IGP feed (isis_daemon)",
    };
    refused(&d.origin, format!("'{v}' needs {feed}, which xacct does not build"))
}

/// Multicast groups, comma-separated.
fn parse_groups(d: &Directive) -> Result<Vec<std::net::IpAddr>, ConfigError> {
    let mut out = Vec::new();
    for g in d.value.split(',').map(str::trim) {
        let ip: std::net::IpAddr = g.parse().map_err(|_| bad(d, format!("'{g}' is not an address")))?;
        if !ip.is_multicast() {
            return Err(bad(d, format!("{ip} is not a multicast group")));
        }
        out.push(ip);
    }
    // pmacct's own ceiling.
    if out.len() > 20 {
        return Err(bad(d, "at most 20 groups"));
    }
    Ok(out)
}

/// An allow file, checked now so that an error names the config line and the file's line.
fn parse_allow(d: &Directive) -> Result<PathBuf, ConfigError> {
    let p = PathBuf::from(&d.value);
    crate::maps::AllowList::load(&p).map_err(|e| bad(d, e.to_string()))?;
    Ok(p)
}

/// Applies a collector key; other keys are left alone.
pub(super) fn apply(g: &mut GlobalConfig, d: &Directive) -> Result<(), ConfigError> {
    match d.key.as_str() {
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
        "nfacctd_ipv6_only" => g.nfacctd_ipv6_only = parse_bool(d)?,
        "sfacctd_ipv6_only" => g.sfacctd_ipv6_only = parse_bool(d)?,
        "nfacctd_mcast_groups" => g.nfacctd_mcast_groups = parse_groups(d)?,
        "sfacctd_mcast_groups" => g.sfacctd_mcast_groups = parse_groups(d)?,
        "nfacctd_net" => g.netflow_methods.net = parse_net(d, true)?,
        "nfacctd_as" | "nfacctd_as_new" => g.netflow_methods.asn = parse_as(d, true)?,
        "sfacctd_net" => g.sflow_methods.net = parse_net(d, true)?,
        "sfacctd_as" | "sfacctd_as_new" => g.sflow_methods.asn = parse_as(d, true)?,
        "nfacctd_allow_file" => g.nfacctd_allow_file = Some(parse_allow(d)?),
        "sfacctd_allow_file" => g.sfacctd_allow_file = Some(parse_allow(d)?),
        "collector_threads" => g.collector_threads = parse_count(d, 1024usize)?,
        "nfacctd_templates_file" => g.nfacctd_templates_file = Some(PathBuf::from(&d.value)),
        _ => {}
    }
    Ok(())
}
