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
