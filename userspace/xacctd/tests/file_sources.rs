//! Both savefile paths give the same tables: classic pcap (xacct's block reader) and pcapng
//! (libpcap), and `pcap_filter` (libpcap's BPF on whole frames) selects what an equivalent
//! `aggregate_filter` (xacct's evaluator on records) selects.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::{query_csv, savefile_conf, skip, sorted_rows, Daemon};

/// Runs xacctd over `pcap` with `extra` config lines and returns `xacct -s -O csv`'s rows, sorted.
fn table(dir: &Path, tag: &str, pcap: &Path, extra: &str) -> Vec<String> {
    let sock = dir.join(format!("{tag}.pipe"));
    let conf = dir.join(format!("{tag}.conf"));
    savefile_conf(
        &conf,
        pcap,
        &format!(
            "pcap_savefile_wait: true\naggregate: src_host,dst_host,proto,dst_port\nimt_path: {}\n{extra}",
            sock.display()
        ),
    );
    let mut d = Daemon::start(&conf, &dir.join(format!("{tag}.log")));
    d.wait_log("finished reading", Duration::from_secs(30));
    let rows = sorted_rows(&query_csv(&sock));
    d.terminate();
    rows
}

#[test]
fn pcap_and_pcapng_and_both_filters_agree() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = dir.path().join("t.pcap");
    xacct_perf::traffic::write_pcap(&pcap, &xacct_perf::traffic::mixed(20_000, 1_000, 21)).expect("pcap");
    let classic = table(dir.path(), "classic", &pcap, "");
    assert!(classic.len() > 100, "{classic:?}");

    let ng = dir.path().join("t.pcapng");
    match Command::new("editcap").args(["-F", "pcapng"]).arg(&pcap).arg(&ng).status() {
        Ok(st) if st.success() => {
            assert_eq!(table(dir.path(), "ng", &ng, ""), classic, "pcapng (libpcap) differs from pcap (block reader)")
        }
        _ => skip("pcapng half: editcap (tshark's wireshark-common) is not installed"),
    }

    let expr = "udp or (vlan and tcp)";
    let by_pcap = table(dir.path(), "pf", &pcap, &format!("pcap_filter: {expr}\n"));
    let by_agg = table(dir.path(), "af", &pcap, &format!("aggregate_filter: {expr}\n"));
    assert!(
        by_pcap.len() > 10 && by_pcap.len() < classic.len(),
        "filter selected {} of {}",
        by_pcap.len(),
        classic.len()
    );
    assert_eq!(by_pcap, by_agg, "pcap_filter and aggregate_filter disagree");
}
