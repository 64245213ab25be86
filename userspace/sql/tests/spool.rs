//! The spool against its promises: order, durability across reopen (a restart), torn and corrupt
//! entries quarantined, last_id kept with an empty spool, one owner at a time, and random
//! push/pop/reopen sequences against an in-memory model.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::fs;
use std::path::Path;
use xacct_sql::spool::{Spool, SpoolError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Batch {
    table: String,
    rows: Vec<(String, u64, u64)>,
}

fn batch(n: u64) -> Batch {
    Batch { table: format!("acct_{n}"), rows: (0..n % 5).map(|i| (format!("10.0.0.{i}"), i * 3, n * 100)).collect() }
}

fn entry_path(dir: &Path, id: u64) -> std::path::PathBuf {
    dir.join(format!("{id:020}.entry"))
}

fn drain(s: &mut Spool) -> Vec<(u64, Batch)> {
    let mut out = Vec::new();
    while let Some(e) = s.front::<Batch>().unwrap() {
        out.push(e);
        s.pop_front().unwrap();
    }
    out
}

#[test]
fn entries_come_back_in_push_order() {
    let d = tempfile::tempdir().unwrap();
    let mut s = Spool::open(d.path()).unwrap();
    assert!(s.is_empty());
    assert_eq!(s.front::<Batch>().unwrap(), None);
    for id in [3, 4, 10, 11, 250] {
        s.push(id, &batch(id)).unwrap();
    }
    assert_eq!(s.len(), 5);
    assert!(s.bytes() > 0);
    // front does not consume.
    assert_eq!(s.front::<Batch>().unwrap().unwrap().0, 3);
    assert_eq!(s.front::<Batch>().unwrap().unwrap().0, 3);
    let got = drain(&mut s);
    assert_eq!(got, [3, 4, 10, 11, 250].map(|id| (id, batch(id))));
    assert_eq!(s.bytes(), 0);
    assert_eq!(s.quarantined(), 0);
    // Only the bookkeeping files remain.
    let mut left: Vec<_> = fs::read_dir(d.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    left.sort();
    assert_eq!(left, ["lock", "state"]);
}

#[test]
fn ids_must_increase() {
    let d = tempfile::tempdir().unwrap();
    let mut s = Spool::open(d.path()).unwrap();
    s.push(5, &batch(5)).unwrap();
    for bad in [5, 4, 0] {
        match s.push(bad, &batch(bad)) {
            Err(SpoolError::IdNotIncreasing { id, last, .. }) => assert_eq!((id, last), (bad, 5)),
            other => panic!("push {bad} after 5: {other:?}"),
        }
    }
    assert_eq!(s.len(), 1);
}

#[test]
fn reopen_recovers_entries_and_order() {
    let d = tempfile::tempdir().unwrap();
    {
        let mut s = Spool::open(d.path()).unwrap();
        for id in 1..=6 {
            s.push(id, &batch(id)).unwrap();
        }
        s.pop_front().unwrap();
        s.pop_front().unwrap();
        // Dropped without any shutdown step, like a crash after the last push returned.
    }
    let mut s = Spool::open(d.path()).unwrap();
    assert_eq!(s.len(), 4);
    assert_eq!(s.last_id(), 6);
    let bytes_before = s.bytes();
    assert_eq!(bytes_before, (3..=6).map(|id| fs::metadata(entry_path(d.path(), id)).unwrap().len()).sum::<u64>());
    assert_eq!(drain(&mut s), (3..=6).map(|id| (id, batch(id))).collect::<Vec<_>>());
}

#[test]
fn last_id_survives_an_empty_restart() {
    let d = tempfile::tempdir().unwrap();
    {
        let mut s = Spool::open(d.path()).unwrap();
        s.push(41, &batch(1)).unwrap();
        s.push(42, &batch(2)).unwrap();
        drain(&mut s);
        assert_eq!(s.last_id(), 42);
    }
    let mut s = Spool::open(d.path()).unwrap();
    assert!(s.is_empty());
    assert_eq!(s.last_id(), 42);
    assert!(matches!(s.push(42, &batch(3)), Err(SpoolError::IdNotIncreasing { .. })));
    s.push(43, &batch(3)).unwrap();
    drop(s);
    assert_eq!(Spool::open(d.path()).unwrap().last_id(), 43);
}

#[test]
fn a_torn_entry_is_quarantined_and_skipped() {
    let d = tempfile::tempdir().unwrap();
    {
        let mut s = Spool::open(d.path()).unwrap();
        for id in 1..=3 {
            s.push(id, &batch(id + 10)).unwrap();
        }
    }
    // A crash mid-write on a filesystem that did not keep the rename atomic: entry 2 lost its tail.
    let p2 = entry_path(d.path(), 2);
    let full = fs::read(&p2).unwrap();
    fs::write(&p2, &full[..full.len() / 2]).unwrap();
    let mut s = Spool::open(d.path()).unwrap();
    assert_eq!(s.len(), 3);
    let got = drain(&mut s);
    assert_eq!(got, [(1, batch(11)), (3, batch(13))]);
    assert_eq!(s.quarantined(), 1);
    let q = d.path().join("quarantine").join(format!("{:020}.entry", 2));
    assert_eq!(fs::read(&q).unwrap(), &full[..full.len() / 2], "the torn bytes are kept for inspection");
}

#[test]
fn corrupt_bytes_and_undecodable_payloads_are_quarantined() {
    let d = tempfile::tempdir().unwrap();
    let mut s = Spool::open(d.path()).unwrap();
    s.push(1, &batch(1)).unwrap();
    s.push(2, &batch(2)).unwrap();
    // Well framed but not a Batch (say, written by a build whose batch type differed).
    s.push(3, &"not a batch").unwrap();
    s.push(4, &batch(4)).unwrap();
    // A flipped bit in the payload of 1.
    let p1 = entry_path(d.path(), 1);
    let mut b = fs::read(&p1).unwrap();
    let last = b.len() - 2;
    b[last] ^= 1;
    fs::write(&p1, b).unwrap();
    assert_eq!(s.front::<Batch>().unwrap().unwrap(), (2, batch(2)));
    assert_eq!(s.quarantined(), 1);
    assert_eq!(s.len(), 3);
    s.pop_front().unwrap();
    // Entry 3 is quarantined rather than blocking the queue.
    assert_eq!(s.front::<Batch>().unwrap().unwrap(), (4, batch(4)));
    assert_eq!(s.quarantined(), 2);
    assert_eq!(s.len(), 1);
    for id in [1, 3] {
        assert!(d.path().join("quarantine").join(format!("{id:020}.entry")).exists());
    }
}

#[test]
fn an_interrupted_push_is_kept_when_whole_and_quarantined_when_torn() {
    let d = tempfile::tempdir().unwrap();
    {
        let mut s = Spool::open(d.path()).unwrap();
        s.push(1, &batch(1)).unwrap();
        s.push(2, &batch(2)).unwrap();
        s.push(3, &batch(3)).unwrap();
    }
    // Entry 2 as if the crash came after its fsync but before the rename; entry 3 as if it came
    // in the middle of the write.
    fs::rename(entry_path(d.path(), 2), d.path().join(format!("{:020}.tmp", 2))).unwrap();
    let p3 = entry_path(d.path(), 3);
    let full = fs::read(&p3).unwrap();
    fs::remove_file(&p3).unwrap();
    fs::write(d.path().join(format!("{:020}.tmp", 3)), &full[..30]).unwrap();
    let mut s = Spool::open(d.path()).unwrap();
    assert_eq!(s.quarantined(), 1);
    assert_eq!(s.last_id(), 3, "a torn push still used its id");
    assert_eq!(drain(&mut s), [(1, batch(1)), (2, batch(2))]);
}

#[test]
fn a_second_owner_gets_a_clear_error() {
    let d = tempfile::tempdir().unwrap();
    let s = Spool::open(d.path()).unwrap();
    let err = Spool::open(d.path()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, SpoolError::Locked { .. }), "{err:?}");
    assert!(msg.contains(&format!("pid {}", std::process::id())), "{msg}");
    assert!(msg.contains("sql_spool_dir"), "{msg}");
    drop(s);
    Spool::open(d.path()).expect("the lock goes with its owner");
}

#[test]
fn a_lock_held_by_another_process_is_refused() {
    let d = tempfile::tempdir().unwrap();
    fs::create_dir_all(d.path()).unwrap();
    let lock = d.path().join("lock");
    fs::write(&lock, "").unwrap();
    // flock(1) from util-linux holds the lock in a separate process, like a second daemon; -F makes
    // it exec the command itself so that killing it releases the lock.
    let mut child =
        match std::process::Command::new("flock").arg("-x").arg("-F").arg(&lock).arg("sleep").arg("30").spawn() {
            Ok(c) => c,
            Err(e) => panic!("flock(1) needed for this test: {e}"),
        };
    let t = std::time::Instant::now();
    let err = loop {
        match Spool::open(d.path()) {
            Err(e @ SpoolError::Locked { .. }) => break e,
            Ok(s) => {
                drop(s);
                assert!(t.elapsed().as_secs() < 10, "flock(1) never took the lock");
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert!(err.to_string().contains("locked by"), "{err}");
    child.kill().unwrap();
    child.wait().unwrap();
    Spool::open(d.path()).expect("the lock goes with the process");
}

#[test]
fn an_unreadable_directory_is_an_error_not_a_panic() {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("not-a-dir");
    fs::write(&file, "x").unwrap();
    let err = Spool::open(&file).unwrap_err();
    assert!(matches!(err, SpoolError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("not-a-dir"), "{err}");
    // A damaged state file is reported, not silently reset (that could reuse ids).
    let d2 = tempfile::tempdir().unwrap();
    fs::write(d2.path().join("state"), "last_id 12 999\n").unwrap();
    let err = Spool::open(d2.path()).unwrap_err();
    assert!(matches!(err, SpoolError::Corrupt { .. }), "{err:?}");
}

/// Random push / front / pop / reopen / corrupt sequences, checked against a VecDeque model
/// after every step. Seeds are fixed so a failure reproduces; the seed is in the message.
#[test]
fn random_sequences_match_a_queue_model() {
    for seed in 0..10u64 {
        let d = tempfile::tempdir().unwrap();
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut s = Spool::open(d.path()).unwrap();
        let mut model: VecDeque<(u64, Batch)> = VecDeque::new();
        let mut next_id = 1u64;
        let mut last_id = 0u64;
        let mut quarantined_total = 0u64;
        let mut log = Vec::new();
        for _ in 0..80 {
            let op = rng.u8(0..100);
            match op {
                0..=44 => {
                    next_id += rng.u64(1..4);
                    let b = batch(rng.u64(0..50));
                    s.push(next_id, &b).unwrap();
                    model.push_back((next_id, b));
                    last_id = next_id;
                    log.push(format!("push {next_id}"));
                }
                45..=74 => {
                    let got = s.front::<Batch>().unwrap();
                    assert_eq!(got.as_ref(), model.front(), "seed {seed} after {log:?}");
                    s.pop_front().unwrap();
                    model.pop_front();
                    log.push("pop".into());
                }
                75..=84 => {
                    assert_eq!(s.front::<Batch>().unwrap().as_ref(), model.front(), "seed {seed} after {log:?}");
                    log.push("front".into());
                }
                85..=94 => {
                    quarantined_total += s.quarantined();
                    drop(s);
                    s = Spool::open(d.path()).unwrap();
                    log.push("reopen".into());
                }
                _ => {
                    // Damage a random waiting entry: it must disappear from the model (and only it).
                    if !model.is_empty() {
                        let i = rng.usize(0..model.len());
                        let id = model[i].0;
                        let p = entry_path(d.path(), id);
                        let mut b = fs::read(&p).unwrap();
                        let at = rng.usize(0..b.len());
                        b[at] ^= 1 << rng.u8(0..8);
                        fs::write(&p, b).unwrap();
                        model.remove(i);
                        // Quarantine happens when the entry reaches the front: drain up to it.
                        log.push(format!("damage {id}"));
                        while let Some(&(fid, _)) = model.front() {
                            if fid > id {
                                break;
                            }
                            assert_eq!(s.front::<Batch>().unwrap().as_ref(), model.front(), "seed {seed}");
                            s.pop_front().unwrap();
                            model.pop_front();
                        }
                        assert_eq!(s.front::<Batch>().unwrap().as_ref(), model.front(), "seed {seed} after {log:?}");
                    }
                }
            }
            assert_eq!(s.len(), model.len(), "seed {seed} after {log:?}");
            assert_eq!(s.last_id(), last_id, "seed {seed} after {log:?}");
            assert_eq!(s.ids().collect::<Vec<_>>(), model.iter().map(|e| e.0).collect::<Vec<_>>(), "seed {seed}");
            let on_disk: u64 = model.iter().map(|(id, _)| fs::metadata(entry_path(d.path(), *id)).unwrap().len()).sum();
            assert_eq!(s.bytes(), on_disk, "seed {seed} after {log:?}");
        }
        quarantined_total += s.quarantined();
        let in_quarantine = fs::read_dir(d.path().join("quarantine")).map(|r| r.count() as u64).unwrap_or(0);
        assert_eq!(quarantined_total, in_quarantine, "seed {seed}");
    }
}

/// A writer process killed with SIGKILL in the middle of pushing and popping: every push it
/// saw return is there after reopen, in order, and nothing it saw popped comes back. At most one
/// operation was in flight, so at most one entry more (a push that completed unseen) or one
/// entry still present (a pop that did not) is allowed.
#[test]
fn a_killed_writer_loses_nothing_it_was_told_was_durable() {
    if let Ok(dir) = std::env::var("XACCT_SPOOL_CHILD_DIR") {
        return child_writer(Path::new(&dir));
    }
    use std::io::BufRead;
    let d = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "a_killed_writer_loses_nothing_it_was_told_was_durable", "--nocapture", "--test-threads=1"])
        .env("XACCT_SPOOL_CHILD_DIR", d.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut model: VecDeque<u64> = VecDeque::new();
    let mut pushed = 0;
    while pushed < 40 {
        let line = lines.next().expect("child ended early").unwrap();
        pushed += apply_line(&mut model, &line);
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    child.wait().unwrap();
    // Whatever the child printed after our last read also happened; read it so the model is
    // exact up to the one operation in flight.
    for line in lines.map_while(Result::ok) {
        apply_line(&mut model, &line);
    }
    let mut s = Spool::open(d.path()).unwrap();
    let got: VecDeque<u64> = s.ids().collect();
    let mut expect = model.clone();
    // A pop in flight may not have happened; a push in flight may have.
    if got.len() > expect.len() && got.back() > expect.back() {
        expect.push_back(*got.back().unwrap());
    }
    if got.len() > expect.len() {
        expect.push_front(*got.front().unwrap());
    }
    assert_eq!(got, expect, "model {model:?}");
    assert!(s.quarantined() <= 1);
    assert!(s.last_id() >= model.back().copied().unwrap_or(0));
    for (id, b) in drain(&mut s) {
        assert_eq!(b, batch(id));
    }
}

/// Applies one line of the child's report to the model; returns 1 for a push. The test harness
/// writes "test <name> ... " without a newline before the child's first line, hence the search.
fn apply_line(model: &mut VecDeque<u64>, line: &str) -> usize {
    if let Some((_, id)) = line.split_once("pushed ") {
        model.push_back(id.parse().unwrap());
        1
    } else if let Some((_, id)) = line.split_once("popped ") {
        assert_eq!(model.pop_front(), Some(id.parse().unwrap()));
        0
    } else {
        0
    }
}

fn child_writer(dir: &Path) {
    use std::io::Write;
    let mut s = Spool::open(dir).unwrap();
    let mut out = std::io::stdout().lock();
    // Bounded, and a closed pipe (the parent gone) ends it at the next line too.
    for id in 1u64..=100_000 {
        s.push(id, &batch(id)).unwrap();
        writeln!(out, "pushed {id}").unwrap();
        out.flush().unwrap();
        if id % 3 == 0 {
            let (front, b) = s.front::<Batch>().unwrap().unwrap();
            assert_eq!(b, batch(front));
            s.pop_front().unwrap();
            writeln!(out, "popped {front}").unwrap();
            out.flush().unwrap();
        }
    }
}

#[test]
fn missing_directories_are_created() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("var/spool/xacct/pgsql_out");
    let mut s = Spool::open(&dir).unwrap();
    s.push(1, &batch(1)).unwrap();
    drop(s);
    assert_eq!(drain(&mut Spool::open(&dir).unwrap()), [(1, batch(1))]);
}
