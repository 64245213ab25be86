//! Synthetic traffic for tests, demos and capacity runs: frames built with `etherparse`,
//! written to pcap files with libpcap itself (so any pcap reader, pmacctd included, reads them).

pub mod afxdp_tx;
pub mod flowgen;
pub mod testrun;
pub mod traffic;
pub mod trafficgen;

/// Whether the process is root, as tests that load BPF need. When not, prints why the test
/// is skipped, unless under CI (`CI=true`), where a skip would hide a broken set-up: it fails.
pub fn root_or_skip(why: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    assert!(std::env::var("CI").as_deref() != Ok("true"), "cannot skip under CI=true: {why} needs root");
    eprintln!("SKIP: {why} needs root");
    false
}
