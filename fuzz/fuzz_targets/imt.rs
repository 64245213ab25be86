//! See `xacct_core::fuzzing::imt` for the input's layout and the invariants checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xacct_core::fuzzing::imt(data));
