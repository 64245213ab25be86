//! See `xacct_wire::fuzzing::restore_templates` for the input's layout and the invariants checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xacct_wire::fuzzing::restore_templates(data));
