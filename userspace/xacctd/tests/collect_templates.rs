//! `nfacctd_templates_file` with the real daemon: v9 and IPFIX templates (and v9 sampling
//! options) survive a restart, so data sets sent after it are accounted without templates;
//! a corrupt or unreadable file is a logged, counted error and never stops collection.

mod support;

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;
use support::*;
use xacct_wire::netflow::{FlowRecord, MessageBuilder, NetflowHeader, TemplateField};

const AGG: &str = "src_host,dst_host,src_port,dst_port,proto";

const FIELDS: [TemplateField; 7] = [
    TemplateField::iana(8, 4),
    TemplateField::iana(12, 4),
    TemplateField::iana(7, 2),
    TemplateField::iana(11, 2),
    TemplateField::iana(4, 1),
    TemplateField::iana(2, 4),
    TemplateField::iana(1, 4),
];

fn flow(src: &str, dst: &str, sport: u16, dport: u16, packets: u64, bytes: u64) -> FlowRecord {
    let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
    FlowRecord {
        src_addr: ip(src),
        dst_addr: ip(dst),
        src_port: sport,
        dst_port: dport,
        proto: 6,
        packets,
        bytes,
        ..FlowRecord::default()
    }
}

fn v9_header(seq: u32) -> NetflowHeader {
    NetflowHeader { version: 9, unix_secs: 1_700_000_000, sequence: seq, source_id: 3, ..NetflowHeader::default() }
}

fn ipfix_header(seq: u32) -> NetflowHeader {
    NetflowHeader { version: 10, unix_secs: 1_700_000_000, sequence: seq, source_id: 9, ..NetflowHeader::default() }
}

fn v9_flows() -> Vec<FlowRecord> {
    vec![flow("192.0.2.1", "192.0.2.2", 4000, 443, 3, 300)]
}

fn ipfix_flows() -> Vec<FlowRecord> {
    vec![flow("198.51.100.1", "198.51.100.2", 5000, 22, 4, 400), flow("198.51.100.3", "198.51.100.4", 6000, 80, 1, 70)]
}

/// v9: an options template announcing 1-in-10 sampling for the whole source id, its data, the
/// flow template and one flow; IPFIX: a template and two flows.
fn with_templates() -> Vec<Vec<u8>> {
    let mut m = MessageBuilder::v9(&v9_header(1));
    // Scope system (1)/4; samplingInterval (34)/4, samplingAlgorithm (35)/1.
    m.options_template(257, &[TemplateField::iana(1, 4)], &[TemplateField::iana(34, 4), TemplateField::iana(35, 1)]);
    m.data_raw(257, 1, &[0, 0, 0, 0, 0, 0, 0, 10, 1], 3);
    m.template(256, &FIELDS).data(256, &FIELDS, &v9_flows());
    let v9 = m.finish();
    let mut m = MessageBuilder::ipfix(&ipfix_header(0));
    m.template(300, &FIELDS).data(300, &FIELDS, &ipfix_flows());
    vec![v9, m.finish()]
}

/// The same flows in data sets only.
fn data_only() -> Vec<Vec<u8>> {
    let mut m = MessageBuilder::v9(&v9_header(2));
    m.data(256, &FIELDS, &v9_flows());
    let v9 = m.finish();
    let mut m = MessageBuilder::ipfix(&ipfix_header(2));
    m.data(300, &FIELDS, &ipfix_flows());
    vec![v9, m.finish()]
}

/// The table both datagram sets make: the v9 flow renormalised by the announced 1-in-10.
fn expected() -> Vec<&'static str> {
    vec![
        "192.0.2.1,192.0.2.2,4000,443,tcp,30,3000",
        "198.51.100.1,198.51.100.2,5000,22,tcp,4,400",
        "198.51.100.3,198.51.100.4,6000,80,tcp,1,70",
    ]
}

fn lines(port: u16, file: &Path) -> String {
    format!(
        "nfacctd_ip: 127.0.0.1\nnfacctd_port: {port}\nnfacctd_renormalize: true\nnfacctd_templates_file: {}\n",
        file.display()
    )
}

#[test]
fn templates_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("templates.json");
    let port = free_udp_port();

    let (d, pipe) = start_collector(dir.path(), "first", &lines(port, &file), AGG);
    send_udp(port, &with_templates());
    wait_counter(&pipe, "flow_records", 3);
    assert_eq!(sorted_rows(&query_csv(&pipe)), expected());
    // Written while running (debounced), not only at shutdown.
    let status = wait_counter(&pipe, "templates_file_writes", 1);
    assert_eq!(counter(&status, "templates_file_errors"), Some(0), "{status}");
    let log = d.terminate();
    assert!(log.contains("nfacctd_templates_file") && log.contains("not there yet"), "{log}");

    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("templates file")).expect("JSON");
    assert_eq!(saved["format"], "xacct-nfacctd-templates");
    let domains = saved["domains"].as_array().expect("domains");
    let summary: Vec<_> = domains
        .iter()
        .map(|d| (d["netflow_version"].as_u64(), d["source_id"].as_u64(), d["templates"].as_array().map(Vec::len)))
        .collect();
    assert_eq!(summary, vec![(Some(9), Some(3), Some(2)), (Some(10), Some(9), Some(1))], "{saved}");
    assert_eq!(domains[0]["sampling"][0]["interval"], 10, "{saved}");

    // Restarted on the same file: data sets alone are decoded, sampling still applies.
    let (mut d, pipe) = start_collector(dir.path(), "second", &lines(port, &file), AGG);
    d.wait_log("loaded 3 templates of 2 exporter domains", Duration::from_secs(5));
    send_udp(port, &data_only());
    let status = wait_counter(&pipe, "flow_records", 3);
    assert_eq!(sorted_rows(&query_csv(&pipe)), expected());
    assert_eq!(counter(&status, "unknown_template_sets"), Some(0), "{status}");
    assert_eq!(counter(&status, "templates_loaded"), Some(3), "{status}");
    assert_eq!(counter(&status, "templates_file_errors"), Some(0), "{status}");
    d.terminate();
}

#[test]
fn a_corrupt_templates_file_is_an_error_counted_and_replaced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("templates.json");
    std::fs::write(&file, "{\"format\": \"xacct-nfacctd-templates\", \"version\": 1, \"domains\": [ {\"exp").unwrap();
    let port = free_udp_port();
    let (mut d, pipe) = start_collector(dir.path(), "x", &lines(port, &file), AGG);
    d.wait_log("not valid JSON", Duration::from_secs(5));
    // Without templates the data sets are held and counted, not accounted …
    send_udp(port, &data_only());
    let status = wait_counter(&pipe, "unknown_template_sets", 2);
    assert_eq!(counter(&status, "templates_file_errors"), Some(1), "{status}");
    assert!(sorted_rows(&query_csv(&pipe)).is_empty());
    // … until the templates arrive, which also replays the held sets (the v9 one after the
    // sampling options that precede its template in the datagram, so renormalised too).
    send_udp(port, &with_templates());
    wait_counter(&pipe, "flow_records", 6);
    let csv = query_csv(&pipe);
    assert_eq!(
        sorted_rows(&csv),
        vec![
            "192.0.2.1,192.0.2.2,4000,443,tcp,60,6000",
            "198.51.100.1,198.51.100.2,5000,22,tcp,8,800",
            "198.51.100.3,198.51.100.4,6000,80,tcp,2,140",
        ],
        "{csv}"
    );
    let log = d.terminate();
    assert!(log.contains(&format!("nfacctd_templates_file {}: not valid JSON", file.display())), "{log}");
    let text = std::fs::read_to_string(&file).expect("templates file");
    let saved: serde_json::Value = serde_json::from_str(&text).expect("rewritten as valid JSON");
    assert_eq!(saved["domains"].as_array().map(Vec::len), Some(2), "{text}");
}

#[test]
fn an_unusable_templates_path_is_counted_and_collection_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A directory where the file should be: it can be neither read nor replaced.
    let file = dir.path().join("templates.json");
    std::fs::create_dir(&file).unwrap();
    let port = free_udp_port();
    let (mut d, pipe) = start_collector(dir.path(), "x", &lines(port, &file), AGG);
    d.wait_log("cannot read", Duration::from_secs(5));
    send_udp(port, &with_templates());
    wait_counter(&pipe, "flow_records", 3);
    assert_eq!(sorted_rows(&query_csv(&pipe)), expected());
    // One failed read, then at least one failed write.
    let status = wait_counter(&pipe, "templates_file_errors", 2);
    assert_eq!(counter(&status, "templates_file_writes"), Some(0), "{status}");
    let log = d.terminate();
    assert!(log.contains("cannot write"), "{log}");
}
