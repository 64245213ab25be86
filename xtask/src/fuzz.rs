//! `cargo xtask fuzz [--seconds N | --cpu-seconds N] [--jobs N] [TARGET…]`: runs every fuzz
//! target of `fuzz/` (or the named ones) for a set time each, growing the corpus kept in the
//! repo (`fuzz/corpus/<target>/`), then merges it back minimised and prints a summary table.
//!
//! It needs only the stable toolchain: cargo-fuzz's nightly flags (`-Zsanitizer`, …) are let
//! through with RUSTC_BOOTSTRAP=1, and cargo-fuzz itself is installed when missing.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::{cargo, root, run};

/// How long each target runs.
#[derive(Clone, Copy, Debug)]
enum Budget {
    /// Wall-clock seconds (libFuzzer's own `-max_total_time`).
    Wall(u64),
    /// CPU seconds of the fuzzing process: fair on a shared machine, where wall time says
    /// little about how much fuzzing was done.
    Cpu(u64),
}

struct Outcome {
    target: String,
    cpu_secs: f64,
    wall_secs: f64,
    execs: Option<u64>,
    corpus_files: usize,
    corpus_bytes: u64,
    /// New files in fuzz/artifacts/<target>/ (crash-*, oom-*, timeout-*, …).
    findings: Vec<PathBuf>,
    log: PathBuf,
}

/// Above this many bytes a merged corpus is merged again on edge coverage alone.
const CORPUS_MAX: u64 = 256 << 10;

/// Linux reports /proc times in USER_HZ, which is 100 on every architecture it runs on.
const USER_HZ: f64 = 100.0;

/// CPU seconds (user + system, all threads) used so far by a running process.
fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after it are plain numbers.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let (utime, stime): (u64, u64) = (f.get(11)?.parse().ok()?, f.get(12)?.parse().ok()?);
    Some((utime + stime) as f64 / USER_HZ)
}

/// The targets declared in fuzz/Cargo.toml, in file order.
fn all_targets(fuzz: &Path) -> Result<Vec<String>> {
    let toml = std::fs::read_to_string(fuzz.join("Cargo.toml")).context("read fuzz/Cargo.toml")?;
    let mut out = Vec::new();
    let mut in_bin = false;
    for l in toml.lines().map(str::trim) {
        if l.starts_with('[') {
            in_bin = l == "[[bin]]";
        } else if let Some(v) = l.strip_prefix("name").filter(|_| in_bin) {
            out.push(v.trim_start().trim_start_matches('=').trim().trim_matches('"').to_string());
        }
    }
    Ok(out)
}

fn dir_stats(dir: &Path) -> (usize, u64) {
    let Ok(rd) = std::fs::read_dir(dir) else { return (0, 0) };
    rd.flatten()
        .filter_map(|e| e.metadata().ok().filter(|m| m.is_file()))
        .fold((0, 0), |(n, b), m| (n + 1, b + m.len()))
}

fn listing(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> =
        std::fs::read_dir(dir).map(|rd| rd.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    v.sort();
    v
}

/// libFuzzer's count of executions: the final stats line, else "Done N runs", else the last
/// status line ("#N\t…"), which is all a run cut short leaves.
fn parse_execs(log: &str) -> Option<u64> {
    let mut status = None;
    for l in log.lines() {
        if let Some(v) = l.strip_prefix("stat::number_of_executed_units:") {
            return v.trim().parse().ok();
        }
        if let Some(n) = l.strip_prefix("Done ").and_then(|r| r.split(' ').next()).and_then(|v| v.parse().ok()) {
            status = Some(n);
            continue;
        }
        if let Some(v) = l.strip_prefix('#') {
            if let Some(Ok(n)) = v.split(|c: char| !c.is_ascii_digit()).next().map(str::parse::<u64>) {
                status = Some(n);
            }
        }
    }
    status
}

fn ensure_cargo_fuzz() -> Result<()> {
    let have = cargo().args(["fuzz", "--version"]).stdout(Stdio::null()).stderr(Stdio::null()).status();
    if !have.is_ok_and(|s| s.success()) {
        eprintln!("fuzz: installing cargo-fuzz");
        run(cargo().args(["install", "cargo-fuzz", "--locked"]))?;
    }
    Ok(())
}

fn fuzz_cmd(bin: &Path, log: &Path) -> Result<Command> {
    let mut c = Command::new(bin);
    c.current_dir(root()).stdout(Stdio::null()).stderr(std::fs::File::create(log)?);
    Ok(c)
}

/// Waits for the fuzzer, stopping it (SIGINT: libFuzzer then prints its final stats) once it
/// has used its CPU budget. Returns the CPU seconds it used.
fn supervise(child: &mut Child, budget: Budget) -> Result<f64> {
    let pid = child.id();
    let mut used = 0.0;
    let mut interrupted = false;
    loop {
        if child.try_wait()?.is_some() {
            return Ok(used);
        }
        if let Some(s) = cpu_secs(pid) {
            used = s;
        }
        if let Budget::Cpu(limit) = budget {
            if used >= limit as f64 && !interrupted {
                let _ = Command::new("kill").arg("-INT").arg(pid.to_string()).status();
                interrupted = true;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn fuzz_one(target: &str, budget: Budget, logs: &Path) -> Result<Outcome> {
    let root = root();
    let fuzz = root.join("fuzz");
    let bin = fuzz.join("target/x86_64-unknown-linux-gnu/release").join(target);
    let corpus = fuzz.join("corpus").join(target);
    let artifacts = fuzz.join("artifacts").join(target);
    // New inputs go to a scratch directory first, so the repo corpus only ever receives the
    // merged, minimised set.
    let work = fuzz.join("target/corpus-work").join(target);
    let merged = fuzz.join("target/corpus-merged").join(target);
    for d in [&corpus, &artifacts] {
        std::fs::create_dir_all(d)?;
    }
    for d in [&work, &merged] {
        let _ = std::fs::remove_dir_all(d);
        std::fs::create_dir_all(d)?;
    }
    let before = listing(&artifacts);
    let t = Instant::now();
    let (mut cpu, mut execs, mut session) = (0.0f64, None::<u64>, 0u32);
    let log_of = |session: u32| {
        logs.join(if session <= 1 { format!("{target}.log") } else { format!("{target}.{session}.log") })
    };
    // libFuzzer stops at its first finding: start it again (from the grown corpus) until the
    // budget is spent, so one finding does not cost the rest of the run. A few restarts only,
    // so that a finding hit at once every time does not spin.
    loop {
        let remaining = match budget {
            Budget::Wall(s) => Budget::Wall(s.saturating_sub(t.elapsed().as_secs())),
            Budget::Cpu(s) => Budget::Cpu(s.saturating_sub(cpu as u64)),
        };
        let left = match remaining {
            Budget::Wall(s) | Budget::Cpu(s) => s,
        };
        if session > 0 && (left < 5 || session >= 8) {
            break;
        }
        session += 1;
        let max_total = match remaining {
            Budget::Wall(s) => s.max(1),
            // A backstop only: the CPU budget is what stops it.
            Budget::Cpu(s) => s.saturating_mul(20).max(60),
        };
        let log = log_of(session);
        let mut cmd = fuzz_cmd(&bin, &log)?;
        cmd.arg(&work)
            .arg(&corpus)
            .arg(format!("-max_total_time={max_total}"))
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .args(["-print_final_stats=1", "-timeout=10", "-rss_limit_mb=2048", "-max_len=4096"]);
        eprintln!("fuzz: {target}: {remaining:?}, log {}", log.display());
        let found_before = listing(&artifacts).len();
        let mut child = cmd.spawn().with_context(|| format!("start {}", bin.display()))?;
        cpu += supervise(&mut child, remaining)?;
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(n) = parse_execs(&text) {
            execs = Some(execs.unwrap_or(0) + n);
        }
        if listing(&artifacts).len() == found_before {
            break;
        }
        eprintln!("fuzz: {target}: finding (see {}); going on", log.display());
    }
    let wall = t.elapsed().as_secs_f64();
    let log = log_of(session);
    let findings: Vec<PathBuf> = listing(&artifacts).into_iter().filter(|p| !before.contains(p)).collect();

    // Merge the repo corpus and the new inputs into a fresh directory: libFuzzer keeps a small
    // set of inputs that together reach all the coverage (greedy set cover). With hit counters
    // as features that set can still be large for the datagram decoders; above CORPUS_MAX it
    // is merged again on edges alone, so the repo keeps seeds, not every path count.
    let merge = |features: &str, from: &[&Path], log: &str| -> Result<bool> {
        let _ = std::fs::remove_dir_all(&merged);
        std::fs::create_dir_all(&merged)?;
        let st = fuzz_cmd(&bin, &logs.join(log))?
            .args(["-set_cover_merge=1", features, "-timeout=10", "-rss_limit_mb=2048", "-max_len=4096"])
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .arg(&merged)
            .args(from)
            .status()?;
        Ok(st.success() && dir_stats(&merged).0 > 0)
    };
    let mut ok = merge("-use_counters=1", &[&corpus, &work], &format!("{target}.merge.log"))?;
    if ok && dir_stats(&merged).1 > CORPUS_MAX {
        let counted = fuzz.join("target/corpus-counted").join(target);
        let _ = std::fs::remove_dir_all(&counted);
        std::fs::create_dir_all(counted.parent().expect("under fuzz/target"))?;
        std::fs::rename(&merged, &counted)?;
        ok = merge("-use_counters=0", &[&counted], &format!("{target}.merge-edges.log"))?;
    }
    if ok {
        for p in listing(&corpus) {
            std::fs::remove_file(p)?;
        }
        for p in listing(&merged) {
            std::fs::copy(&p, corpus.join(p.file_name().expect("a file")))?;
        }
    } else {
        eprintln!("fuzz: {target}: merge failed, corpus left as it was; see {}/{target}.merge*.log", logs.display());
    }
    let (corpus_files, corpus_bytes) = dir_stats(&corpus);
    Ok(Outcome {
        target: target.to_string(),
        cpu_secs: cpu,
        wall_secs: wall,
        execs,
        corpus_files,
        corpus_bytes,
        findings,
        log,
    })
}

pub fn fuzz(args: &[String]) -> Result<()> {
    let usage = "usage: cargo xtask fuzz [--seconds N | --cpu-seconds N] [--jobs N] [TARGET…]";
    let mut budget = Budget::Wall(60);
    let mut jobs = 1usize;
    let mut targets = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut num = || -> Result<u64> {
            it.next().and_then(|v| v.parse().ok()).with_context(|| format!("{a} needs a number; {usage}"))
        };
        match a.as_str() {
            "--seconds" => budget = Budget::Wall(num()?),
            "--cpu-seconds" => budget = Budget::Cpu(num()?),
            "--jobs" => jobs = num()?.max(1) as usize,
            "-h" | "--help" => {
                println!("{usage}");
                return Ok(());
            }
            s if s.starts_with('-') => bail!("unknown option {s}; {usage}"),
            s => targets.push(s.to_string()),
        }
    }
    let fuzz = root().join("fuzz");
    let known = all_targets(&fuzz)?;
    if targets.is_empty() {
        targets = known.clone();
    }
    if let Some(t) = targets.iter().find(|t| !known.contains(t)) {
        bail!("unknown fuzz target {t}; fuzz/Cargo.toml has {known:?}");
    }
    ensure_cargo_fuzz()?;
    // All targets in one cargo run (they share every dependency). -a: debug assertions, so an
    // overflow in length arithmetic is a finding, not a wrap.
    let mut build = cargo();
    build.args(["fuzz", "build", "-O", "-a"]).env("RUSTC_BOOTSTRAP", "1");
    run(&mut build)?;
    let logs = std::env::temp_dir().join("xacct-fuzz");
    std::fs::create_dir_all(&logs)?;

    let queue = Mutex::new(targets.clone().into_iter().rev().collect::<Vec<_>>());
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs.min(targets.len()) {
            s.spawn(|| {
                // The lock is released before the target runs (a `while let` on the lock
                // would hold it for the loop body and run the targets one at a time).
                loop {
                    let next = queue.lock().expect("queue").pop();
                    let Some(t) = next else { break };
                    let r = fuzz_one(&t, budget, &logs);
                    if let Ok(o) = &r {
                        eprintln!(
                            "fuzz: {}: done, {:.0} CPU s, {:?} runs, {} findings",
                            o.target,
                            o.cpu_secs,
                            o.execs,
                            o.findings.len()
                        );
                    }
                    results.lock().expect("results").push((t, r));
                }
            });
        }
    });
    let mut results = results.into_inner().expect("results");
    results.sort_by_key(|(t, _)| targets.iter().position(|x| x == t));

    println!("| target | CPU s | wall s | executions | corpus files | corpus bytes | findings |");
    println!("|---|---:|---:|---:|---:|---:|---|");
    let mut failed = false;
    for (t, r) in &results {
        match r {
            Ok(o) => {
                let findings = if o.findings.is_empty() {
                    "0".to_string()
                } else {
                    failed = true;
                    let names: Vec<String> =
                        o.findings.iter().map(|p| p.strip_prefix(&fuzz).unwrap_or(p).display().to_string()).collect();
                    format!("{} ({}; log {})", o.findings.len(), names.join(", "), o.log.display())
                };
                let execs = o.execs.map_or("?".to_string(), |n| n.to_string());
                println!(
                    "| {t} | {:.0} | {:.0} | {execs} | {} | {} | {findings} |",
                    o.cpu_secs, o.wall_secs, o.corpus_files, o.corpus_bytes
                );
            }
            Err(e) => {
                failed = true;
                println!("| {t} | - | - | - | - | - | error: {e:#} |");
            }
        }
    }
    if failed {
        bail!("fuzz: findings or errors above (inputs in fuzz/artifacts/, logs in {})", logs.display());
    }
    Ok(())
}
