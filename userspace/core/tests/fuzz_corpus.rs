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
