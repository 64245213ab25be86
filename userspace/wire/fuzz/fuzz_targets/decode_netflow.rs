//! Feeds arbitrary datagrams to the NetFlow/IPFIX decoder. Several datagrams share one decoder
//! so that templates, held data sets and withdrawals interact across messages, and the cache
//! must stay within its limits whatever arrives.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use xacct_wire::netflow::{decode_fixed, Decoder, FlowRecord, Limits, NetflowHeader};

fuzz_target!(|data: &[u8]| {
    let limits =
        Limits { max_templates: 8, max_fields: 32, max_pending_sets: 4, max_pending_bytes: 4096, max_domains: 8 };
    let mut dec = Decoder::new(limits);
    // Datagrams are separated by the byte 0xa5 so that the fuzzer can build
    // template-then-data sequences; a missing marker is one datagram.
    for (i, dgram) in data.split(|&b| b == 0xa5).enumerate() {
        let exporter = IpAddr::V4(Ipv4Addr::new(10, 0, 0, (i % 2) as u8));
        let mut n = 0u64;
        let res = dec.decode(exporter, dgram, &mut |_: &NetflowHeader, r: &FlowRecord| {
            n += 1;
            assert!(r.vlan < 4096, "VLAN ids are 12 bits");
        });
        if let Ok(st) = res {
            assert_eq!(u64::from(st.records) + u64::from(st.replayed_records), n);
        }
        let _ = decode_fixed(dgram, &mut |_: &NetflowHeader, _: &FlowRecord| {});
        assert!(dec.templates.pending_sets() <= 8 * 4, "pending sets bounded");
        assert!(dec.templates.len() <= 8 * 8, "templates bounded");
    }
});
