//! `sql_trigger_exec` with real shell scripts: the environment they see, when they run, that the
//! plugin never waits for them, and the errors for programs that cannot run.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use xacct_sql::trigger::{Trigger, WriteInfo, MAX_RUNNING};

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// A script that writes its environment to `out` (atomically, so a reader never sees half).
fn env_dumper(dir: &Path) -> (PathBuf, PathBuf) {
    let out = dir.join("env.out");
    let p = script(dir, "dump.sh", &format!("env > '{0}.tmp' && mv '{0}.tmp' '{0}'", out.display()));
    (p, out)
}

fn read_env(path: &Path) -> BTreeMap<String, String> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn info() -> WriteInfo {
    WriteInfo {
        backend: "pgsql",
        host: "127.0.0.1".into(),
        db: "pmacct".into(),
        user: "pmacct".into(),
        table: "acct_20240305".into(),
        table_config: "acct_%Y%m%d".into(),
        refresh_time: 60,
        history: "1h".into(),
        history_basetime: 1_709_600_400,
        history_timeslot: 3600,
        max_writers: 10,
        active_writers: 2,
        total_entries: 130,
        entries: 120,
        rows_written: 118,
        inserted: Some(100),
        updated: Some(18),
        rows_spooled: 7,
        elapsed: Duration::from_millis(2750),
        sampling_rate: 0,
        recovery_backup_host: String::new(),
    }
}

#[test]
fn the_program_sees_pmacct_variables_and_ours() {
    let d = tempfile::tempdir().unwrap();
    let (exec, out) = env_dumper(d.path());
    let mut t = Trigger::new(exec, None).unwrap();
    assert!(t.after_write(1_709_604_000, &info()).unwrap());
    t.wait_children(Duration::from_secs(10));
    assert_eq!(t.running(), 0);
    let env = read_env(&out);
    let want = [
        ("SQL_DB", "pmacct"),
        ("SQL_TABLE", "acct_%Y%m%d"),
        ("EFFECTIVE_SQL_TABLE", "acct_20240305"),
        ("SQL_HOST", "127.0.0.1"),
        ("SQL_USER", "pmacct"),
        ("SQL_REFRESH_TIME", "60"),
        ("TOTAL_ELEM_NUMBER", "130"),
        ("EFFECTIVE_ELEM_NUMBER", "120"),
        ("INSERT_QUERIES_NUMBER", "100"),
        ("UPDATE_QUERIES_NUMBER", "18"),
        ("ELAPSED_TIME", "2"),
        ("SQL_HISTORY_BASETIME", "1709600400"),
        ("SQL_HISTORY_TIMESLOT", "3600"),
        ("SQL_MAX_WRITERS", "10"),
        ("SQL_ACTIVE_WRITERS", "2"),
        ("XACCT_BACKEND", "pgsql"),
        ("XACCT_SQL_HISTORY", "1h"),
        ("XACCT_ROWS_WRITTEN", "118"),
        ("XACCT_ROWS_SPOOLED", "7"),
        ("XACCT_ELAPSED_MS", "2750"),
        ("XACCT_TRIGGER_TIME", "1709604000"),
    ];
    for (k, v) in want {
        assert_eq!(env.get(k).map(String::as_str), Some(v), "{k} in {env:?}");
    }
    // Unset when they do not apply, as in pmacct.
    for k in ["SAMPLING_RATE", "SQL_RECOVERY_BACKUP_HOST", "SQL_HISTORY", "SQL_QUERIES_NUMBER"] {
        assert!(!env.contains_key(k), "{k} set: {env:?}");
    }
    // The daemon's own environment is passed on.
    assert_eq!(env.get("PATH"), std::env::var("PATH").ok().as_ref());
}

#[test]
fn optional_variables_follow_the_config() {
    let d = tempfile::tempdir().unwrap();
    let (exec, out) = env_dumper(d.path());
    let mut t = Trigger::new(exec, None).unwrap();
    let i = WriteInfo {
        backend: "sqlite3",
        db: "/var/lib/pmacct/pmacct.db".into(),
        table: "acct".into(),
        refresh_time: 300,
        entries: 5,
        rows_written: 5,
        sampling_rate: 100,
        recovery_backup_host: "db2.example".into(),
        ..WriteInfo::default()
    };
    t.after_write(0, &i).unwrap();
    t.wait_children(Duration::from_secs(10));
    let env = read_env(&out);
    assert_eq!(env["SQL_TABLE"], "acct");
    assert_eq!(env["SAMPLING_RATE"], "100");
    assert_eq!(env["SQL_RECOVERY_BACKUP_HOST"], "db2.example");
    assert_eq!(env["TOTAL_ELEM_NUMBER"], "5", "defaults to the effective number");
    for k in
        ["EFFECTIVE_SQL_TABLE", "SQL_HOST", "SQL_HISTORY_BASETIME", "SQL_HISTORY_TIMESLOT", "INSERT_QUERIES_NUMBER"]
    {
        assert!(!env.contains_key(k), "{k} set: {env:?}");
    }
}

fn count_lines(p: &Path) -> usize {
    fs::read_to_string(p).map(|s| s.lines().count()).unwrap_or(0)
}

#[test]
fn with_trigger_time_it_runs_once_per_period_after_the_first_boundary() {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("runs");
    let exec = script(d.path(), "count.sh", &format!("echo \"$XACCT_TRIGGER_TIME\" >> '{}'", log.display()));
    // 2024-03-05 12:02:00 UTC.
    let start = 1_709_640_120;
    let mut t = Trigger::aligned(exec, Some("5m"), None, start).unwrap();
    let i = info();
    let mut ran = Vec::new();
    for offset in [60, 179, 181, 240, 299, 301, 900, 905, 1200] {
        if t.after_write(start + offset, &i).unwrap() {
            ran.push(offset);
        }
    }
    // Boundaries at 12:05 (+180), 12:10 (+480, no write until +900 which also passed 12:15:
    // one run), 12:20 (+1080, next write +1200).
    assert_eq!(ran, [181, 900, 1200]);
    t.wait_children(Duration::from_secs(10));
    assert_eq!(count_lines(&log), 3);
    assert_eq!(t.runs(), 3);
}

#[test]
fn trigger_time_follows_roundoff() {
    let d = tempfile::tempdir().unwrap();
    let exec = script(d.path(), "true.sh", "exit 0");
    let start = 1_709_643_000; // 2024-03-05 12:50:00 UTC
                               // With roundoff m, 7m periods restart at each full hour: 12:49, 12:56, 13:00.
    let mut t = Trigger::aligned(exec.clone(), Some("7m"), Some("m"), start).unwrap();
    assert!(!t.after_write(start + 240, &info()).unwrap(), "12:54 is still in the 12:49 period");
    assert!(t.after_write(start + 420, &info()).unwrap(), "12:57 is in the 12:56 period");
    // Without roundoff, 7m periods count from the epoch: 12:46, 12:53, 13:00.
    let mut u = Trigger::aligned(exec, Some("7m"), None, start).unwrap();
    assert!(u.after_write(start + 240, &info()).unwrap(), "12:54 is in the 12:53 period");
    t.wait_children(Duration::from_secs(10));
    u.wait_children(Duration::from_secs(10));
}

#[test]
fn the_plugin_never_waits_for_the_program() {
    let d = tempfile::tempdir().unwrap();
    let go = d.path().join("go");
    let out = d.path().join("out");
    // Waits (up to 20 s) for a file only this test creates after after_write returned.
    let exec = script(
        d.path(),
        "wait.sh",
        &format!(
            "i=0; while [ ! -e '{go}' ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; \
             if [ -e '{go}' ]; then echo released > '{out}'; else echo timeout > '{out}'; fi",
            go = go.display(),
            out = out.display()
        ),
    );
    let mut t = Trigger::new(exec, None).unwrap();
    assert!(t.after_write(0, &info()).unwrap());
    assert_eq!(t.running(), 1, "still waiting for the go file");
    fs::write(&go, "").unwrap();
    t.wait_children(Duration::from_secs(20));
    assert_eq!(fs::read_to_string(&out).unwrap().trim(), "released");
    assert_eq!(t.running(), 0);
}

/// Processes (zombies included) whose parent is this test process and whose name is `comm`.
fn children_named(comm: &str) -> usize {
    let me = std::process::id().to_string();
    let tag = format!("({comm})");
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| fs::read_to_string(e.ok()?.path().join("stat")).ok())
        .filter(|stat| {
            // pid (comm) state ppid ...
            let after = stat.rsplit_once(')').map_or("", |x| x.1);
            let f: Vec<&str> = after.split_whitespace().collect();
            f.len() > 1 && f[1] == me && stat.contains(&tag)
        })
        .count()
}

#[test]
fn finished_runs_are_reaped_and_hung_ones_do_not_pile_up() {
    let d = tempfile::tempdir().unwrap();
    let go = d.path().join("go");
    let exec = script(
        d.path(),
        "hang.sh",
        &format!("i=0; while [ ! -e '{}' ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done", go.display()),
    );
    let mut t = Trigger::new(exec, None).unwrap();
    for _ in 0..MAX_RUNNING {
        assert!(t.after_write(0, &info()).unwrap());
    }
    assert!(!t.after_write(0, &info()).unwrap(), "a run beyond MAX_RUNNING is skipped");
    assert_eq!(t.skipped(), 1);
    assert_eq!(t.running(), MAX_RUNNING);
    assert_eq!(children_named("hang.sh"), MAX_RUNNING);
    fs::write(&go, "").unwrap();
    t.wait_children(Duration::from_secs(20));
    assert_eq!(t.running(), 0);
    // Reaped means no zombies left behind: no child of ours remains.
    assert_eq!(children_named("hang.sh"), 0);
    assert!(t.after_write(0, &info()).unwrap(), "room again once they finished");
    t.wait_children(Duration::from_secs(20));
}

#[test]
fn programs_that_cannot_run_are_clear_errors() {
    let d = tempfile::tempdir().unwrap();
    let missing = d.path().join("nope.sh");
    let e = Trigger::new(missing.clone(), None).unwrap_err();
    assert!(e.contains("sql_trigger_exec") && e.contains("nope.sh") && e.contains("No such file"), "{e}");

    let plain = d.path().join("plain.sh");
    fs::write(&plain, "#!/bin/sh\n").unwrap();
    fs::set_permissions(&plain, fs::Permissions::from_mode(0o644)).unwrap();
    let e = Trigger::new(plain, None).unwrap_err();
    // root may read anything but still needs an x bit to run a file.
    assert!(e.contains("plain.sh") && e.contains("not executable"), "{e}");

    let e = Trigger::new(d.path().to_path_buf(), None).unwrap_err();
    assert!(e.contains("not a regular file"), "{e}");

    let ok = script(d.path(), "ok.sh", "exit 0");
    let e = Trigger::new(ok.clone(), Some("5x")).unwrap_err();
    assert!(e.contains("sql_trigger_time '5x'"), "{e}");

    // Removed after start: the run fails with the path in the error, the plugin goes on.
    let mut t = Trigger::new(ok.clone(), None).unwrap();
    fs::remove_file(&ok).unwrap();
    let e = t.after_write(0, &info()).unwrap_err();
    assert!(e.to_string().contains("ok.sh"), "{e}");
}

#[test]
fn a_bare_name_is_a_path_not_a_path_search() {
    // `sh` is in PATH, but `sql_trigger_exec: sh` means ./sh, like pmacct's execv.
    let here = std::env::current_dir().unwrap();
    assert!(!here.join("sh").exists());
    let e = Trigger::new(PathBuf::from("sh"), None).unwrap_err();
    assert!(e.contains("No such file"), "{e}");
}
