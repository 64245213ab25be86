//! Feeds arbitrary bytes to the sFlow decoder and checks the invariants callers rely on
//! (beyond "does not panic").
#![no_main]

use libfuzzer_sys::fuzz_target;
use xacct_wire::sflow::decode_datagram;

fuzz_target!(|data: &[u8]| {
    let mut seen = 0u32;
    let r = decode_datagram(data, |s| {
        seen += 1;
        assert!(s.source_id_index <= 0x00ff_ffff || s.expanded);
        // v2/v4 inputs are full words, so only the output format can be bounded.
        assert!(s.output_format <= 3 || s.expanded);
        if s.header_error.is_some() {
            assert!(matches!(s.header_protocol, 1 | 11 | 12));
        }
    });
    if let Ok((dg, counts)) = r {
        assert!(matches!(dg.version, 2 | 4 | 5));
        assert_eq!(counts.flow_samples, seen);
        assert_eq!(counts.flow_samples + counts.counter_samples + counts.unknown_samples, dg.samples);
    }
});
