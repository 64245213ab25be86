//! See `xacct_core::fuzzing::pre_tag_map` for the input's layout and the invariants checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xacct_core::fuzzing::pre_tag_map(data));
