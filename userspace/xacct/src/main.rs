//! `xacct`: queries xacctd's memory tables with pmacct's client flags (`pmacct -s`, `-N`, …).
//! The protocol and the renderers live in xacct-core (`imt`, `format`); this is flags to
//! [`Request`] and answers to stdout.

use anyhow::{bail, Context, Result};
use clap::Parser;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use xacct_core::config::OutputFormat;
use xacct_core::format::{FormatOptions, TableWriter, TimeStyle};
use xacct_core::imt::{self, CounterKind, MatchSpec, Request, Response};

#[derive(Parser, Debug)]
#[command(name = "xacct", version, about = "Query xacctd memory tables (pmacct client compatible flags)")]
struct Args {
    /// Socket of the memory table (imt_path).
    #[arg(short = 'p', value_name = "socket", default_value = imt::DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Show the whole table.
    #[arg(short = 's')]
    show: bool,
    /// Show the table's status and the daemon's counters.
    #[arg(short = 't')]
    status: bool,
    /// Match entries and print their counters only (requires -c); ';' separates queries,
    /// '*' matches anything, 'file:<path>' reads queries from a file.
    #[arg(short = 'N', value_name = "values")]
    counters: Option<String>,
    /// Match entries and print them as a table (requires -c).
    #[arg(short = 'M', value_name = "values")]
    matching: Option<String>,
    /// Primitives the -N/-M values refer to, comma-separated.
    #[arg(short = 'c', value_name = "primitives")]
    primitives: Option<String>,
    /// Counter printed by -N: bytes, packets, flows or all.
    #[arg(short = 'n', value_name = "counter")]
    counter: Option<String>,
    /// Sum the -N queries into one line.
    #[arg(short = 'S')]
    sum: bool,
    /// Top N entries by a counter: bytes|packets|flows[,N] (applies to -s and -M).
    #[arg(short = 'T', value_name = "counter[,N]")]
    top: Option<String>,
    /// Clear the table (after answering the query, if any).
    #[arg(short = 'e')]
    clear: bool,
    /// Reset the counters of the matched entries (applies to -N and -M).
    #[arg(short = 'r')]
    reset: bool,
    /// Seconds since the table was last cleared.
    #[arg(short = 'i')]
    since_clear: bool,
    /// Output format: formatted, csv or json (applies to -s and -M).
    #[arg(short = 'O', value_name = "format", default_value = "formatted")]
    output: String,
    /// CSV separator.
    #[arg(short = 'E', value_name = "separator", default_value = ",")]
    separator: String,
    /// Timestamps as seconds since the epoch.
    #[arg(short = 'I')]
    epoch: bool,
    /// Protocols as numbers.
    #[arg(short = 'u')]
    numeric: bool,
    /// Timestamps in UTC.
    #[arg(short = '0')]
    utc: bool,
    /// Every column, not only the table's aggregate.
    #[arg(short = 'a')]
    all: bool,
}

fn main() {
    let args = Args::parse();
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let res = run(&args, &mut out).and_then(|_| out.flush().map_err(Into::into));
    if let Err(e) = res {
        // `xacct -s | head` is normal use, not an error.
        if e.downcast_ref::<io::Error>().is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe) {
            return;
        }
        let _ = out.flush();
        eprintln!("xacct: {e:#}");
        std::process::exit(1);
    }
}

/// `file:<path>` reads the queries from a file, one per line.
fn query_values(v: &str) -> Result<String> {
    match v.strip_prefix("file:") {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading queries from {path}")),
        None => Ok(v.to_string()),
    }
}

fn match_spec(args: &Args, values: &str) -> Result<MatchSpec> {
    let Some(c) = &args.primitives else {
        bail!("-N or -M selected but -c has not been specified or is invalid");
    };
    Ok(MatchSpec::from_args(c, &query_values(values)?))
}

fn run(args: &Args, out: &mut impl Write) -> Result<()> {
    let format = match args.output.as_str() {
        "formatted" => OutputFormat::Formatted,
        "csv" => OutputFormat::Csv,
        "json" => OutputFormat::Json,
        other => bail!("-O: unknown output format '{other}' (formatted, csv or json)"),
    };
    let top = args
        .top
        .as_deref()
        .map(|t| -> Result<(CounterKind, Option<usize>)> {
            let (kind, n) = t.split_once(',').map_or((t, None), |(k, n)| (k, Some(n)));
            let kind =
                CounterKind::parse(kind).with_context(|| format!("-T: '{kind}' is not bytes, packets or flows"))?;
            let n = n.map(|n| n.trim().parse::<usize>().with_context(|| format!("-T: bad count '{n}'"))).transpose()?;
            Ok((kind, n))
        })
        .transpose()?;
    let opts = FormatOptions {
        format,
        separator: args.separator.clone(),
        numeric_protocols: args.numeric,
        all_fields: args.all,
        time_style: if args.epoch {
            TimeStyle::Epoch
        } else if args.utc {
            TimeStyle::Utc
        } else {
            TimeStyle::Local
        },
        stamps: false,
        event_type: None,
    };

    let req = if let Some(v) = &args.counters {
        Request::Counters { matches: match_spec(args, v)?, reset: args.reset, clear: args.clear }
    } else if let Some(v) = &args.matching {
        Request::Table { matches: Some(match_spec(args, v)?), top, reset: args.reset, clear: args.clear }
    } else if args.show {
        Request::Table { matches: None, top, reset: false, clear: args.clear }
    } else if args.status {
        Request::Status
    } else if args.since_clear {
        Request::SinceClear
    } else if args.clear {
        Request::Clear
    } else {
        bail!("no query given: use one of -s, -t, -N, -M, -e, -i (see -h)");
    };
    // Validate -n before connecting.
    let counter = match args.counter.as_deref() {
        None => Some(CounterKind::Bytes),
        Some("all") => None,
        Some(k) => {
            Some(CounterKind::parse(k).with_context(|| format!("-n: '{k}' is not bytes, packets, flows or all"))?)
        }
    };

    let reply = imt::request(&args.socket, &req)?;
    match &reply.response {
        Response::Table { .. } => {
            reply.render_table(out, |agg| TableWriter::new(agg, opts), true)?;
        }
        Response::Counters { results } => {
            let lines: Vec<imt::QueryCounters> = if args.sum {
                vec![results.iter().fold(imt::QueryCounters::default(), |a, q| imt::QueryCounters {
                    packets: a.packets + q.packets,
                    bytes: a.bytes + q.bytes,
                    flows: a.flows + q.flows,
                    entries: a.entries + q.entries,
                })]
            } else {
                results.clone()
            };
            for q in lines {
                match counter {
                    Some(k) => writeln!(out, "{}", q.get(k))?,
                    None => writeln!(out, "{} {} {} {}", q.packets, q.bytes, q.flows, q.entries)?,
                }
            }
        }
        Response::Cleared => writeln!(out, "OK: Clearing stats.")?,
        Response::SinceClear { seconds } => match seconds {
            Some(s) => writeln!(out, "{s}")?,
            None => writeln!(out, "never")?,
        },
        Response::Status(st) => st.write_text(out)?,
        Response::Error { message } => bail!("xacctd: {message}"),
    }
    Ok(())
}
