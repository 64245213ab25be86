//! The memory plugin served over a real Unix socket, queried with the client library the
//! `xacct` binary uses. The Harvest is a test double: a table the test fills.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use xacct_core::aggregate::{Aggregate, Projector, Table, MAX_KEY_WORDS};
use xacct_core::config::{OutputFormat, PluginConfig, PluginKind};
use xacct_core::format::{FormatOptions, TableWriter};
use xacct_core::imt::{self, CounterKind, MatchSpec, Request, Response};
use xacct_core::stats::{PluginStats, SourceStats};
use xacct_core::{Addr, Record};
use xacct_plugins::{Harvest, PluginContext};

/// Hands over (and empties) a table the test fills, like workers handing over their shards.
struct FakeHarvest(Arc<Mutex<Table>>);

impl Harvest for FakeHarvest {
    fn harvest_into(&mut self, into: &mut Table) {
        let mut t = self.0.lock().unwrap();
        into.merge_from(&t);
        t.clear();
    }
}

struct Running {
    socket: PathBuf,
    pending: Arc<Mutex<Table>>,
    proj: Projector,
    stop: crossbeam_channel::Sender<()>,
    thread: std::thread::JoinHandle<Result<(), xacct_plugins::PluginError>>,
    _dir: tempfile::TempDir,
}

fn config(agg: &Aggregate, imt_path: PathBuf) -> PluginConfig {
    PluginConfig { aggregate: agg.clone(), imt_path, ..PluginConfig::new("test", PluginKind::Memory) }
}

fn start(aggregate: &str) -> Running {
    let agg = Aggregate::parse(aggregate).unwrap();
    let proj = Projector::new(&agg, false);
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("collect.pipe");
    std::fs::write(&socket, b"stale").unwrap(); // a stale file must not prevent binding
    let pending = Arc::new(Mutex::new(Table::with_words(proj.words())));
    let (stop, shutdown) = crossbeam_channel::bounded(1);
    let src = Arc::new(SourceStats::default());
    src.received.store(42, std::sync::atomic::Ordering::Relaxed);
    let ctx = PluginContext {
        config: config(&agg, socket.clone()),
        projector: proj.clone(),
        harvest: Box::new(FakeHarvest(pending.clone())),
        stats: Arc::new(PluginStats::default()),
        sources: vec![("eth0".into(), src)],
        peers: vec![],
        shutdown,
        tag_map: None,
        datagrams: None,
        samples: None,
    };
    let thread = std::thread::spawn(move || xacct_plugins::memory::run_memory(ctx));
    let t0 = Instant::now();
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(10), "server did not come up");
        std::thread::sleep(Duration::from_millis(10));
    }
    Running { socket, pending, proj, stop, thread, _dir: dir }
}

impl Running {
    fn add(&self, r: &Record) {
        let (mut k, mut k2) = ([0; MAX_KEY_WORDS], [0; MAX_KEY_WORDS]);
        let n = self.proj.pack(r, 0, &mut k, &mut k2);
        let mut t = self.pending.lock().unwrap();
        t.add(&k, &self.proj.counters(r));
        if n == 2 {
            t.add(&k2, &self.proj.counters(r));
        }
    }

    fn table(&self, req: Request, format: OutputFormat) -> String {
        let reply = imt::request(&self.socket, &req).unwrap();
        let mut out = Vec::new();
        let opts = FormatOptions { format, ..FormatOptions::default() };
        reply.render_table(&mut out, |a| TableWriter::new(a, opts), true).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn counters(&self, c: &str, q: &str, reset: bool) -> Vec<imt::QueryCounters> {
        let req = Request::Counters { matches: MatchSpec::from_args(c, q), reset, clear: false };
        match imt::request(&self.socket, &req).unwrap().response {
            Response::Counters { results } => results,
            other => panic!("unexpected {other:?}"),
        }
    }

    fn stop(self) {
        self.stop.send(()).unwrap();
        self.thread.join().unwrap().unwrap();
        assert!(!Path::new(&self.socket).exists(), "socket file must be removed on exit");
    }
}

fn rec(src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16, proto: u8, bytes: u64) -> Record {
    Record {
        src_ip: Addr::V4(src),
        dst_ip: Addr::V4(dst),
        src_port: sp,
        dst_port: dp,
        proto,
        packets: 1,
        bytes,
        ..Record::default()
    }
}

fn sorted_rows(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s.lines().map(str::to_string).collect();
    v.sort();
    v
}

const FIVE: &str = "src_host,dst_host,src_port,dst_port,proto";

#[test]
fn queries_over_the_socket() {
    let srv = start(FIVE);
    for _ in 0..3 {
        srv.add(&rec([10, 0, 0, 1], [192, 168, 1, 2], 1234, 80, 6, 100));
    }
    srv.add(&rec([10, 0, 0, 1], [192, 168, 1, 2], 0, 0, 47, 44));
    srv.add(&rec([192, 168, 1, 2], [10, 0, 0, 1], 53, 5353, 17, 78));
    srv.add(&rec([172, 16, 5, 4], [10, 0, 0, 1], 0, 0, 1, 28));

    // -s, formatted: every record handed over so far is in the answer (harvest before answering).
    let s = srv.table(Request::Table { matches: None, top: None, reset: false, clear: false }, OutputFormat::Formatted);
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(lines[0], "SRC_IP                                         DST_IP                                         SRC_PORT  DST_PORT  PROTOCOL    PACKETS               BYTES");
    assert_eq!(&lines[lines.len() - 2..], ["", "For a total of: 4 entries"]);
    assert!(lines.contains(&"10.0.0.1                                       192.168.1.2                                    1234      80        tcp         3                     300"));

    // -s -O csv
    let csv = srv.table(Request::Table { matches: None, top: None, reset: false, clear: false }, OutputFormat::Csv);
    assert_eq!(
        sorted_rows(&csv),
        [
            "10.0.0.1,192.168.1.2,0,0,gre,1,44",
            "10.0.0.1,192.168.1.2,1234,80,tcp,3,300",
            "172.16.5.4,10.0.0.1,0,0,icmp,1,28",
            "192.168.1.2,10.0.0.1,53,5353,udp,1,78",
            "SRC_IP,DST_IP,SRC_PORT,DST_PORT,PROTOCOL,PACKETS,BYTES",
        ]
    );

    // -N with two queries, and a miss.
    let n = srv.counters("src_host", "10.0.0.1;192.168.1.2;1.2.3.4", false);
    assert_eq!((n[0].packets, n[0].bytes, n[0].entries), (4, 344, 2));
    assert_eq!((n[1].packets, n[1].bytes), (1, 78));
    assert_eq!(n[2].bytes, 0);

    // -M with a wildcard and a protocol name.
    let m = srv.table(
        Request::Table {
            matches: Some(MatchSpec::from_args("src_host,proto", "*,tcp;172.16.5.4,*")),
            top: None,
            reset: false,
            clear: false,
        },
        OutputFormat::Csv,
    );
    assert_eq!(sorted_rows(&m)[..2], ["10.0.0.1,192.168.1.2,1234,80,tcp,3,300", "172.16.5.4,10.0.0.1,0,0,icmp,1,28"]);
    assert_eq!(m.lines().count(), 3);

    // -T packets,2 then -T bytes: descending.
    let t = srv.table(
        Request::Table { matches: None, top: Some((CounterKind::Packets, Some(2))), reset: false, clear: false },
        OutputFormat::Csv,
    );
    assert_eq!(t.lines().count(), 3);
    assert_eq!(t.lines().nth(1).unwrap(), "10.0.0.1,192.168.1.2,1234,80,tcp,3,300");
    let t = srv.table(
        Request::Table { matches: None, top: Some((CounterKind::Bytes, None)), reset: false, clear: false },
        OutputFormat::Csv,
    );
    let bytes: Vec<u64> = t.lines().skip(1).map(|l| l.rsplit(',').next().unwrap().parse().unwrap()).collect();
    assert_eq!(bytes, [300, 78, 44, 28]);

    // A bad query is answered with an error, and the server keeps serving.
    let bad = imt::request(
        &srv.socket,
        &Request::Counters { matches: MatchSpec::from_args("src_mac", "zz"), reset: false, clear: false },
    );
    assert!(matches!(bad, Err(imt::ImtError::Server(_))), "{:?}", bad.err());

    // -r resets the matched entries only.
    assert_eq!(srv.counters("src_host", "10.0.0.1", true)[0].bytes, 344);
    assert_eq!(srv.counters("src_host", "10.0.0.1", false)[0].bytes, 0);
    assert_eq!(srv.counters("src_host", "192.168.1.2", false)[0].bytes, 78);

    // New records arrive after the reset and are counted again.
    srv.add(&rec([10, 0, 0, 1], [192, 168, 1, 2], 1234, 80, 6, 100));
    assert_eq!(srv.counters("src_host", "10.0.0.1", false)[0].bytes, 100);

    // -t
    let st = match imt::request(&srv.socket, &Request::Status).unwrap().response {
        Response::Status(st) => st,
        other => panic!("{other:?}"),
    };
    assert_eq!(st.entries, 3);
    assert_eq!(st.sources[0].received, 42);
    assert_eq!(st.since_clear, None);
    let mut text = Vec::new();
    st.write_text(&mut text).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("entries: 3\n") && text.contains("source eth0:\n  received: 42\n"), "{text}");

    // -i before and after -e.
    let since = |srv: &Running| match imt::request(&srv.socket, &Request::SinceClear).unwrap().response {
        Response::SinceClear { seconds } => seconds,
        other => panic!("{other:?}"),
    };
    assert_eq!(since(&srv), None);
    assert_eq!(imt::request(&srv.socket, &Request::Clear).unwrap().response, Response::Cleared);
    assert_eq!(since(&srv), Some(0));
    let s = srv.table(Request::Table { matches: None, top: None, reset: false, clear: false }, OutputFormat::Formatted);
    assert!(s.ends_with("\nFor a total of: 0 entries\n"), "{s}");

    // Garbage on the socket does not take the server down.
    {
        use std::io::Write;
        let mut c = std::os::unix::net::UnixStream::connect(&srv.socket).unwrap();
        c.write_all(b"\x00\xffnot json\n").unwrap();
    }
    assert_eq!(srv.counters("src_host", "10.0.0.1", false)[0].bytes, 0);
    srv.stop();
}

#[test]
fn sum_host_both_directions() {
    let srv = start("sum_host");
    srv.add(&rec([10, 0, 0, 1], [10, 0, 0, 2], 1, 2, 6, 100));
    let csv = srv.table(Request::Table { matches: None, top: None, reset: false, clear: false }, OutputFormat::Csv);
    assert_eq!(sorted_rows(&csv), ["10.0.0.1,1,100", "10.0.0.2,1,100", "SRC_IP,PACKETS,BYTES"]);
    assert_eq!(srv.counters("sum_host", "10.0.0.2", false)[0].packets, 1);
    srv.stop();
}

#[test]
fn missing_socket_is_a_clear_error() {
    let e = imt::request(Path::new("/nonexistent/xacct.pipe"), &Request::Status).err().unwrap();
    assert!(e.to_string().starts_with("no xacctd memory table at /nonexistent/xacct.pipe"), "{e}");
}

/// Not an assertion: prints how long a 1,000,000-entry `-s -O csv` takes (request, transfer,
/// rendering to a buffer) in this build profile.
#[test]
fn million_entries_csv_timing() {
    let srv = start(FIVE);
    {
        let (mut k, mut k2) = ([0; MAX_KEY_WORDS], [0; MAX_KEY_WORDS]);
        let mut t = srv.pending.lock().unwrap();
        for i in 0..1_000_000u32 {
            let b = i.to_be_bytes();
            let r = rec([10, b[1], b[2], b[3]], [192, 168, 0, 1], 1024 + (i % 1000) as u16, 443, 6, 1500);
            srv.proj.pack(&r, 0, &mut k, &mut k2);
            t.add(&k, &srv.proj.counters(&r));
        }
    }
    let t0 = Instant::now();
    let reply =
        imt::request(&srv.socket, &Request::Table { matches: None, top: None, reset: false, clear: false }).unwrap();
    let mut out = Vec::with_capacity(64 << 20);
    let opts = FormatOptions { format: OutputFormat::Csv, ..FormatOptions::default() };
    let n = reply.render_table(&mut out, |a| TableWriter::new(a, opts), true).unwrap();
    let el = t0.elapsed();
    assert_eq!(n, 1_000_000);
    assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 1_000_001);
    println!("-s -O csv over {n} entries: {el:?} ({} bytes of CSV)", out.len());
    srv.stop();
}

/// A key of 7 words is stored in an 8-word table; the answer must still carry 7-word keys
/// (it carried 8, and the client read every entry after the first shifted).
#[test]
fn keys_wider_than_their_width_class_are_sent_at_their_own_width() {
    let agg = "src_mac,dst_mac,src_host,dst_host,src_port,dst_port,proto";
    let srv = start(agg);
    assert_eq!(srv.proj.words(), 7);
    for i in 1..=20u8 {
        let mut r = rec([10, 0, 0, i], [192, 168, 1, 2], 1000 + u16::from(i), 80, 6, 100);
        r.src_mac = [2, 0, 0, 0, 0, i];
        srv.add(&r);
    }
    let csv = srv.table(Request::Table { matches: None, top: None, reset: false, clear: false }, OutputFormat::Csv);
    let rows = sorted_rows(&csv);
    assert_eq!(rows.len(), 21, "{csv}");
    for i in 1..=20u8 {
        let want = format!(
            "02:00:00:00:00:{i:02x},00:00:00:00:00:00,10.0.0.{i},192.168.1.2,{},80,tcp,1,100",
            1000 + u16::from(i)
        );
        assert!(rows.contains(&want), "{want} missing from:\n{csv}");
    }
    // Top-N goes through the same keys.
    let top = srv.table(
        Request::Table { matches: None, top: Some((CounterKind::Bytes, Some(5))), reset: false, clear: false },
        OutputFormat::Csv,
    );
    assert_eq!(top.lines().count(), 6, "{top}");
    assert!(top.lines().skip(1).all(|l| l.ends_with(",tcp,1,100")), "{top}");
    srv.stop();
}
