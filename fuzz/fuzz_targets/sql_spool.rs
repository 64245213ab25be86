//! See `xacct_sql::fuzzing::sql_spool` for the input's layout and the invariants checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xacct_sql::fuzzing::sql_spool(data));
