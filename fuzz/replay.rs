//! The corpus replay every crate's `tests/fuzz_corpus.rs` includes (`#[path]`): each
//! committed corpus file and fixed finding (`fuzz/corpus/<target>/`,
//! `fuzz/regressions/<target>/`) through a fuzz target's body, so that the normal test suite,
//! on stable and without libFuzzer, keeps what the fuzzer found fixed.

use std::path::{Path, PathBuf};

fn inputs(target: &str) -> Vec<PathBuf> {
    // Every including crate sits at userspace/<crate>.
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

pub fn replay(target: &str, body: fn(&[u8])) {
    let files = inputs(target);
    assert!(!files.is_empty(), "no corpus for {target}");
    for f in files {
        let data = std::fs::read(&f).unwrap();
        // The file's name in the panic message is what to look at.
        let r = std::panic::catch_unwind(|| body(&data));
        assert!(r.is_ok(), "{target}: {} panics", f.display());
    }
}
