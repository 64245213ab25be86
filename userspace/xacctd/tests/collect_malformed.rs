//! A corpus of malformed NetFlow/IPFIX and sFlow datagrams (truncated, bad counts and lengths,
//! zero-length fields, bad template ids, template churn and data before its template) sent to
//! the real daemon between good ones: every bad datagram is counted under its reason in
//! `xacct -t`, the good ones are accounted exactly, and the daemon keeps running.

mod support;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};
use support::*;
use xacct_wire::netflow::{encode_v5, FlowRecord, MessageBuilder, NetflowHeader, TemplateField};

const AGG: &str = "src_host,dst_host,src_port,dst_port,proto";

fn flow(src: &str, sport: u16, packets: u64) -> FlowRecord {
    FlowRecord {
        src_addr: src.parse::<IpAddr>().expect("ip"),
        dst_addr: "192.0.2.200".parse::<IpAddr>().expect("ip"),
        src_port: sport,
        dst_port: 80,
        proto: 6,
        packets,
        bytes: packets * 100,
        ..FlowRecord::default()
    }
}

const FIELDS: [TemplateField; 6] = [
    TemplateField::iana(8, 4),
    TemplateField::iana(12, 4),
    TemplateField::iana(7, 2),
    TemplateField::iana(11, 2),
    TemplateField::iana(4, 1),
    TemplateField::iana(2, 4),
];

fn be16(v: u16) -> [u8; 2] {
    v.to_be_bytes()
}

/// A v9 header (source id 7) followed by `sets`; `count` as given.
fn v9(count: u16, sets: &[Vec<u8>]) -> Vec<u8> {
    let mut d = vec![0, 9];
    d.extend(be16(count));
    d.extend([0, 0, 0, 1, 0x65, 0x53, 0xf1, 0, 0, 0, 0, 1, 0, 0, 0, 7]);
    d.extend(sets.concat());
    d
}

/// An IPFIX header (domain 8) with its length filled in, followed by `sets`.
fn ipfix(sets: &[Vec<u8>]) -> Vec<u8> {
    let body = sets.concat();
    let mut d = vec![0, 10];
    d.extend(be16((16 + body.len()) as u16));
    d.extend([0x65, 0x53, 0xf1, 0, 0, 0, 0, 1, 0, 0, 0, 8]);
    d.extend(body);
    d
}

fn set(id: u16, body: &[u8]) -> Vec<u8> {
    let mut v = be16(id).to_vec();
    v.extend(be16((body.len() + 4) as u16));
    v.extend_from_slice(body);
    v
}

/// sFlow words.
fn w(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|x| x.to_be_bytes()).collect()
}

/// (datagram, reason it must be counted under).
fn netflow_corpus() -> Vec<(Vec<u8>, &'static str)> {
    let h5 = NetflowHeader { version: 5, unix_secs: 1_700_000_000, ..NetflowHeader::default() };
    let good5 = encode_v5(&h5, &[flow("10.9.0.1", 1, 1), flow("10.9.0.2", 2, 1)]);
    let mut count_says_5 = good5.clone();
    count_says_5[3] = 5;
    let mut count_31 = encode_v5(&h5, &vec![flow("10.9.0.3", 3, 1); 31]);
    count_31[3] = 31;
    let mut bad_v8_scheme = vec![0, 8, 0, 1];
    bad_v8_scheme.extend([0; 24]);
    bad_v8_scheme[22] = 99;
    let mut ipfix_long = ipfix(&[]);
    ipfix_long[3] = 200;
    vec![
        (vec![], "empty"),
        (vec![0], "empty"),
        (vec![0, 42, 0, 0], "bad_version"),
        (good5[..30].to_vec(), "count_mismatch"),
        (good5[..10].to_vec(), "truncated_header"),
        (vec![0, 1, 0, 1, 0, 0], "truncated_header"),
        (count_says_5, "count_mismatch"),
        (count_31, "too_many_records"),
        (bad_v8_scheme, "bad_aggregation"),
        (v9(1, &[]).get(..12).unwrap_or_default().to_vec(), "truncated_header"),
        (v9(1, &[vec![1, 0, 0, 2]]), "bad_set_length"),
        (v9(1, &[vec![1, 0, 0, 40, 0, 0]]), "bad_set_length"),
        (v9(1, &[set(0, &[1, 0, 0, 3, 0, 8, 0, 4])]), "truncated_template"),
        (v9(1, &[set(0, &[1, 0, 0, 1, 0, 8, 0, 0])]), "zero_length_field"),
        (v9(1, &[set(0, &[1, 0, 0, 0])]), "template_too_short"),
        (v9(1, &[set(0, &[0, 5, 0, 1, 0, 8, 0, 4])]), "bad_template_id"),
        (v9(1, &[set(0, &[1, 0, 0x10, 0, 0, 8, 0, 4])]), "too_many_fields"),
        (v9(1, &[set(1, &[1, 0, 0, 3, 0, 4, 0, 1, 0, 4, 0, 0])]), "bad_options_template"),
        (v9(1, &[set(0, &[1, 0, 0, 0]), set(0, &[1, 1, 0, 0])]), "template_too_short"),
        (ipfix_long, "bad_message_length"),
        (ipfix(&[vec![1, 2]]), "bad_set_length"),
        (ipfix(&[set(2, &[1, 0, 0, 1, 0x80, 1, 0, 4])]), "truncated_template"),
        (ipfix(&[set(3, &[1, 0, 0, 1, 0, 0, 0, 8, 0, 4])]), "bad_options_template"),
        (ipfix(&[set(2, &[1, 1, 0, 1, 0, 82, 0xff, 0xff]), set(257, &[10, b'x'])]), "truncated_varlen"),
        (ipfix(&[set(2, &[1, 2, 0, 1, 0, 82, 0xff, 0xff]), set(258, &[255, 0])]), "truncated_varlen"),
    ]
}

/// Well-formed but awkward v9/IPFIX: the same template id redefined again and again with data
/// between (the latest definition decodes each data set), data sent before its template in the
/// same datagram (held, then replayed once), a template whose only field is variable-length
/// with 64 empty records (must end with the set, not loop). Returns the datagrams and the
/// packets each source address must end up with.
fn template_churn() -> (Vec<Vec<u8>>, BTreeMap<String, u64>) {
    let h = NetflowHeader { version: 9, unix_secs: 1_700_000_000, source_id: 11, ..NetflowHeader::default() };
    let mut m = MessageBuilder::v9(&h);
    let short = [TemplateField::iana(8, 4), TemplateField::iana(2, 4)];
    let mut want = BTreeMap::new();
    for i in 0..50u16 {
        // Even rounds: the 6-field layout; odd: 2 fields. Same id each time.
        let src = format!("10.20.{}.{}", i / 256, i % 256);
        let r = flow(&src, 1000 + i, u64::from(i) + 1);
        if i % 2 == 0 {
            m.template(300, &FIELDS).data(300, &FIELDS, &[r]);
        } else {
            m.template(300, &short).data(300, &short, &[r]);
        }
        want.insert(src, u64::from(i) + 1);
    }
    let churn = m.finish();
    let hx = NetflowHeader { version: 10, unix_secs: 1_700_000_000, source_id: 12, ..NetflowHeader::default() };
    let mut m = MessageBuilder::ipfix(&hx);
    m.data(400, &FIELDS, &[flow("10.30.0.1", 1, 7)]).template(400, &FIELDS);
    let data_first = m.finish();
    want.insert("10.30.0.1".to_string(), 7);
    let varlen_only = ipfix(&[set(2, &[1, 3, 0, 1, 0, 82, 0xff, 0xff]), set(259, &[0; 64])]);
    (vec![churn, data_first, varlen_only], want)
}

fn sflow_corpus() -> Vec<(Vec<u8>, &'static str)> {
    vec![
        (vec![], "truncated_header"),
        (w(&[3, 1, 0, 0, 0, 0]), "bad_version"),
        (w(&[5, 3, 0, 0, 0, 0, 0]), "bad_address_type"),
        (w(&[5, 1, 0, 0, 0, 0]), "truncated_header"),
        (w(&[5, 1, 0, 0, 0, 0, 1_000_000]), "bad_sample_count"),
        (w(&[5, 1, 0, 0, 0, 0, 1, 1, 100]), "sample_length_overrun"),
        (w(&[5, 1, 0, 0, 0, 0, 1, 1, 8, 0, 0]), "truncated_sample"),
        (w(&[5, 1, 0, 0, 0, 0, 1, 1, 40, 0, 0, 0, 0, 0, 0, 0, 1000, 0, 0]), "bad_record_count"),
        (w(&[5, 1, 0, 0, 0, 0, 1, 1, 48, 0, 0, 0, 0, 0, 0, 0, 1, 1001, 9, 0, 0]), "record_length_overrun"),
        (w(&[5, 1, 0, 0, 0, 0, 1, 1, 48, 0, 0, 0, 0, 0, 0, 0, 1, 1001, 8, 0, 0]), "truncated_record"),
        (w(&[4, 1, 0, 0, 0, 1, 9, 0]), "unknown_sample_type"),
    ]
}

/// Sums "malformed <reason>: n" over every exporter line of an `xacct -t` answer.
fn reasons(status: &str) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for l in status.lines() {
        let Some(rest) = l.split(" malformed ").nth(1) else { continue };
        let Some((reason, n)) = rest.split_once(": ") else { continue };
        *m.entry(reason.trim().to_string()).or_insert(0) += n.trim().parse::<u64>().unwrap_or(0);
    }
    m
}

fn expected(corpus: &[(Vec<u8>, &'static str)]) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for (_, r) in corpus {
        *m.entry(r.to_string()).or_insert(0) += 1;
    }
    m
}

#[test]
fn malformed_corpus_is_counted_by_reason_and_good_datagrams_accounted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (nf, sf) = (free_udp_port(), free_udp_port());
    let (d, pipe) = start_collector(
        dir.path(),
        "x",
        &format!("nfacctd_ip: 127.0.0.1\nnfacctd_port: {nf}\nsfacctd_ip: 127.0.0.1\nsfacctd_port: {sf}\n"),
        AGG,
    );
    let nf_corpus = netflow_corpus();
    let (churn, mut want) = template_churn();
    let h5 = NetflowHeader { version: 5, unix_secs: 1_700_000_000, ..NetflowHeader::default() };
    let good = encode_v5(&h5, &[flow("10.40.0.1", 1, 3)]);
    want.insert("10.40.0.1".to_string(), 3 * (nf_corpus.len() as u64 + 1));
    // A good datagram before and after every bad one: nothing a bad one does may spoil it.
    let mut dgrams = vec![good.clone()];
    for (bad, _) in &nf_corpus {
        dgrams.push(bad.clone());
        dgrams.push(good.clone());
    }
    dgrams.extend(churn);
    send_udp(nf, &dgrams);
    let sf_corpus = sflow_corpus();
    send_udp(sf, &sf_corpus.iter().map(|(d, _)| d.clone()).collect::<Vec<_>>());

    let total = (dgrams.len() + sf_corpus.len()) as u64;
    let t = Instant::now();
    let status = loop {
        let s = client(&xacct_bin(), &pipe, &["-t"]);
        let seen: u64 = s
            .lines()
            .filter(|l| l.trim_start().starts_with("datagrams:"))
            .filter_map(|l| counter(l, "datagrams"))
            .sum();
        if seen >= total {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "{seen} of {total} datagrams seen:\n{s}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut want_reasons = expected(&nf_corpus);
    for (k, v) in expected(&sf_corpus) {
        *want_reasons.entry(k).or_insert(0) += v;
    }
    assert_eq!(reasons(&status), want_reasons, "{status}");
    let malformed: u64 = status
        .lines()
        .filter(|l| l.trim_start().starts_with("malformed_datagrams:"))
        .filter_map(|l| counter(l, "malformed_datagrams"))
        .sum();
    assert_eq!(malformed, (nf_corpus.len() + sf_corpus.len()) as u64, "{status}");

    let mut got = BTreeMap::new();
    for row in sorted_rows(&query_csv(&pipe)) {
        let cols: Vec<&str> = row.split(',').collect();
        if let (Some(src), Some(p)) = (cols.first(), cols.get(5).and_then(|p| p.parse::<u64>().ok())) {
            *got.entry(src.to_string()).or_insert(0) += p;
        }
    }
    // The variable-length-only template's records have no addresses: 64 of them, 0 packets.
    got.remove("0.0.0.0");
    assert_eq!(got, want);
    d.terminate();
}
