//! Replays every committed fuzz corpus file and every fixed finding (`fuzz/corpus/<target>/`,
//! `fuzz/regressions/<target>/`) through the fuzz targets' bodies, so that the normal test
//! suite, on stable and without libFuzzer, keeps what the fuzzer found fixed.

#[path = "../../../fuzz/replay.rs"]
mod replay;
use replay::replay;

#[test]
fn config() {
    replay("config", xacct_core::fuzzing::config);
}

#[test]
fn maps() {
    replay("maps", xacct_core::fuzzing::maps);
}

#[test]
fn filter() {
    replay("filter", xacct_core::fuzzing::filter);
}

#[test]
fn imt() {
    replay("imt", xacct_core::fuzzing::imt);
}

#[test]
fn pre_tag_map() {
    replay("pre_tag_map", xacct_core::fuzzing::pre_tag_map);
}
