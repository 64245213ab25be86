//! The real `xacct` binary, typed as operators type pmacct, against a memory plugin served from
//! a table the test fills (test-double Harvest).

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use xacct_core::aggregate::{Aggregate, Projector, Table, MAX_KEY_WORDS};
use xacct_core::config::{PluginConfig, PluginKind};
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

fn xacct(args: &[&str]) -> (bool, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_xacct")).args(args).output().unwrap();
    (o.status.success(), String::from_utf8(o.stdout).unwrap(), String::from_utf8(o.stderr).unwrap())
}

#[test]
fn pmacct_style_flags() {
    let agg = Aggregate::parse("src_host,dst_host,src_port,dst_port,proto").unwrap();
    let proj = Projector::new(&agg, false);
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("x.pipe");
    let sock_s = sock.to_str().unwrap();
    let pending = Arc::new(Mutex::new(Table::with_words(proj.words())));
    {
        let (mut k, mut k2) = ([0; MAX_KEY_WORDS], [0; MAX_KEY_WORDS]);
        let mut t = pending.lock().unwrap();
        for (src, dp, proto, bytes) in
            [([10, 0, 0, 1], 80, 6, 100), ([10, 0, 0, 1], 80, 6, 160), ([172, 16, 5, 4], 0, 1, 28)]
        {
            let r = Record {
                src_ip: Addr::V4(src),
                dst_ip: Addr::V4([192, 168, 1, 2]),
                src_port: 1234,
                dst_port: dp,
                proto,
                packets: 1,
                bytes,
                ..Record::default()
            };
            proj.pack(&r, 0, &mut k, &mut k2);
            t.add(&k, &proj.counters(&r));
        }
    }
    let (stop, shutdown) = crossbeam_channel::bounded(1);
    let ctx = PluginContext {
        config: PluginConfig {
            aggregate: agg.clone(),
            imt_path: sock.clone(),
            ..PluginConfig::new("m", PluginKind::Memory)
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
    let th = std::thread::spawn(move || xacct_plugins::memory::run_memory(ctx));
    let t0 = Instant::now();
    while !sock.exists() {
        assert!(t0.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(10));
    }

    let (ok, out, err) = xacct(&["-s", "-O", "csv", "-p", sock_s, "-T", "bytes"]);
    assert!(ok, "{err}");
    assert_eq!(out, "SRC_IP,DST_IP,SRC_PORT,DST_PORT,PROTOCOL,PACKETS,BYTES\n10.0.0.1,192.168.1.2,1234,80,tcp,2,260\n172.16.5.4,192.168.1.2,1234,0,icmp,1,28\n");

    let (ok, out, _) = xacct(&["-p", sock_s, "-M", "172.16.5.4", "-c", "src_host", "-u"]);
    assert!(ok);
    assert_eq!(
        out,
        "SRC_IP                                         DST_IP                                         SRC_PORT  DST_PORT  PROTOCOL    PACKETS               BYTES\n\
         172.16.5.4                                     192.168.1.2                                    1234      0         1           1                     28\n\
         \n\
         For a total of: 1 entries\n"
    );

    let (_, out, _) = xacct(&["-p", sock_s, "-N", "10.0.0.1;172.16.5.4", "-c", "src_host"]);
    assert_eq!(out, "260\n28\n");
    let (_, out, _) = xacct(&["-p", sock_s, "-N", "10.0.0.1;172.16.5.4", "-c", "src_host", "-S", "-n", "packets"]);
    assert_eq!(out, "3\n");
    let qfile = dir.path().join("q.txt");
    std::fs::write(&qfile, "10.0.0.1,80\n*,0\n").unwrap();
    let (_, out, _) =
        xacct(&["-p", sock_s, "-N", &format!("file:{}", qfile.display()), "-c", "src_host,dst_port", "-n", "all"]);
    assert_eq!(out, "2 260 0 1\n1 28 0 1\n");

    let (ok, _, err) = xacct(&["-p", sock_s, "-N", "10.0.0.1"]);
    assert!(!ok && err.contains("-c has not been specified"), "{err}");

    let (_, out, _) = xacct(&["-p", sock_s, "-i"]);
    assert_eq!(out, "never\n");
    let (_, out, _) = xacct(&["-p", sock_s, "-e"]);
    assert_eq!(out, "OK: Clearing stats.\n");
    let (_, out, _) = xacct(&["-p", sock_s, "-i"]);
    assert_eq!(out, "0\n");
    let (_, out, _) = xacct(&["-p", sock_s, "-s", "-a", "-0", "-I", "-O", "json"]);
    assert_eq!(out, "");
    let (ok, out, _) = xacct(&["-p", sock_s, "-t"]);
    assert!(ok && out.contains("entries: 0\n"), "{out}");

    stop.send(()).unwrap();
    th.join().unwrap().unwrap();

    let (ok, _, err) = xacct(&["-s", "-p", sock_s]);
    assert!(!ok);
    assert!(err.contains(&format!("no xacctd memory table at {sock_s}")), "{err}");
    let (ok, out, _) = xacct(&["-V"]);
    assert!(ok && out.starts_with("xacct "));
}
