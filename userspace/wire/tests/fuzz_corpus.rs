//! Replays every committed fuzz corpus file and every fixed finding (`fuzz/corpus/<target>/`,
//! `fuzz/regressions/<target>/`) through the fuzz targets' bodies, so that the normal test
//! suite, on stable and without libFuzzer, keeps what the fuzzer found fixed.

#[path = "../../../fuzz/replay.rs"]
mod replay;
use replay::replay;

#[test]
fn decode_packet() {
    replay("decode_packet", xacct_wire::fuzzing::decode_packet);
}

#[test]
fn decode_netflow() {
    replay("decode_netflow", xacct_wire::fuzzing::decode_netflow);
}

#[test]
fn decode_sflow() {
    replay("decode_sflow", xacct_wire::fuzzing::decode_sflow);
}

#[test]
fn restore_templates() {
    replay("restore_templates", xacct_wire::fuzzing::restore_templates);
}

#[test]
fn savefile() {
    replay("savefile", xacct_wire::fuzzing::savefile);
}
