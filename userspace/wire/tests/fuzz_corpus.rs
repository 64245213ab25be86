//! Replays every committed fuzz corpus file and every fixed finding (`fuzz/corpus/<target>/`,
//! `fuzz/regressions/<target>/`) through the fuzz targets' bodies, so that the normal test
//! suite, on stable and without libFuzzer, keeps what the fuzzer found fixed.

use std::path::{Path, PathBuf};

fn inputs(target: &str) -> Vec<PathBuf> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut v = Vec::new();
    for dir in ["corpus", "regressions"] {
        if let Ok(rd) = std::fs::read_dir(fuzz.join(dir).join(target)) {
            v.extend(rd.flatten().map(|e| e.path()).filter(|p| p.is_file()));
        }
    }
    v.sort();
    v
}

fn replay(target: &str, body: fn(&[u8])) {
    let files = inputs(target);
    assert!(!files.is_empty(), "no corpus for {target}");
    for f in files {
        let data = std::fs::read(&f).unwrap();
        // The file's name in the panic message is what to look at.
        let r = std::panic::catch_unwind(|| body(&data));
        assert!(r.is_ok(), "{target}: {} panics", f.display());
    }
}

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
