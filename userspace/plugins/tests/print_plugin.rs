//! The print plugin with a test-double Harvest: periodic writes, the final flush at shutdown,
//! file overwrite and strftime names.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use xacct_core::aggregate::{Aggregate, Projector, Table, MAX_KEY_WORDS};
use xacct_core::config::{OutputFormat, PluginConfig, PluginKind};
use xacct_core::stats::PluginStats;
use xacct_core::{Addr, Record};
use xacct_plugins::{Harvest, PluginContext};

struct FakeHarvest(Arc<Mutex<Table>>);

impl Harvest for FakeHarvest {
    fn harvest_into(&mut self, into: &mut Table) {
        let mut t = self.0.lock().unwrap();
        into.merge_from(&t);
        t.clear();
    }
}

fn add(t: &Mutex<Table>, p: &Projector, src: [u8; 4], bytes: u64) {
    let r = Record {
        src_ip: Addr::V4(src),
        dst_ip: Addr::V4([192, 168, 1, 2]),
        dst_port: 80,
        proto: 6,
        packets: 1,
        bytes,
        ..Record::default()
    };
    let (mut k, mut k2) = ([0; MAX_KEY_WORDS], [0; MAX_KEY_WORDS]);
    p.pack(&r, 0, &mut k, &mut k2);
    t.lock().unwrap().add(&k, &p.counters(&r));
}

#[test]
fn writes_csv_file_each_refresh_and_flushes_at_shutdown() {
    let agg = Aggregate::parse("src_host,dst_host,proto,dst_port").unwrap();
    let proj = Projector::new(&agg, false);
    let dir = tempfile::tempdir().unwrap();
    let pattern = dir.path().join("out-%Y.csv").display().to_string();
    let year = chrono::Local::now().format("%Y").to_string();
    let file = dir.path().join(format!("out-{year}.csv"));
    let pending = Arc::new(Mutex::new(Table::with_words(proj.words())));
    let stats = Arc::new(PluginStats::default());
    let (stop, shutdown) = crossbeam_channel::bounded(1);
    let ctx = PluginContext {
        config: PluginConfig {
            aggregate: agg.clone(),
            print_output: OutputFormat::Csv,
            print_output_file: Some(pattern),
            print_output_separator: ";".into(),
            print_refresh_time: 1,
            ..PluginConfig::new("p", PluginKind::Print)
        },
        projector: proj.clone(),
        harvest: Box::new(FakeHarvest(pending.clone())),
        stats: stats.clone(),
        sources: vec![],
        peers: vec![],
        shutdown,
        tag_map: None,
        datagrams: None,
        samples: None,
    };
    add(&pending, &proj, [10, 0, 0, 1], 100);
    add(&pending, &proj, [10, 0, 0, 1], 160);
    let th = std::thread::spawn(move || xacct_plugins::print::run_print(ctx));

    // First refresh after ~1 s.
    let t0 = Instant::now();
    while !file.exists() {
        assert!(t0.elapsed() < Duration::from_secs(10), "no output file");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "SRC_IP;DST_IP;DST_PORT;PROTOCOL;PACKETS;BYTES\n10.0.0.1;192.168.1.2;80;tcp;2;260\n"
    );

    // Added just before shutdown: written by the final flush, replacing the previous content
    // (the table restarts from empty after each write).
    add(&pending, &proj, [10, 0, 0, 9], 7);
    stop.send(()).unwrap();
    th.join().unwrap().unwrap();
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "SRC_IP;DST_IP;DST_PORT;PROTOCOL;PACKETS;BYTES\n10.0.0.9;192.168.1.2;80;tcp;1;7\n"
    );
    assert_eq!(stats.entries_written.load(std::sync::atomic::Ordering::Relaxed), 2);
}

#[test]
fn strftime_expansion() {
    use xacct_plugins::print::expand_path;
    assert_eq!(expand_path("/x/%Y", 0, false).len(), "/x/1970".len());
    // A pattern chrono cannot parse is used as is instead of panicking.
    assert_eq!(expand_path("/x/%Q%", 0, false), "/x/%Q%");
}

/// Runs the print plugin once with `config`: `entries` (source address, time bin, bytes) in
/// its table, no refresh before the final flush at shutdown.
fn run_once(config: PluginConfig, entries: &[([u8; 4], i64, u64)]) {
    let proj = Projector::new(&config.aggregate, config.print_history.is_some());
    let pending = Arc::new(Mutex::new(Table::with_words(proj.words())));
    for (src, bin, bytes) in entries {
        let r = Record {
            src_ip: Addr::V4(*src),
            dst_ip: Addr::V4([192, 168, 1, 2]),
            dst_port: 80,
            proto: 6,
            packets: 1,
            bytes: *bytes,
            ..Record::default()
        };
        let (mut k, mut k2) = ([0; MAX_KEY_WORDS], [0; MAX_KEY_WORDS]);
        proj.pack(&r, *bin, &mut k, &mut k2);
        pending.lock().unwrap().add(&k, &proj.counters(&r));
    }
    let (stop, shutdown) = crossbeam_channel::bounded(1);
    let ctx = PluginContext {
        config: PluginConfig { print_refresh_time: 3600, ..config },
        projector: proj,
        harvest: Box::new(FakeHarvest(pending)),
        stats: Arc::new(PluginStats::default()),
        sources: vec![],
        peers: vec![],
        shutdown,
        tag_map: None,
        datagrams: None,
        samples: None,
    };
    let th = std::thread::spawn(move || xacct_plugins::print::run_print(ctx));
    stop.send(()).unwrap();
    th.join().unwrap().unwrap();
}

fn print_config(file: &std::path::Path, format: OutputFormat, aggregate: &str) -> PluginConfig {
    PluginConfig {
        aggregate: Aggregate::parse(aggregate).unwrap(),
        print_output: format,
        print_output_file: Some(file.display().to_string()),
        ..PluginConfig::new("p", PluginKind::Print)
    }
}

#[test]
fn markers_as_pmacct_writes_them() {
    let dir = tempfile::tempdir().unwrap();
    let pid = std::process::id();
    let csv = dir.path().join("m.csv");
    run_once(
        PluginConfig { print_markers: true, ..print_config(&csv, OutputFormat::Csv, "src_host,proto") },
        &[([10, 0, 0, 1], 0, 100)],
    );
    assert_eq!(
        std::fs::read_to_string(&csv).unwrap(),
        format!("--START ({pid})--\nSRC_IP,PROTOCOL,PACKETS,BYTES\n10.0.0.1,tcp,1,100\n--END ({pid})--\n")
    );
    let json = dir.path().join("m.json");
    run_once(
        PluginConfig { print_markers: true, ..print_config(&json, OutputFormat::Json, "src_host") },
        &[([10, 0, 0, 1], 0, 100), ([10, 0, 0, 2], 0, 50)],
    );
    let text = std::fs::read_to_string(&json).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert_eq!(lines[0], format!("{{\"event_type\": \"purge_init\", \"writer_id\": \"p/{pid}\"}}"));
    assert!(
        lines[1].starts_with("{\"event_type\": \"purge\"") && lines[2].starts_with("{\"event_type\": \"purge\""),
        "{text}"
    );
    assert_eq!(
        lines[3],
        format!("{{\"event_type\": \"purge_close\", \"writer_id\": \"p/{pid}\", \"purged_entries\": 2, \"total_entries\": 2, \"duration\": 0}}")
    );
}

#[test]
fn append_writes_the_header_into_a_new_file_only() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.csv");
    let cfg = PluginConfig {
        print_output_file_append: true,
        print_num_protos: true,
        ..print_config(&file, OutputFormat::Csv, "src_host,proto")
    };
    run_once(cfg.clone(), &[([10, 0, 0, 1], 0, 100)]);
    run_once(cfg, &[([10, 0, 0, 2], 0, 7)]);
    // print_num_protos: 6, not tcp.
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "SRC_IP,PROTOCOL,PACKETS,BYTES\n10.0.0.1,6,1,100\n10.0.0.2,6,1,7\n"
    );
    // Without append, each write replaces the file.
    let cfg = print_config(&file, OutputFormat::Csv, "src_host");
    run_once(cfg, &[([10, 0, 0, 3], 0, 1)]);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "SRC_IP,PACKETS,BYTES\n10.0.0.3,1,1\n");
}

#[test]
fn latest_file_points_at_the_greatest_name_and_empty_files_are_written_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let pattern = dir.path().join("out-%Y%m%d-%H%M.csv");
    let latest = dir.path().join("latest");
    let cfg = PluginConfig {
        print_history: Some(xacct_core::history::History::parse("1h", None).unwrap()),
        print_latest_file: Some(latest.display().to_string()),
        timestamps_utc: true,
        ..print_config(&pattern, OutputFormat::Csv, "src_host")
    };
    // 2023-11-14 22:00 and 23:00 UTC: two files, the later one is the latest.
    let (b1, b2) = (1_699_999_200, 1_700_002_800);
    run_once(cfg.clone(), &[([10, 0, 0, 1], b1, 1), ([10, 0, 0, 2], b2, 2)]);
    let later = dir.path().join("out-20231114-2300.csv");
    assert!(dir.path().join("out-20231114-2200.csv").exists() && later.exists());
    assert_eq!(std::fs::read_link(&latest).unwrap(), later);
    // A write of an earlier bin does not move the pointer back.
    run_once(cfg, &[([10, 0, 0, 3], b1, 3)]);
    assert_eq!(std::fs::read_link(&latest).unwrap(), later);

    // print_write_empty_file: a refresh with no entry leaves a zero-length file.
    let empty = dir.path().join("empty.csv");
    run_once(print_config(&empty, OutputFormat::Csv, "src_host"), &[]);
    assert!(!empty.exists(), "pmacct writes nothing for an empty refresh by default");
    run_once(PluginConfig { print_write_empty_file: true, ..print_config(&empty, OutputFormat::Csv, "src_host") }, &[]);
    assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0);
}

#[test]
fn json_stamps_in_utc_or_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.json");
    let hourly = Some(xacct_core::history::History::parse("1h", None).unwrap());
    let cfg = PluginConfig {
        print_history: hourly,
        timestamps_utc: true,
        ..print_config(&file, OutputFormat::Json, "src_host")
    };
    run_once(cfg, &[([10, 0, 0, 1], 1_699_999_200, 1)]);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("\"stamp_inserted\": \"2023-11-14 22:00:00\""), "{text}");
    let cfg = PluginConfig {
        print_history: hourly,
        timestamps_since_epoch: true,
        ..print_config(&file, OutputFormat::Json, "src_host")
    };
    run_once(cfg, &[([10, 0, 0, 1], 1_699_999_200, 1)]);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("\"stamp_inserted\": 1699999200"), "{text}");
}

#[test]
fn startup_delay_shifts_the_refreshes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("d.csv");
    let agg = Aggregate::parse("src_host").unwrap();
    let proj = Projector::new(&agg, false);
    let pending = Arc::new(Mutex::new(Table::with_words(proj.words())));
    add(&pending, &proj, [10, 0, 0, 1], 100);
    let (stop, shutdown) = crossbeam_channel::bounded(1);
    let ctx = PluginContext {
        config: PluginConfig {
            print_refresh_time: 1,
            print_startup_delay: 2,
            ..print_config(&file, OutputFormat::Csv, "src_host")
        },
        projector: proj,
        harvest: Box::new(FakeHarvest(pending)),
        stats: Arc::new(PluginStats::default()),
        sources: vec![],
        peers: vec![],
        shutdown,
        tag_map: None,
        datagrams: None,
        samples: None,
    };
    let t0 = Instant::now();
    let th = std::thread::spawn(move || xacct_plugins::print::run_print(ctx));
    while !file.exists() {
        assert!(t0.elapsed() < Duration::from_secs(10), "no output file");
        std::thread::sleep(Duration::from_millis(20));
    }
    let first = t0.elapsed();
    assert!(first >= Duration::from_millis(2900), "first refresh after {first:?}, not 1 s + 2 s");
    stop.send(()).unwrap();
    th.join().unwrap().unwrap();
}
