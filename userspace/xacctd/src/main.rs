//! `xacctd`: pmacct-compatible accounting daemon. Command-line flags are pmacctd's (nfacctd's
//! and sfacctd's when it runs as one of them) and override the configuration file.

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use xacct_core::config::{Config, Daemon, Launch};

#[derive(Parser, Debug)]
#[command(
    name = "xacctd",
    disable_version_flag = true,
    about = "xacct accounting daemon (pmacctd-, nfacctd- and sfacctd-compatible)",
    after_help = "Modes: xacctd captures packets (pmacctd), collects NetFlow/IPFIX (nfacctd) and collects \
sFlow (sfacctd), one or several at once. --mode picks them; else the name it is started under \
(a symlink named nfacctd, sfacctd or pmacctd); else the configuration: a collector runs when any of \
its keys is set (nfacctd_*, sfacctd_*), on port 2100 / 6343 and all addresses by default, and \
packets are captured when pcap_interface/interface/pcap_savefile is set or no collector runs. \
Started as nfacctd or sfacctd, -L is the address and -l the port to listen on."
)]
struct Cli {
    /// Run as these daemons (repeat or comma-separate: pmacctd, nfacctd, sfacctd); default:
    /// the name xacctd was started under, else what the configuration's keys say.
    #[arg(long = "mode", value_delimiter = ',')]
    mode: Vec<String>,
    /// Configuration file (pmacct syntax).
    #[arg(short = 'f')]
    config: Option<PathBuf>,
    /// Interface to capture from (interface / pcap_interface).
    #[arg(short = 'i')]
    interface: Option<String>,
    /// pcap file to read (pcap_savefile).
    #[arg(short = 'I')]
    pcap_file: Option<PathBuf>,
    /// Aggregation primitives (aggregate).
    #[arg(short = 'c')]
    aggregate: Option<String>,
    /// Plugins (plugins).
    #[arg(short = 'P')]
    plugins: Option<String>,
    /// Daemonize (daemonize: true).
    #[arg(short = 'D')]
    daemonize: bool,
    /// networks_file.
    #[arg(short = 'n')]
    networks_file: Option<String>,
    /// ports_file (pmacctd's -o).
    #[arg(short = 'o')]
    ports_file: Option<String>,
    /// Memory plugin socket (imt_path).
    #[arg(short = 'p')]
    imt_path: Option<String>,
    /// Refresh time in seconds (print_refresh_time).
    #[arg(short = 'r')]
    refresh: Option<String>,
    /// pidfile.
    #[arg(short = 'F')]
    pidfile: Option<String>,
    /// Syslog facility (syslog).
    #[arg(short = 'S')]
    syslog: Option<String>,
    /// snaplen; started as nfacctd or sfacctd: the address to listen on (nfacctd_ip / sfacctd_ip).
    #[arg(short = 'L')]
    snaplen: Option<String>,
    /// Started as nfacctd or sfacctd: the UDP port to listen on (nfacctd_port / sfacctd_port).
    #[arg(short = 'l')]
    port: Option<String>,
    /// Renormalize sampled counters (pmacctd_renormalize: true).
    #[arg(short = 'R')]
    renormalize: bool,
    /// Print version and exit.
    #[arg(short = 'V')]
    version: bool,
}

impl Cli {
    /// `as_collector`: the daemon runs as nfacctd or sfacctd only, whose `-L` and `-l` differ.
    fn overrides(&self, as_collector: Option<Daemon>) -> Vec<(String, String)> {
        let mut o = Vec::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                o.push((k.to_string(), v));
            }
        };
        put("interface", self.interface.clone());
        put("pcap_savefile", self.pcap_file.as_ref().map(|p| p.display().to_string()));
        put("aggregate", self.aggregate.clone());
        put("plugins", self.plugins.clone());
        put("daemonize", self.daemonize.then(|| "true".into()));
        put("networks_file", self.networks_file.clone());
        put("ports_file", self.ports_file.clone());
        put("imt_path", self.imt_path.clone());
        put("print_refresh_time", self.refresh.clone());
        put("pidfile", self.pidfile.clone());
        put("syslog", self.syslog.clone());
        match as_collector {
            Some(d) => {
                put(&format!("{d}_ip"), self.snaplen.clone());
                put(&format!("{d}_port"), self.port.clone());
            }
            None => put("snaplen", self.snaplen.clone()),
        }
        put("pmacctd_renormalize", self.renormalize.then(|| "true".into()));
        o
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.version {
        println!("xacctd {} (pmacctd-, nfacctd- and sfacctd-compatible)", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let mut flags = Vec::new();
    for m in &cli.mode {
        match Daemon::from_name(m.trim()) {
            Some(d) => flags.push(d),
            None => {
                eprintln!("xacctd: --mode {m}: expected pmacctd, nfacctd or sfacctd");
                return ExitCode::from(2);
            }
        }
    }
    let argv0 = std::env::args_os().next().and_then(|a| a.to_str().and_then(Daemon::from_argv0));
    let launch = Launch { argv0, flags };
    // nfacctd's and sfacctd's own flags when the daemon is one of them alone.
    let alone = if launch.flags.is_empty() { launch.argv0.into_iter().collect() } else { launch.flags.clone() };
    let as_collector = match alone.as_slice() {
        [d @ (Daemon::Nfacctd | Daemon::Sfacctd)] => Some(*d),
        _ => None,
    };
    if cli.port.is_some() && as_collector.is_none() {
        eprintln!("xacctd: -l (the port to listen on) is nfacctd's and sfacctd's: add --mode nfacctd or --mode sfacctd, or set nfacctd_port / sfacctd_port");
        return ExitCode::from(2);
    }
    let overrides = cli.overrides(as_collector);
    let config = match &cli.config {
        Some(path) => Config::load_with(path, &overrides, &launch),
        None => Config::from_overrides_with(&overrides, &launch),
    };
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            eprintln!("xacctd: configuration error: {e}");
            return ExitCode::from(1);
        }
    };
    match xacctd::daemon::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xacctd: {e:#}");
            tracing::error!("{e:#}");
            ExitCode::from(1)
        }
    }
}
