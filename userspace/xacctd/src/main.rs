//! `xacctd`: pmacctd-compatible accounting daemon. Command-line flags are pmacctd's and
//! override the configuration file.

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(name = "xacctd", disable_version_flag = true, about = "xacct accounting daemon (pmacctd-compatible)")]
struct Cli {
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
    /// Syslog facility.
    #[arg(short = 'S')]
    syslog: Option<String>,
    /// snaplen.
    #[arg(short = 'L')]
    snaplen: Option<String>,
    /// Renormalize sampled counters (pmacctd_renormalize: true).
    #[arg(short = 'R')]
    renormalize: bool,
    /// Print version and exit.
    #[arg(short = 'V')]
    version: bool,
}

impl Cli {
    fn overrides(&self) -> Vec<(String, String)> {
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
        put("snaplen", self.snaplen.clone());
        put("pmacctd_renormalize", self.renormalize.then(|| "true".into()));
        o
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.version {
        println!("xacctd {} (pmacctd-compatible)", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    if cli.syslog.is_some() {
        eprintln!("xacctd: -S (syslog) is not supported yet; use 'logfile' or stderr");
        return ExitCode::from(1);
    }
    let overrides = cli.overrides();
    let config = match &cli.config {
        Some(path) => xacct_core::config::Config::load(path, &overrides),
        None => xacct_core::config::Config::from_overrides(&overrides),
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
