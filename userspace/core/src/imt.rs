//! The memory table's client/server protocol over its Unix socket (`imt_path`). xacct's own
//! protocol: the client talks only to xacctd.
//!
//! Exchange, one per connection:
//! 1. the client sends one [`Request`] as a JSON line;
//! 2. the server answers one [`Response`] as a JSON line;
//! 3. for [`Response::Table`] there follow exactly `entries` fixed-size binary entries (see
//!    [`encode_entry`]): the raw key words then packets, bytes, flows (u64, little-endian) and
//!    tcp_flags (u8). The client rebuilds the [`Projector`] from the header's aggregate to
//!    unpack keys, so the layout is that of the same xacct version on the same host, and a
//!    million entries cost one `memcpy`-like pass on each side instead of JSON.
//!
//! JSON for the small parts keeps them debuggable (`socat - UNIX:/tmp/collect.pipe`); every
//! decoder returns [`ImtError`] on garbage instead of panicking.

use crate::aggregate::{Aggregate, Counters, Primitive, Projector, MAX_KEY_WORDS};
use crate::format::{proto_by_name, TableWriter};
use crate::record::{Addr, Mac, Record};
use serde::{Deserialize, Serialize};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;

/// pmacct's default socket path.
pub const DEFAULT_SOCKET: &str = "/tmp/collect.pipe";

/// Longest JSON line accepted (a status with many sources is a few KiB).
const MAX_LINE: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ImtError {
    #[error("no xacctd memory table at {path}")]
    NoServer {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error("bad message: {0}")]
    Protocol(String),
    #[error("{0}")]
    Query(String),
    #[error("server: {0}")]
    Server(String),
}

/// Which counter `-n`/`-T` select.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CounterKind {
    #[default]
    Bytes,
    Packets,
    Flows,
}

impl CounterKind {
    pub fn parse(s: &str) -> Option<CounterKind> {
        match s.trim() {
            "bytes" => Some(CounterKind::Bytes),
            "packets" => Some(CounterKind::Packets),
            "flows" => Some(CounterKind::Flows),
            _ => None,
        }
    }

    pub fn of(self, c: &Counters) -> u64 {
        match self {
            CounterKind::Bytes => c.bytes,
            CounterKind::Packets => c.packets,
            CounterKind::Flows => c.flows,
        }
    }
}

/// `-c` primitives with the `-N`/`-M` queries (`;`-separated in pmacct, each a `,`-separated
/// list of values in `-c` order, `*` for any).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchSpec {
    pub primitives: Vec<String>,
    pub queries: Vec<Vec<String>>,
}

impl MatchSpec {
    /// From pmacct's `-c` and `-N`/`-M` arguments (the `file:` form already read by the caller).
    pub fn from_args(c: &str, values: &str) -> MatchSpec {
        MatchSpec {
            primitives: c.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
            queries: values
                .split([';', '\n'])
                .map(str::trim)
                .filter(|q| !q.is_empty())
                .map(|q| q.split(',').map(|v| v.trim().to_string()).collect())
                .collect(),
        }
    }

    /// Checks and compiles every query against a table's aggregate.
    pub fn compile(&self, agg: &Aggregate) -> Result<Vec<Pattern>, ImtError> {
        let mut prims = Vec::with_capacity(self.primitives.len());
        for name in &self.primitives {
            let p = Primitive::from_name(name)
                .ok_or_else(|| ImtError::Query(format!("unknown primitive '{name}' in -c")))?;
            if !agg.has(p) {
                return Err(ImtError::Query(format!("'{name}' is not in this table's aggregate ({agg})")));
            }
            prims.push(p);
        }
        if prims.is_empty() {
            return Err(ImtError::Query("-N or -M selected but -c has not been specified or is invalid".into()));
        }
        self.queries.iter().map(|q| Pattern::parse(&prims, q)).collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Addr(Addr),
    Mac(Mac),
    Num(u64),
}

/// One compiled `-N`/`-M` query: the values an entry's primitives must equal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    tests: Vec<(Primitive, Want)>,
}

impl Pattern {
    /// `values[i]` is the value for `prims[i]`; `*` matches anything.
    pub fn parse(prims: &[Primitive], values: &[String]) -> Result<Pattern, ImtError> {
        if values.len() != prims.len() {
            return Err(ImtError::Query(format!(
                "query '{}' has {} values for {} primitives in -c",
                values.join(","),
                values.len(),
                prims.len()
            )));
        }
        let mut tests = Vec::new();
        for (&p, v) in prims.iter().zip(values) {
            if v == "*" {
                continue;
            }
            let bad = |what: &str| ImtError::Query(format!("{p}: invalid {what}: '{v}'"));
            let want = match p {
                Primitive::SrcHost
                | Primitive::DstHost
                | Primitive::SumHost
                | Primitive::SrcNet
                | Primitive::DstNet
                | Primitive::SumNet => {
                    Want::Addr(Addr::from(v.parse::<std::net::IpAddr>().map_err(|_| bad("IP address"))?))
                }
                Primitive::SrcMac | Primitive::DstMac | Primitive::SumMac => {
                    Want::Mac(parse_mac(v).ok_or_else(|| bad("MAC address"))?)
                }
                Primitive::Proto => Want::Num(match proto_by_name(v) {
                    Some(n) => n.into(),
                    None => v.parse::<u8>().map_err(|_| bad("protocol"))?.into(),
                }),
                Primitive::Etype => {
                    let h = v.trim_start_matches("0x");
                    Want::Num(u16::from_str_radix(h, 16).map_err(|_| bad("ethertype"))?.into())
                }
                // Labels no record carried yet match nothing (u32::MAX is never interned).
                Primitive::Label => Want::Num(crate::tag::labels().get(v).map_or(u64::MAX, u64::from)),
                Primitive::TcpFlags | Primitive::Flows | Primitive::None => {
                    return Err(ImtError::Query(format!("{p} cannot be matched")));
                }
                _ => Want::Num(v.parse::<u64>().map_err(|_| bad("number"))?),
            };
            tests.push((p, want));
        }
        Ok(Pattern { tests })
    }

    /// `r` is an unpacked key.
    pub fn matches(&self, r: &Record) -> bool {
        self.tests.iter().all(|(p, want)| match *want {
            Want::Addr(a) => {
                a == match p {
                    Primitive::SrcHost | Primitive::SumHost => r.src_ip,
                    Primitive::DstHost => r.dst_ip,
                    Primitive::SrcNet | Primitive::SumNet => r.src_net,
                    _ => r.dst_net,
                }
            }
            Want::Mac(m) => m == if *p == Primitive::DstMac { r.dst_mac } else { r.src_mac },
            Want::Num(n) => {
                n == match p {
                    Primitive::Tag => r.tag,
                    Primitive::Tag2 => r.tag2,
                    Primitive::Label => r.label.into(),
                    Primitive::Vlan => r.vlan.into(),
                    Primitive::SrcAs | Primitive::SumAs => r.src_as.into(),
                    Primitive::DstAs => r.dst_as.into(),
                    Primitive::SrcMask => r.src_mask.into(),
                    Primitive::DstMask => r.dst_mask.into(),
                    Primitive::SrcPort | Primitive::SumPort => r.src_port.into(),
                    Primitive::DstPort => r.dst_port.into(),
                    Primitive::Proto => r.proto.into(),
                    Primitive::Tos => r.tos.into(),
                    Primitive::Etype => r.etype.into(),
                    Primitive::InIface => r.in_iface.into(),
                    Primitive::OutIface => r.out_iface.into(),
                    Primitive::MplsLabelTop => r.mpls_top.into(),
                    Primitive::MplsLabelBottom => r.mpls_bottom.into(),
                    Primitive::MplsStackDepth => r.mpls_depth.into(),
                    _ => return false,
                }
            }
        })
    }
}

fn parse_mac(s: &str) -> Option<Mac> {
    let mut m = [0u8; 6];
    let mut parts = s.split([':', '-']);
    for b in m.iter_mut() {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(m)
}

/// What the client asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "query", rename_all = "snake_case")]
pub enum Request {
    /// `-s` (no matches) or `-M`: entries, optionally top-N (`-T`), then reset matched (`-r`)
    /// and/or clear the table (`-e`).
    Table { matches: Option<MatchSpec>, top: Option<(CounterKind, Option<usize>)>, reset: bool, clear: bool },
    /// `-N`: per-query counter sums.
    Counters { matches: MatchSpec, reset: bool, clear: bool },
    /// `-e` alone.
    Clear,
    /// `-i`.
    SinceClear,
    /// `-t`.
    Status,
}

/// Sums for one `-N` query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct QueryCounters {
    pub packets: u64,
    pub bytes: u64,
    pub flows: u64,
    /// Entries that matched.
    pub entries: u64,
}

impl QueryCounters {
    pub fn get(&self, k: CounterKind) -> u64 {
        match k {
            CounterKind::Bytes => self.bytes,
            CounterKind::Packets => self.packets,
            CounterKind::Flows => self.flows,
        }
    }
}

/// `xacct -t`: the plugin's table and the daemon's sources.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Status {
    pub plugin: String,
    pub aggregate: String,
    pub entries: u64,
    pub table_bytes: u64,
    pub since_clear: Option<u64>,
    pub accounted: u64,
    pub filtered: u64,
    pub refreshes: u64,
    pub sources: Vec<SourceStatus>,
    /// Every plugin of the daemon with its counters (SQL plugins: rows written, spool,
    /// replays, failures, write latency percentiles).
    #[serde(default)]
    pub plugins: Vec<PluginStatus>,
}

/// One plugin's counters, as `(name, value)` pairs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PluginStatus {
    pub name: String,
    pub kind: String,
    pub counters: Vec<(String, u64)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SourceStatus {
    pub name: String,
    pub received: u64,
    pub kernel_dropped: u64,
    pub malformed: Vec<(String, u64)>,
    pub non_ip: u64,
    pub queue_dropped: u64,
    pub processed: u64,
    pub finished: bool,
    /// Later IP fragments accounted with ports 0 (their first fragment never came).
    #[serde(default)]
    pub fragment_orphans: u64,
    /// AF_XDP socket counters (zero for other sources).
    #[serde(default)]
    pub fragments_untracked: u64,
    #[serde(default)]
    pub flows_untracked: u64,
    #[serde(default)]
    pub xsk_rx_ring_full: u64,
    #[serde(default)]
    pub xsk_fill_ring_empty: u64,
    #[serde(default)]
    pub xsk_rx_dropped: u64,
    #[serde(default)]
    pub xsk_rx_invalid_descs: u64,
    /// Counters of the source kind (the XDP program's), by name.
    #[serde(default)]
    pub extra: Vec<(String, u64)>,
}

impl Status {
    /// Readable lines for operators (pmacct's `-t` bucket dump is of no use to them).
    pub fn write_text(&self, w: &mut impl Write) -> io::Result<()> {
        writeln!(w, "plugin: {} (memory)", self.plugin)?;
        writeln!(w, "aggregate: {}", self.aggregate)?;
        writeln!(w, "entries: {}", self.entries)?;
        writeln!(w, "table memory: {} bytes", self.table_bytes)?;
        match self.since_clear {
            Some(s) => writeln!(w, "since last clear: {s} s")?,
            None => writeln!(w, "since last clear: never")?,
        }
        writeln!(w, "records accounted: {}", self.accounted)?;
        writeln!(w, "records filtered out: {}", self.filtered)?;
        writeln!(w, "refreshes: {}", self.refreshes)?;
        for s in &self.sources {
            writeln!(w, "source {}:", s.name)?;
            writeln!(w, "  received: {}", s.received)?;
            writeln!(w, "  kernel dropped: {}", s.kernel_dropped)?;
            let total: u64 = s.malformed.iter().map(|(_, n)| n).sum();
            writeln!(w, "  malformed: {total}")?;
            for (why, n) in &s.malformed {
                writeln!(w, "    {why}: {n}")?;
            }
            writeln!(w, "  non-IP: {}", s.non_ip)?;
            writeln!(w, "  queue dropped: {}", s.queue_dropped)?;
            writeln!(w, "  fragment orphans: {}", s.fragment_orphans)?;
            if s.fragments_untracked + s.flows_untracked > 0 {
                writeln!(w, "  fragments untracked (table full): {}", s.fragments_untracked)?;
                writeln!(w, "  flows untracked (table full): {}", s.flows_untracked)?;
            }
            let xsk = [s.xsk_rx_ring_full, s.xsk_fill_ring_empty, s.xsk_rx_dropped, s.xsk_rx_invalid_descs];
            if s.name.contains("AF_XDP") || xsk.iter().any(|n| *n > 0) {
                writeln!(w, "  AF_XDP rx ring full: {}", s.xsk_rx_ring_full)?;
                writeln!(w, "  AF_XDP fill ring empty: {}", s.xsk_fill_ring_empty)?;
                writeln!(w, "  AF_XDP rx dropped: {}", s.xsk_rx_dropped)?;
                writeln!(w, "  AF_XDP invalid descriptors: {}", s.xsk_rx_invalid_descs)?;
            }
            for (k, v) in &s.extra {
                writeln!(w, "  {k}: {v}")?;
            }
            writeln!(w, "  processed: {}", s.processed)?;
            writeln!(w, "  finished: {}", if s.finished { "yes" } else { "no" })?;
        }
        for p in &self.plugins {
            writeln!(w, "plugin {} ({}):", p.name, p.kind)?;
            for (k, v) in &p.counters {
                writeln!(w, "  {k}: {v}")?;
            }
        }
        Ok(())
    }
}

/// The server's answer line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Response {
    /// Followed by `entries` binary entries.
    Table {
        aggregate: String,
        with_bin: bool,
        entries: u64,
        /// The server's label names by id, when the aggregate has `label` (ids are the
        /// daemon's; the client maps them to names).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        labels: Vec<String>,
    },
    Counters {
        results: Vec<QueryCounters>,
    },
    Cleared,
    SinceClear {
        seconds: Option<u64>,
    },
    Status(Status),
    Error {
        message: String,
    },
}

/// Writes one JSON line.
pub fn write_line<T: Serialize>(w: &mut impl Write, msg: &T) -> Result<(), ImtError> {
    serde_json::to_writer(&mut *w, msg).map_err(|e| ImtError::Protocol(e.to_string()))?;
    w.write_all(b"\n")?;
    Ok(())
}

/// Reads one JSON line (at most 1 MiB).
pub fn read_line<T: for<'de> Deserialize<'de>>(r: &mut impl BufRead) -> Result<T, ImtError> {
    let mut line = Vec::new();
    r.take(MAX_LINE).read_until(b'\n', &mut line)?;
    if line.last() != Some(&b'\n') {
        return Err(ImtError::Protocol(if line.is_empty() {
            "connection closed before a message".into()
        } else {
            "message line too long or truncated".into()
        }));
    }
    serde_json::from_slice(&line).map_err(|e| ImtError::Protocol(e.to_string()))
}

/// Bytes of one binary entry for keys of `words` words.
pub fn entry_size(words: usize) -> usize {
    words * 8 + 25
}

/// Appends one entry.
pub fn encode_entry(buf: &mut Vec<u8>, key: &[u64], c: &Counters) {
    for w in key {
        buf.extend_from_slice(&w.to_le_bytes());
    }
    buf.extend_from_slice(&c.packets.to_le_bytes());
    buf.extend_from_slice(&c.bytes.to_le_bytes());
    buf.extend_from_slice(&c.flows.to_le_bytes());
    buf.push(c.tcp_flags);
}

/// Decodes one entry of `entry_size(key.len())` bytes into `key`; None on a short buffer.
pub fn decode_entry(buf: &[u8], key: &mut [u64]) -> Option<Counters> {
    let mut chunks = buf.chunks_exact(8);
    let mut next = || chunks.next().and_then(|c| c.try_into().ok()).map(u64::from_le_bytes);
    for w in key.iter_mut() {
        *w = next()?;
    }
    let (packets, bytes, flows) = (next()?, next()?, next()?);
    let tcp_flags = *buf.get(key.len() * 8 + 24)?;
    Some(Counters { packets, bytes, flows, tcp_flags, ..Counters::default() })
}

/// A connected exchange: the server's answer and, for tables, the stream of entries.
pub struct Reply {
    pub response: Response,
    reader: BufReader<std::os::unix::net::UnixStream>,
}

/// Sends `req` to the memory table at `socket` and reads the answer line.
pub fn request(socket: &Path, req: &Request) -> Result<Reply, ImtError> {
    let stream = std::os::unix::net::UnixStream::connect(socket)
        .map_err(|source| ImtError::NoServer { path: socket.display().to_string(), source })?;
    let mut w = io::BufWriter::new(stream.try_clone()?);
    write_line(&mut w, req)?;
    w.flush()?;
    let mut reader = BufReader::with_capacity(1 << 16, stream);
    let response: Response = read_line(&mut reader)?;
    if let Response::Error { message } = &response {
        return Err(ImtError::Server(message.clone()));
    }
    Ok(Reply { response, reader })
}

impl Reply {
    /// Renders a [`Response::Table`] reply with `writer`'s format: header, rows, and the
    /// formatted trailer when `trailer`. Returns the number of entries.
    pub fn render_table(
        mut self,
        out: &mut impl Write,
        mk_writer: impl FnOnce(&Aggregate) -> TableWriter,
        trailer: bool,
    ) -> Result<u64, ImtError> {
        render_table(&self.response, &mut self.reader, out, mk_writer, trailer)
    }
}

/// [`Reply::render_table`] over any byte stream (the entries after the answer line), so that
/// the decoding is testable and fuzzed without a socket. The entry count comes from the
/// server: entries are read one at a time, so a count larger than the stream only ends in
/// an error.
pub fn render_table(
    response: &Response,
    reader: &mut impl Read,
    out: &mut impl Write,
    mk_writer: impl FnOnce(&Aggregate) -> TableWriter,
    trailer: bool,
) -> Result<u64, ImtError> {
    let Response::Table { aggregate, with_bin, entries, labels } = response else {
        return Err(ImtError::Protocol("expected a table".into()));
    };
    let agg = Aggregate::parse(aggregate).map_err(|e| ImtError::Protocol(format!("aggregate '{aggregate}': {e}")))?;
    let proj = Projector::new(&agg, *with_bin);
    let words = proj.words();
    let mut tw = mk_writer(&agg);
    tw.header(out)?;
    let size = entry_size(words);
    let mut buf = vec![0u8; size];
    let mut key = [0u64; MAX_KEY_WORDS];
    for _ in 0..*entries {
        reader.read_exact(&mut buf).map_err(|e| ImtError::Protocol(format!("truncated entry stream: {e}")))?;
        let c = decode_entry(&buf, &mut key[..words]).ok_or_else(|| ImtError::Protocol("short entry".into()))?;
        if labels.is_empty() {
            tw.row_of(out, &proj, &key[..words], &c)?;
        } else {
            // Label ids are the daemon's: name them, then take this process's id.
            tw.row_of_mapped(out, &proj, &key[..words], &c, |r| {
                if r.label != 0 {
                    let name = labels.get(r.label as usize).map_or("", String::as_str);
                    r.label = crate::tag::labels().intern(name);
                }
            })?;
        }
    }
    if trailer {
        tw.trailer(out, *entries)?;
    }
    Ok(*entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_roundtrip() {
        let req = Request::Table {
            matches: Some(MatchSpec::from_args("src_host,dst_port", "10.0.0.1,80;*,443")),
            top: Some((CounterKind::Packets, Some(3))),
            reset: true,
            clear: false,
        };
        let mut buf = Vec::new();
        write_line(&mut buf, &req).unwrap();
        let back: Request = read_line(&mut &buf[..]).unwrap();
        assert_eq!(back, req);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for g in [&b""[..], b"{", b"\xff\xfe\n", b"{\"query\":\"nope\"}\n", b"[1,2,3]\n"] {
            assert!(read_line::<Request>(&mut &g[..]).is_err());
            assert!(read_line::<Response>(&mut &g[..]).is_err());
        }
        let mut key = [0u64; 3];
        assert!(decode_entry(&[1, 2, 3], &mut key).is_none());
        assert!(decode_entry(&[0; 48], &mut key).is_none());
    }

    #[test]
    fn table_renders_from_any_stream_and_a_short_one_is_an_error() {
        let agg = Aggregate::parse("src_host,dst_port").unwrap();
        let proj = Projector::new(&agg, false);
        let r = Record {
            src_ip: Addr::from("10.0.0.1".parse::<std::net::IpAddr>().unwrap()),
            dst_port: 80,
            ..Record::default()
        };
        let (mut k, mut k2) = ([0u64; MAX_KEY_WORDS], [0u64; MAX_KEY_WORDS]);
        proj.pack(&r, 0, &mut k, &mut k2);
        let mut stream = Vec::new();
        for _ in 0..2 {
            encode_entry(
                &mut stream,
                &k[..proj.words()],
                &Counters { packets: 1, bytes: 60, flows: 0, tcp_flags: 0, ..Counters::default() },
            );
        }
        let resp = Response::Table { aggregate: agg.to_string(), with_bin: false, entries: 2, labels: Vec::new() };
        let opts = crate::format::FormatOptions { format: crate::config::OutputFormat::Csv, ..Default::default() };
        let mut out = Vec::new();
        let n = render_table(&resp, &mut &stream[..], &mut out, |a| TableWriter::new(a, opts.clone()), false).unwrap();
        assert_eq!(n, 2);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().filter(|l| l.contains("10.0.0.1") && l.contains("80")).count(), 2, "{text}");
        // A server claiming more entries than it sends: an error, not a hang or a huge buffer.
        let resp =
            Response::Table { aggregate: agg.to_string(), with_bin: false, entries: u64::MAX, labels: Vec::new() };
        let err = render_table(&resp, &mut &stream[..], &mut Vec::new(), |a| TableWriter::new(a, opts), false);
        assert!(matches!(err, Err(ImtError::Protocol(m)) if m.contains("truncated")));
    }

    #[test]
    fn entry_roundtrip() {
        let c = Counters { packets: 3, bytes: u64::MAX, flows: 1, tcp_flags: 0x12, ..Counters::default() };
        let mut buf = Vec::new();
        encode_entry(&mut buf, &[7, 8], &c);
        assert_eq!(buf.len(), entry_size(2));
        let mut key = [0u64; 2];
        assert_eq!(decode_entry(&buf, &mut key), Some(c));
        assert_eq!(key, [7, 8]);
    }

    #[test]
    fn patterns() {
        let agg = Aggregate::parse("src_host,dst_port,proto,src_mac").unwrap();
        let spec = MatchSpec::from_args("src_host,proto", "10.0.0.1,tcp;*,17");
        let pats = spec.compile(&agg).unwrap();
        let r = Record { src_ip: Addr::V4([10, 0, 0, 1]), proto: 6, ..Record::default() };
        assert!(pats[0].matches(&r));
        assert!(!pats[1].matches(&r));
        assert!(pats[1].matches(&Record { proto: 17, ..r }));
        let mac = MatchSpec::from_args("src_mac", "00:11:22:33:44:5g").compile(&agg);
        assert!(matches!(mac, Err(ImtError::Query(_))));
        assert!(MatchSpec::from_args("dst_host", "1.2.3.4").compile(&agg).is_err());
        assert!(MatchSpec::from_args("src_host,proto", "1.2.3.4").compile(&agg).is_err());
    }
}
