//! Replays every committed fuzz corpus file and every fixed finding (`fuzz/corpus/<target>/`,
//! `fuzz/regressions/<target>/`) through the fuzz targets' bodies, so that the normal test
//! suite, on stable and without libFuzzer, keeps what the fuzzer found fixed.

#[path = "../../../fuzz/replay.rs"]
mod replay;
use replay::replay;

#[test]
fn sql_spool() {
    replay("sql_spool", xacct_sql::fuzzing::sql_spool);
}
