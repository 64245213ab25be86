//! What the daemon's integration tests share: the binaries, a guard around a running daemon,
//! the memory-table client, and readers for its CSV and for the counters xacctd logs.

// Each test binary compiles its own copy of this module and uses only part of it.
#![allow(dead_code)]

pub mod collect;
pub mod netns;
pub mod proxy;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use xacct_perf::traffic::{FrameSpec, L3, L4};

/// The arguments of a summary query as CSV (`-s -O csv`), for `xacct` and pmacct's `pmacct`.
pub const SUMMARY_CSV: [&str; 3] = ["-s", "-O", "csv"];

pub fn xacctd_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_xacctd"))
}

/// The client is another package's binary; it sits in the same target directory.
pub fn xacct_bin() -> PathBuf {
    let p = xacctd_bin().with_file_name("xacct");
    assert!(
        p.exists(),
        "{} missing: run `cargo build -p xacct` first (CI builds the workspace before testing)",
        p.display()
    );
    p
}

fn under_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// Announces that the caller skips its test because of `reason`; under CI=true nothing may be
/// skipped, so there it fails instead.
pub fn skip(reason: &str) {
    assert!(!under_ci(), "cannot skip under CI=true: {reason}");
    eprintln!("SKIP: {reason}");
}

/// Sends `sig` to `pid` (also a daemon that is not our child, as after `-D`).
pub fn signal(pid: u32, sig: Signal) {
    let raw = i32::try_from(pid).unwrap_or_else(|_| panic!("pid {pid} out of range"));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), sig).unwrap_or_else(|e| panic!("{sig} to {pid}: {e}"));
}

/// Polls the file at `path` until it contains `needle`, failing after `timeout` or as soon as
/// `exited` reports that the process writing it is gone. Returns the file's text.
fn poll_file(path: &Path, needle: &str, timeout: Duration, mut exited: impl FnMut() -> Option<ExitStatus>) -> String {
    let t = Instant::now();
    loop {
        let s = std::fs::read_to_string(path).unwrap_or_default();
        if s.contains(needle) {
            return s;
        }
        if let Some(st) = exited() {
            panic!("process exited ({st}) before '{needle}' appeared in {}:\n{s}", path.display());
        }
        assert!(t.elapsed() < timeout, "timed out waiting for '{needle}' in {}:\n{s}", path.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Writes the config file `conf` for reading the savefile `pcap`: `pcap_savefile`, then the
/// lines `rest`.
pub fn savefile_conf(conf: &Path, pcap: &Path, rest: &str) {
    std::fs::write(conf, format!("pcap_savefile: {}\n{rest}", pcap.display()))
        .unwrap_or_else(|e| panic!("write {}: {e}", conf.display()));
}

/// Waits until the file at `path` contains `needle` (for a log whose writer is not a [`Daemon`]).
pub fn wait_file(path: &Path, needle: &str, timeout: Duration) -> String {
    poll_file(path, needle, timeout, || None)
}

/// A running daemon (xacctd, or pmacctd as the reference) with its stderr in a log file. If a
/// failing assertion unwinds past it, it is stopped, so that no process outlives its test.
pub struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    /// `xacctd -f conf`, logging to `log`.
    pub fn start(conf: &Path, log: &Path) -> Daemon {
        let mut cmd = Command::new(xacctd_bin());
        cmd.arg("-f").arg(conf);
        Daemon::spawn(cmd, log)
    }

    /// Runs `cmd` with stderr to `log` and stdout next to it (`log` with the extension `out`).
    pub fn spawn(mut cmd: Command, log: &Path) -> Daemon {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(log.with_extension("out")).expect("stdout file"))
            .stderr(std::fs::File::create(log).expect("log file"))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        Daemon { child, log: log.to_path_buf() }
    }

    fn id(&self) -> u32 {
        self.child.id()
    }

    /// The daemon's process id (for signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The log so far.
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `needle`; fails early if the daemon exits first.
    pub fn wait_log(&mut self, needle: &str, timeout: Duration) {
        let child = &mut self.child;
        poll_file(&self.log, needle, timeout, || child.try_wait().ok().flatten());
    }

    /// Waits for the daemon to exit by itself, which it must do with status 0; the whole log.
    pub fn wait_exit(mut self, timeout: Duration) -> String {
        let t = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().expect("wait for the daemon") {
                let log = self.log();
                assert!(st.success(), "daemon exit status {st}; log:\n{log}");
                return log;
            }
            assert!(t.elapsed() < timeout, "daemon did not exit within {timeout:?}; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, after which the daemon must exit with status 0; the whole log.
    pub fn terminate(self) -> String {
        signal(self.id(), Signal::SIGTERM);
        self.wait_exit(Duration::from_secs(20))
    }
}

impl Drop for Daemon {
    /// SIGTERM first: pmacctd's core only takes its plugin processes down on a clean shutdown.
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5) {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A frame from 02:00:00:00:00:01 to 02:00:00:00:00:02.
pub fn spec(vlans: Vec<u16>, l3: L3, l4: L4, payload: usize) -> FrameSpec {
    FrameSpec { src_mac: [2, 0, 0, 0, 0, 1], dst_mac: [2, 0, 0, 0, 0, 2], vlans, l3, l4, payload }
}

/// `program -p socket args…` (program: `xacct`, or pmacct's `pmacct`): its stdout, or why not.
pub fn try_client(program: &Path, socket: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .arg("-p")
        .arg(socket)
        .args(args)
        .output()
        .map_err(|e| format!("run {}: {e}", program.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} -p {} {args:?} failed ({}): {}",
            program.display(),
            socket.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    String::from_utf8(out.stdout).map_err(|e| format!("{} answered non-UTF-8: {e}", program.display()))
}

/// As [`try_client`], which must succeed.
pub fn client(program: &Path, socket: &Path, args: &[&str]) -> String {
    try_client(program, socket, args).unwrap_or_else(|e| panic!("{e}"))
}

/// `xacct -p socket -s -O csv`.
pub fn query_csv(socket: &Path) -> String {
    client(&xacct_bin(), socket, &SUMMARY_CSV)
}

/// The data rows of a CSV answer, sorted (both tools print rows in hash order).
pub fn sorted_rows(csv: &str) -> Vec<String> {
    let mut v: Vec<String> = csv.lines().skip(1).filter(|l| !l.is_empty()).map(str::to_string).collect();
    v.sort();
    v
}

/// A row of `xacct -s -O csv` as its aggregation key: the non-counter columns as
/// `COLUMN=value`, in column-name order (as `row`, a map, iterates).
pub fn row_key<K: AsRef<str>, V: AsRef<str>>(row: &std::collections::BTreeMap<K, V>) -> String {
    row.iter()
        .filter(|(k, _)| !matches!(k.as_ref(), "PACKETS" | "BYTES"))
        .map(|(k, v)| format!("{}={}", k.as_ref(), v.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The number right after `name` in `text` (`name 3`, `name: 3`, `("name", 3)` all read as 3).
pub fn counter(text: &str, name: &str) -> Option<u64> {
    let mut rest = text;
    while let Some(i) = rest.find(name) {
        let before = rest.get(..i).and_then(|s| s.chars().next_back());
        let after = rest.get(i + name.len()..).unwrap_or_default();
        let word = |c: char| c.is_alphanumeric() || c == '_';
        if !before.is_some_and(word) && !after.starts_with(word) {
            // Only separators may stand between the name and its number (not `.pcap: …`).
            let digits: String = after
                .trim_start_matches([' ', '\t', ':', '=', '"', '\'', ','])
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if !digits.is_empty() {
                return digits.parse().ok();
            }
        }
        rest = after;
    }
    None
}

/// Queries until two answers 300 ms apart agree and have rows: the pmacct daemons (and
/// collectors generally) account asynchronously to what they are sent.
pub fn query_stable(query: impl Fn() -> String) -> String {
    let mut last = query();
    for _ in 0..60 {
        std::thread::sleep(Duration::from_millis(300));
        let now = query();
        if now == last && now.lines().count() > 1 {
            return now;
        }
        last = now;
    }
    last
}

/// Header line and the set of rows of a CSV table (row order is hash order in both tools).
pub fn table(csv: &str) -> (String, std::collections::BTreeSet<String>) {
    let mut lines = csv.lines().filter(|l| !l.trim().is_empty());
    let header = lines.next().unwrap_or_default().to_string();
    (header, lines.map(str::to_string).collect())
}

/// Whether every key column of a CSV row holds its zero value (pmacct's memory table never
/// shows such an entry).
pub fn all_zero_key(header: &str, row: &str) -> bool {
    header
        .split(',')
        .zip(row.split(','))
        .filter(|(h, _)| !matches!(*h, "PACKETS" | "BYTES" | "FLOWS"))
        .all(|(_, v)| matches!(v, "0" | "0.0.0.0" | "::" | "00:00:00:00:00:00"))
}

/// A UDP port nothing listens on right now.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr()).map(|a| a.port()).expect("free port")
}

/// Sends each datagram from one socket to 127.0.0.1:`port`.
pub fn send_udp(port: u16, dgrams: &[Vec<u8>]) {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("sender");
    for d in dgrams {
        s.send_to(d, ("127.0.0.1", port)).expect("send");
    }
}

/// Starts xacctd as a collector: config `lines` (listen keys …) plus a memory plugin `a` with
/// `aggregate`; files `<tag>.conf`, `<tag>.log`, `<tag>.pipe` in `dir`. Returns once it listens
/// and its memory table answers.
pub fn start_collector(dir: &Path, tag: &str, lines: &str, aggregate: &str) -> (Daemon, PathBuf) {
    let conf = dir.join(format!("{tag}.conf"));
    let pipe = dir.join(format!("{tag}.pipe"));
    let _ = std::fs::remove_file(&pipe);
    std::fs::write(
        &conf,
        format!(
            "daemonize: false\n{lines}plugins: memory[a]\naggregate[a]: {aggregate}\nimt_path[a]: {}\n",
            pipe.display()
        ),
    )
    .expect("write conf");
    let mut d = Daemon::start(&conf, &dir.join(format!("{tag}.log")));
    d.wait_log("listening:", Duration::from_secs(20));
    // The memory plugin's socket appears once its thread runs.
    let t = Instant::now();
    while !pipe.exists() {
        assert!(t.elapsed() < Duration::from_secs(10), "no {}", pipe.display());
        std::thread::sleep(Duration::from_millis(20));
    }
    (d, pipe)
}

/// Polls `xacct -t` until the counter `name` (first occurrence) reaches `want`; the status.
pub fn wait_counter(pipe: &Path, name: &str, want: u64) -> String {
    let t = Instant::now();
    loop {
        let s = client(&xacct_bin(), pipe, &["-t"]);
        if counter(&s, name).is_some_and(|n| n >= want) {
            return s;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "{name} never reached {want}:\n{s}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Writes UDP payloads as a pcap of Ethernet/IPv4/UDP frames to `port` (for tshark, which
/// dissects what it reads from a file), one second apart.
pub fn udp_pcap(path: &Path, port: u16, payloads: &[Vec<u8>]) {
    let frames: Vec<xacct_perf::traffic::Frame> = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut f = Vec::with_capacity(42 + p.len());
            f.extend_from_slice(&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00]);
            let total = (20 + 8 + p.len()) as u16;
            f.extend_from_slice(&[0x45, 0]);
            f.extend_from_slice(&total.to_be_bytes());
            f.extend_from_slice(&[0, 0, 0x40, 0, 64, 17]);
            let mut ip = [0x45u8, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1];
            ip[2..4].copy_from_slice(&total.to_be_bytes());
            let sum = ip.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))).sum::<u32>();
            let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
            f.extend_from_slice(&sum.to_be_bytes());
            f.extend_from_slice(&[127, 0, 0, 1, 127, 0, 0, 1]);
            f.extend_from_slice(&40000u16.to_be_bytes());
            f.extend_from_slice(&port.to_be_bytes());
            f.extend_from_slice(&((8 + p.len()) as u16).to_be_bytes());
            f.extend_from_slice(&[0, 0]);
            f.extend_from_slice(p);
            xacct_perf::traffic::Frame { ts_sec: 1_700_000_000 + i as i64, ts_usec: 0, data: f }
        })
        .collect();
    xacct_perf::traffic::write_pcap(path, &frames).expect("write pcap");
}

/// tshark's verdict on a pcap of `proto` (cflow, sflow) datagrams to `port`: how many frames
/// it dissected as `proto`, and every frame it marked malformed or with an expert error (warnings
/// come from the sampled packets themselves, e.g. a TCP reset).
pub fn tshark_check(pcap: &Path, port: u16, proto: &str) -> (usize, Vec<String>) {
    let run = |filter: &str, fields: &[&str]| {
        let mut cmd = Command::new("tshark");
        cmd.args(["-n", "-r"]).arg(pcap).args(["-d", &format!("udp.port=={port},{proto}"), "-Y", filter]);
        if !fields.is_empty() {
            cmd.args(["-T", "fields"]);
            for f in fields {
                cmd.args(["-e", f]);
            }
        }
        let out = cmd.output().expect("run tshark");
        assert!(out.status.success(), "tshark: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect::<Vec<_>>()
    };
    (
        run(proto, &[]).len(),
        run("_ws.malformed || _ws.expert.severity >= error", &["frame.number", "_ws.expert.message", "_ws.malformed"]),
    )
}

/// Waits until a memory plugin's socket exists (its thread runs).
pub fn wait_pipe(pipe: &Path) {
    let t = Instant::now();
    while !pipe.exists() {
        assert!(t.elapsed() < Duration::from_secs(20), "no {}", pipe.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs xacctd over `pcap` with the export plugin `probe` (e.g. `nfprobe[n]`) beside a memory
/// plugin `m` with `aggregate`, plus config `lines`; returns the memory plugin's table and the
/// whole log after a SIGTERM, which makes the exporter flush.
pub fn run_probe(dir: &Path, tag: &str, pcap: &Path, probe: &str, aggregate: &str, lines: &str) -> (String, String) {
    let conf = dir.join(format!("{tag}.conf"));
    let pipe = dir.join(format!("{tag}.pipe"));
    std::fs::write(
        &conf,
        format!(
            "daemonize: false\npcap_savefile: {}\npcap_savefile_wait: true\nplugins: {probe}, memory[m]\n\
             aggregate[m]: {aggregate}\nimt_path[m]: {}\n{lines}",
            pcap.display(),
            pipe.display()
        ),
    )
    .expect("write conf");
    let d = Daemon::start(&conf, &dir.join(format!("{tag}.log")));
    wait_pipe(&pipe);
    let table = query_stable(|| query_csv(&pipe));
    (table, d.terminate())
}

/// Every NetFlow/IPFIX record the socket receives until it stays quiet for its read timeout.
pub fn netflow_records(rx: &std::net::UdpSocket) -> Vec<xacct_wire::netflow::FlowRecord> {
    let mut dec = xacct_wire::netflow::Decoder::default();
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    while let Ok(n) = rx.recv(&mut buf) {
        let mut sink = |_h: &xacct_wire::netflow::NetflowHeader, r: &xacct_wire::netflow::FlowRecord| out.push(*r);
        dec.decode("127.0.0.1".parse().expect("ip"), buf.get(..n).unwrap_or_default(), &mut sink).expect("decodes");
    }
    out
}
