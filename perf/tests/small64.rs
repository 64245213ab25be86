//! The streamed small64 writer (for floods too big to hold in memory) writes what
//! `traffic::small64` builds, readable by libpcap, with a distinct 5-tuple per packet in its
//! one-flow-per-packet mode.

use std::collections::HashSet;
use xacct_perf::traffic;

#[test]
fn streamed_pcap_equals_the_in_memory_frames_and_every_key_is_distinct() {
    let dir = tempfile::tempdir().expect("tempdir");
    for flows in [0u64, 37] {
        let path = dir.path().join(format!("s{flows}.pcap"));
        traffic::write_small64_pcap(&path, 70_000, flows, 5).expect("write");
        let want = traffic::small64(70_000, flows, 5);
        let mut cap = pcap::Capture::from_file(&path).expect("libpcap reads it");
        let mut keys = HashSet::new();
        let mut n = 0;
        while let Ok(p) = cap.next_packet() {
            let w = &want[n];
            assert_eq!((p.data, p.header.len), (w.data.as_slice(), w.data.len() as u32), "packet {n}");
            assert_eq!((p.header.ts.tv_sec as i64, p.header.ts.tv_usec as i64), (w.ts_sec, w.ts_usec));
            // Addresses and ports: bytes 26..38 of an untagged IPv4/TCP frame.
            keys.insert(p.data[26..38].to_vec());
            n += 1;
        }
        assert_eq!(n, 70_000);
        assert_eq!(keys.len(), if flows == 0 { 70_000 } else { 37 });
    }
}
