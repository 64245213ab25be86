//! `cargo xtask <command>`: the project's own set-up, demo, CI and perf entry points, so a fresh
//! machine needs nothing but these commands.
//!
//! - `setup`: installs the Debian packages the build and tests need (only what is missing).
//! - `demo`:  setup, release build, then runs xacctd end to end on an embedded default config
//!   (two memory tables, a print plugin and an SQLite table over a generated pcap) and queries
//!   them.
//! - `ci`:    setup, then builds and runs the whole test suite.
//! - `perf`:  runs perf/capacity.sh (packet pipeline beside pmacctd), perf/collect_capacity.sh
//!   (NetFlow/IPFIX/sFlow collectors beside nfacctd/sfacctd), perf/sql_capacity.sh (SQL writes
//!   beside pmacct's SQL plugins) and perf/veth_capacity.sh (live capture methods, root);
//!   `perf packets|collect|sql|veth` runs one of them.
//! - `fuzz`:  runs every fuzz target of `fuzz/` for a set time each, keeping the corpora in the
//!   repo minimised, and prints executions and findings (see fuzz.rs).

mod fuzz;

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Debian packages: libpcap for capture, pmacct as the reference implementation the tests
/// compare against, iproute2 for the namespace/veth tests, tcpdump/tshark as independent
/// decoders, python3-dpkt for the real sample captures it ships (xacctd's tests/malformed.rs,
/// pmacct_compare.rs: PPPoE), golang-github-gopacket-gopacket-dev for its real macOS loopback
/// (DLT_NULL) capture,
/// sqlite3 to show the demo's SQLite table.
const DEB_PACKAGES: &[&str] = &[
    "libpcap-dev",
    "pmacct",
    "iproute2",
    "tcpdump",
    "tshark",
    "pkg-config",
    "python3-dpkt",
    "golang-github-gopacket-gopacket-dev",
    "clang",
    "llvm",
    "m4",
    "make",
    "libelf-dev",
    "zlib1g-dev",
    "softflowd",
    "nfdump",
    "sqlite3",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask sits in the workspace").to_path_buf()
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("+ {cmd:?}");
    let st = cmd.status().with_context(|| format!("spawn {cmd:?}"))?;
    if !st.success() {
        bail!("{cmd:?} failed: {st}");
    }
    Ok(())
}

fn installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

fn setup() -> Result<()> {
    let missing: Vec<&str> = DEB_PACKAGES.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        eprintln!("setup: all Debian packages present");
    } else {
        eprintln!("setup: installing {missing:?}");
        run(Command::new("apt-get").arg("update").arg("-qq"))?;
        run(Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    // The XDP program (ebpf/xdp) is built by userspace/xdp's build.rs on the stable toolchain
    // with `-Z build-std=core`, which needs the standard library's source, and is linked by
    // bpf-linker. 0.10.4 is the release that builds on this toolchain (a plain `cargo install
    // bpf-linker` picks a newer one that does not); --locked keeps its dependencies as tested.
    run(Command::new("rustup").args(["component", "add", "rust-src"]))?;
    let have_linker = Command::new("bpf-linker")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if have_linker {
        eprintln!("setup: bpf-linker present");
    } else {
        eprintln!("setup: installing bpf-linker (a few minutes)");
        run(cargo().args(["install", "bpf-linker@0.10.4", "--locked"]))?;
    }
    Ok(())
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

fn wait_for(path: &Path, needle: &str, timeout: Duration) -> Result<()> {
    let t = Instant::now();
    while t.elapsed() < timeout {
        if std::fs::read_to_string(path).map(|s| s.contains(needle)).unwrap_or(false) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("timed out waiting for '{needle}' in {}", path.display())
}

fn demo() -> Result<()> {
    setup()?;
    run(cargo().args(["build", "--release", "-p", "xacctd", "-p", "xacct", "-p", "xacct-perf"]))?;
    let bin = root().join("target/release");
    let dir = root().join("target/demo");
    std::fs::create_dir_all(&dir)?;
    let pcap = dir.join("demo.pcap");
    run(Command::new(bin.join("xacct-gen"))
        .args(["--kind", "mixed", "--packets", "200000", "--flows", "5000"])
        .arg(&pcap))?;
    let nets = dir.join("networks.lst");
    std::fs::write(&nets, "! demo networks\n65001,10.0.0.0/16\n65002,192.168.0.0/16\n65003,2001:db8::/32\n")?;
    let conf = dir.join("xacctd.conf");
    let out_pipe = dir.join("acct_out.pipe");
    let in_pipe = dir.join("acct_in.pipe");
    let csv = dir.join("by_proto.csv");
    let sqlite = dir.join("xacct.db");
    // A fresh database each run, so the demo's numbers are its own.
    let _ = std::fs::remove_file(&sqlite);
    let _ = std::fs::remove_dir_all(dir.join("spool"));
    // The seed's memory example, plus a print plugin and an SQLite table (the embedded SQL
    // backend): no database server needed.
    std::fs::write(
        &conf,
        format!(
            "daemonize: false\npcap_savefile: {}\npcap_savefile_wait: true\nplugins: memory[a], memory[b], print[p], sqlite3[db]\nnetworks_file: {}\n!\naggregate[a]: src_host\nimt_path[a]: {}\naggregate_filter[a]: src net 10.0.0.0/16\n!\naggregate[b]: dst_net\nimt_path[b]: {}\naggregate_filter[b]: dst net 10.0.0.0/16\n!\naggregate[p]: proto,dst_port\nprint_output[p]: csv\nprint_output_file[p]: {}\nprint_refresh_time[p]: 60\n!\naggregate[db]: src_host,dst_port,proto\nsql_db[db]: {}\nsql_table_version[db]: 9\nsql_table_autocreate[db]: true\nsql_history[db]: 5m\nsql_history_roundoff[db]: m\nsql_refresh_time[db]: 60\nsql_spool_dir[db]: {}\n",
            pcap.display(),
            nets.display(),
            out_pipe.display(),
            in_pipe.display(),
            csv.display(),
            sqlite.display(),
            dir.join("spool").display()
        ),
    )?;
    println!("--- configuration ({}):\n{}", conf.display(), std::fs::read_to_string(&conf)?);
    let log = dir.join("xacctd.log");
    let mut child = Command::new(bin.join("xacctd"))
        .arg("-f")
        .arg(&conf)
        .stderr(std::fs::File::create(&log)?)
        .stdout(Stdio::null())
        .spawn()
        .context("start xacctd")?;
    let res = (|| -> Result<()> {
        wait_for(&log, "finished reading", Duration::from_secs(60))?;
        for (what, pipe) in
            [("outbound (src_host, src net 10.0.0.0/16), top 10 by bytes", &out_pipe), ("inbound (dst_net)", &in_pipe)]
        {
            println!("--- xacct -p {} -s -T bytes,10   [{what}]", pipe.display());
            run(Command::new(bin.join("xacct")).arg("-p").arg(pipe).args(["-s", "-T", "bytes,10"]))?;
        }
        println!("--- xacct -p {} -s -O csv | head", in_pipe.display());
        let out = Command::new(bin.join("xacct")).arg("-p").arg(&in_pipe).args(["-s", "-O", "csv"]).output()?;
        for l in String::from_utf8_lossy(&out.stdout).lines().take(8) {
            println!("{l}");
        }
        Ok(())
    })();
    nix_kill_term(child.id());
    let st = child.wait()?;
    res?;
    if !st.success() {
        bail!("xacctd exited with {st}; log in {}", log.display());
    }
    println!("--- print plugin output after the final flush ({}):", csv.display());
    for l in std::fs::read_to_string(&csv).unwrap_or_default().lines().take(10) {
        println!("{l}");
    }
    let query = "SELECT stamp_inserted, ip_src, ip_proto, SUM(packets) AS packets, SUM(bytes) AS bytes FROM acct_v9 \
                 GROUP BY 1, 2, 3 ORDER BY bytes DESC LIMIT 10";
    println!("--- sqlite3 {} \"{query}\"   [the SQL plugin's table, written at the final flush]", sqlite.display());
    run(Command::new("sqlite3").args(["-header", "-column"]).arg(&sqlite).arg(query))?;
    println!("--- xacctd log: {}\ndemo ok", log.display());
    Ok(())
}

fn nix_kill_term(pid: u32) {
    let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
}

fn ci() -> Result<()> {
    setup()?;
    run(cargo().args(["build", "--workspace", "--all-targets"]))?;
    run(cargo().args(["test", "--workspace", "--no-fail-fast"]))?;
    Ok(())
}

fn perf(which: Option<&str>) -> Result<()> {
    let scripts: &[&str] = match which {
        None => &["capacity.sh", "collect_capacity.sh", "sql_capacity.sh", "veth_capacity.sh"],
        // `pipeline` was this suite's name before.
        Some("packets" | "pipeline") => &["capacity.sh"],
        Some("collect") => &["collect_capacity.sh"],
        Some("sql") => &["sql_capacity.sh"],
        Some("veth") => &["veth_capacity.sh"],
        Some(w) => bail!("cargo xtask perf [packets|collect|sql|veth]: unknown '{w}'"),
    };
    for s in scripts {
        run(Command::new("bash").arg(root().join("perf").join(s)))?;
    }
    Ok(())
}

fn main() -> Result<()> {
    let cmd = std::env::args().nth(1).unwrap_or_default();
    match cmd.as_str() {
        "setup" => setup(),
        "demo" => demo(),
        "ci" => ci(),
        "perf" => perf(std::env::args().nth(2).as_deref()),
        "fuzz" => fuzz::fuzz(&std::env::args().skip(2).collect::<Vec<_>>()),
        _ => bail!("usage: cargo xtask <setup|demo|ci|perf [packets|collect|sql|veth]|fuzz [--seconds N | --cpu-seconds N] [--jobs N] [TARGET…]>"),
    }
}
